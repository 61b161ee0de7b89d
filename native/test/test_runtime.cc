// Engine tests: GEMM kernels against a float64 brute force, the SIMD forward pass against an
// independent float64 reference forward, KV-cache decoding against full forwards, calibration
// Hessians against explicit X^T X, and rotary scaling properties.
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu.h"
#include "common/thread_pool.h"
#include "runtime/calibration.h"
#include "runtime/gemm.h"
#include "runtime/model.h"
#include "harness.h"

using namespace quip;
using namespace quip::runtime;

namespace {

// Weights in a chosen dtype, owned by the test (stand-in for a memory-mapped safetensors file).
struct Store {
  explicit Store(DType dt) : dtype(dt) {}
  DType dtype;
  std::map<std::string, std::vector<uint8_t>> bytes;
  std::map<std::string, std::vector<int64_t>> shapes;
  std::mt19937 rng{1234};

  void add(const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    size_t n = 1;
    for (auto d : shape) n *= static_cast<size_t>(d);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<uint8_t>& b = bytes[name];
    b.resize(n * dtype_size(dtype));
    for (size_t i = 0; i < n; ++i) {
      float v = offset + scale * nd(rng);
      if (dtype == DType::F32) std::memcpy(b.data() + 4 * i, &v, 4);
      else {
        uint16_t h = dtype == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
        std::memcpy(b.data() + 2 * i, &h, 2);
      }
    }
    shapes[name] = shape;
  }
  float at(const std::string& name, size_t i) const { return load_as_f32(bytes.at(name).data(), dtype, i); }
  Model::Lookup lookup() const {
    return [this](const std::string& name) {
      TensorView t;
      auto it = bytes.find(name);
      if (it == bytes.end()) return t;
      t.data = it->second.data();
      t.dtype = dtype;
      t.shape = shapes.at(name);
      return t;
    };
  }
};

ModelConfig small_config(bool bias = false) {
  ModelConfig c;
  c.hidden = 40;
  c.intermediate = 68;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 10;
  c.vocab = 97;
  c.context = 256;
  c.rope_theta = 10000.0;
  c.rms_eps = 1e-5;
  c.attention_bias = bias;
  return c;
}

void fill_model(Store& s, const ModelConfig& c) {
  const int H = c.hidden, I = c.intermediate, nq = c.heads * c.head_dim, nkv = c.kv_heads * c.head_dim;
  s.add("model.embed_tokens.weight", {c.vocab, H}, 1.0f);
  s.add("model.norm.weight", {H}, 0.1f, 1.0f);
  if (!c.tied_embeddings) s.add("lm_head.weight", {c.vocab, H}, 0.2f);
  for (int b = 0; b < c.layers; ++b) {
    std::string p = "model.layers." + std::to_string(b) + ".";
    s.add(p + "input_layernorm.weight", {H}, 0.1f, 1.0f);
    s.add(p + "post_attention_layernorm.weight", {H}, 0.1f, 1.0f);
    s.add(p + "self_attn.q_proj.weight", {nq, H}, 0.3f);
    s.add(p + "self_attn.k_proj.weight", {nkv, H}, 0.3f);
    s.add(p + "self_attn.v_proj.weight", {nkv, H}, 0.2f);
    s.add(p + "self_attn.o_proj.weight", {H, nq}, 0.2f);
    s.add(p + "mlp.gate_proj.weight", {I, H}, 0.2f);
    s.add(p + "mlp.up_proj.weight", {I, H}, 0.2f);
    s.add(p + "mlp.down_proj.weight", {H, I}, 0.15f);
    if (c.attention_bias) {
      s.add(p + "self_attn.q_proj.bias", {nq}, 0.1f);
      s.add(p + "self_attn.k_proj.bias", {nkv}, 0.1f);
      s.add(p + "self_attn.v_proj.bias", {nkv}, 0.1f);
    }
    if (c.qk_norm) {
      s.add(p + "self_attn.q_norm.weight", {c.head_dim}, 0.3f, 1.0f);
      s.add(p + "self_attn.k_norm.weight", {c.head_dim}, 0.3f, 1.0f);
    }
  }
}

// ---- float64 reference forward (written independently of model.cc, llama2.c style) -------------
struct RefModel {
  const Store& s;
  ModelConfig c;
  std::vector<double> w(const std::string& name) const {
    std::vector<double> v(s.bytes.at(name).size() / dtype_size(s.dtype));
    for (size_t i = 0; i < v.size(); ++i) v[i] = s.at(name, i);
    return v;
  }
  static std::vector<double> matvec(const std::vector<double>& W, const std::vector<double>& x, int out) {
    int in = static_cast<int>(x.size());
    std::vector<double> y(out, 0.0);
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i) y[o] += W[static_cast<size_t>(o) * in + i] * x[i];
    return y;
  }
  std::vector<double> norm(const std::vector<double>& x, const std::vector<double>& g) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    double r = 1.0 / std::sqrt(ss / x.size() + c.rms_eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = g[i] * x[i] * r;
    return y;
  }
  void rope(std::vector<double>& v, int heads, int pos) const {
    int d = c.head_dim, half = d / 2;
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < half; ++i) {
        double f = std::pow(c.rope_theta, -2.0 * i / d), a = pos * f;
        double x1 = v[h * d + i], x2 = v[h * d + i + half];
        v[h * d + i] = x1 * std::cos(a) - x2 * std::sin(a);
        v[h * d + i + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
  }
  // Logits of every position of ids (processing one token at a time with plain vectors).
  std::vector<std::vector<double>> forward(const std::vector<int32_t>& ids) const {
    const int H = c.hidden, d = c.head_dim, nq = c.heads * d, nkv = c.kv_heads * d;
    std::vector<std::vector<std::vector<double>>> K(c.layers), V(c.layers);
    std::vector<std::vector<double>> out;
    auto emb = w("model.embed_tokens.weight");
    for (size_t pos = 0; pos < ids.size(); ++pos) {
      std::vector<double> x(emb.begin() + static_cast<size_t>(ids[pos]) * H, emb.begin() + static_cast<size_t>(ids[pos] + 1) * H);
      for (int b = 0; b < c.layers; ++b) {
        std::string p = "model.layers." + std::to_string(b) + ".";
        auto xn = norm(x, w(p + "input_layernorm.weight"));
        auto q = matvec(w(p + "self_attn.q_proj.weight"), xn, nq);
        auto k = matvec(w(p + "self_attn.k_proj.weight"), xn, nkv);
        auto v = matvec(w(p + "self_attn.v_proj.weight"), xn, nkv);
        if (c.attention_bias) {
          auto qb = w(p + "self_attn.q_proj.bias"), kb = w(p + "self_attn.k_proj.bias"), vb = w(p + "self_attn.v_proj.bias");
          for (int i = 0; i < nq; ++i) q[i] += qb[i];
          for (int i = 0; i < nkv; ++i) k[i] += kb[i], v[i] += vb[i];
        }
        if (c.qk_norm) {  // Qwen3: RMSNorm of every head vector, then RoPE
          auto qn = w(p + "self_attn.q_norm.weight"), kn = w(p + "self_attn.k_norm.weight");
          auto head_norm = [&](std::vector<double>& v, int heads, const std::vector<double>& g) {
            for (int h = 0; h < heads; ++h) {
              std::vector<double> one(v.begin() + h * d, v.begin() + (h + 1) * d);
              one = norm(one, g);
              std::copy(one.begin(), one.end(), v.begin() + h * d);
            }
          };
          head_norm(q, c.heads, qn);
          head_norm(k, c.kv_heads, kn);
        }
        const bool use_rope = c.rope_layers.empty() || c.rope_layers[b] != 0;
        if (use_rope) {
          rope(q, c.heads, static_cast<int>(pos));
          rope(k, c.kv_heads, static_cast<int>(pos));
        }
        K[b].push_back(k);
        V[b].push_back(v);
        // Keys this query may see: all j <= pos, or on a sliding layer the last `window` of them.
        const bool sliding = !c.sliding_layers.empty() && c.sliding_layers[b] != 0;
        auto visible = [&](size_t j) { return !sliding || static_cast<long>(pos) - static_cast<long>(j) < c.sliding_window; };
        std::vector<double> att(nq, 0.0);
        for (int h = 0; h < c.heads; ++h) {
          int kh = h / (c.heads / c.kv_heads);
          std::vector<double> sc(pos + 1);
          double mx = -1e300;
          for (size_t j = 0; j <= pos; ++j) {
            double s = 0;
            for (int i = 0; i < d; ++i) s += q[h * d + i] * K[b][j][kh * d + i];
            sc[j] = s / std::sqrt(static_cast<double>(d));
            if (visible(j)) mx = std::max(mx, sc[j]);
          }
          double sum = 0;
          for (size_t j = 0; j <= pos; ++j) sum += (sc[j] = visible(j) ? std::exp(sc[j] - mx) : 0.0);
          for (size_t j = 0; j <= pos; ++j)
            for (int i = 0; i < d; ++i) att[h * d + i] += sc[j] / sum * V[b][j][kh * d + i];
        }
        auto o = matvec(w(p + "self_attn.o_proj.weight"), att, H);
        for (int i = 0; i < H; ++i) x[i] += o[i];
        xn = norm(x, w(p + "post_attention_layernorm.weight"));
        auto g = matvec(w(p + "mlp.gate_proj.weight"), xn, c.intermediate);
        auto u = matvec(w(p + "mlp.up_proj.weight"), xn, c.intermediate);
        for (int i = 0; i < c.intermediate; ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
        auto dn = matvec(w(p + "mlp.down_proj.weight"), g, H);
        for (int i = 0; i < H; ++i) x[i] += dn[i];
      }
      auto xn = norm(x, w("model.norm.weight"));
      out.push_back(matvec(w(c.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), xn, c.vocab));
    }
    return out;
  }
};

std::vector<int32_t> random_ids(int n, int vocab, unsigned seed) {
  std::mt19937 r(seed);
  std::vector<int32_t> ids(n);
  for (auto& i : ids) i = static_cast<int32_t>(r() % vocab);
  return ids;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

}  // namespace

// ---- GEMM ---------------------------------------------------------------------------------------
TEST(gemm_matches_float64_brute_force_all_dtypes_and_kernels) {
  set_threads(2);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    Store s(dt);
    const int M = 103, K = 531;  // neither a multiple of the row block, the microkernel nor 8
    s.add("w", {M, K}, 1.0f);
    const void* data = s.bytes["w"].data();
    for (int T : {1, 2, 3, 67, 130}) {
      std::vector<float> x(static_cast<size_t>(T) * K);
      std::mt19937 r(T);
      std::normal_distribution<float> nd;
      for (auto& v : x) v = nd(r);
      std::vector<GemmImpl> impls = {GemmImpl::Scalar};
      if (cpu_features().avx2) impls.push_back(GemmImpl::Avx2);
      if (cpu_features().avx512) impls.push_back(GemmImpl::Avx512);  // the lanes = tokens batched GEMM
      if (cpu_features().neon) impls.push_back(GemmImpl::Neon);
      for (GemmImpl impl : impls) {
        std::vector<float> y(static_cast<size_t>(T) * M);
        matmul_wt(x.data(), T, WeightView{data, dt, M, K}, y.data(), impl);
        double worst = 0;
        for (int t = 0; t < T; ++t)
          for (int m = 0; m < M; ++m) {
            double ref = 0;
            for (int k = 0; k < K; ++k) ref += static_cast<double>(x[t * K + k]) * s.at("w", static_cast<size_t>(m) * K + k);
            worst = std::max(worst, std::fabs(ref - y[t * M + m]));
          }
        CHECK(worst < 2e-3);  // |sum| ~ sqrt(531) ~ 23; float32 accumulation error well below this
      }
    }
  }
}

// Auto picks this build's SIMD kernels: AVX2 on x86-64 CPUs that have it, NEON on every arm64 build.
TEST(auto_gemm_dispatch_picks_the_simd_kernels_of_this_build) {
  const CpuFeatures& cpu = cpu_features();
  const GemmKernels* simd = cpu.avx2 ? &gemm_kernels(GemmImpl::Avx2)
                            : cpu.neon ? &gemm_kernels(GemmImpl::Neon)
                                       : &gemm_kernels_scalar();
  CHECK(&gemm_kernels() == simd);
  CHECK(&gemm_kernels(GemmImpl::Scalar) == &gemm_kernels_scalar());
  if (cpu.avx2 || cpu.neon) CHECK(simd != &gemm_kernels_scalar());
#if defined(__aarch64__)
  if (cpu.neon) CHECK(&gemm_kernels() == &gemm_kernels_neon());
#endif
  bool threw = false;
  try {
    gemm_kernels(cpu.neon ? GemmImpl::Avx2 : GemmImpl::Neon);  // the other ISA's kernels
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(vector_helpers_match_scalar) {
  const CpuFeatures& cpu = cpu_features();
  if (!cpu.avx2 && !cpu.neon) return;
  const GemmKernels& simd = gemm_kernels();
  std::vector<float> a(77), b(77), y1(77, 1.0f), y2(77, 1.0f);
  for (int i = 0; i < 77; ++i) a[i] = std::sin(i * 0.3f), b[i] = std::cos(i * 0.7f);
  CHECK_NEAR(simd.dot(a.data(), b.data(), 77), gemm_kernels_scalar().dot(a.data(), b.data(), 77), 1e-5);
  simd.axpy(0.5f, a.data(), y1.data(), 77);
  gemm_kernels_scalar().axpy(0.5f, a.data(), y2.data(), 77);
  for (int i = 0; i < 77; ++i) CHECK_NEAR(y1[i], y2[i], 1e-6);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    std::vector<float> c1(77), c2(77);
    Store s(dt);
    s.add("w", {77}, 1.0f);
    simd.convert(s.bytes["w"].data(), dt, 0, 77, c1.data());
    gemm_kernels_scalar().convert(s.bytes["w"].data(), dt, 0, 77, c2.data());
    for (int i = 0; i < 77; ++i) CHECK(c1[i] == c2[i]);
  }
}

TEST(attention_kernel_matches_float64_softmax) {
  std::vector<const GemmKernels*> impls = {&gemm_kernels_scalar()};
  if (cpu_features().avx2 || cpu_features().neon) impls.push_back(&gemm_kernels());
  std::mt19937 r(17);
  std::normal_distribution<float> nd;
  for (int d : {8, 10, 64, 128}) {
    const int npos = 37, stride = 3 * d;  // rows of other heads in between, as in the cache
    std::vector<float> q(d), k(static_cast<size_t>(npos) * stride), v(k.size());
    for (auto& x : q) x = nd(r);
    for (auto& x : k) x = nd(r);
    for (auto& x : v) x = nd(r);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    std::vector<double> p(npos), ref(d, 0.0);
    double mx = -1e300, sum = 0;
    for (int j = 0; j < npos; ++j) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += static_cast<double>(q[i]) * k[j * stride + i];
      p[j] = s * scale;
      mx = std::max(mx, p[j]);
    }
    for (auto& x : p) sum += (x = std::exp(x - mx));
    for (int j = 0; j < npos; ++j)
      for (int i = 0; i < d; ++i) ref[i] += p[j] / sum * v[j * stride + i];
    for (const GemmKernels* kern : impls) {
      std::vector<float> scores(npos), out(d);
      kern->attend(q.data(), k.data(), v.data(), stride, npos, d, scale, scores.data(), out.data());
      for (int i = 0; i < d; ++i) CHECK_NEAR(out[i], ref[i], 1e-5);
    }
  }
}

// ---- forward pass -------------------------------------------------------------------------------
TEST(simd_forward_matches_float64_reference) {
  set_threads(2);
  for (DType dt : {DType::F32, DType::BF16}) {
    for (bool bias : {false, true}) {
      ModelConfig c = small_config(bias);
      c.tied_embeddings = dt == DType::BF16;
      Store s(dt);
      fill_model(s, c);
      auto model = std::make_shared<Model>(c, s.lookup());
      auto ids = random_ids(21, c.vocab, 7);
      Session sess(model, 64);
      std::vector<float> logits = sess.forward(ids.data(), static_cast<int>(ids.size()), true);
      auto ref = RefModel{s, c}.forward(ids);
      double worst = 0, scale = 0;
      for (size_t t = 0; t < ids.size(); ++t)
        for (int v = 0; v < c.vocab; ++v) {
          worst = std::max(worst, std::fabs(ref[t][v] - logits[t * c.vocab + v]));
          scale = std::max(scale, std::fabs(ref[t][v]));
        }
      CHECK(scale > 1.0);
      CHECK(worst < 1e-4 * scale);
    }
  }
}

TEST(scalar_gemm_forward_equals_simd_forward) {
  if (!cpu_features().avx2 && !cpu_features().neon) return;
  set_threads(2);
  ModelConfig c = small_config(true);
  Store s(DType::BF16);
  fill_model(s, c);
  auto simd = std::make_shared<Model>(c, s.lookup());
  auto scalar = std::make_shared<Model>(c, s.lookup());
  for (int b = 0; b < c.layers; ++b)
    for (int k = 0; k < 7; ++k) {
      auto kind = static_cast<LinearKind>(k);
      auto& dense = dynamic_cast<DenseLinear&>(scalar->block(b).linear(kind));
      scalar->set_linear(b, kind, std::make_unique<DenseLinear>(dense.weight(), GemmImpl::Scalar));
    }
  CHECK(scalar->block(1).linear(LinearKind::Up).describe() == "dense BF16 68x40");
  auto ids = random_ids(90, c.vocab, 13);
  Session a(simd, 90), b(scalar, 90);
  auto la = a.forward(ids.data(), 90, true);
  auto lb = b.forward(ids.data(), 90, true);
  double worst = 0;
  for (size_t i = 0; i < la.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(la[i]) - lb[i]));
  CHECK(max_abs(la) > 1.0);
  CHECK(worst < 1e-4);
}

