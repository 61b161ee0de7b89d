// The Llama-family decoder (llama, mistral, qwen2, qwen3, smollm3) in float32: token embedding, per
// block RMSNorm -> GQA attention with rotary embeddings (HF rotate-half) -> residual, RMSNorm -> SwiGLU
// MLP -> residual; final RMSNorm and lm_head (or the tied embedding). Options a config switches on:
// per-head q/k RMSNorm (qwen3), sliding-window layers (mistral, qwen2/qwen3 with use_sliding_window),
// layers without RoPE (smollm3). Weights stay where the caller has
// them (memory maps); linear layers sit behind engine/linear.h.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/job.h"
#include "runtime/linear.h"

namespace quip::runtime {

enum class RopeScalingType { None, Linear, Llama3 };

struct ModelConfig {
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  int context = 2048;
  double rope_theta = 10000.0;
  RopeScalingType rope_scaling = RopeScalingType::None;
  double rope_factor = 1.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  double rope_original_context = 8192.0;
  double rms_eps = 1e-5;
  bool tied_embeddings = false;
  bool attention_bias = false;
  // Qwen3: RMSNorm (eps rms_eps, weights q_norm / k_norm of head_dim values) over each query and key
  // head, after the projections and before RoPE.
  bool qk_norm = false;
  // Sliding-window attention: on a layer marked in sliding_layers, the query at position p attends to
  // the keys at positions (p - sliding_window, p], itself included (Hugging Face's
  // kv_idx > q_idx - sliding_window; llama.cpp's n_swa). Empty: every layer attends to the whole past.
  int sliding_window = 0;
  std::vector<uint8_t> sliding_layers;  // one entry per layer (1 = sliding) or empty
  // SmolLM3's NoPE layers: one entry per layer, 0 = no rotary embedding on that layer; empty = RoPE on all.
  std::vector<uint8_t> rope_layers;
  bool layer_sliding(int b) const { return !sliding_layers.empty() && sliding_layers.at(b) != 0; }
  bool layer_rope(int b) const { return rope_layers.empty() || rope_layers.at(b) != 0; }
  // The first option above that a plain Llama block lacks ("q/k norms", "sliding-window attention",
  // "layers without RoPE"), or nullptr: for code with its own copy of the block (fine-tuning) to refuse.
  const char* beyond_llama_block() const;
  // Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;
};

// Rotary inverse frequencies theta^(-2i/d), i < d/2, after rope_scaling (linear: / factor; llama3:
// wavelength-dependent blend as in Meta's Llama 3.1 release).
std::vector<double> rope_inv_freq(const ModelConfig& c);

// A tensor the model reads (not owned): data, dtype and shape.
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
};

// Names a linear layer inside a block (the Hugging Face projection names).
enum class LinearKind { Q, K, V, O, Gate, Up, Down };
const char* linear_kind_name(LinearKind k);  // "q_proj", ..., "down_proj"

struct Block {
  std::vector<float> attn_norm, mlp_norm;                // RMSNorm weights
  std::unique_ptr<Linear> q, k, v, o, gate, up, down;
  std::vector<float> q_bias, k_bias, v_bias;             // empty without attention bias
  std::vector<float> q_norm, k_norm;                     // head_dim values each with qk_norm, else empty
  Linear& linear(LinearKind k);
  const Linear& linear(LinearKind k) const;
};

// Where the four Hessian inputs of a block pass (spec section 1): the input of q/k/v (after the
// attention norm), of o_proj (attention output), of gate/up (after the MLP norm), of down_proj.
enum class Tap { QkvIn = 0, OIn = 1, GateUpIn = 2, DownIn = 3 };
using TapFn = std::function<void(Tap, const float* x, int tokens, int features)>;

// Keys and values of one layer for one sequence: [position][kv_heads * head_dim], not owned.
struct LayerKV {
  float* k = nullptr;
  float* v = nullptr;
  int capacity = 0;
};

