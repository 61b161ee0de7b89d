#include "finetune/e2e.h"

#include <stdexcept>
#include <string>
#include <type_traits>

namespace quip::finetune {

void TrainModel::validate() const {
  if (blocks.empty()) throw std::invalid_argument("model: no blocks to fine-tune");
  for (const TrainBlock& b : blocks) b.validate();
  const int H = blocks[0].shape.hidden;
  if (final_norm.size() != static_cast<size_t>(H)) throw std::invalid_argument("model: the final norm needs hidden entries");
  if (lm_head.quantized || lm_head.n != H || lm_head.m <= 0 || lm_head.w.size() != static_cast<size_t>(lm_head.m) * H)
    throw std::invalid_argument("model: lm_head must be a dense vocab x hidden matrix");
}

template <class F>
void model_forward(const TrainModel& m, const F* x0, int T, F* logits) {
  const int H = m.blocks[0].shape.hidden;
  const size_t n = static_cast<size_t>(T) * H;
  std::vector<F> a(x0, x0 + n), b(n), fn, w;
  for (const TrainBlock& blk : m.blocks) {
    block_forward<F>(blk, a.data(), T, b.data());
    a.swap(b);
  }
  fn.assign(m.final_norm.begin(), m.final_norm.end());
  rms_norm_forward(a.data(), fn.data(), T, H, m.blocks[0].shape.rms_eps, b.data());
  if constexpr (std::is_same_v<F, float>) {
    linear_forward(b.data(), m.lm_head.w.data(), T, H, m.lm_head.m, logits);
  } else {
    w.assign(m.lm_head.w.begin(), m.lm_head.w.end());
    linear_forward(b.data(), w.data(), T, H, m.lm_head.m, logits);
  }
}
template void model_forward<float>(const TrainModel&, const float*, int, float*);
template void model_forward<double>(const TrainModel&, const double*, int, double*);

std::vector<ParamRef> model_parameters(TrainModel& m) {
  std::vector<ParamRef> p;
  for (TrainBlock& b : m.blocks) {
    std::vector<ParamRef> q = block_parameters(b);
    p.insert(p.end(), q.begin(), q.end());
  }
  if (m.tune_final_norm) p.push_back({m.final_norm.data(), m.final_norm.size(), false, "final_norm"});
  if (m.tune_lm_head) p.push_back({m.lm_head.w.data(), m.lm_head.w.size(), false, "lm_head"});
  return p;
}

double model_backward(const TrainModel& m, const float* x0, int T, const OutputLoss& loss,
                      std::vector<std::vector<float>>& grads) {
  const int H = m.blocks[0].shape.hidden, V = m.lm_head.m;
  const size_t n = static_cast<size_t>(T) * H, nb = m.blocks.size();
  // Forward keeping every block's input and cache.
  std::vector<std::vector<float>> xs(nb + 1);
  std::vector<BlockCache> caches(nb);
  xs[0].assign(x0, x0 + n);
  for (size_t i = 0; i < nb; ++i) {
    xs[i + 1].resize(n);
    block_forward_cached(m.blocks[i], xs[i].data(), T, xs[i + 1].data(), caches[i]);
  }
  std::vector<float> xn(n), logits(static_cast<size_t>(T) * V), dlogits(logits.size());
  rms_norm_forward(xs[nb].data(), m.final_norm.data(), T, H, m.blocks[0].shape.rms_eps, xn.data());
  linear_forward(xn.data(), m.lm_head.w.data(), T, H, V, logits.data());
  const double value = loss(logits.data(), dlogits.data());

  // Slots: blocks first, then final_norm, then lm_head.
  std::vector<size_t> offset(nb + 1, 0);
  for (size_t i = 0; i < nb; ++i) offset[i + 1] = offset[i] + block_parameter_count(m.blocks[i]);
  size_t slot = offset[nb];
  float* g_norm = m.tune_final_norm ? grads.at(slot++).data() : nullptr;
  float* g_head = m.tune_lm_head ? grads.at(slot++).data() : nullptr;
  if (grads.size() != slot) throw std::invalid_argument("model_backward: grads do not match model_parameters");
  std::vector<float> dxn(n), dx(n), dprev(n);
  linear_backward(xn.data(), m.lm_head.w.data(), dlogits.data(), T, H, V, dxn.data(), g_head);
  rms_norm_backward(xs[nb].data(), m.final_norm.data(), dxn.data(), T, H, m.blocks[0].shape.rms_eps, dx.data(), g_norm);
  for (size_t i = nb; i-- > 0;) {
    block_backward_cached(m.blocks[i], xs[i].data(), T, caches[i], dx.data(), grads.data() + offset[i], i > 0 ? dprev.data() : nullptr);
    dx.swap(dprev);
  }
  return value;
}

BlockTrainResult train_model_distill(TrainModel& m, const float* embeddings, int sequences, int seq_len,
                                     const TeacherLogits& teacher, const BlockTrainSettings& st,
                                     const JobHooks& hooks, const std::function<void(const EpochStats&)>& on_epoch) {
  m.validate();
  const int H = m.blocks[0].shape.hidden, V = m.lm_head.m;
  const size_t per = static_cast<size_t>(seq_len) * H;
  std::vector<float> t_logits(static_cast<size_t>(seq_len) * V), s_logits(t_logits.size());
  auto step = [&](int seq, float k, std::vector<std::vector<float>>& grads) {
    teacher(seq, t_logits.data());
    return model_backward(m, embeddings + seq * per, seq_len, [&](const float* logits, float* dlogits) {
      const double l = distill_backward(logits, t_logits.data(), seq_len, V, dlogits);
      for (size_t j = 0; j < t_logits.size(); ++j) dlogits[j] *= k;
      return l;
    }, grads);
  };
  auto eval = [&](int seq) {
    teacher(seq, t_logits.data());
    model_forward<float>(m, embeddings + seq * per, seq_len, s_logits.data());
    return distill_loss(s_logits.data(), t_logits.data(), seq_len, V);
  };
  return run_training(model_parameters(m), sequences, seq_len, st, hooks, on_epoch, step, eval);
}

}  // namespace quip::finetune