TEST(kv_cache_decode_equals_full_forward_past_one_tile_block) {
  set_threads(2);
  ModelConfig c = small_config(true);
  Store s(DType::F16);
  fill_model(s, c);
  auto model = std::make_shared<Model>(c, s.lookup());
  const int n = kTokenBlock + kRowBlock + 9;  // longer than one token block and one row block
  auto ids = random_ids(n, c.vocab, 11);
  Session full(model, n);
  std::vector<float> all = full.forward(ids.data(), n, true);
  // Prefill an odd-length prefix in one batch, then decode one token at a time.
  Session inc(model, n);
  const int prefix = 5;
  std::vector<float> last = inc.forward(ids.data(), prefix, false);
  double worst = 0;
  for (int v = 0; v < c.vocab; ++v) worst = std::max(worst, static_cast<double>(std::fabs(last[v] - all[(prefix - 1) * c.vocab + v])));
  for (int t = prefix; t < n; ++t) {
    last = inc.forward(&ids[t], 1, false);
    for (int v = 0; v < c.vocab; ++v) worst = std::max(worst, static_cast<double>(std::fabs(last[v] - all[static_cast<size_t>(t) * c.vocab + v])));
  }
  CHECK(inc.position() == n);
  CHECK(max_abs(all) > 1.0);
  CHECK(worst < 1e-4);
}

