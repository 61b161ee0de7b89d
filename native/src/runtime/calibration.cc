#include "runtime/calibration.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/thread_pool.h"

namespace quip::runtime {

void HessianSum::add(const float* x, int tokens) {
  // Only the lower triangle is computed (row block [i0, i1) against columns [0, i1)), then mirrored.
  constexpr int kRows = 256;
  std::vector<float> xt, g;
  for (int t0 = 0; t0 < tokens; t0 += kHessianChunk) {
    const int tc = std::min(kHessianChunk, tokens - t0);
    // xt = X_chunk^T [n x tc]: then G = xt xt^T = X^T X through the GEMM (rows of W = rows of xt).
    xt.assign(static_cast<size_t>(n) * tc, 0.0f);
    for (int t = 0; t < tc; ++t)
      for (int i = 0; i < n; ++i) xt[static_cast<size_t>(i) * tc + t] = x[static_cast<size_t>(t0 + t) * n + i];
    for (int i0 = 0; i0 < n; i0 += kRows) {
      const int i1 = std::min(n, i0 + kRows), rows = i1 - i0;
      g.resize(static_cast<size_t>(rows) * i1);
      matmul_wt(xt.data() + static_cast<size_t>(i0) * tc, rows, WeightView{xt.data(), DType::F32, i1, tc}, g.data());
      parallel_for(static_cast<size_t>(rows), 16, [&](size_t b, size_t e) {
        for (size_t r = b; r < e; ++r) {
          double* out = sum.data() + (static_cast<size_t>(i0) + r) * n;
          const float* in = g.data() + r * i1;
          for (int j = 0; j <= i0 + static_cast<int>(r); ++j) out[j] += in[j];
        }
      });
    }
  }
  count += tokens;
}

void HessianSum::mirror() {
  parallel_for(static_cast<size_t>(n), 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      for (size_t j = i + 1; j < static_cast<size_t>(n); ++j) sum[i * n + j] = sum[j * n + i];
  });
}

Calibration::Calibration(std::shared_ptr<Model> model, std::vector<int32_t> ids, int sequences, int seq_len)
    : model_(std::move(model)), sequences_(sequences), seq_len_(seq_len) {
  if (sequences <= 0 || seq_len <= 0) throw std::invalid_argument("calibration needs at least one sequence of one token");
  if (ids.size() != static_cast<size_t>(sequences) * seq_len)
    throw std::invalid_argument("calibration ids hold " + std::to_string(ids.size()) + " tokens, expected " +
                                std::to_string(sequences) + " x " + std::to_string(seq_len));
  const int H = model_->config().hidden;
  hidden_.resize(ids.size() * H);
  model_->embed(ids.data(), static_cast<int>(ids.size()), hidden_.data());
}

void Calibration::run_block(float* x, LayerKV kv, const TapFn* taps) const {
  model_->block_forward(next_block_, x, seq_len_, 0, kv, taps);
}

BlockHessians Calibration::hessians(const JobHooks& hooks) const {
  const ModelConfig& c = model_->config();
  if (broken_) throw std::runtime_error("this calibration was interrupted while advancing a block; start a new one");
  if (next_block_ >= c.layers) throw std::out_of_range("calibration has already advanced through every block");
  BlockHessians out;
  out.tap[0] = HessianSum(c.hidden);
  out.tap[1] = HessianSum(c.heads * c.head_dim);
  out.tap[2] = HessianSum(c.hidden);
  out.tap[3] = HessianSum(c.intermediate);
  const int H = c.hidden, nkv = c.kv_heads * c.head_dim;
  std::vector<float> x(static_cast<size_t>(seq_len_) * H), kc(static_cast<size_t>(seq_len_) * nkv), vc(kc.size());
  TapFn taps = [&](Tap tap, const float* v, int tokens, int features) { out.tap[static_cast<int>(tap)].add(v, tokens); };
  for (int s = 0; s < sequences_; ++s) {
    hooks.check();
    std::copy(hidden(s), hidden(s) + x.size(), x.begin());
    run_block(x.data(), LayerKV{kc.data(), vc.data(), seq_len_}, &taps);
    hooks.emit("{\"phase\":\"hessians\",\"block\":" + std::to_string(next_block_) + ",\"sequence\":" + std::to_string(s + 1) +
               ",\"sequences\":" + std::to_string(sequences_) + "}");
  }
  for (HessianSum& h : out.tap) h.mirror();
  return out;
}

void Calibration::advance(const JobHooks& hooks) {
  const ModelConfig& c = model_->config();
  if (broken_) throw std::runtime_error("this calibration was interrupted while advancing a block; start a new one");
  if (next_block_ >= c.layers) throw std::out_of_range("calibration has already advanced through every block");
  const int H = c.hidden, nkv = c.kv_heads * c.head_dim;
  std::vector<float> kc(static_cast<size_t>(seq_len_) * nkv), vc(kc.size());
  broken_ = true;
  for (int s = 0; s < sequences_; ++s) {
    hooks.check();
    run_block(hidden_.data() + static_cast<size_t>(s) * seq_len_ * H, LayerKV{kc.data(), vc.data(), seq_len_}, nullptr);
    hooks.emit("{\"phase\":\"advance\",\"block\":" + std::to_string(next_block_) + ",\"sequence\":" + std::to_string(s + 1) +
               ",\"sequences\":" + std::to_string(sequences_) + "}");
  }
  broken_ = false;
  ++next_block_;
}

}  // namespace quip::runtime
