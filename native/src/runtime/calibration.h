// Calibration for QuIP#: the hidden states of N calibration sequences are pushed through the model
// one block at a time, and per block the four Hessians H = sum x x^T / count of the spec are
// accumulated in float64 from the inputs of q/k/v, o_proj, gate/up and down_proj.
// Memory holds one block's activations (N x L x hidden floats), never the whole model's.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/job.h"
#include "runtime/model.h"

namespace quip::runtime {

// sum over tokens of x x^T (n x n, row-major, float64) and the number of tokens.
struct HessianSum {
  int n = 0;
  std::vector<double> sum;
  int64_t count = 0;
  explicit HessianSum(int features = 0) : n(features), sum(static_cast<size_t>(features) * features, 0.0) {}
  // Adds x [tokens x n] to the lower triangle (j <= i): products are formed in float32 by the engine
  // GEMM over chunks of at most kHessianChunk tokens and each chunk is summed into float64.
  void add(const float* x, int tokens);
  // Copies the lower triangle into the upper one (after the last add).
  void mirror();
};
constexpr int kHessianChunk = 256;

struct BlockHessians {
  std::array<HessianSum, 4> tap;  // indexed by Tap: QkvIn, OIn, GateUpIn, DownIn
};

class Calibration {
 public:
  // ids: sequences x seq_len token ids (row-major). Embeds them: the state is block 0's input.
  Calibration(std::shared_ptr<Model> model, std::vector<int32_t> ids, int sequences, int seq_len);
  int sequences() const { return sequences_; }
  int seq_len() const { return seq_len_; }
  // The block whose input the hidden states are now (0 .. layers; layers = all advanced).
  int next_block() const { return next_block_; }
  // Runs block next_block() on every sequence without changing the state and returns its Hessians.
  BlockHessians hessians(const JobHooks& hooks) const;
  // Runs block next_block() (with whatever linears it holds now, e.g. quantized ones) on every
  // sequence and keeps the outputs as the next block's input.
  void advance(const JobHooks& hooks);
  const float* hidden(int seq) const { return hidden_.data() + static_cast<size_t>(seq) * seq_len_ * model_->config().hidden; }
  Model& model() { return *model_; }

 private:
  void run_block(float* x, LayerKV kv, const TapFn* taps) const;
  std::shared_ptr<Model> model_;
  int sequences_, seq_len_;
  int next_block_ = 0;
  std::vector<float> hidden_;
  bool broken_ = false;  // an advance was interrupted: the states are half one block, half the next
};

}  // namespace quip::runtime