TEST(forward_is_equal_across_thread_counts) {
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  auto model = std::make_shared<Model>(c, s.lookup());
  auto ids = random_ids(70, c.vocab, 3);
  set_threads(1);
  Session a(model, 70);
  auto la = a.score(ids.data(), 70);
  set_threads(2);
  Session b(model, 70);
  auto lb = b.score(ids.data(), 70);
  CHECK(la.second == 69);
  CHECK(la.first == lb.first);  // fixed reduction order per output: bitwise equal
}

// The options newer families switch on, each alone and all together, against the float64 reference:
// q/k RMSNorm per head (Qwen3), a sliding window of 5 on layer 1 (Mistral / Qwen2 use_sliding_window),
// no RoPE on layer 1 (SmolLM3). 23 tokens: more than four windows. The batched forward and KV-cache
// decoding (prefix, then one token at a time) both equal the reference.
TEST(qk_norm_sliding_window_and_nope_layers_match_float64_reference) {
  set_threads(2);
  struct Variant { bool qk; int window; bool nope; };
  for (Variant v : {Variant{true, 0, false}, Variant{false, 5, false}, Variant{false, 0, true}, Variant{true, 5, true}}) {
    ModelConfig c = small_config(true);
    c.qk_norm = v.qk;
    if (v.window) {
      c.sliding_window = v.window;
      c.sliding_layers = {0, 1};
    }
    if (v.nope) c.rope_layers = {1, 0};
    Store s(DType::F32);
    fill_model(s, c);
    auto model = std::make_shared<Model>(c, s.lookup());
    const int n = 23;
    auto ids = random_ids(n, c.vocab, 5);
    Session full(model, n);
    std::vector<float> all = full.forward(ids.data(), n, true);
    auto ref = RefModel{s, c}.forward(ids);
    double worst = 0, scale = 0;
    for (int t = 0; t < n; ++t)
      for (int k = 0; k < c.vocab; ++k) {
        worst = std::max(worst, std::fabs(ref[t][k] - all[static_cast<size_t>(t) * c.vocab + k]));
        scale = std::max(scale, std::fabs(ref[t][k]));
      }
    CHECK(scale > 1.0);
    CHECK(worst < 1e-4 * scale);
    Session inc(model, n);
    std::vector<float> last = inc.forward(ids.data(), 7, false);
    double dworst = 0;
    for (int k = 0; k < c.vocab; ++k) dworst = std::max(dworst, static_cast<double>(std::fabs(last[k] - all[6 * static_cast<size_t>(c.vocab) + k])));
    for (int t = 7; t < n; ++t) {
      last = inc.forward(&ids[t], 1, false);
      for (int k = 0; k < c.vocab; ++k) dworst = std::max(dworst, static_cast<double>(std::fabs(last[k] - all[static_cast<size_t>(t) * c.vocab + k])));
    }
    CHECK(dworst < 1e-4 * scale);
  }
}

