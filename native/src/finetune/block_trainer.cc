#include "finetune/block_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "finetune/adam.h"

namespace quip::finetune {

namespace {

void require(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

// The parameter as F: float parameters are used in place, double ones converted into `tmp`.
template <class F>
const F* as(const std::vector<float>& v, std::vector<F>& tmp) {
  if constexpr (std::is_same_v<F, float>) {
    return v.data();
  } else {
    tmp.assign(v.begin(), v.end());
    return tmp.data();
  }
}

// y = L(x) (+ bias). c_cache: quantized layers keep their pre-SV output there for the backward pass.
template <class F>
void linear_apply(const TrainLinear& L, const F* x, int T, F* y, float* c_cache) {
  std::vector<F> tw, tsu, tsv;
  if (L.quantized) {
    if constexpr (std::is_same_v<F, float>)
      qlinear_forward(L.shape, L.w.data(), L.su.data(), L.sv.data(), x, T, y, c_cache);
    else
      qlinear_forward(L.shape, as(L.w, tw), as(L.su, tsu), as(L.sv, tsv), x, T, y);
  } else {
    linear_forward(x, as(L.w, tw), T, L.n, L.m, y);
  }
  if (!L.bias.empty())
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < L.m; ++o) y[static_cast<size_t>(t) * L.m + o] += L.bias[o];
}


template <class F>
void forward_impl(const TrainBlock& b, const F* x, int T, F* y, BlockCache* cache) {
  const BlockShape& s = b.shape;
  const size_t t_ = T, H = s.hidden, I = s.intermediate, nq = static_cast<size_t>(s.heads) * s.head_dim,
               nk = static_cast<size_t>(s.kv_heads) * s.head_dim;
  std::vector<F> xn1(t_ * H), q(t_ * nq), k(t_ * nk), v(t_ * nk), att(t_ * nq), tmp(t_ * H), x1(t_ * H),
      xn2(t_ * H), g(t_ * I), u(t_ * I), h(t_ * I), P, w1, w2;
  float* cc[kLinearCount] = {};
  if (cache) {
    P.resize(static_cast<size_t>(s.heads) * t_ * t_);
    for (int i = 0; i < kLinearCount; ++i) {
      cache->c[i].assign(b.lin[i].quantized ? t_ * b.lin[i].m : 0, 0.0f);
      cc[i] = b.lin[i].quantized ? cache->c[i].data() : nullptr;
    }
  }
  rms_norm_forward(x, as(b.attn_norm, w1), T, s.hidden, s.rms_eps, xn1.data());
  linear_apply(b.lin[kQ], xn1.data(), T, q.data(), cc[kQ]);
  linear_apply(b.lin[kK], xn1.data(), T, k.data(), cc[kK]);
  linear_apply(b.lin[kV], xn1.data(), T, v.data(), cc[kV]);
  rope_apply(q.data(), T, s.heads, s.head_dim, 0, s.inv_freq.data());
  rope_apply(k.data(), T, s.kv_heads, s.head_dim, 0, s.inv_freq.data());
  if constexpr (std::is_same_v<F, float>)
    attention_forward(q.data(), k.data(), v.data(), T, s.heads, s.kv_heads, s.head_dim, att.data(), cache ? P.data() : nullptr);
  else
    attention_forward(q.data(), k.data(), v.data(), T, s.heads, s.kv_heads, s.head_dim, att.data());
  linear_apply(b.lin[kO], att.data(), T, tmp.data(), cc[kO]);
  for (size_t i = 0; i < t_ * H; ++i) x1[i] = x[i] + tmp[i];
  rms_norm_forward(x1.data(), as(b.mlp_norm, w2), T, s.hidden, s.rms_eps, xn2.data());
  linear_apply(b.lin[kGate], xn2.data(), T, g.data(), cc[kGate]);
  linear_apply(b.lin[kUp], xn2.data(), T, u.data(), cc[kUp]);
  swiglu_forward(g.data(), u.data(), t_ * I, h.data());
  linear_apply(b.lin[kDown], h.data(), T, tmp.data(), cc[kDown]);
  for (size_t i = 0; i < t_ * H; ++i) y[i] = x1[i] + tmp[i];
  if constexpr (std::is_same_v<F, float>) {
    if (cache) {
      cache->xn1 = std::move(xn1);
      cache->q = std::move(q);
      cache->k = std::move(k);
      cache->v = std::move(v);
      cache->P = std::move(P);
      cache->att = std::move(att);
      cache->x1 = std::move(x1);
      cache->xn2 = std::move(xn2);
      cache->g = std::move(g);
      cache->u = std::move(u);
      cache->h = std::move(h);
    }
  }
}

// Gradient slots of one linear inside the grads list (-1 where not trainable).
struct LinearGradIndex {
  int w = -1, su = -1, sv = -1;
};

// dx (overwritten, T x n) and the layer's parameter gradients (accumulated) from dy (T x m).
void linear_grad(const TrainLinear& L, const LinearGradIndex& gi, std::vector<float>* grads,
                 const float* x, const float* c_cache, const float* dy, int T, float* dx) {
  if (L.quantized)
    qlinear_backward(L.shape, L.w.data(), L.su.data(), L.sv.data(), x, c_cache, dy, T, dx, grads[gi.su].data(),
                     grads[gi.sv].data());
  else
    linear_backward(x, L.w.data(), dy, T, L.n, L.m, dx, grads[gi.w].data());
}

}  // namespace

void BlockShape::validate() const {
  require(hidden > 0 && intermediate > 0 && heads > 0 && kv_heads > 0 && head_dim > 0,
          "block shape: hidden, intermediate, heads, kv_heads and head_dim must be positive");
  require(heads % kv_heads == 0, "block shape: heads must be a multiple of kv_heads");
  require(head_dim % 2 == 0, "block shape: head_dim must be even for rotary embeddings");
  require(static_cast<int>(inv_freq.size()) == head_dim / 2, "block shape: inv_freq needs head_dim / 2 entries");
  require(rms_eps > 0, "block shape: rms_eps must be positive");
}

TrainLinear TrainLinear::dense(int m, int n, std::vector<float> w) {
  require(m > 0 && n > 0 && w.size() == static_cast<size_t>(m) * n, "dense linear: the weight needs m x n entries");
  TrainLinear L;
  L.m = m;
  L.n = n;
  L.w = std::move(w);
  return L;
}

TrainLinear TrainLinear::quantized_layer(int m, int n, std::vector<float> w_tilde, float scale, std::vector<float> su,
                                         std::vector<float> sv) {
  require(m > 0 && n > 0 && w_tilde.size() == static_cast<size_t>(m) * n, "quantized linear: W~ needs m x n entries");
  require(su.size() == static_cast<size_t>(n) && sv.size() == static_cast<size_t>(m),
          "quantized linear: su needs n entries and sv m entries");
  TrainLinear L;
  L.m = m;
  L.n = n;
  L.quantized = true;
  L.w = std::move(w_tilde);
  L.su = std::move(su);
  L.sv = std::move(sv);
  L.shape = qlinear_shape(m, n, scale);
  return L;
}

const char* linear_slot_name(int slot) {
  static const char* names[kLinearCount] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  return slot >= 0 && slot < kLinearCount ? names[slot] : "?";
}

void TrainBlock::validate() const {
  shape.validate();
  const int H = shape.hidden, I = shape.intermediate, nq = shape.heads * shape.head_dim, nk = shape.kv_heads * shape.head_dim;
  require(attn_norm.size() == static_cast<size_t>(H) && mlp_norm.size() == static_cast<size_t>(H),
          "block: the RMSNorm weights need hidden entries");
  const int want[kLinearCount][2] = {{nq, H}, {nk, H}, {nk, H}, {H, nq}, {I, H}, {I, H}, {H, I}};
  for (int i = 0; i < kLinearCount; ++i) {
    const TrainLinear& L = lin[i];
    require(L.m == want[i][0] && L.n == want[i][1],
            std::string("block: ") + linear_slot_name(i) + " is " + std::to_string(L.m) + "x" + std::to_string(L.n) +
                ", the shape needs " + std::to_string(want[i][0]) + "x" + std::to_string(want[i][1]));
    require(L.w.size() == static_cast<size_t>(L.m) * L.n, std::string("block: ") + linear_slot_name(i) + " has the wrong weight size");
    require(L.bias.empty() || L.bias.size() == static_cast<size_t>(L.m), std::string("block: ") + linear_slot_name(i) + " has the wrong bias size");
    if (L.quantized)
      require(L.su.size() == static_cast<size_t>(L.n) && L.sv.size() == static_cast<size_t>(L.m) && L.shape.m == L.m && L.shape.n == L.n,
              std::string("block: ") + linear_slot_name(i) + " has the wrong sign vector sizes");
  }
}

template <class F>
void block_forward(const TrainBlock& b, const F* x, int T, F* y) {
  forward_impl<F>(b, x, T, y, nullptr);
}
template void block_forward<float>(const TrainBlock&, const float*, int, float*);
template void block_forward<double>(const TrainBlock&, const double*, int, double*);

std::vector<ParamRef> block_parameters(TrainBlock& b) {
  std::vector<ParamRef> p;
  p.push_back({b.attn_norm.data(), b.attn_norm.size(), false, "attn_norm"});
  p.push_back({b.mlp_norm.data(), b.mlp_norm.size(), false, "mlp_norm"});
  for (int i = 0; i < kLinearCount; ++i) {
    TrainLinear& L = b.lin[i];
    if (L.quantized) {
      p.push_back({L.su.data(), L.su.size(), true, linear_slot_name(i)});
      p.push_back({L.sv.data(), L.sv.size(), true, linear_slot_name(i)});
    } else {
      p.push_back({L.w.data(), L.w.size(), false, linear_slot_name(i)});
    }
  }
  return p;
}

void block_forward_cached(const TrainBlock& b, const float* x, int T, float* y, BlockCache& cache) {
  forward_impl<float>(b, x, T, y, &cache);
}

size_t block_parameter_count(const TrainBlock& b) {
  size_t n = 2;
  for (const TrainLinear& L : b.lin) n += L.quantized ? 2 : 1;
  return n;
}

double block_backward(const TrainBlock& b, const float* x, int T, const OutputLoss& loss,
                      std::vector<std::vector<float>>& grads) {
  if (grads.size() != block_parameter_count(b)) throw std::invalid_argument("block_backward: grads do not match block_parameters");
  BlockCache c;
  const size_t n = static_cast<size_t>(T) * b.shape.hidden;
  std::vector<float> y(n), dy(n);
  forward_impl<float>(b, x, T, y.data(), &c);
  const double value = loss(y.data(), dy.data());
  block_backward_cached(b, x, T, c, dy.data(), grads.data(), nullptr);
  return value;
}

void block_backward_cached(const TrainBlock& b, const float* x, int T, const BlockCache& c, const float* dy_in,
                           std::vector<float>* grads, float* dx) {
  const BlockShape& s = b.shape;
  const size_t t_ = T, H = s.hidden, I = s.intermediate, nq = static_cast<size_t>(s.heads) * s.head_dim,
               nk = static_cast<size_t>(s.kv_heads) * s.head_dim;
  // Gradient slots in block_parameters order.
  LinearGradIndex gi[kLinearCount];
  int next = 2;
  for (int i = 0; i < kLinearCount; ++i) {
    if (b.lin[i].quantized) {
      gi[i].su = next++;
      gi[i].sv = next++;
    } else {
      gi[i].w = next++;
    }
  }
  const std::vector<float> dy(dy_in, dy_in + t_ * H);
  // MLP: y = x1 + down(h), h = silu(g) u, g/u from xn2 = RMSNorm(x1).
  std::vector<float> dx1(dy), dh(t_ * I), dg(t_ * I), du(t_ * I), dxn(t_ * H), tmp(t_ * H);
  linear_grad(b.lin[kDown], gi[kDown], grads, c.h.data(), c.c[kDown].data(), dy.data(), T, dh.data());
  swiglu_backward(c.g.data(), c.u.data(), dh.data(), t_ * I, dg.data(), du.data());
  linear_grad(b.lin[kGate], gi[kGate], grads, c.xn2.data(), c.c[kGate].data(), dg.data(), T, dxn.data());
  linear_grad(b.lin[kUp], gi[kUp], grads, c.xn2.data(), c.c[kUp].data(), du.data(), T, tmp.data());
  for (size_t i = 0; i < t_ * H; ++i) dxn[i] += tmp[i];
  rms_norm_backward(c.x1.data(), b.mlp_norm.data(), dxn.data(), T, s.hidden, s.rms_eps, tmp.data(), grads[1].data());
  for (size_t i = 0; i < t_ * H; ++i) dx1[i] += tmp[i];

  // Attention: x1 = x + o(att), att = attention(rope(q), rope(k), v), q/k/v from xn1 = RMSNorm(x).
  std::vector<float> datt(t_ * nq), dq(t_ * nq), dk(t_ * nk), dv(t_ * nk);
  linear_grad(b.lin[kO], gi[kO], grads, c.att.data(), c.c[kO].data(), dx1.data(), T, datt.data());
  attention_backward(c.q.data(), c.k.data(), c.v.data(), c.P.data(), datt.data(), T, s.heads, s.kv_heads, s.head_dim,
                     dq.data(), dk.data(), dv.data());
  rope_apply(dq.data(), T, s.heads, s.head_dim, 0, s.inv_freq.data(), true);
  rope_apply(dk.data(), T, s.kv_heads, s.head_dim, 0, s.inv_freq.data(), true);
  linear_grad(b.lin[kQ], gi[kQ], grads, c.xn1.data(), c.c[kQ].data(), dq.data(), T, dxn.data());
  linear_grad(b.lin[kK], gi[kK], grads, c.xn1.data(), c.c[kK].data(), dk.data(), T, tmp.data());
  for (size_t i = 0; i < t_ * H; ++i) dxn[i] += tmp[i];
  linear_grad(b.lin[kV], gi[kV], grads, c.xn1.data(), c.c[kV].data(), dv.data(), T, tmp.data());
  for (size_t i = 0; i < t_ * H; ++i) dxn[i] += tmp[i];
  // x feeds the attention norm and the residual.
  rms_norm_backward(x, b.attn_norm.data(), dxn.data(), T, s.hidden, s.rms_eps, dx, grads[0].data());
  if (dx)
    for (size_t i = 0; i < t_ * H; ++i) dx[i] += dx1[i];
}


void BlockTrainSettings::validate() const {
  require(epochs >= 0, "fine-tuning epochs must be 0 or more");
  require(batch >= 1, "fine-tuning batch must be at least 1 sequence");
  require(lr >= 0 && lr_sign >= 0 && std::isfinite(lr) && std::isfinite(lr_sign), "fine-tuning learning rates must be finite and not negative");
  require(holdout >= 0 && holdout < 1, "fine-tuning held-out fraction must be in [0, 1)");
  require(patience >= 1, "fine-tuning patience must be at least 1 epoch");
}

double block_mse(const TrainBlock& b, const float* inputs, const float* targets, int seq_len, const std::vector<int>& seqs) {
  const size_t per = static_cast<size_t>(seq_len) * b.shape.hidden;
  std::vector<float> y(per);
  double sum = 0.0;
  for (int s : seqs) {
    block_forward<float>(b, inputs + s * per, seq_len, y.data());
    sum += mse_loss(y.data(), targets + s * per, per);
  }
  return seqs.empty() ? 0.0 : sum / seqs.size();
}

SequenceSplit split_sequences(int sequences, double holdout, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> order(std::max(sequences, 0));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  int n_held = 0;
  if (holdout > 0 && sequences >= 2) n_held = std::clamp(static_cast<int>(std::lround(holdout * sequences)), 1, sequences - 1);
  SequenceSplit s;
  s.heldout.assign(order.begin(), order.begin() + n_held);
  s.train.assign(order.begin() + n_held, order.end());
  return s;
}

BlockTrainResult run_training(const std::vector<ParamRef>& params, int sequences, int tokens_per_sequence,
                              const BlockTrainSettings& st, const JobHooks& hooks,
                              const std::function<void(const EpochStats&)>& on_epoch, const SequenceStep& step,
                              const SequenceEval& eval) {
  st.validate();
  require(sequences >= 1 && tokens_per_sequence >= 1, "fine-tuning needs at least one calibration sequence");
  const auto t_start = std::chrono::steady_clock::now();
  SequenceSplit split = split_sequences(sequences, st.holdout, st.seed);
  std::vector<int>& train = split.train;
  const std::vector<int>& held = split.heldout;
  // Batch order: its own stream, so the split does not depend on the number of epochs.
  std::mt19937_64 rng(st.seed ^ 0x9e3779b97f4a7c15ull);
  auto mean_loss = [&](const std::vector<int>& seqs) {
    double s = 0.0;
    for (int q : seqs) {
      hooks.check();
      s += eval(q);
    }
    return seqs.empty() ? 0.0 : s / seqs.size();
  };
  // Without a split the epoch is chosen on the training sequences.
  const std::vector<int> select = held.empty() ? train : held;

  BlockTrainResult r;
  r.train_sequences = static_cast<int>(train.size());
  r.heldout_sequences = static_cast<int>(held.size());
  r.initial_train_loss = mean_loss(train);
  r.initial_heldout_loss = held.empty() ? r.initial_train_loss : mean_loss(select);
  r.best_heldout_loss = r.initial_heldout_loss;

  std::vector<std::vector<float>> grads(params.size()), best(params.size());
  Adam adam(AdamSettings{st.lr, st.lr_sign});
  for (size_t i = 0; i < params.size(); ++i) {
    grads[i].assign(params[i].size, 0.0f);
    best[i].assign(params[i].data, params[i].data + params[i].size);
    adam.add(params[i].data, grads[i].data(), params[i].size, params[i].sign_vector);
  }

  int since_best = 0;
  int64_t tokens = 0;
  for (int epoch = 1; epoch <= st.epochs; ++epoch) {
    const auto e0 = std::chrono::steady_clock::now();
    std::shuffle(train.begin(), train.end(), rng);
    double loss_sum = 0.0;
    int batches = 0;
    for (size_t b0 = 0; b0 < train.size(); b0 += st.batch) {
      const size_t b1 = std::min(train.size(), b0 + st.batch);
      for (auto& g : grads) std::fill(g.begin(), g.end(), 0.0f);
      double batch_loss = 0.0;
      // The batch loss is the mean of the sequences' losses, so each gradient is scaled by 1/count.
      const float k = 1.0f / static_cast<float>(b1 - b0);
      for (size_t i = b0; i < b1; ++i) {
        hooks.check();
        batch_loss += step(train[i], k, grads);
        tokens += tokens_per_sequence;
      }
      adam.step();
      loss_sum += batch_loss / static_cast<double>(b1 - b0);
      ++batches;
    }
    EpochStats e;
    e.epoch = epoch;
    e.train_loss = batches ? loss_sum / batches : 0.0;
    e.heldout_loss = mean_loss(select);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
    r.epochs.push_back(e);
    if (on_epoch) on_epoch(e);
    if (e.heldout_loss < r.best_heldout_loss) {
      r.best_heldout_loss = e.heldout_loss;
      r.best_epoch = epoch;
      since_best = 0;
      for (size_t i = 0; i < params.size(); ++i) best[i].assign(params[i].data, params[i].data + params[i].size);
    } else if (++since_best >= st.patience) {
      r.early_stopped = epoch < st.epochs;
      break;
    }
  }
  for (size_t i = 0; i < params.size(); ++i) std::copy(best[i].begin(), best[i].end(), params[i].data);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  r.tokens_per_second = r.seconds > 0 ? tokens / r.seconds : 0.0;
  return r;
}

BlockTrainResult train_block(TrainBlock& b, const float* inputs, const float* targets, int sequences, int seq_len,
                             const BlockTrainSettings& st, const JobHooks& hooks,
                             const std::function<void(const EpochStats&)>& on_epoch) {
  b.validate();
  const size_t per = static_cast<size_t>(seq_len) * b.shape.hidden;
  std::vector<float> y(per);
  auto step = [&](int seq, float k, std::vector<std::vector<float>>& grads) {
    const float* target = targets + seq * per;
    return block_backward(b, inputs + seq * per, seq_len, [&](const float* out, float* dy) {
      const double l = mse_loss_backward(out, target, per, dy);
      for (size_t j = 0; j < per; ++j) dy[j] *= k;
      return l;
    }, grads);
  };
  auto eval = [&](int seq) {
    block_forward<float>(b, inputs + seq * per, seq_len, y.data());
    return mse_loss(y.data(), targets + seq * per, per);
  };
  return run_training(block_parameters(b), sequences, seq_len, st, hooks, on_epoch, step, eval);
}

}  // namespace quip::finetune
