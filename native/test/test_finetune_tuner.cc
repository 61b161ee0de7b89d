// The tuner over a live engine model: a block read out of the model (quantized layers decoded to W~
// with their sign vectors, dense ones converted, biases kept) computes what the engine computes,
// written-back parameters are what the engine then uses, and BlockTuner's held-out error agrees with
// the trainer's.
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "harness.h"
#include "qinfer/qlinear.h"
#include "finetune/block_tuner.h"

using namespace quip;
using namespace quip::runtime;
using namespace quip::finetune;

namespace {

// Float32 tensors by name (the stand-in for a memory-mapped file).
struct Weights {
  std::map<std::string, std::vector<float>> data;
  std::map<std::string, std::vector<int64_t>> shape;
  std::mt19937 rng{77};
  void add(const std::string& name, std::vector<int64_t> s, float sd, float mean = 0.0f) {
    size_t n = 1;
    for (auto d : s) n *= static_cast<size_t>(d);
    std::normal_distribution<float> nd(mean, sd);
    auto& v = data[name];
    v.resize(n);
    for (float& x : v) x = nd(rng);
    shape[name] = s;
  }
  Model::Lookup lookup() const {
    return [this](const std::string& name) {
      TensorView t;
      auto it = data.find(name);
      if (it == data.end()) return t;
      t.data = it->second.data();
      t.dtype = DType::F32;
      t.shape = shape.at(name);
      return t;
    };
  }
};

// hidden 24 (Hadamard 12 x 2), MLP 20 (order 20; down_proj pads 20 -> 24 inputs), q/k/v biases.
ModelConfig config() {
  ModelConfig c;
  c.hidden = 24;
  c.intermediate = 20;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 6;
  c.vocab = 30;
  c.context = 64;
  c.attention_bias = true;
  return c;
}

// tied: no lm_head.weight, the head is the embedding table (as in stories260k and SmolLM2).
std::shared_ptr<Model> make_model(Weights& w, bool tied = false) {
  ModelConfig c = config();
  c.tied_embeddings = tied;
  const int H = c.hidden, I = c.intermediate, nq = c.heads * c.head_dim, nk = c.kv_heads * c.head_dim;
  w.add("model.embed_tokens.weight", {c.vocab, H}, tied ? 0.3f : 1.0f);
  w.add("model.norm.weight", {H}, 0.1f, 1.0f);
  if (!tied) w.add("lm_head.weight", {c.vocab, H}, 0.2f);
  for (int b = 0; b < c.layers; ++b) {
    const std::string p = "model.layers." + std::to_string(b) + ".";
    w.add(p + "input_layernorm.weight", {H}, 0.1f, 1.0f);
    w.add(p + "post_attention_layernorm.weight", {H}, 0.1f, 1.0f);
    w.add(p + "self_attn.q_proj.weight", {nq, H}, 0.3f);
    w.add(p + "self_attn.k_proj.weight", {nk, H}, 0.3f);
    w.add(p + "self_attn.v_proj.weight", {nk, H}, 0.2f);
    w.add(p + "self_attn.o_proj.weight", {H, nq}, 0.2f);
    w.add(p + "mlp.gate_proj.weight", {I, H}, 0.2f);
    w.add(p + "mlp.up_proj.weight", {I, H}, 0.2f);
    w.add(p + "mlp.down_proj.weight", {H, I}, 0.15f);
    w.add(p + "self_attn.q_proj.bias", {nq}, 0.1f);
    w.add(p + "self_attn.k_proj.bias", {nk}, 0.1f);
    w.add(p + "self_attn.v_proj.bias", {nk}, 0.1f);
  }
  return std::make_shared<Model>(c, w.lookup());
}

// A QuantizedLinear with random E8P codes (every 16-bit word is a codebook point) and random signs.
std::unique_ptr<qinfer::QuantizedLinear> random_qlinear(int m, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  const int groups = (n + 7) / 8;
  auto codes = std::make_shared<std::vector<uint16_t>>(static_cast<size_t>(m) * groups);
  for (auto& c : *codes) c = static_cast<uint16_t>(rng());
  qinfer::QuantizedLinearParams p;
  p.m = m;
  p.n = n;
  p.codes.kind = qinfer::CodeKind::E8P;
  p.codes.rows = m;
  p.codes.groups = groups;
  p.codes.primary = codes->data();
  p.scale = 0.08f;
  p.incoherence = true;
  for (int i = 0; i < n; ++i) p.su.push_back(rng() & 1 ? 1.0f : -1.0f);
  for (int i = 0; i < m; ++i) p.sv.push_back(rng() & 1 ? 1.0f : -1.0f);
  p.keep = codes;
  return std::make_unique<qinfer::QuantizedLinear>(std::move(p));
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
  return d;
}

std::vector<float> engine_block(const Model& m, int b, const std::vector<float>& x, int T) {
  const ModelConfig& c = m.config();
  std::vector<float> y = x, k(static_cast<size_t>(T) * c.kv_heads * c.head_dim), v(k.size());
  m.block_forward(b, y.data(), T, 0, LayerKV{k.data(), v.data(), T});
  return y;
}

}  // namespace

