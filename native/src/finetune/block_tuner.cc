#include "finetune/block_tuner.h"

#include <stdexcept>
#include <string>

#include "runtime/gemm.h"
#include "qinfer/decode.h"
#include "qinfer/qlinear.h"
#include "finetune/e2e.h"

namespace quip::finetune {

using runtime::LinearKind;

namespace {
constexpr LinearKind kKinds[kLinearCount] = {LinearKind::Q, LinearKind::K, LinearKind::V, LinearKind::O,
                                             LinearKind::Gate, LinearKind::Up, LinearKind::Down};
}  // namespace

OwnedDenseLinear::OwnedDenseLinear(int m, int n, std::vector<float> w) : m_(m), n_(n), w_(std::move(w)) {
  if (m <= 0 || n <= 0 || w_.size() != static_cast<size_t>(m) * n) throw std::invalid_argument("dense layer: the weight needs m x n values");
}

void OwnedDenseLinear::forward(const float* x, int tokens, float* y) const {
  runtime::matmul_wt(x, tokens, runtime::WeightView{w_.data(), DType::F32, m_, n_}, y);
}

std::string OwnedDenseLinear::describe() const {
  return "dense F32 (fine-tuned) " + std::to_string(m_) + "x" + std::to_string(n_);
}

std::vector<float> dense_weight(const runtime::Linear& l) {
  if (auto* o = dynamic_cast<const OwnedDenseLinear*>(&l)) return o->weight();
  if (auto* d = dynamic_cast<const runtime::DenseLinear*>(&l)) {
    const runtime::WeightView& w = d->weight();
    std::vector<float> out(static_cast<size_t>(w.rows) * w.cols);
    runtime::gemm_kernels().convert(w.data, w.dtype, 0, static_cast<int>(out.size()), out.data());
    return out;
  }
  throw std::invalid_argument("the layer (" + l.describe() + ") is not dense");
}

BlockTuner::BlockTuner(std::shared_ptr<runtime::Model> model, std::vector<int32_t> ids, int sequences, int seq_len)
    : model_(model), cal_(model, std::move(ids), sequences, seq_len) {}

void BlockTuner::capture_targets(const JobHooks& hooks) {
  const runtime::ModelConfig& c = model_->config();
  const int b = cal_.next_block();
  if (b >= c.layers) throw std::logic_error("every block has been advanced through; nothing to fine-tune");
  const size_t per = static_cast<size_t>(cal_.seq_len()) * c.hidden;
  targets_.resize(per * cal_.sequences());
  std::vector<float> k(static_cast<size_t>(cal_.seq_len()) * c.kv_heads * c.head_dim), v(k.size());
  for (int s = 0; s < cal_.sequences(); ++s) {
    hooks.check();
    std::copy(cal_.hidden(s), cal_.hidden(s) + per, targets_.begin() + s * per);
    model_->block_forward(b, targets_.data() + s * per, cal_.seq_len(), 0, runtime::LayerKV{k.data(), v.data(), cal_.seq_len()});
  }
  targets_block_ = b;
}

TrainBlock train_block_from_model(const runtime::Model& model, int b) {
  const runtime::ModelConfig& c = model.config();
  const runtime::Block& blk = model.block(b);
  TrainBlock t;
  t.shape.hidden = c.hidden;
  t.shape.intermediate = c.intermediate;
  t.shape.heads = c.heads;
  t.shape.kv_heads = c.kv_heads;
  t.shape.head_dim = c.head_dim;
  t.shape.rms_eps = c.rms_eps;
  t.shape.inv_freq = runtime::rope_inv_freq(c);
  t.attn_norm = blk.attn_norm;
  t.mlp_norm = blk.mlp_norm;
  for (int i = 0; i < kLinearCount; ++i) {
    const runtime::Linear& l = blk.linear(kKinds[i]);
    const int m = l.out_features(), n = l.in_features();
    if (auto* q = dynamic_cast<const qinfer::QuantizedLinear*>(&l)) {
      const qinfer::QuantizedLinearParams& p = q->params();
      if (!p.incoherence)
        throw std::invalid_argument(std::string(linear_slot_name(i)) + " was quantized without incoherence processing; fine-tuning needs its sign vectors");
      // W~ = the decoded codes Q (m x n_pad) without the padding columns.
      std::vector<float> wt(static_cast<size_t>(m) * n), row(static_cast<size_t>(p.codes.groups) * 8);
      for (int r = 0; r < m; ++r) {
        qinfer::decode_kernels().decode_row(p.codes, r, row.data());
        std::copy(row.begin(), row.begin() + n, wt.begin() + static_cast<size_t>(r) * n);
      }
      t.lin[i] = TrainLinear::quantized_layer(m, n, std::move(wt), p.scale, p.su, p.sv);
    } else {
      t.lin[i] = TrainLinear::dense(m, n, dense_weight(l));
    }
  }
  t.lin[kQ].bias = blk.q_bias;
  t.lin[kK].bias = blk.k_bias;
  t.lin[kV].bias = blk.v_bias;
  return t;
}

void write_block_to_model(runtime::Model& model, int b, const TrainBlock& t) {
  runtime::Block& blk = model.block(b);
  blk.attn_norm = t.attn_norm;
  blk.mlp_norm = t.mlp_norm;
  for (int i = 0; i < kLinearCount; ++i) {
    const runtime::Linear& l = blk.linear(kKinds[i]);
    const TrainLinear& L = t.lin[i];
    if (auto* q = dynamic_cast<const qinfer::QuantizedLinear*>(&l)) {
      qinfer::QuantizedLinearParams p = q->params();  // shares the codes' owner
      p.su = L.su;
      p.sv = L.sv;
      model.set_linear(b, kKinds[i], std::make_unique<qinfer::QuantizedLinear>(std::move(p)));
    } else {
      model.set_linear(b, kKinds[i], std::make_unique<OwnedDenseLinear>(L.m, L.n, L.w));
    }
  }
}

BlockTrainResult BlockTuner::tune(const BlockTrainSettings& s, const JobHooks& hooks,
                                  const std::function<void(const EpochStats&)>& on_epoch) {
  if (targets_block_ != cal_.next_block())
    throw std::logic_error("fine-tuning block " + std::to_string(cal_.next_block()) + " needs its targets first (capture_targets before quantizing it)");
  TrainBlock t = train_block_from_model(*model_, cal_.next_block());
  BlockTrainResult r = train_block(t, cal_.hidden(0), targets_.data(), cal_.sequences(), cal_.seq_len(), s, hooks, on_epoch);
  write_block_to_model(*model_, cal_.next_block(), t);
  return r;
}

double BlockTuner::heldout_error(const BlockTrainSettings& s) const {
  if (targets_block_ != cal_.next_block()) throw std::logic_error("the block's targets have not been captured");
  const TrainBlock t = train_block_from_model(*model_, cal_.next_block());
  const SequenceSplit split = split_sequences(cal_.sequences(), s.holdout, s.seed);
  return block_mse(t, cal_.hidden(0), targets_.data(), cal_.seq_len(), split.heldout.empty() ? split.train : split.heldout);
}

BlockTrainResult tune_end_to_end(runtime::Model& student, std::shared_ptr<const runtime::Model> teacher,
                                 const std::vector<int32_t>& ids, int sequences, int seq_len, bool tune_lm_head,
                                 const BlockTrainSettings& s, const JobHooks& hooks,
                                 const std::function<void(const EpochStats&)>& on_epoch) {
  const runtime::ModelConfig& c = student.config();
  if (sequences < 1 || seq_len < 1 || ids.size() != static_cast<size_t>(sequences) * seq_len)
    throw std::invalid_argument("end-to-end fine-tuning needs sequences x seq_len calibration ids");
  if (teacher->config().hidden != c.hidden || teacher->config().vocab != c.vocab || teacher->config().layers != c.layers)
    throw std::invalid_argument("the original model does not have the quantized model's shape");
  TrainModel m;
  for (int b = 0; b < c.layers; ++b) m.blocks.push_back(train_block_from_model(student, b));
  m.final_norm = student.final_norm();
  // A tied student's lm_head is its embedding table: the copy tuned here unties them.
  m.lm_head = TrainLinear::dense(c.vocab, c.hidden, dense_weight(student.lm_head()));
  m.tune_final_norm = true;
  m.tune_lm_head = tune_lm_head;
  const size_t per = static_cast<size_t>(seq_len) * c.hidden;
  std::vector<float> emb(per * sequences);
  for (int q = 0; q < sequences; ++q) student.embed(ids.data() + static_cast<size_t>(q) * seq_len, seq_len, emb.data() + q * per);
  runtime::Session session(teacher, seq_len);
  auto teacher_logits = [&](int q, float* logits) {
    session.reset();
    const std::vector<float> l = session.forward(ids.data() + static_cast<size_t>(q) * seq_len, seq_len, true);
    std::copy(l.begin(), l.end(), logits);
  };
  BlockTrainResult r = train_model_distill(m, emb.data(), sequences, seq_len, teacher_logits, s, hooks, on_epoch);
  for (int b = 0; b < c.layers; ++b) write_block_to_model(student, b, m.blocks[b]);
  student.set_final_norm(std::move(m.final_norm));
  if (tune_lm_head) student.set_lm_head(std::make_unique<OwnedDenseLinear>(c.vocab, c.hidden, std::move(m.lm_head.w)));
  return r;
}

}  // namespace quip::finetune
