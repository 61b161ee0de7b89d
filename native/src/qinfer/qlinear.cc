#include "qinfer/qlinear.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "common/cpu.h"
#include "common/thread_pool.h"
#include "runtime/gemm.h"

namespace quip::qinfer {

namespace {
std::atomic<bool> g_profiling{false};
std::atomic<long long> g_transform_ns{0}, g_matvec_ns{0}, g_calls{0}, g_tokens{0};
long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void set_decode_profiling(bool on) {
  g_transform_ns = 0;
  g_matvec_ns = 0;
  g_calls = 0;
  g_tokens = 0;
  g_profiling.store(on, std::memory_order_relaxed);
}

DecodeProfile decode_profile() {
  return DecodeProfile{g_transform_ns.load() * 1e-9, g_matvec_ns.load() * 1e-9, g_calls.load(), g_tokens.load()};
}

static void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("quantized linear: " + what);
}

QuantizedLinear::QuantizedLinear(QuantizedLinearParams p, KernelImpl impl) : p_(std::move(p)), k_(&decode_kernels(impl)) {
  require(p_.m > 0 && p_.n > 0, "m and n must be positive");
  n_pad_ = (p_.n + 7) / 8 * 8;
  require(p_.codes.rows == p_.m, "codes have " + std::to_string(p_.codes.rows) + " rows, expected m = " + std::to_string(p_.m));
  require(p_.codes.groups * 8 == n_pad_, "codes have " + std::to_string(p_.codes.groups) + " groups per row, expected " +
                                             std::to_string(n_pad_ / 8) + " (n = " + std::to_string(p_.n) + " padded to " +
                                             std::to_string(n_pad_) + ")");
  validate(p_.codes);
  avx512_gemm_ = (impl == KernelImpl::Avx512 || impl == KernelImpl::Auto) && cpu_features().avx512;
  // The int8 prefill where a SIMD kernel runs it (the scalar reference is for the tests only).
  if (prefill_int8_supported(p_.codes)) {
    const CpuFeatures& cpu = cpu_features();
    if (impl == KernelImpl::Avx512 || (impl == KernelImpl::Auto && cpu.avx512)) pk_ = &prefill_kernels(KernelImpl::Avx512);
    else if ((impl == KernelImpl::Avx2 || impl == KernelImpl::Auto) && cpu.avx2) pk_ = &prefill_kernels(KernelImpl::Avx2);
  }
  require(std::isfinite(p_.scale) && p_.scale > 0, "scale must be positive and finite");
  if (p_.incoherence) {
    require(static_cast<int>(p_.su.size()) == p_.n, "su must hold n = " + std::to_string(p_.n) + " values");
    require(static_cast<int>(p_.sv.size()) == p_.m, "sv must hold m = " + std::to_string(p_.m) + " values");
    plan_in_ = hadamard_plan(p_.n);
    plan_out_ = hadamard_plan(p_.m);
    // H_n = F / sqrt(n) when n = K: input rows are rows of H_n^T, output rows rows of H_m.
    auto dense = [](const HadamardPlan& plan, bool transpose) {
      std::vector<float> d;
      if (plan.pow2 != 1 || plan.K < 16) return d;
      const std::vector<float>& F = hadamard_factor(plan);
      const int64_t K = plan.K;
      const float s = static_cast<float>(1.0 / std::sqrt(static_cast<double>(K)));
      d.resize(K * K);
      for (int64_t a = 0; a < K; ++a)
        for (int64_t b = 0; b < K; ++b) d[a * K + b] = (transpose ? F[b * K + a] : F[a * K + b]) * s;
      return d;
    };
    dense_in_ = dense(plan_in_, true);
    dense_out_ = dense(plan_out_, false);
  } else {
    require(p_.su.empty() && p_.sv.empty(), "sign vectors are only used with incoherence processing");
  }
}

std::string QuantizedLinear::describe() const {
  const char* kind = p_.codes.kind == CodeKind::E8P ? "E8P" : p_.codes.kind == CodeKind::RVQ3 ? "RVQ3" : p_.codes.kind == CodeKind::RVQ4 ? "RVQ4" : "RTN";
  std::string s = std::string("quip# ") + kind;
  if (p_.codes.kind == CodeKind::Scalar) s += std::to_string(p_.codes.scalar_bits);
  return s + " " + std::to_string(p_.m) + "x" + std::to_string(p_.n) + (p_.incoherence ? " +RHT" : "");
}

size_t QuantizedLinear::code_bytes() const {
  const size_t g = static_cast<size_t>(p_.m) * p_.codes.groups;
  switch (p_.codes.kind) {
    case CodeKind::E8P: return g * 2;
    case CodeKind::RVQ3: return g * 3;
    case CodeKind::RVQ4: return g * 4;
    case CodeKind::Scalar: return g * p_.codes.scalar_bits;
  }
  return 0;
}

// x (n floats) -> xt (n_pad floats): H_n^T (su .* x), zero-padded.
static void input_transform(const QuantizedLinearParams& p, const HadamardPlan& plan, const float* x, float* xt, int n_pad,
                            std::vector<float>& work) {
  if (p.incoherence) {
    for (int i = 0; i < p.n; ++i) xt[i] = x[i] * p.su[i];
    hadamard_apply(plan, xt, true, work);
  } else {
    std::copy(x, x + p.n, xt);
  }
  std::fill(xt + p.n, xt + n_pad, 0.0f);
}

// y~ (m floats, already scaled) -> y = sv .* (H_m y~), in place.
static void output_transform(const QuantizedLinearParams& p, const HadamardPlan& plan, float* y, std::vector<float>& work) {
  if (!p.incoherence) return;
  hadamard_apply(plan, y, false, work);
  for (int i = 0; i < p.m; ++i) y[i] *= p.sv[i];
}

// Columns [g0, g0 + count) groups of row r as a one-row QCodes of `count` groups, so decode_row
// decodes a slice of a row (the planes are row-major with `groups` per row).
static QCodes row_slice(const QCodes& q, int r, int g0, int count) {
  QCodes s = q;
  const size_t at = static_cast<size_t>(r) * q.groups + g0;
  s.rows = 1;
  s.groups = count;
  if (q.kind == CodeKind::Scalar) {
    s.packed = q.packed + at * q.scalar_bits;
  } else {
    s.primary = q.primary + at;
    if (q.kind == CodeKind::RVQ4) s.residual = static_cast<const uint16_t*>(q.residual) + at;
    if (q.kind == CodeKind::RVQ3) s.residual = static_cast<const uint8_t*>(q.residual) + at;
  }
  return s;
}

// Prefill: y (tokens x m) = xt (tokens x n_pad) Q^T, blocked like the engine GEMM: each task owns
// kRowBlock rows, decodes them kKBlock columns at a time into a float panel (every code decoded
// once per call, not once per token) and runs the engine's 2 x 6 microkernel over token pairs, with
// the tokens' slice of xt copied beside it so both panels stay in L1/L2.
void QuantizedLinear::prefill_matmul(const float* xt, int tokens, float* y) const {
  const int m = p_.m;
  if (avx512_gemm_) {
    // AVX-512: the engine's lanes = tokens GEMM over float panels decoded from the codes.
    runtime::gemm_panels_avx512(xt, tokens, n_pad_, static_cast<size_t>(n_pad_), m,
                               [&](int m0, int mr, int k0, int kc, float* p, size_t ldp) {
                                 for (int r = 0; r < mr; ++r) k_->decode_row(row_slice(p_.codes, m0 + r, k0 / 8, kc / 8), 0, p + r * ldp);
                               },
                               y, static_cast<size_t>(m));
    return;
  }
  const runtime::GemmKernels& kern = runtime::gemm_kernels();
  const int RB = runtime::kRowBlock, KB = runtime::kKBlock, TB = runtime::kTokenBlock;
  const size_t row_blocks = static_cast<size_t>((m + RB - 1) / RB);
  parallel_for(row_blocks, 1, [&](size_t rb0, size_t rb1) {
    thread_local std::vector<float> wpanel, xpanel;
    wpanel.resize(static_cast<size_t>(RB) * (KB + 8));
    xpanel.resize(static_cast<size_t>(TB) * (KB + 8));
    for (size_t rb = rb0; rb < rb1; ++rb) {
      const int m0 = static_cast<int>(rb) * RB, mr = std::min(RB, m - m0);
      for (int k0 = 0; k0 < n_pad_; k0 += KB) {
        const int kc = std::min(KB, n_pad_ - k0);
        const size_t ld = static_cast<size_t>(kc) + 8;  // not a power of two: rows spread over L1 sets
        for (int r = 0; r < mr; ++r) k_->decode_row(row_slice(p_.codes, m0 + r, k0 / 8, kc / 8), 0, wpanel.data() + r * ld);
        for (int t0 = 0; t0 < tokens; t0 += TB) {
          const int tb = std::min(TB, tokens - t0);
          for (int t = 0; t < tb; ++t)
            std::copy(xt + static_cast<size_t>(t0 + t) * n_pad_ + k0, xt + static_cast<size_t>(t0 + t) * n_pad_ + k0 + kc, xpanel.data() + t * ld);
          for (int r = 0; r < mr; r += 6) {
            const int nr = std::min(6, mr - r);
            for (int t = 0; t < tb; t += 2)
              kern.tile(xpanel.data() + t * ld, ld, std::min(2, tb - t), wpanel.data() + r * ld, ld, nr, kc,
                        y + static_cast<size_t>(t0 + t) * m + m0 + r, m, k0 > 0);
          }
        }
      }
    }
  });
}

// Prefill with int8 activations (qinfer/prefill.h): x rounded per token per block of 32 once per
// call, every code decoded once per call into int8 panels shared by all tokens.
void QuantizedLinear::prefill_matmul_int8(const float* xt, int tokens, float* y) const {
  thread_local PrefillX px;
  prefill_prepare_x(xt, tokens, n_pad_, static_cast<size_t>(n_pad_), px);
  if (p_.codes.kind != CodeKind::E8P) {
    px.d2.resize(px.d.size());
    for (size_t i = 0; i < px.d.size(); ++i) px.d2[i] = px.d[i] * p_.codes.residual_inv_scale;
  }
  const PrefillX& cpx = px;  // the workers read the caller's copy, not their own thread_local
  prefill_int8_matmul(p_.codes, cpx, *pk_, y, static_cast<size_t>(p_.m));
}

void QuantizedLinear::forward(const float* x, int tokens, float* y) const {
  const int m = p_.m, n = p_.n;
  const bool profiling = g_profiling.load(std::memory_order_relaxed);
  const long long t0 = profiling ? now_ns() : 0;
  // Scratch kept per calling thread: decode runs this once per layer per token, so no allocation.
  thread_local std::vector<float> xt, work;
  xt.resize(static_cast<size_t>(tokens) * n_pad_);
  // Per-token transforms are short: hand them out in chunks so pool overhead stays small.
  const size_t token_grain = std::max<size_t>(1, 16384 / static_cast<size_t>(std::max(n_pad_, m)));
  if (p_.incoherence && !dense_in_.empty()) {
    std::vector<float> xs(static_cast<size_t>(tokens) * n), xh(xs.size());
    for (size_t t = 0; t < static_cast<size_t>(tokens); ++t)
      for (int i = 0; i < n; ++i) xs[t * n + i] = x[t * n + i] * p_.su[i];
    runtime::matmul_wt(xs.data(), tokens, runtime::WeightView{dense_in_.data(), DType::F32, n, n}, xh.data());
    for (size_t t = 0; t < static_cast<size_t>(tokens); ++t) {
      std::copy(xh.begin() + t * n, xh.begin() + (t + 1) * n, xt.begin() + t * n_pad_);
      std::fill(xt.begin() + t * n_pad_ + n, xt.begin() + (t + 1) * n_pad_, 0.0f);
    }
  } else if (tokens == 1) {
    input_transform(p_, plan_in_, x, xt.data(), n_pad_, work);
  } else {
    float* xtp = xt.data();
    parallel_for(tokens, token_grain, [&](size_t b, size_t e) {
      std::vector<float> w;
      for (size_t t = b; t < e; ++t) input_transform(p_, plan_in_, x + t * n, xtp + t * n_pad_, n_pad_, w);
    });
  }
  const long long t1 = profiling ? now_ns() : 0;
  const float* xtp = xt.data();
  if (tokens == 1) {
    // Decode: every row's codes read once, rows split over threads in chunks of 64 (a multiple of
    // the kernels' 8-row tiles) taken dynamically, so a busy core takes fewer.
    if (k_->matvec_prepared && p_.codes.kind != CodeKind::Scalar) {
      // x rounded to int8 once and read by every thread (through a reference: a thread_local named
      // inside the lambda would be each worker's own, empty one).
      thread_local PreparedX prepared;
      const PreparedX& px = prepared;
      prepare_x(xtp, p_.codes.groups, prepared);
      parallel_for(m, 64, [&](size_t b, size_t e) { k_->matvec_prepared(p_.codes, px, static_cast<int>(b), static_cast<int>(e), y + b); });
    } else {
      parallel_for(m, 64, [&](size_t b, size_t e) { k_->matvec(p_.codes, xtp, static_cast<int>(b), static_cast<int>(e), y + b); });
    }
  } else if (pk_ && runtime::fast_prefill_enabled()) {
    prefill_matmul_int8(xtp, tokens, y);
  } else {
    prefill_matmul(xtp, tokens, y);
  }
  const long long t2 = profiling ? now_ns() : 0;
  if (p_.incoherence && !dense_out_.empty()) {
    std::vector<float> ys(static_cast<size_t>(tokens) * m);
    for (size_t i = 0; i < ys.size(); ++i) ys[i] = y[i] * p_.scale;
    runtime::matmul_wt(ys.data(), tokens, runtime::WeightView{dense_out_.data(), DType::F32, m, m}, y);
    for (size_t t = 0; t < static_cast<size_t>(tokens); ++t)
      for (int i = 0; i < m; ++i) y[t * m + i] *= p_.sv[i];
  } else if (tokens == 1) {
    for (int i = 0; i < m; ++i) y[i] *= p_.scale;
    output_transform(p_, plan_out_, y, work);
  } else {
    parallel_for(tokens, token_grain, [&](size_t b, size_t e) {
      std::vector<float> w;
      for (size_t t = b; t < e; ++t) {
        float* yt = y + t * m;
        for (int i = 0; i < m; ++i) yt[i] *= p_.scale;
        output_transform(p_, plan_out_, yt, w);
      }
    });
  }
  if (profiling) {
    const long long t3 = now_ns();
    g_transform_ns += (t1 - t0) + (t3 - t2);
    g_matvec_ns += t2 - t1;
    g_calls += 1;
    g_tokens += tokens;
  }
}

std::vector<double> QuantizedLinear::dequantize() const {
  const int m = p_.m, n = p_.n;
  // Q (m x n_pad) decoded by the scalar reference, then W = diag(sv) H_m (scale Q) H_n^T diag(su)
  // applied in float64 column by column (columns of the identity through the layer's math).
  std::vector<double> Q(static_cast<size_t>(m) * n_pad_);
  std::vector<float> row(n_pad_);
  for (int r = 0; r < m; ++r) {
    decode_kernels_scalar().decode_row(p_.codes, r, row.data());
    for (int c = 0; c < n_pad_; ++c) Q[static_cast<size_t>(r) * n_pad_ + c] = row[c];
  }
  std::vector<double> W(static_cast<size_t>(m) * n, 0.0);
  std::vector<double> work, xin(n_pad_), yo(m);
  for (int j = 0; j < n; ++j) {
    std::fill(xin.begin(), xin.end(), 0.0);
    if (p_.incoherence) {
      xin[j] = p_.su[j];
      hadamard_apply(plan_in_, xin.data(), true, work);
    } else {
      xin[j] = 1.0;
    }
    for (int r = 0; r < m; ++r) {
      double acc = 0;
      for (int c = 0; c < n; ++c) acc += Q[static_cast<size_t>(r) * n_pad_ + c] * xin[c];
      yo[r] = acc * p_.scale;
    }
    if (p_.incoherence) {
      hadamard_apply(plan_out_, yo.data(), false, work);
      for (int r = 0; r < m; ++r) yo[r] *= p_.sv[r];
    }
    for (int r = 0; r < m; ++r) W[static_cast<size_t>(r) * n + j] = yo[r];
  }
  return W;
}

}  // namespace quip::qinfer
