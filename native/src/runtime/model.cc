#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common/thread_pool.h"

namespace quip::runtime {

namespace {
thread_local bool t_fast_prefill = false;
bool fast_prefill_forbidden() {
  static const bool no = [] {
    const char* e = std::getenv("QUIP_PRECISE_PREFILL");
    return e && e[0] != '\0' && std::strcmp(e, "0") != 0;
  }();
  return no;
}
}  // namespace

bool fast_prefill_enabled() { return t_fast_prefill && !fast_prefill_forbidden(); }
FastPrefillScope::FastPrefillScope(bool on) : prev_(t_fast_prefill) { t_fast_prefill = on; }
FastPrefillScope::~FastPrefillScope() { t_fast_prefill = prev_; }

static void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

void ModelConfig::validate() const {
  require(hidden > 0, "hidden size must be positive");
  require(intermediate > 0, "intermediate size must be positive");
  require(layers > 0, "number of layers must be positive");
  require(heads > 0 && kv_heads > 0, "attention heads and key/value heads must be positive");
  require(heads % kv_heads == 0, "attention heads (" + std::to_string(heads) + ") must be a multiple of key/value heads (" +
                                     std::to_string(kv_heads) + ")");
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim must be positive and even (rotary pairs)");
  require(vocab > 0, "vocabulary size must be positive");
  require(context > 0, "context length must be positive");
  require(rope_theta > 0, "rope_theta must be positive");
  require(rope_factor > 0, "rope_scaling factor must be positive");
  require(rms_eps > 0, "rms_norm_eps must be positive");
  require(sliding_layers.empty() || static_cast<int>(sliding_layers.size()) == layers,
          "sliding_layers must have one entry per layer (" + std::to_string(layers) + "), it has " + std::to_string(sliding_layers.size()));
  require(rope_layers.empty() || static_cast<int>(rope_layers.size()) == layers,
          "rope_layers must have one entry per layer (" + std::to_string(layers) + "), it has " + std::to_string(rope_layers.size()));
  bool any_sliding = false;
  for (uint8_t s : sliding_layers) any_sliding = any_sliding || s != 0;
  require(!any_sliding || sliding_window > 0, "sliding-window layers need a positive sliding_window");
}

const char* ModelConfig::beyond_llama_block() const {
  if (qk_norm) return "q/k norms";
  for (uint8_t s : sliding_layers)
    if (s) return "sliding-window attention";
  for (uint8_t r : rope_layers)
    if (!r) return "layers without RoPE";
  return nullptr;
}

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<double> f(half);
  for (int i = 0; i < half; ++i) f[i] = 1.0 / std::pow(c.rope_theta, (2.0 * i) / c.head_dim);
  if (c.rope_scaling == RopeScalingType::Linear) {
    for (double& x : f) x /= c.rope_factor;
  } else if (c.rope_scaling == RopeScalingType::Llama3) {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between blended linearly
    // in (original_context / wavelength).
    const double low_wavelen = c.rope_original_context / c.rope_low_freq_factor;
    const double high_wavelen = c.rope_original_context / c.rope_high_freq_factor;
    for (double& x : f) {
      const double wavelen = 2.0 * M_PI / x;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        x /= c.rope_factor;
      } else {
        const double smooth = (c.rope_original_context / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        x = (1.0 - smooth) * x / c.rope_factor + smooth * x;
      }
    }
  }
  return f;
}

const char* linear_kind_name(LinearKind k) {
  switch (k) {
    case LinearKind::Q: return "q_proj";
    case LinearKind::K: return "k_proj";
    case LinearKind::V: return "v_proj";
    case LinearKind::O: return "o_proj";
    case LinearKind::Gate: return "gate_proj";
    case LinearKind::Up: return "up_proj";
    case LinearKind::Down: return "down_proj";
  }
  return "?";
}