// The options change the function (so the test above is not vacuous): a window of 5 differs from full
// attention once a query is 5 or more positions in, and equals it before; a window as long as the
// sequence equals full attention.
TEST(sliding_window_changes_only_positions_past_the_window) {
  set_threads(2);
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  auto plain = std::make_shared<Model>(c, s.lookup());
  ModelConfig w = c;
  w.sliding_window = 5;
  w.sliding_layers = {1, 1};
  auto windowed = std::make_shared<Model>(w, s.lookup());
  ModelConfig wide = w;
  wide.sliding_window = 16;
  auto wide_model = std::make_shared<Model>(wide, s.lookup());
  auto ids = random_ids(16, c.vocab, 9);
  Session a(plain, 16), b(windowed, 16), d(wide_model, 16);
  auto la = a.forward(ids.data(), 16, true), lb = b.forward(ids.data(), 16, true), ld = d.forward(ids.data(), 16, true);
  for (int t = 0; t < 16; ++t) {
    double diff = 0;
    for (int k = 0; k < c.vocab; ++k) diff = std::max(diff, std::fabs(static_cast<double>(la[t * c.vocab + k]) - lb[t * c.vocab + k]));
    if (t < 5) CHECK(diff == 0.0);
    else CHECK(diff > 1e-3);
  }
  for (size_t i = 0; i < la.size(); ++i) CHECK(la[i] == ld[i]);
  CHECK(c.beyond_llama_block() == nullptr);
  CHECK(std::string(w.beyond_llama_block()) == "sliding-window attention");
  // Inconsistent options are refused, naming the field.
  ModelConfig bad = w;
  bad.sliding_window = 0;
  std::string msg;
  try { Model m(bad, s.lookup()); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("sliding_window") != std::string::npos);
  bad = c;
  bad.rope_layers = {1};
  msg.clear();
  try { Model m(bad, s.lookup()); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("rope_layers") != std::string::npos);
  bad = c;
  bad.qk_norm = true;  // the weights have no q_norm
  msg.clear();
  try { Model m(bad, s.lookup()); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("model.layers.0.self_attn.q_norm.weight") != std::string::npos);
}

