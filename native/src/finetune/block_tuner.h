// In-block fine-tuning over a live engine model (spec section 6), for the quantization job: keeps
// its own calibration states (the inputs of the current block), records the original block's outputs
// on them, and after each quantized linear group tunes what is still continuous in the block — SU/SV
// of the quantized linears, the dense linears' weights, both RMSNorms — then writes the tuned values
// back into the model (quantized layers get their real-valued sign vectors, dense layers become
// owned float32 layers, so the next group is quantized from its tuned weights).
#pragma once
#include <memory>
#include <vector>

#include "runtime/calibration.h"
#include "runtime/linear.h"
#include "runtime/model.h"
#include "finetune/block_trainer.h"

namespace quip::finetune {

// A dense layer whose float32 weights this process owns (a tuned weight replaces the memory map).
class OwnedDenseLinear : public runtime::Linear {
 public:
  OwnedDenseLinear(int m, int n, std::vector<float> w);
  int in_features() const override { return n_; }
  int out_features() const override { return m_; }
  void forward(const float* x, int tokens, float* y) const override;
  std::string describe() const override;
  const std::vector<float>& weight() const { return w_; }

 private:
  int m_, n_;
  std::vector<float> w_;
};

// The float32 weight of a dense layer (DenseLinear in any dtype, or OwnedDenseLinear); throws when the
// layer is quantized.
std::vector<float> dense_weight(const runtime::Linear& l);

// Block b of an engine model as trainable parameters (quantized linears: decoded W~, scale, SU/SV;
// dense ones: float32 weights), and the way back (quantized layers get the new SU/SV, dense ones
// become OwnedDenseLinear, norms are replaced).
TrainBlock train_block_from_model(const runtime::Model& model, int b);
void write_block_to_model(runtime::Model& model, int b, const TrainBlock& t);

// End-to-end fine-tuning of a quantized engine model against the original one (distillation on the
// calibration ids, sequences x seq_len): every block's SU/SV and RMSNorms, the final norm and, with
// tune_lm_head, lm_head are tuned and written back. lm_head starts as the student's own (the
// embedding when tied); tuning it unties a tied student (set_lm_head: a float32 copy the model owns),
// the embedding stays as it is.
BlockTrainResult tune_end_to_end(runtime::Model& student, std::shared_ptr<const runtime::Model> teacher,
                                 const std::vector<int32_t>& ids, int sequences, int seq_len, bool tune_lm_head,
                                 const BlockTrainSettings& s, const JobHooks& hooks,
                                 const std::function<void(const EpochStats&)>& on_epoch);

class BlockTuner {
 public:
  // ids: sequences x seq_len calibration token ids; the states start at block 0's input.
  BlockTuner(std::shared_ptr<runtime::Model> model, std::vector<int32_t> ids, int sequences, int seq_len);
  int next_block() const { return cal_.next_block(); }
  int sequences() const { return cal_.sequences(); }
  int seq_len() const { return cal_.seq_len(); }
  // Runs block next_block() as it is now (before any of it is quantized) and keeps its outputs as
  // the targets of tuning.
  void capture_targets(const JobHooks& hooks);
  // Tunes block next_block() against the targets and writes the result back into the model.
  BlockTrainResult tune(const BlockTrainSettings& s, const JobHooks& hooks,
                        const std::function<void(const EpochStats&)>& on_epoch);
  // MSE of block next_block() as it is now against the targets over the held-out sequences of `s`
  // (all sequences without a split).
  double heldout_error(const BlockTrainSettings& s) const;
  // Pushes the states through block next_block() (with whatever linears it holds now).
  void advance(const JobHooks& hooks) { cal_.advance(hooks); }
  runtime::Model& model() { return *model_; }

 private:
  std::shared_ptr<runtime::Model> model_;
  runtime::Calibration cal_;
  std::vector<float> targets_;  // the original block's outputs; its inputs are cal_'s states
  int targets_block_ = -1;
};

}  // namespace quip::finetune
