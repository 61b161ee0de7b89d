// End-to-end fine-tuning (spec section 6): after every block is quantized, tune all sign vectors,
// all RMSNorms, the final norm and lm_head so that the quantized model's next-token distribution
// matches the original model's: the loss is the cross-entropy against the teacher's softmax
// (distillation; KL up to the teacher's entropy). Embeddings stay frozen, so a sequence enters as its
// embedded hidden states; a tied lm_head is tuned as a copy of the embedding table (untied).
#pragma once
#include <functional>
#include <vector>

#include "finetune/block_trainer.h"

namespace quip::finetune {

struct TrainModel {
  std::vector<TrainBlock> blocks;
  std::vector<float> final_norm;
  TrainLinear lm_head;        // dense, vocab x hidden
  bool tune_final_norm = true;
  bool tune_lm_head = true;   // false keeps lm_head frozen
  // Throws std::invalid_argument naming the inconsistent part.
  void validate() const;
};

// logits (T x vocab) of the sequence whose embeddings are x0 (T x hidden); F = double for references.
template <class F>
void model_forward(const TrainModel& m, const F* x0, int T, F* logits);

// All trainable parameters: each block's (block_parameters order), then final_norm and lm_head when tuned.
std::vector<ParamRef> model_parameters(TrainModel& m);

// Forward + backward of one sequence: loss(logits, dlogits) writes d loss / d logits and returns the
// loss; the parameter gradients are accumulated into grads (model_parameters order).
double model_backward(const TrainModel& m, const float* x0, int T, const OutputLoss& loss,
                      std::vector<std::vector<float>>& grads);

// teacher(seq, logits) writes the original model's logits (seq_len x vocab) of sequence seq.
using TeacherLogits = std::function<void(int seq, float* logits)>;

// Distillation over `sequences` sequences of embeddings (sequences x seq_len x hidden) with the
// shared epoch loop (held-out split, best epoch, early stop); m is left at the best epoch.
BlockTrainResult train_model_distill(TrainModel& m, const float* embeddings, int sequences, int seq_len,
                                     const TeacherLogits& teacher, const BlockTrainSettings& settings,
                                     const JobHooks& hooks, const std::function<void(const EpochStats&)>& on_epoch);

}  // namespace quip::finetune