TEST(missing_tensor_and_wrong_shape_are_named) {
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  s.bytes.erase("model.layers.1.mlp.up_proj.weight");
  std::string msg;
  try { Model m(c, s.lookup()); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("model.layers.1.mlp.up_proj.weight") != std::string::npos);
  Store t(DType::F32);
  fill_model(t, c);
  t.shapes["model.norm.weight"] = {c.hidden - 1};
  msg.clear();
  try { Model m(c, t.lookup()); } catch (const std::invalid_argument& e) { msg = e.what(); }
  CHECK(msg.find("model.norm.weight") != std::string::npos && msg.find("shape") != std::string::npos);
}

// A Linear that is not dense: y = x W^T computed in float64 from its own copy of the weights.
struct CopiedLinear : Linear {
  int in, out;
  std::vector<double> w;
  int in_features() const override { return in; }
  int out_features() const override { return out; }
  void forward(const float* x, int tokens, float* y) const override {
    for (int t = 0; t < tokens; ++t)
      for (int o = 0; o < out; ++o) {
        double s = 0;
        for (int i = 0; i < in; ++i) s += w[static_cast<size_t>(o) * in + i] * x[static_cast<size_t>(t) * in + i];
        y[static_cast<size_t>(t) * out + o] = static_cast<float>(s);
      }
  }
  std::string describe() const override { return "copied"; }
};