// Keys and values of one sequence for every layer.
struct KVCache {
  int capacity = 0;
  std::vector<std::vector<float>> k, v;
  void allocate(const ModelConfig& c, int capacity);
  LayerKV layer(int b) { return {k.at(b).data(), v.at(b).data(), capacity}; }
};

class Model {
 public:
  // lookup(name) returns the tensor with that Hugging Face name or a view with data == nullptr.
  // Throws std::invalid_argument naming a missing tensor or a wrong shape.
  using Lookup = std::function<TensorView(const std::string& name)>;
  Model(const ModelConfig& config, const Lookup& lookup);

  const ModelConfig& config() const { return cfg_; }
  Block& block(int b) { return blocks_.at(b); }
  const Block& block(int b) const { return blocks_.at(b); }
  // Replaces one linear layer (e.g. by its quantized version); shapes must match.
  void set_linear(int block, LinearKind kind, std::unique_ptr<Linear> layer);
  // The final RMSNorm weights (hidden values); end-to-end fine-tuning replaces them.
  const std::vector<float>& final_norm() const { return final_norm_; }
  // Throws std::invalid_argument unless w holds hidden values.
  void set_final_norm(std::vector<float> w);
  // lm_head (vocab x hidden): the tied embedding or lm_head.weight as loaded, or what set_lm_head put
  // there. End-to-end fine-tuning tunes it; a tied model becomes untied (the embedding stays as it is).
  const Linear& lm_head() const { return *lm_head_; }
  // Throws std::invalid_argument unless layer is vocab x hidden.
  void set_lm_head(std::unique_ptr<Linear> layer);

  // x[t * hidden + :] = embedding of ids[t].
  void embed(const int32_t* ids, int tokens, float* x) const;
  // Applies block b in place to hidden states x [tokens x hidden] at positions pos0 .. pos0+tokens-1;
  // writes those keys/values into `kv` (block b's cache) and attends over positions [0, pos0 + tokens)
  // (on a sliding-window layer, the query at p over (p - sliding_window, p]).
  void block_forward(int b, float* x, int tokens, int pos0, const LayerKV& kv, const TapFn* taps = nullptr) const;
  // logits[t * vocab + :] for t < tokens from final hidden states x (final norm applied to a copy).
  void head(const float* x, int tokens, float* logits) const;

 private:
  void rope(float* x, int tokens, int pos0, int nheads) const;
  ModelConfig cfg_;
  TensorView embed_;
  std::vector<float> final_norm_;
  std::unique_ptr<Linear> lm_head_;
  std::vector<Block> blocks_;
  std::vector<double> inv_freq_;
};

// One decoding stream over a model: a KV cache and a position.
class Session {
 public:
  Session(std::shared_ptr<const Model> model, int capacity);
  int position() const { return pos_; }
  int capacity() const { return cache_.capacity; }
  void reset() { pos_ = 0; }
  // Forgets positions >= position (their cache rows are overwritten by the next forward), e.g. to
  // keep the common prefix of a chat history. Throws std::out_of_range beyond the current position.
  void rewind(int position);
  // Runs ids at the next positions. Returns logits of the last token (vocab floats), or of every
  // token (tokens x vocab) when all_logits. Checks hooks between blocks.
  // fast_prefill: the caller wants only the next token (chat / generation prefill), so quantized layers
  // may run the int8 prefill GEMM (qinfer/prefill.h). Scoring, perplexity, KL divergence and training
  // leave it off and stay float32 even when they ask for no logits (a window's first half).
  std::vector<float> forward(const int32_t* ids, int tokens, bool all_logits, const JobHooks* hooks = nullptr, bool fast_prefill = false);
  // Perplexity scoring of one window: from a reset state, returns the summed negative log-likelihood
  // (float64) of ids[1..] given their prefixes, and the count (tokens - 1).
  std::pair<double, int> score(const int32_t* ids, int tokens, const JobHooks* hooks = nullptr);
  const Model& model() const { return *model_; }

 private:
  std::shared_ptr<const Model> model_;
  KVCache cache_;
  int pos_ = 0;
};

}  // namespace quip::runtime
