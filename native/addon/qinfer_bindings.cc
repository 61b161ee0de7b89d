// Bindings of quantized inference (native/src/qinfer): quantized linear layers built from QuIP# codes
// (typed arrays right after quantization, or memory-mapped tensors of a saved folder), swapped into
// an EngineModel or assembled into a new one for a quantized folder.
//
// A layer spec from JS:
//   { m, n, codebook: 'e8p'|'rvq3'|'rvq4'|'rtn2'|'rtn3'|'rtn4', scale, residualScale (RVQ s2),
//     incoherence, su, sv (Int8Array | Float32Array | null),
//     codes, residual: Uint16Array | Uint8Array | { file: MappedFile, offset, bytes } | null }
// codes: E8P/RVQ the uint16 E8P plane (m x n_pad/8); RTN b bytes per group of 8 packed levels.
// residual: RVQ4 uint16 E8P plane, RVQ3 uint8 E8-shell plane.
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon.h"
#include "common/cpu.h"
#include "runtime/model.h"
#include "qinfer/qlinear.h"

namespace quip_addon {
namespace {

using quip::qinfer::CodeKind;
using quip::qinfer::KernelImpl;
using quip::qinfer::QuantizedLinear;
using quip::qinfer::QuantizedLinearParams;

struct Owned {
  std::vector<std::shared_ptr<const void>> parts;
};

double Num(Napi::Object o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), what + ": " + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// A code plane of exactly `bytes` bytes, copied from a typed array or read in place from a mapping
// (copied only when misaligned for 16-bit reads).
const void* CodePlane(Napi::Env env, Napi::Value v, size_t bytes, size_t align, Owned& own, const std::string& what) {
  if (v.IsTypedArray()) {
    auto a = v.As<Napi::TypedArray>();
    if (a.ByteLength() != bytes)
      throw Napi::RangeError::New(env, what + " holds " + std::to_string(a.ByteLength()) + " bytes, expected " + std::to_string(bytes));
    auto copy = std::make_shared<std::vector<uint64_t>>((bytes + 7) / 8);
    std::memcpy(copy->data(), static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), bytes);
    own.parts.push_back(copy);
    return copy->data();
  }
  if (!v.IsObject()) throw Napi::TypeError::New(env, what + " must be a typed array or { file, offset, bytes }");
  Napi::Object o = v.As<Napi::Object>();
  auto file = UnwrapMappedFile(o.Get("file"));
  const double off = Num(o, "offset", what), len = Num(o, "bytes", what);
  if (len != static_cast<double>(bytes))
    throw Napi::RangeError::New(env, what + " is " + std::to_string(static_cast<size_t>(len)) + " bytes, expected " + std::to_string(bytes));
  if (off < 0 || off + len > static_cast<double>(file->size()))
    throw Napi::RangeError::New(env, what + " lies outside its file");
  const uint8_t* p = file->data() + static_cast<size_t>(off);
  if (reinterpret_cast<uintptr_t>(p) % align != 0) {
    auto copy = std::make_shared<std::vector<uint64_t>>((bytes + 7) / 8);
    std::memcpy(copy->data(), p, bytes);
    own.parts.push_back(copy);
    return copy->data();
  }
  own.parts.push_back(file);
  return p;
}

std::vector<float> SignVector(Napi::Env env, Napi::Value v, int len, const std::string& what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, what + " must be an Int8Array or Float32Array");
  auto a = v.As<Napi::TypedArray>();
  if (static_cast<int>(a.ElementLength()) != len)
    throw Napi::RangeError::New(env, what + " has " + std::to_string(a.ElementLength()) + " entries, expected " + std::to_string(len));
  std::vector<float> out(len);
  if (a.TypedArrayType() == napi_int8_array) {
    const int8_t* d = v.As<Napi::Int8Array>().Data();
    for (int i = 0; i < len; ++i) out[i] = d[i];
  } else if (a.TypedArrayType() == napi_float32_array) {
    const float* d = v.As<Napi::Float32Array>().Data();
    std::copy(d, d + len, out.begin());
  } else {
    throw Napi::TypeError::New(env, what + " must be an Int8Array or Float32Array");
  }
  return out;
}