TEST(a_replacement_linear_plugs_into_a_block) {
  set_threads(2);
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  auto model = std::make_shared<Model>(c, s.lookup());
  auto ids = random_ids(12, c.vocab, 5);
  Session a(model, 12);
  auto before = a.forward(ids.data(), 12, true);
  auto lin = std::make_unique<CopiedLinear>();
  lin->in = c.intermediate, lin->out = c.hidden;
  for (size_t i = 0; i < static_cast<size_t>(c.hidden) * c.intermediate; ++i) lin->w.push_back(-s.at("model.layers.1.mlp.down_proj.weight", i));
  model->set_linear(1, LinearKind::Down, std::move(lin));  // negated: the output must change
  Session b(model, 12);
  auto after = b.forward(ids.data(), 12, true);
  double diff = 0;
  for (size_t i = 0; i < after.size(); ++i) diff = std::max(diff, std::fabs(static_cast<double>(after[i]) - before[i]));
  CHECK(diff > 1e-2);
  bool threw = false;
  try { model->set_linear(0, LinearKind::Q, std::make_unique<CopiedLinear>()); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw);
}

// The final norm feeds the linear lm_head, so doubling its weights doubles every logit.
TEST(a_replaced_final_norm_is_what_the_head_uses) {
  set_threads(2);
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  Model model(c, s.lookup());
  std::vector<float> x(static_cast<size_t>(3) * c.hidden);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(0.7 * i + 0.1));
  std::vector<float> before(static_cast<size_t>(3) * c.vocab), after(before.size());
  model.head(x.data(), 3, before.data());
  std::vector<float> w = model.final_norm();
  CHECK(w.size() == static_cast<size_t>(c.hidden));
  for (size_t i = 0; i < w.size(); ++i) CHECK(w[i] == s.at("model.norm.weight", i));
  for (float& v : w) v *= 2;
  model.set_final_norm(w);
  model.head(x.data(), 3, after.data());
  for (size_t i = 0; i < after.size(); ++i) CHECK_NEAR(after[i], 2.0 * before[i], 1e-4 * (1 + std::fabs(before[i])));
  bool threw = false;
  try { model.set_final_norm(std::vector<float>(c.hidden + 1, 1.f)); } catch (const std::invalid_argument&) { threw = true; }
  CHECK(threw);
}