Linear& Block::linear(LinearKind kind) { return const_cast<Linear&>(static_cast<const Block*>(this)->linear(kind)); }
const Linear& Block::linear(LinearKind kind) const {
  switch (kind) {
    case LinearKind::Q: return *q;
    case LinearKind::K: return *k;
    case LinearKind::V: return *v;
    case LinearKind::O: return *o;
    case LinearKind::Gate: return *gate;
    case LinearKind::Up: return *up;
    case LinearKind::Down: return *down;
  }
  throw std::invalid_argument("unknown linear kind");
}

void KVCache::allocate(const ModelConfig& c, int cap) {
  capacity = cap;
  const size_t n = static_cast<size_t>(cap) * c.kv_heads * c.head_dim;
  k.assign(c.layers, std::vector<float>(n));
  v.assign(c.layers, std::vector<float>(n));
}

// ---- construction -------------------------------------------------------------------------------
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

TensorView need(const Model::Lookup& lookup, const std::string& name, std::vector<int64_t> shape) {
  TensorView t = lookup(name);
  require(t.data != nullptr, "the weights have no tensor " + name);
  require(t.shape == shape, "tensor " + name + " has shape " + shape_str(t.shape) + ", the config implies " + shape_str(shape));
  return t;
}

std::vector<float> to_floats(const TensorView& t) {
  std::vector<float> v(t.numel());
  for (size_t i = 0; i < v.size(); ++i) v[i] = load_as_f32(t.data, t.dtype, i);
  return v;
}

std::unique_ptr<Linear> dense(const Model::Lookup& lookup, const std::string& name, int out, int in) {
  TensorView t = need(lookup, name, {out, in});
  return std::make_unique<DenseLinear>(WeightView{t.data, t.dtype, out, in});
}

void rms_norm(const float* x, const float* w, int n, double eps, float* y) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i) y[i] = w[i] * (x[i] * r);
}

}  // namespace

Model::Model(const ModelConfig& config, const Lookup& lookup) : cfg_(config) {
  cfg_.validate();
  const int H = cfg_.hidden, I = cfg_.intermediate, nq = cfg_.heads * cfg_.head_dim, nkv = cfg_.kv_heads * cfg_.head_dim;
  embed_ = need(lookup, "model.embed_tokens.weight", {cfg_.vocab, H});
  final_norm_ = to_floats(need(lookup, "model.norm.weight", {H}));
  if (cfg_.tied_embeddings) {
    lm_head_ = std::make_unique<DenseLinear>(WeightView{embed_.data, embed_.dtype, cfg_.vocab, H});
  } else {
    lm_head_ = dense(lookup, "lm_head.weight", cfg_.vocab, H);
  }
  blocks_.resize(cfg_.layers);
  for (int b = 0; b < cfg_.layers; ++b) {
    const std::string p = "model.layers." + std::to_string(b) + ".";
    Block& blk = blocks_[b];
    blk.attn_norm = to_floats(need(lookup, p + "input_layernorm.weight", {H}));
    blk.mlp_norm = to_floats(need(lookup, p + "post_attention_layernorm.weight", {H}));
    blk.q = dense(lookup, p + "self_attn.q_proj.weight", nq, H);
    blk.k = dense(lookup, p + "self_attn.k_proj.weight", nkv, H);
    blk.v = dense(lookup, p + "self_attn.v_proj.weight", nkv, H);
    blk.o = dense(lookup, p + "self_attn.o_proj.weight", H, nq);
    blk.gate = dense(lookup, p + "mlp.gate_proj.weight", I, H);
    blk.up = dense(lookup, p + "mlp.up_proj.weight", I, H);
    blk.down = dense(lookup, p + "mlp.down_proj.weight", H, I);
    if (cfg_.attention_bias) {
      blk.q_bias = to_floats(need(lookup, p + "self_attn.q_proj.bias", {nq}));
      blk.k_bias = to_floats(need(lookup, p + "self_attn.k_proj.bias", {nkv}));
      blk.v_bias = to_floats(need(lookup, p + "self_attn.v_proj.bias", {nkv}));
    }
    if (cfg_.qk_norm) {
      blk.q_norm = to_floats(need(lookup, p + "self_attn.q_norm.weight", {cfg_.head_dim}));
      blk.k_norm = to_floats(need(lookup, p + "self_attn.k_norm.weight", {cfg_.head_dim}));
    }
  }
  inv_freq_ = rope_inv_freq(cfg_);
}