QuantizedLinearParams ReadSpec(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, what + " must be a quantized layer object");
  Napi::Object o = v.As<Napi::Object>();
  QuantizedLinearParams p;
  p.m = static_cast<int>(Num(o, "m", what));
  p.n = static_cast<int>(Num(o, "n", what));
  if (p.m <= 0 || p.n <= 0) throw Napi::RangeError::New(env, what + ": m and n must be positive");
  const int groups = (p.n + 7) / 8;
  const size_t G = static_cast<size_t>(p.m) * groups;
  std::string cb = o.Get("codebook").ToString().Utf8Value();
  auto own = std::make_shared<Owned>();
  p.codes.rows = p.m;
  p.codes.groups = groups;
  if (cb == "e8p" || cb == "rvq3" || cb == "rvq4") {
    p.codes.kind = cb == "e8p" ? CodeKind::E8P : cb == "rvq3" ? CodeKind::RVQ3 : CodeKind::RVQ4;
    p.codes.primary = static_cast<const uint16_t*>(CodePlane(env, o.Get("codes"), G * 2, 2, *own, what + ".codes"));
    if (cb != "e8p") {
      const size_t rb = cb == "rvq4" ? 2 : 1;
      p.codes.residual = CodePlane(env, o.Get("residual"), G * rb, rb, *own, what + ".residual");
      const double s2 = Num(o, "residualScale", what);
      if (!(s2 > 0)) throw Napi::RangeError::New(env, what + ": residualScale must be positive");
      p.codes.residual_inv_scale = static_cast<float>(1.0 / s2);
    }
  } else if (cb == "rtn2" || cb == "rtn3" || cb == "rtn4") {
    p.codes.kind = CodeKind::Scalar;
    p.codes.scalar_bits = cb[3] - '0';
    p.codes.packed = static_cast<const uint8_t*>(CodePlane(env, o.Get("codes"), G * p.codes.scalar_bits, 1, *own, what + ".codes"));
  } else {
    throw Napi::TypeError::New(env, what + ": unknown codebook '" + cb + "' (e8p, rvq3, rvq4, rtn2, rtn3, rtn4)");
  }
  p.scale = static_cast<float>(Num(o, "scale", what));
  p.incoherence = o.Get("incoherence").ToBoolean().Value();
  if (p.incoherence) {
    p.su = SignVector(env, o.Get("su"), p.n, what + ".su");
    p.sv = SignVector(env, o.Get("sv"), p.m, what + ".sv");
  }
  p.keep = own;
  return p;
}

KernelImpl ImplArg(Napi::Env env, Napi::Value v) {
  if (v.IsUndefined() || v.IsNull()) return KernelImpl::Auto;
  std::string s = v.ToString().Utf8Value();
  if (s == "auto") return KernelImpl::Auto;
  if (s == "scalar") return KernelImpl::Scalar;
  if (s == "avx2") return KernelImpl::Avx2;
  if (s == "avx512") return KernelImpl::Avx512;
  if (s == "neon") return KernelImpl::Neon;
  throw Napi::TypeError::New(env, "kernel must be 'auto', 'scalar', 'avx2', 'avx512' or 'neon'");
}

std::unique_ptr<QuantizedLinear> MakeLayer(Napi::Env env, Napi::Value spec, const std::string& what, KernelImpl impl = KernelImpl::Auto) {
  QuantizedLinearParams p = ReadSpec(env, spec, what);
  try {
    return std::make_unique<QuantizedLinear>(std::move(p), impl);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, what + ": " + e.what());
  }
}

bool ParseKind(const std::string& s, quip::runtime::LinearKind* out) {
  for (int k = 0; k < 7; ++k) {
    auto lk = static_cast<quip::runtime::LinearKind>(k);
    if (s == quip::runtime::linear_kind_name(lk)) {
      *out = lk;
      return true;
    }
  }
  return false;
}

// qinferSetLinear(model: EngineModel, block, kind: 'q_proj'|..., spec) -> describe() of the new layer.
// The model must not be running a job (the caller awaits its calls).
Napi::Value SetLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = UnwrapEngineModel(info[0]);
  const int block = static_cast<int>(NumberArg(info, 1, "block"));
  const std::string kind = StringArg(info, 2, "kind");
  quip::runtime::LinearKind lk;
  if (!ParseKind(kind, &lk)) throw Napi::TypeError::New(env, "unknown linear kind " + kind);
  if (block < 0 || block >= model->config().layers) throw Napi::RangeError::New(env, "block " + std::to_string(block) + " is out of range");
  auto layer = MakeLayer(env, info[3], "model.layers." + std::to_string(block) + "." + kind);
  std::string d = layer->describe();
  try {
    model->set_linear(block, lk, std::move(layer));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return Napi::String::New(env, d);
}