TEST(block_read_from_the_model_computes_what_the_engine_computes) {
  Weights w;
  auto model = make_model(w);
  const ModelConfig c = model->config();
  model->set_linear(0, LinearKind::Q, random_qlinear(c.heads * c.head_dim, c.hidden, 1));
  model->set_linear(0, LinearKind::Down, random_qlinear(c.hidden, c.intermediate, 2));  // n = 20 padded to 24
  const int T = 7;
  std::vector<float> x(static_cast<size_t>(T) * c.hidden);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(rng);
  TrainBlock t = train_block_from_model(*model, 0);
  CHECK(t.lin[kQ].quantized && t.lin[kDown].quantized && !t.lin[kO].quantized);
  CHECK(t.lin[kQ].bias.size() == static_cast<size_t>(c.heads * c.head_dim));
  std::vector<float> y(x.size());
  block_forward<float>(t, x.data(), T, y.data());
  const std::vector<float> ref = engine_block(*model, 0, x, T);
  std::printf("    trainer vs engine block output: max diff %.2e\n", max_diff(y, ref));
  CHECK(max_diff(y, ref) < 1e-4);

  // Changed parameters written back are what the engine computes with next.
  for (float& v : t.lin[kQ].su) v *= 1.1f;
  for (float& v : t.lin[kDown].sv) v *= 0.9f;
  for (float& v : t.attn_norm) v += 0.05f;
  for (float& v : t.lin[kO].w) v *= 1.05f;
  write_block_to_model(*model, 0, t);
  CHECK(model->block(0).o->describe().find("fine-tuned") != std::string::npos);
  block_forward<float>(t, x.data(), T, y.data());
  const std::vector<float> ref2 = engine_block(*model, 0, x, T);
  CHECK(max_diff(y, ref2) < 1e-4);
  CHECK(max_diff(ref, ref2) > 1e-2);
}

TEST(block_tuner_tunes_against_captured_targets) {
  Weights w;
  auto model = make_model(w);
  const ModelConfig c = model->config();
  const int N = 8, L = 10;
  std::vector<int32_t> ids(static_cast<size_t>(N) * L);
  std::mt19937 rng(9);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % c.vocab);
  BlockTuner tuner(model, ids, N, L);
  BlockTrainSettings s;
  s.epochs = 4;
  s.batch = 2;
  s.lr = 2e-3;
  s.lr_sign = 2e-3;
  s.holdout = 0.25;
  bool refused = false;
  try {
    tuner.tune(s, JobHooks{}, {});
  } catch (const std::logic_error&) {
    refused = true;
  }
  CHECK(refused);  // targets first
  tuner.capture_targets(JobHooks{});
  CHECK(tuner.heldout_error(s) == 0.0);  // nothing quantized yet: the block is its own target
  model->set_linear(0, LinearKind::Q, random_qlinear(c.heads * c.head_dim, c.hidden, 3));
  model->set_linear(0, LinearKind::K, random_qlinear(c.kv_heads * c.head_dim, c.hidden, 4));
  const double before = tuner.heldout_error(s);
  const BlockTrainResult r = tuner.tune(s, JobHooks{}, {});
  const double after = tuner.heldout_error(s);
  std::printf("    held-out error %.4e -> %.4e (trainer: %.4e -> %.4e)\n", before, after, r.initial_heldout_loss, r.best_heldout_loss);
  CHECK(before > 0);
  CHECK_NEAR(r.initial_heldout_loss, before, 1e-6 * before);
  CHECK_NEAR(after, r.best_heldout_loss, 1e-5 * before);
  CHECK(after < before);
  tuner.advance(JobHooks{});
  CHECK(tuner.next_block() == 1);
}