void Model::set_final_norm(std::vector<float> w) {
  if (w.size() != static_cast<size_t>(cfg_.hidden))
    throw std::invalid_argument("final norm: " + std::to_string(w.size()) + " values, expected hidden = " + std::to_string(cfg_.hidden));
  final_norm_ = std::move(w);
}

void Model::set_lm_head(std::unique_ptr<Linear> layer) {
  require(layer && layer->out_features() == cfg_.vocab && layer->in_features() == cfg_.hidden,
          "replacement lm_head must be vocab " + std::to_string(cfg_.vocab) + " x hidden " + std::to_string(cfg_.hidden));
  lm_head_ = std::move(layer);
  cfg_.tied_embeddings = false;
}

void Model::set_linear(int b, LinearKind kind, std::unique_ptr<Linear> layer) {
  Block& blk = blocks_.at(b);
  const Linear& old = blk.linear(kind);
  require(layer && layer->in_features() == old.in_features() && layer->out_features() == old.out_features(),
          std::string("replacement for ") + linear_kind_name(kind) + " of block " + std::to_string(b) + " has the wrong shape");
  std::unique_ptr<Linear>* slot = nullptr;
  switch (kind) {
    case LinearKind::Q: slot = &blk.q; break;
    case LinearKind::K: slot = &blk.k; break;
    case LinearKind::V: slot = &blk.v; break;
    case LinearKind::O: slot = &blk.o; break;
    case LinearKind::Gate: slot = &blk.gate; break;
    case LinearKind::Up: slot = &blk.up; break;
    case LinearKind::Down: slot = &blk.down; break;
  }
  *slot = std::move(layer);
}

// ---- forward ------------------------------------------------------------------------------------
void Model::embed(const int32_t* ids, int tokens, float* x) const {
  const int H = cfg_.hidden;
  for (int t = 0; t < tokens; ++t) {
    if (ids[t] < 0 || ids[t] >= cfg_.vocab)
      throw std::out_of_range("token id " + std::to_string(ids[t]) + " is outside the vocabulary (size " +
                              std::to_string(cfg_.vocab) + ")");
    gemm_kernels().convert(embed_.data, embed_.dtype, static_cast<size_t>(ids[t]) * H, H, x + static_cast<size_t>(t) * H);
  }
}