// createQuantizedModel(config, weights: {name: TensorRef} (embeddings, norms, lm_head),
//                      layers: [{block, kind, spec}] covering every linear of every block) -> EngineModel
Napi::Value CreateQuantizedModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  quip::runtime::ModelConfig config = ReadEngineModelConfig(env, info[0]);
  if (!info[2].IsArray()) throw Napi::TypeError::New(env, "layers must be an array of {block, kind, spec}");
  std::map<std::string, quip::runtime::TensorView> views;
  MappingsKeep keep = ReadEngineWeights(env, info[1], &views);
  // Every linear of every block must come quantized; they are built before the model so a bad spec
  // fails before anything is assembled.
  Napi::Array layers = info[2].As<Napi::Array>();
  std::vector<std::vector<std::unique_ptr<QuantizedLinear>>> q(config.layers);
  for (auto& b : q) b.resize(7);
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    Napi::Object l = layers.Get(i).As<Napi::Object>();
    const int block = static_cast<int>(Num(l, "block", "layer"));
    const std::string kind = l.Get("kind").ToString().Utf8Value();
    quip::runtime::LinearKind lk;
    if (!ParseKind(kind, &lk)) throw Napi::TypeError::New(env, "unknown linear kind " + kind);
    if (block < 0 || block >= config.layers) throw Napi::RangeError::New(env, "layer block " + std::to_string(block) + " is out of range");
    q[block][static_cast<int>(lk)] = MakeLayer(env, l.Get("spec"), "model.layers." + std::to_string(block) + "." + kind);
  }
  // The engine builds dense linears from the lookup; the quantized ones replace them before the
  // model is handed out, so their weight views are never read. They point at a placeholder.
  static const float kPlaceholder[8] = {};
  for (int b = 0; b < config.layers; ++b)
    for (int k = 0; k < 7; ++k) {
      auto lk = static_cast<quip::runtime::LinearKind>(k);
      const std::string name = "model.layers." + std::to_string(b) + "." + (k < 4 ? "self_attn." : "mlp.") + quip::runtime::linear_kind_name(lk);
      if (!q[b][k]) throw Napi::Error::New(env, name + " has no quantized layer; a quantized model needs every linear layer");
      views[name + ".weight"] = quip::runtime::TensorView{kPlaceholder, quip::DType::F32, {q[b][k]->out_features(), q[b][k]->in_features()}};
    }
  std::shared_ptr<quip::runtime::Model> model;
  try {
    auto* m = new quip::runtime::Model(config, [&](const std::string& name) {
      auto it = views.find(name);
      return it == views.end() ? quip::runtime::TensorView{} : it->second;
    });
    model = std::shared_ptr<quip::runtime::Model>(m, [keep](quip::runtime::Model* p) { delete p; });
    for (int b = 0; b < config.layers; ++b)
      for (int k = 0; k < 7; ++k) model->set_linear(b, static_cast<quip::runtime::LinearKind>(k), std::move(q[b][k]));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cannot build the quantized model: ") + e.what());
  }
  return WrapEngineModel(env, model);
}

// qinferForward(spec, x: Float32Array (tokens x n), tokens, kernel?) -> Float32Array (tokens x m)
Napi::Value Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto layer = MakeLayer(env, info[0], "layer", ImplArg(env, info[3]));
  Napi::Float32Array x = Float32ArrayArg(info, 1, "x");
  const int tokens = static_cast<int>(NumberArg(info, 2, "tokens"));
  if (tokens <= 0 || x.ElementLength() != static_cast<size_t>(tokens) * layer->in_features())
    throw Napi::RangeError::New(env, "x must hold tokens x n floats");
  Napi::Float32Array y = Napi::Float32Array::New(env, static_cast<size_t>(tokens) * layer->out_features());
  layer->forward(x.Data(), tokens, y.Data());
  return y;
}

// qinferDequantize(spec) -> Float64Array (m x n): the matrix the layer applies, in float64.
Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto layer = MakeLayer(env, info[0], "layer", KernelImpl::Scalar);
  std::vector<double> W = layer->dequantize();
  Napi::Float64Array out = Napi::Float64Array::New(env, W.size());
  std::memcpy(out.Data(), W.data(), W.size() * sizeof(double));
  return out;
}