// ---- rotary scaling -----------------------------------------------------------------------------
TEST(rope_scaling_linear_and_llama3) {
  ModelConfig c = small_config();
  c.head_dim = 64;
  auto base = rope_inv_freq(c);
  CHECK_NEAR(base[0], 1.0, 0);
  CHECK_NEAR(base[1], std::pow(10000.0, -2.0 / 64), 1e-15);
  c.rope_scaling = RopeScalingType::Linear;
  c.rope_factor = 4;
  auto lin = rope_inv_freq(c);
  for (size_t i = 0; i < base.size(); ++i) CHECK_NEAR(lin[i] * 4, base[i], 1e-15);
  c.rope_theta = 500000;
  c.rope_scaling = RopeScalingType::None;
  auto b3 = rope_inv_freq(c);
  c.rope_scaling = RopeScalingType::Llama3;
  c.rope_factor = 8, c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_original_context = 8192;
  auto l3 = rope_inv_freq(c);
  int kept = 0, slowed = 0, blended = 0;
  for (size_t i = 0; i < b3.size(); ++i) {
    double wl = 2 * M_PI / b3[i];
    if (wl < 8192 / 4.0) { CHECK_NEAR(l3[i], b3[i], 0); ++kept; }
    else if (wl > 8192) { CHECK_NEAR(l3[i], b3[i] / 8, 1e-18); ++slowed; }
    else { CHECK(l3[i] < b3[i] && l3[i] > b3[i] / 8); ++blended; }
  }
  CHECK(kept > 0 && slowed > 0 && blended > 0);
}