// HF rotate-half: pairs (i, i + d/2) rotate by angle pos * inv_freq[i].
void Model::rope(float* x, int tokens, int pos0, int nheads) const {
  const int d = cfg_.head_dim, half = d / 2;
  std::vector<float> cs(static_cast<size_t>(tokens) * half), sn(cs.size());
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos0 + t) * inv_freq_[i];
      cs[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(a));
      sn[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(a));
    }
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < nheads; ++h) {
      float* v = x + (static_cast<size_t>(t) * nheads + h) * d;
      const float* c = cs.data() + static_cast<size_t>(t) * half;
      const float* s = sn.data() + static_cast<size_t>(t) * half;
      for (int i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];
        v[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
}

void Model::block_forward(int b, float* x, int T, int pos0, const LayerKV& kv, const TapFn* taps) const {
  const Block& blk = blocks_.at(b);
  const int H = cfg_.hidden, I = cfg_.intermediate, d = cfg_.head_dim;
  const int nh = cfg_.heads, nkvh = cfg_.kv_heads, nq = nh * d, nkv = nkvh * d;
  if (pos0 + T > kv.capacity)
    throw std::out_of_range("the context is full: " + std::to_string(pos0 + T) + " positions needed, the cache holds " +
                            std::to_string(kv.capacity));
  const size_t t_ = static_cast<size_t>(T);
  std::vector<float> xn(t_ * H), q(t_ * nq), att(t_ * nq);

  // Attention: x += o_proj(attention(rope(q), rope(k), v)) with q/k/v from RMSNorm(x).
  for (int t = 0; t < T; ++t) rms_norm(x + t * static_cast<size_t>(H), blk.attn_norm.data(), H, cfg_.rms_eps, xn.data() + t * static_cast<size_t>(H));
  if (taps) (*taps)(Tap::QkvIn, xn.data(), T, H);
  float* kdst = kv.k + static_cast<size_t>(pos0) * nkv;  // new keys/values go straight into the cache
  float* vdst = kv.v + static_cast<size_t>(pos0) * nkv;
  blk.q->forward(xn.data(), T, q.data());
  blk.k->forward(xn.data(), T, kdst);
  blk.v->forward(xn.data(), T, vdst);
  if (!blk.q_bias.empty()) {
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < nq; ++i) q[t * static_cast<size_t>(nq) + i] += blk.q_bias[i];
      for (int i = 0; i < nkv; ++i) kdst[t * static_cast<size_t>(nkv) + i] += blk.k_bias[i];
      for (int i = 0; i < nkv; ++i) vdst[t * static_cast<size_t>(nkv) + i] += blk.v_bias[i];
    }
  }
  if (!blk.q_norm.empty()) {
    // Per-head RMSNorm of queries and keys (Qwen3), before RoPE.
    std::vector<float> tmp(d);
    for (size_t r = 0; r < t_ * nh; ++r) {
      rms_norm(q.data() + r * d, blk.q_norm.data(), d, cfg_.rms_eps, tmp.data());
      std::copy(tmp.begin(), tmp.end(), q.data() + r * d);
    }
    for (size_t r = 0; r < t_ * nkvh; ++r) {
      rms_norm(kdst + r * d, blk.k_norm.data(), d, cfg_.rms_eps, tmp.data());
      std::copy(tmp.begin(), tmp.end(), kdst + r * d);
    }
  }
  if (cfg_.layer_rope(b)) {
    rope(q.data(), T, pos0, nh);
    rope(kdst, T, pos0, nkvh);
  }

  // Causal attention: query t (position p = pos0 + t) sees cache positions 0 .. p, or on a
  // sliding-window layer p - window + 1 .. p.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const int group = nh / nkvh;
  const int window = cfg_.layer_sliding(b) ? cfg_.sliding_window : 0;
  const GemmKernels& kern = gemm_kernels();
  parallel_for(t_ * nh, 4, [&](size_t b0, size_t b1) {
    std::vector<float> scores(static_cast<size_t>(pos0) + T);
    for (size_t job = b0; job < b1; ++job) {
      const int t = static_cast<int>(job / nh), h = static_cast<int>(job % nh), kvh = h / group;
      const int p = pos0 + t;
      const int first = window > 0 ? std::max(0, p - window + 1) : 0;
      const size_t off = static_cast<size_t>(first) * nkv + static_cast<size_t>(kvh) * d;
      kern.attend(q.data() + static_cast<size_t>(t) * nq + static_cast<size_t>(h) * d, kv.k + off, kv.v + off, nkv, p - first + 1, d,
                  scale, scores.data(), att.data() + static_cast<size_t>(t) * nq + static_cast<size_t>(h) * d);
    }
  });
  if (taps) (*taps)(Tap::OIn, att.data(), T, nq);
  blk.o->forward(att.data(), T, xn.data());
  for (size_t i = 0; i < t_ * H; ++i) x[i] += xn[i];

  // MLP: x += down(silu(gate(n)) * up(n)) with n = RMSNorm(x).
  for (int t = 0; t < T; ++t) rms_norm(x + t * static_cast<size_t>(H), blk.mlp_norm.data(), H, cfg_.rms_eps, xn.data() + t * static_cast<size_t>(H));
  if (taps) (*taps)(Tap::GateUpIn, xn.data(), T, H);
  std::vector<float> g(t_ * I), u(t_ * I);
  blk.gate->forward(xn.data(), T, g.data());
  blk.up->forward(xn.data(), T, u.data());
  for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  if (taps) (*taps)(Tap::DownIn, g.data(), T, I);
  blk.down->forward(g.data(), T, xn.data());
  for (size_t i = 0; i < t_ * H; ++i) x[i] += xn[i];
}