// qinferProfile(on?: boolean) -> { transformS, matvecS, calls, tokens }: the time quantized layers
// spent per phase since profiling was last switched on; a boolean then switches it (and clears it).
Napi::Value Profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const quip::qinfer::DecodeProfile p = quip::qinfer::decode_profile();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsBoolean()) throw Napi::TypeError::New(env, "qinferProfile: on must be a boolean");
    quip::qinfer::set_decode_profiling(info[0].As<Napi::Boolean>().Value());
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("transformS", p.transform_s);
  o.Set("matvecS", p.matvec_s);
  o.Set("calls", static_cast<double>(p.calls));
  o.Set("tokens", static_cast<double>(p.tokens));
  return o;
}

// qinferKernelTimes({m, n, reps}) -> [{codebook, kernel, nsPerGroup}]: the decode-matvec kernels
// this CPU can run (scalar, avx2 / neon, avx512) on one thread, best of reps, over an m x n matrix of
// seeded random codes that stays in cache (every code costs the same lookups). Int8 kernels are timed
// with their per-call prepare_x, as QuantizedLinear runs them.
Napi::Value KernelTimes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  auto get = [&](const char* k, int d) { return o.Has(k) && !o.Get(k).IsUndefined() ? o.Get(k).ToNumber().Int32Value() : d; };
  const int m = get("m", 1024), n = get("n", 4096), reps = get("reps", 20);
  if (m < 1 || n < 8 || n % 8 != 0 || reps < 1) throw Napi::RangeError::New(env, "qinferKernelTimes: m >= 1, n a multiple of 8 and reps >= 1");
  const int G = n / 8;
  std::mt19937 rng(7);
  std::vector<uint16_t> primary(static_cast<size_t>(m) * G), res16(primary.size());
  std::vector<uint8_t> res8(primary.size());
  for (size_t i = 0; i < primary.size(); ++i) {
    primary[i] = static_cast<uint16_t>(rng());
    res16[i] = static_cast<uint16_t>(rng());
    res8[i] = static_cast<uint8_t>(rng());
  }
  std::vector<float> x(n), y(m);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(rng);
  const quip::CpuFeatures& cpu = quip::cpu_features();
  std::vector<std::pair<const char*, KernelImpl>> kernels{{"scalar", KernelImpl::Scalar}};
  if (cpu.avx2) kernels.push_back({"avx2", KernelImpl::Avx2});
  if (cpu.avx512) kernels.push_back({"avx512", KernelImpl::Avx512});
  if (cpu.neon) kernels.push_back({"neon", KernelImpl::Neon});
  Napi::Array out = Napi::Array::New(env);
  for (const char* cb : {"e8p", "rvq3", "rvq4"}) {
    quip::qinfer::QCodes q;
    q.kind = cb[0] == 'e' ? CodeKind::E8P : cb[3] == '3' ? CodeKind::RVQ3 : CodeKind::RVQ4;
    q.rows = m;
    q.groups = G;
    q.primary = primary.data();
    q.residual = q.kind == CodeKind::RVQ4 ? static_cast<const void*>(res16.data()) : static_cast<const void*>(res8.data());
    q.residual_inv_scale = 0.25f;
    for (const auto& [name, impl] : kernels) {
      const quip::qinfer::DecodeKernels& k = quip::qinfer::decode_kernels(impl);
      quip::qinfer::PreparedX px;
      double best = 1e30;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        if (k.matvec_prepared) {
          quip::qinfer::prepare_x(x.data(), G, px);
          k.matvec_prepared(q, px, 0, m, y.data());
        } else {
          k.matvec(q, x.data(), 0, m, y.data());
        }
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      Napi::Object e = Napi::Object::New(env);
      e.Set("codebook", cb);
      e.Set("kernel", name);
      e.Set("nsPerGroup", best * 1e9 / (static_cast<double>(m) * G));
      out.Set(out.Length(), e);
    }
  }
  return out;
}

}  // namespace

void RegisterQinfer(Napi::Env env, Napi::Object exports) {
  exports.Set("qinferSetLinear", Napi::Function::New(env, SetLinear));
  exports.Set("createQuantizedModel", Napi::Function::New(env, CreateQuantizedModel));
  exports.Set("qinferForward", Napi::Function::New(env, Forward));
  exports.Set("qinferDequantize", Napi::Function::New(env, Dequantize));
  exports.Set("qinferProfile", Napi::Function::New(env, Profile));
  exports.Set("qinferKernelTimes", Napi::Function::New(env, KernelTimes));
}

}  // namespace quip_addon
