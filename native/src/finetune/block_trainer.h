// In-block fine-tuning of one decoder block (spec section 6): forward + backward of the whole block
// (RMSNorm -> GQA attention with RoPE -> o_proj -> residual, RMSNorm -> SwiGLU MLP -> residual) where
// each linear is either dense (its weights train) or QuIP#-quantized (codes frozen, the sign vectors
// SU/SV train as real numbers); both RMSNorm weights train. Loss: MSE between the block's output and
// the original block's output on the calibration activations. Adam, mini-batches of sequences,
// a held-out split of sequences, best-epoch selection and early stopping with patience.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "common/job.h"
#include "finetune/ops.h"

namespace quip::finetune {

struct BlockShape {
  int hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double rms_eps = 1e-5;
  std::vector<double> inv_freq;  // head_dim / 2 rotary frequencies (runtime::rope_inv_freq)
  // Throws std::invalid_argument naming the first inconsistent field.
  void validate() const;
};

struct TrainLinear {
  int m = 0, n = 0;  // outputs, inputs
  bool quantized = false;
  std::vector<float> w;       // dense: the trainable weight (m x n); quantized: the frozen W~ (m x n)
  std::vector<float> su, sv;  // quantized: trainable sign vectors (n and m entries)
  std::vector<float> bias;    // frozen bias (m) or empty
  QLinearShape shape;         // quantized: Hadamard plans and scale

  static TrainLinear dense(int m, int n, std::vector<float> w);
  static TrainLinear quantized_layer(int m, int n, std::vector<float> w_tilde, float scale, std::vector<float> su,
                                     std::vector<float> sv);
};

enum LinearSlot { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kLinearCount };
const char* linear_slot_name(int slot);  // "q_proj" .. "down_proj"

struct TrainBlock {
  BlockShape shape;
  std::vector<float> attn_norm, mlp_norm;
  TrainLinear lin[kLinearCount];
  // Throws std::invalid_argument naming the linear or norm whose size does not fit the shape.
  void validate() const;
};

// y = block(x) for one sequence of T tokens at positions 0 .. T-1. F = double evaluates the same
// function in float64 (the parameters converted), for finite-difference references.
template <class F>
void block_forward(const TrainBlock& b, const F* x, int T, F* y);

// Everything the backward pass reads, kept by the float32 forward.
struct BlockCache {
  std::vector<float> xn1, q, k, v, P, att, x1, xn2, g, u, h;
  std::vector<float> c[kLinearCount];  // quantized linears: the output before SV
};
void block_forward_cached(const TrainBlock& b, const float* x, int T, float* y, BlockCache& cache);
// From the cache of block_forward_cached and dL/dy: accumulates the parameter gradients into
// grads[0 .. block_parameter_count(b)) (block_parameters order) and writes dL/dx when dx is non-null.
void block_backward_cached(const TrainBlock& b, const float* x, int T, const BlockCache& cache, const float* dy,
                           std::vector<float>* grads, float* dx);
size_t block_parameter_count(const TrainBlock& b);

// One forward + backward of a sequence: loss(y, dy) receives the block output y (T x hidden), writes
// d loss / dy and returns the loss, which block_backward returns. The gradients with respect to every
// trainable parameter are accumulated into `grads` (laid out as block_parameters lists them).
using OutputLoss = std::function<double(const float* y, float* dy)>;
double block_backward(const TrainBlock& b, const float* x, int T, const OutputLoss& loss,
                      std::vector<std::vector<float>>& grads);

// The trainable parameters in a fixed order: attn_norm, mlp_norm, then per linear (q .. down) either w
// (dense) or su, sv (quantized).
struct ParamRef {
  float* data;
  size_t size;
  bool sign_vector;
  const char* name;
};
std::vector<ParamRef> block_parameters(TrainBlock& b);

struct BlockTrainSettings {
  int epochs = 5;
  int batch = 8;           // sequences per Adam step
  double lr = 5e-5;        // dense weights and norms
  double lr_sign = 5e-4;   // SU / SV
  double holdout = 0.1;    // fraction of the sequences kept out of training, for epoch selection
  int patience = 3;        // epochs without held-out improvement before stopping
  uint64_t seed = 0;       // split and batch order
  void validate() const;
};

struct EpochStats {
  int epoch = 0;           // 1-based
  double train_loss = 0;   // mean MSE over the epoch's mini-batches (before each step)
  double heldout_loss = 0; // MSE on the held-out sequences after the epoch (train MSE without a split)
  double seconds = 0;
};

struct BlockTrainResult {
  int train_sequences = 0, heldout_sequences = 0;
  double initial_train_loss = 0, initial_heldout_loss = 0;
  double best_heldout_loss = 0;
  int best_epoch = 0;      // 0: no epoch improved, the parameters are the ones given
  bool early_stopped = false;
  std::vector<EpochStats> epochs;
  double seconds = 0;
  double tokens_per_second = 0;  // tokens through forward + backward
};

// The seeded split of `sequences` into training and held-out sequences (at least one of each when
// holdout > 0 and there are two or more sequences; none held out otherwise).
struct SequenceSplit {
  std::vector<int> train, heldout;
};
SequenceSplit split_sequences(int sequences, double holdout, uint64_t seed);

// MSE of the block's outputs against targets over the listed sequences (inputs/targets: sequences x
// seq_len x hidden).
double block_mse(const TrainBlock& b, const float* inputs, const float* targets, int seq_len, const std::vector<int>& seqs);

// The epoch loop every fine-tuning stage shares: the seeded split, mini-batches of settings.batch
// sequences with one Adam step each, the held-out loss after each epoch, best-epoch selection and
// early stopping; the parameters are left at the best epoch. step(seq, k, grads) runs forward +
// backward of one sequence, adds k x its gradient into grads (params order) and returns its loss;
// eval(seq) returns the loss only. Checks hooks between sequences.
using SequenceStep = std::function<double(int seq, float k, std::vector<std::vector<float>>& grads)>;
using SequenceEval = std::function<double(int seq)>;
BlockTrainResult run_training(const std::vector<ParamRef>& params, int sequences, int tokens_per_sequence,
                              const BlockTrainSettings& settings, const JobHooks& hooks,
                              const std::function<void(const EpochStats&)>& on_epoch, const SequenceStep& step,
                              const SequenceEval& eval);

// Trains `b` in place and leaves it at the best epoch's parameters. Checks hooks between sequences;
// on_epoch (may be empty) is called after every epoch.
BlockTrainResult train_block(TrainBlock& b, const float* inputs, const float* targets, int sequences, int seq_len,
                             const BlockTrainSettings& settings, const JobHooks& hooks,
                             const std::function<void(const EpochStats&)>& on_epoch);

}  // namespace quip::finetune