void Model::head(const float* x, int T, float* logits) const {
  const int H = cfg_.hidden;
  std::vector<float> xn(static_cast<size_t>(T) * H);
  for (int t = 0; t < T; ++t) rms_norm(x + static_cast<size_t>(t) * H, final_norm_.data(), H, cfg_.rms_eps, xn.data() + static_cast<size_t>(t) * H);
  lm_head_->forward(xn.data(), T, logits);
}

// ---- session ------------------------------------------------------------------------------------
Session::Session(std::shared_ptr<const Model> model, int capacity) : model_(std::move(model)) {
  require(capacity > 0, "session capacity must be positive");
  cache_.allocate(model_->config(), capacity);
}

void Session::rewind(int position) {
  if (position < 0 || position > pos_)
    throw std::out_of_range("cannot rewind a session at position " + std::to_string(pos_) + " to " + std::to_string(position));
  pos_ = position;
}

std::vector<float> Session::forward(const int32_t* ids, int T, bool all_logits, const JobHooks* hooks, bool fast_prefill) {
  const ModelConfig& c = model_->config();
  if (T <= 0) throw std::invalid_argument("forward needs at least one token");
  if (pos_ + T > cache_.capacity)
    throw std::out_of_range("the context is full: " + std::to_string(pos_ + T) + " positions needed, the session holds " +
                            std::to_string(cache_.capacity) + "; reset it or create a longer one");
  // Only a chat / generation prefill that asked for it trades precision for speed.
  const FastPrefillScope fast(fast_prefill && !all_logits);
  std::vector<float> x(static_cast<size_t>(T) * c.hidden);
  model_->embed(ids, T, x.data());
  for (int b = 0; b < c.layers; ++b) {
    if (hooks) hooks->check();
    model_->block_forward(b, x.data(), T, pos_, cache_.layer(b));
  }
  pos_ += T;
  const int rows = all_logits ? T : 1;
  std::vector<float> logits(static_cast<size_t>(rows) * c.vocab);
  model_->head(x.data() + static_cast<size_t>(T - rows) * c.hidden, rows, logits.data());
  return logits;
}

std::pair<double, int> Session::score(const int32_t* ids, int T, const JobHooks* hooks) {
  reset();
  if (T < 2) return {0.0, 0};
  const int V = model_->config().vocab;
  std::vector<float> logits = forward(ids, T, true, hooks);
  // -log softmax(logits_t)[ids[t+1]] per position in float64, summed in position order (so the
  // result does not depend on the thread count).
  std::vector<double> per(T - 1);
  parallel_for(static_cast<size_t>(T - 1), 8, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      const float* l = logits.data() + t * V;
      double mx = l[0];
      for (int i = 1; i < V; ++i) mx = std::max(mx, static_cast<double>(l[i]));
      double s = 0.0;
      for (int i = 0; i < V; ++i) s += std::exp(l[i] - mx);
      per[t] = (mx + std::log(s)) - l[ids[t + 1]];
    }
  });
  double nll = 0.0;
  for (double v : per) nll += v;
  return {nll, T - 1};
}

}  // namespace quip::runtime