// ---- calibration --------------------------------------------------------------------------------
TEST(hessians_equal_explicit_xtx_of_captured_inputs) {
  set_threads(2);
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  auto model = std::make_shared<Model>(c, s.lookup());
  const int N = 3, L = 300;  // L > kHessianChunk: chunks are summed
  auto ids = random_ids(N * L, c.vocab, 9);
  Calibration cal(model, ids, N, L);
  cal.advance({});  // block 1's Hessians see block 0's outputs
  auto hs = cal.hessians({});
  // Capture the same inputs by running the model block by block with taps.
  std::vector<std::vector<float>> captured(4);
  std::vector<int> feats(4);
  TapFn cap = [&](Tap t, const float* x, int tokens, int f) {
    captured[static_cast<int>(t)].insert(captured[static_cast<int>(t)].end(), x, x + static_cast<size_t>(tokens) * f);
    feats[static_cast<int>(t)] = f;
  };
  for (int q = 0; q < N; ++q) {
    KVCache kv;
    kv.allocate(c, L);
    std::vector<float> x(static_cast<size_t>(L) * c.hidden);
    model->embed(&ids[static_cast<size_t>(q) * L], L, x.data());
    model->block_forward(0, x.data(), L, 0, kv.layer(0));
    model->block_forward(1, x.data(), L, 0, kv.layer(1), &cap);
  }
  for (int t = 0; t < 4; ++t) {
    const int n = feats[t];
    CHECK(hs.tap[t].n == n);
    CHECK(hs.tap[t].count == N * L);
    double worst = 0, scale = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double ref = 0;
        for (int r = 0; r < N * L; ++r) ref += static_cast<double>(captured[t][static_cast<size_t>(r) * n + i]) * captured[t][static_cast<size_t>(r) * n + j];
        worst = std::max(worst, std::fabs(ref - hs.tap[t].sum[static_cast<size_t>(i) * n + j]));
        scale = std::max(scale, std::fabs(ref));
      }
    CHECK(scale > 1.0);
    CHECK(worst < 1e-5 * scale);
  }
  // After advancing through every block the states are the model's final hidden states.
  cal.advance({});
  CHECK(cal.next_block() == c.layers);
  std::vector<float> lc(static_cast<size_t>(L) * c.vocab);
  model->head(cal.hidden(2), L, lc.data());
  Session sess(model, L);
  auto ls = sess.forward(&ids[2 * static_cast<size_t>(L)], L, true);
  double worst = 0;
  for (size_t i = 0; i < ls.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(ls[i]) - lc[i]));
  CHECK(worst < 1e-5);
  bool threw = false;
  try { cal.hessians({}); } catch (const std::out_of_range&) { threw = true; }
  CHECK(threw);
}

// Calibration runs the same block forward: with a window, q/k norms and a NoPE layer, its final hidden
// states give the logits of a session's forward, which differ from those of the model without them.
TEST(calibration_of_a_sliding_window_model_equals_its_session_forward) {
  set_threads(2);
  ModelConfig c = small_config();
  c.qk_norm = true;
  c.sliding_window = 4;
  c.sliding_layers = {1, 0};
  c.rope_layers = {1, 0};
  Store s(DType::F32);
  fill_model(s, c);
  auto model = std::make_shared<Model>(c, s.lookup());
  const int N = 2, L = 19;
  auto ids = random_ids(N * L, c.vocab, 4);
  Calibration cal(model, ids, N, L);
  cal.advance({});
  cal.advance({});
  CHECK(cal.next_block() == c.layers);
  std::vector<float> lc(static_cast<size_t>(L) * c.vocab);
  model->head(cal.hidden(1), L, lc.data());
  Session sess(model, L);
  auto ls = sess.forward(&ids[L], L, true);
  double worst = 0;
  for (size_t i = 0; i < ls.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(ls[i]) - lc[i]));
  CHECK(worst < 1e-5);
  ModelConfig full = c;
  full.sliding_layers.clear();
  Session other(std::make_shared<Model>(full, s.lookup()), L);
  auto lf = other.forward(&ids[L], L, true);
  double diff = 0;
  for (size_t i = 0; i < ls.size(); ++i) diff = std::max(diff, std::fabs(static_cast<double>(ls[i]) - lf[i]));
  CHECK(diff > 1e-3);
}

TEST(calibration_cancels_between_sequences) {
  ModelConfig c = small_config();
  Store s(DType::F32);
  fill_model(s, c);
  auto model = std::make_shared<Model>(c, s.lookup());
  Calibration cal(model, random_ids(4 * 8, c.vocab, 2), 4, 8);
  int seen = 0;
  JobHooks h;
  h.cancelled = [&] { return seen >= 2; };
  h.report = [&](const std::string&) { ++seen; };
  bool cancelled = false;
  try { cal.hessians(h); } catch (const Cancelled&) { cancelled = true; }
  CHECK(cancelled && seen == 2);
}

QUIP_TEST_MAIN()