// End to end on a tied model: lm_head starts as the embedding table, is tuned, and the student is
// untied (its own float32 head; the embedding unchanged); the engine then computes exactly the
// held-out distillation loss the trainer selected. With lm_head frozen the student stays tied.
TEST(end_to_end_tunes_lm_head_and_unties_a_tied_model) {
  Weights w;
  auto teacher = make_model(w, true);
  const ModelConfig c = teacher->config();
  const std::vector<float> embedding = w.data.at("model.embed_tokens.weight");
  const int N = 8, L = 10, V = c.vocab, H = c.hidden;
  std::vector<int32_t> ids(static_cast<size_t>(N) * L);
  std::mt19937 rng(21);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % V);
  auto student_of = [&] {
    auto m = std::make_shared<Model>(c, w.lookup());
    m->set_linear(0, LinearKind::Q, random_qlinear(c.heads * c.head_dim, H, 5));
    m->set_linear(1, LinearKind::Up, random_qlinear(c.intermediate, H, 6));
    return m;
  };
  BlockTrainSettings s;
  s.epochs = 6;
  s.batch = 2;
  s.lr = 3e-3;
  s.lr_sign = 3e-3;
  s.holdout = 0.25;
  s.patience = 6;

  auto frozen = student_of();
  tune_end_to_end(*frozen, teacher, ids, N, L, false, s, JobHooks{}, {});
  CHECK(frozen->config().tied_embeddings);
  CHECK(dense_weight(frozen->lm_head()) == embedding);

  auto student = student_of();
  CHECK(dense_weight(student->lm_head()) == embedding);  // tied: the head is the embedding
  const BlockTrainResult r = tune_end_to_end(*student, teacher, ids, N, L, true, s, JobHooks{}, {});
  CHECK(r.best_epoch >= 1 && r.best_heldout_loss < r.initial_heldout_loss);
  CHECK(!student->config().tied_embeddings);
  const std::vector<float> head = dense_weight(student->lm_head());
  CHECK(head.size() == embedding.size());
  CHECK(max_diff(head, embedding) > 1e-3);
  CHECK(w.data.at("model.embed_tokens.weight") == embedding);
  std::vector<float> x(static_cast<size_t>(L) * H), x0(x.size());
  student->embed(ids.data(), L, x.data());
  for (int t = 0; t < L; ++t) std::copy(embedding.begin() + ids[t] * H, embedding.begin() + (ids[t] + 1) * H, x0.begin() + t * H);
  CHECK(x == x0);
  // The engine's logits with the tuned head give the trainer's best held-out loss.
  const SequenceSplit split = split_sequences(N, s.holdout, s.seed);
  Session ts(teacher, L), ss(student, L);
  double loss = 0;
  for (int q : split.heldout) {
    ts.reset();
    ss.reset();
    const std::vector<float> tl = ts.forward(ids.data() + q * L, L, true), sl = ss.forward(ids.data() + q * L, L, true);
    loss += distill_loss(sl.data(), tl.data(), L, V) / split.heldout.size();
  }
  std::printf("    held-out distillation loss %.5f -> %.5f (engine after: %.5f)\n", r.initial_heldout_loss, r.best_heldout_loss, loss);
  CHECK_NEAR(loss, r.best_heldout_loss, 1e-4 * r.best_heldout_loss);
  bool threw = false;
  try {
    student->set_lm_head(std::make_unique<OwnedDenseLinear>(V, H + 1, std::vector<float>(static_cast<size_t>(V) * (H + 1))));
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

QUIP_TEST_MAIN()
