// Bindings of the QuIP# numeric core (native/src/quip): Hadamard plans, the randomized Hadamard
// transform on activations, the E8P table, per-layer quantization / dequantization jobs, and the
// measures of a layer's error (the proxy loss of any W^, the layer as a Gaussian source).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "quip/bench.h"
#include "quip/e8p.h"
#include "quip/hadamard.h"
#include "quip/ldlq.h"
#include "quip/rate_distortion.h"

namespace quip_addon {

namespace {

Napi::Object PlanToJs(Napi::Env env, const quip::HadamardPlan& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("n", static_cast<double>(p.n));
  o.Set("k", static_cast<double>(p.K));
  o.Set("pow2", static_cast<double>(p.pow2));
  o.Set("method", quip::hadamard_method_name(p.method));
  o.Set("construction", p.K == 1 ? env.Null() : Napi::String::New(env, p.construction));
  return o;
}

int64_t PositiveInt(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double v = NumberArg(info, i, what);
  if (!(v >= 1) || v != std::floor(v) || v > 1e9)
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be a positive integer, got " +
                                                std::to_string(v));
  return static_cast<int64_t>(v);
}

// hadamardPlan(n) -> HadamardFactor
Napi::Value HadamardPlanJs(const Napi::CallbackInfo& info) {
  return PlanToJs(info.Env(), quip::hadamard_plan(PositiveInt(info, 0, "n")));
}

template <typename A>
A TypedArg(Napi::Env env, Napi::Value v, napi_typedarray_type type, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, what);
  return v.As<A>();
}

double OptNumber(Napi::Object o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string("options.") + key + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}
bool OptBool(Napi::Object o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("options.") + key + " must be true or false");
  return v.As<Napi::Boolean>().Value();
}
quip::Codebook CodebookArg(Napi::Env env, Napi::Value v) {
  quip::Codebook cb;
  if (!v.IsString() || !quip::parse_codebook(v.As<Napi::String>().Utf8Value(), &cb))
    throw Napi::TypeError::New(env, "codebook must be one of e8p, rvq3, rvq4, rtn2, rtn3, rtn4");
  return cb;
}
int64_t DimArg(Napi::Object o, const char* key) {
  double v = OptNumber(o, key, -1);
  if (!(v >= 1) || v != std::floor(v) || v > 1e6)
    throw Napi::RangeError::New(o.Env(), std::string("options.") + key + " must be a positive integer");
  return static_cast<int64_t>(v);
}

// Code words (one uint32 per group of 8) <-> the per-stage typed arrays JS stores.
Napi::Array CodesToJs(Napi::Env env, quip::Codebook cb, const std::vector<uint32_t>& codes) {
  const size_t G = codes.size();
  Napi::Array out = Napi::Array::New(env);
  if (cb == quip::Codebook::E8P || cb == quip::Codebook::RVQ3 || cb == quip::Codebook::RVQ4) {
    auto c1 = Napi::Uint16Array::New(env, G);
    for (size_t g = 0; g < G; ++g) c1[g] = static_cast<uint16_t>(codes[g]);
    out.Set(0u, c1);
    if (cb == quip::Codebook::RVQ4) {
      auto c2 = Napi::Uint16Array::New(env, G);
      for (size_t g = 0; g < G; ++g) c2[g] = static_cast<uint16_t>(codes[g] >> 16);
      out.Set(1u, c2);
    } else if (cb == quip::Codebook::RVQ3) {
      auto c2 = Napi::Uint8Array::New(env, G);
      for (size_t g = 0; g < G; ++g) c2[g] = static_cast<uint8_t>(codes[g] >> 16);
      out.Set(1u, c2);
    }
  } else {
    const int b = quip::codebook_info(cb).bits;
    auto lv = Napi::Uint8Array::New(env, G * 8);
    for (size_t g = 0; g < G; ++g)
      for (int i = 0; i < 8; ++i) lv[g * 8 + i] = static_cast<uint8_t>((codes[g] >> (b * i)) & ((1u << b) - 1));
    out.Set(0u, lv);
  }
  return out;
}

std::vector<uint32_t> CodesFromJs(Napi::Env env, quip::Codebook cb, Napi::Value v, size_t G) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "codes must be an array of typed arrays (one per stage)");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<uint32_t> codes(G, 0);
  auto need = [&](uint32_t i, napi_typedarray_type t, size_t len, const char* what) {
    Napi::Value e = a.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != t ||
        e.As<Napi::TypedArray>().ElementLength() != len)
      throw Napi::TypeError::New(env, std::string("codes[") + std::to_string(i) + "] must be a " + what +
                                          " of length " + std::to_string(len));
    return e;
  };
  if (cb == quip::Codebook::E8P || cb == quip::Codebook::RVQ3 || cb == quip::Codebook::RVQ4) {
    auto c1 = need(0, napi_uint16_array, G, "Uint16Array").As<Napi::Uint16Array>();
    for (size_t g = 0; g < G; ++g) codes[g] = c1[g];
    if (cb == quip::Codebook::RVQ4) {
      auto c2 = need(1, napi_uint16_array, G, "Uint16Array").As<Napi::Uint16Array>();
      for (size_t g = 0; g < G; ++g) codes[g] |= uint32_t(c2[g]) << 16;
    } else if (cb == quip::Codebook::RVQ3) {
      auto c2 = need(1, napi_uint8_array, G, "Uint8Array").As<Napi::Uint8Array>();
      for (size_t g = 0; g < G; ++g) codes[g] |= uint32_t(c2[g]) << 16;
    }
  } else {
    const int b = quip::codebook_info(cb).bits;
    auto lv = need(0, napi_uint8_array, G * 8, "Uint8Array").As<Napi::Uint8Array>();
    for (size_t g = 0; g < G; ++g)
      for (int i = 0; i < 8; ++i) {
        if (lv[g * 8 + i] >> b) throw Napi::RangeError::New(env, "codes[0]: scalar level out of range");
        codes[g] |= uint32_t(lv[g * 8 + i]) << (b * i);
      }
  }
  return codes;
}

Napi::Int8Array SignsToJs(Napi::Env env, const std::vector<int8_t>& s) {
  auto a = Napi::Int8Array::New(env, s.size());
  std::memcpy(a.Data(), s.data(), s.size());
  return a;
}
// sv of a row-scaled layer: SV (.) row_scale as one real vector (the saved form, like a fine-tuned SV).
Napi::Float32Array ScaledSignsToJs(Napi::Env env, const std::vector<int8_t>& s, const std::vector<float>& scale) {
  auto a = Napi::Float32Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); ++i) a[i] = s[i] * scale[i];
  return a;
}
// The inverse: a Float32Array sv splits into signs and positive row scales.
void ScaledSignsFromJs(Napi::Env env, Napi::Value v, size_t len, std::vector<int8_t>* signs, std::vector<float>* scale) {
  auto a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != len) throw Napi::RangeError::New(env, "sv must have length " + std::to_string(len));
  signs->resize(len), scale->resize(len);
  for (size_t i = 0; i < len; ++i) {
    if (!(std::isfinite(a[i]) && a[i] != 0)) throw Napi::RangeError::New(env, "sv entries must be finite and non-zero");
    (*signs)[i] = a[i] < 0 ? -1 : 1;
    (*scale)[i] = std::fabs(a[i]);
  }
}
std::vector<int8_t> SignsFromJs(Napi::Env env, Napi::Value v, size_t len, const char* what) {
  auto a = TypedArg<Napi::Int8Array>(env, v, napi_int8_array, std::string(what) + " must be an Int8Array");
  if (a.ElementLength() != len)
    throw Napi::RangeError::New(env, std::string(what) + " must have length " + std::to_string(len));
  std::vector<int8_t> s(a.Data(), a.Data() + len);
  for (int8_t x : s)
    if (x != 1 && x != -1) throw Napi::RangeError::New(env, std::string(what) + " entries must be +1 or -1");
  return s;
}

// Checks H (n x n, Float64Array) and returns it.
Napi::Float64Array HessianArg(Napi::Env env, Napi::Value v, int64_t n) {
  auto h = TypedArg<Napi::Float64Array>(env, v, napi_float64_array, "H must be a Float64Array (n x n)");
  if (h.ElementLength() != static_cast<size_t>(n * n))
    throw Napi::RangeError::New(env, "H has " + std::to_string(h.ElementLength()) + " elements, expected n * n = " + std::to_string(n * n));
  return h;
}

// quantizeLinear(W, H, options, onProgress?, cancel?) -> Promise<QuantizedLinearResult>
Napi::Value QuantizeLinearJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "quantizeLinear(W, H, options): options missing");
  Napi::Object o = info[2].As<Napi::Object>();
  const int64_t m = DimArg(o, "m"), n = DimArg(o, "n");
  TensorArg w = ReadTensorArg(env, info[0], "W");
  if (w.shape.size() == 2 && (w.shape[0] != m || w.shape[1] != n))
    throw Napi::RangeError::New(env, "W has shape [" + std::to_string(w.shape[0]) + ", " + std::to_string(w.shape[1]) +
                                         "], expected [m, n] = [" + std::to_string(m) + ", " + std::to_string(n) + "]");
  if (w.numel() != static_cast<size_t>(m * n))
    throw Napi::RangeError::New(env, "W has " + std::to_string(w.numel()) + " elements, expected m * n = " + std::to_string(m * n));
  auto h = HessianArg(env, info[1], n);
  quip::QuantizeOptions opts;
  opts.codebook = CodebookArg(env, o.Get("codebook"));
  opts.incoherence = OptBool(o, "incoherence", true);
  opts.ldlq = OptBool(o, "ldlq", true);
  opts.sigma = OptNumber(o, "sigma", 0.01);
  opts.rho = OptNumber(o, "rho", 0);
  opts.s2 = OptNumber(o, "s2", 0);
  opts.tune_iters = static_cast<int>(OptNumber(o, "tuneIters", 0));
  opts.row_scale = OptBool(o, "rowScale", true);
  double seed = OptNumber(o, "seed", 0);
  if (opts.sigma < 0 || opts.rho < 0 || opts.tune_iters < 0 || opts.tune_iters > 100 || seed < 0 || seed != std::floor(seed))
    throw Napi::RangeError::New(env, "options: sigma, rho >= 0; tuneIters in 0..100; seed a non-negative integer");
  opts.seed = static_cast<uint64_t>(seed);
  // Copies made on the JS thread: the job must not touch JS memory.
  std::vector<float> W(m * n);
  for (size_t i = 0; i < W.size(); ++i) W[i] = w.at(i);
  std::vector<double> H(h.Data(), h.Data() + n * n);
  return RunJob(env, info[3], info[4], [W = std::move(W), H = std::move(H), m, n, opts](const quip::JobHooks& hooks) -> ResultBuilder {
    auto deq = std::make_shared<std::vector<float>>();
    auto rep = std::make_shared<quip::QuantizeReport>();
    auto q = std::make_shared<quip::QuantizedLinear>(quip::quantize_linear(W.data(), m, n, H.data(), opts, hooks, deq.get(), rep.get()));
    return [q, deq, rep](Napi::Env env) -> Napi::Value {
      Napi::Object r = Napi::Object::New(env);
      r.Set("m", static_cast<double>(q->m));
      r.Set("n", static_cast<double>(q->n));
      r.Set("nPadded", static_cast<double>(q->n_padded));
      r.Set("codebook", quip::codebook_info(q->codebook).name);
      r.Set("rho", q->rho);
      r.Set("s2", q->s2);
      r.Set("scale", q->scale);
      r.Set("incoherence", q->incoherence);
      r.Set("seed", static_cast<double>(q->seed));
      r.Set("su", SignsToJs(env, q->su));
      r.Set("sv", q->row_scale.empty() ? Napi::Value(SignsToJs(env, q->sv)) : Napi::Value(ScaledSignsToJs(env, q->sv, q->row_scale)));
      r.Set("hadamardIn", PlanToJs(env, q->plan_in));
      r.Set("hadamardOut", PlanToJs(env, q->plan_out));
      r.Set("codes", CodesToJs(env, q->codebook, q->codes));
      auto d = Napi::Float32Array::New(env, deq->size());
      std::memcpy(d.Data(), deq->data(), deq->size() * sizeof(float));
      r.Set("dequantized", d);
      r.Set("proxyLoss", rep->proxy_loss);
      r.Set("frobeniusError", rep->frobenius_error);
      r.Set("sigmaUsed", rep->sigma_used);
      r.Set("choleskyFallback", rep->cholesky_fallback.empty() ? env.Null() : Napi::String::New(env, rep->cholesky_fallback));
      r.Set("seconds", rep->seconds);
      return r;
    };
  });
}

// {m, n, sigma} of a layer measure (proxyLoss, gaussianSource): options at info[index].
struct MeasureOptions {
  int64_t m, n;
  double sigma;
};
MeasureOptions MeasureOptionsArg(const Napi::CallbackInfo& info, size_t index, const char* usage) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsObject()) throw Napi::TypeError::New(env, std::string(usage) + ": options missing");
  Napi::Object o = info[index].As<Napi::Object>();
  MeasureOptions r{DimArg(o, "m"), DimArg(o, "n"), OptNumber(o, "sigma", 0.01)};
  if (!(r.sigma >= 0)) throw Napi::RangeError::New(env, "options: sigma must be >= 0");
  return r;
}

// An m x n weight argument (TensorRef or Float32Array), copied to float32 on the JS thread.
std::vector<float> WeightCopyArg(Napi::Env env, Napi::Value v, const char* what, int64_t m, int64_t n) {
  TensorArg t = ReadTensorArg(env, v, what);
  if (t.numel() != static_cast<size_t>(m * n))
    throw Napi::RangeError::New(env, std::string(what) + " has " + std::to_string(t.numel()) + " elements, expected m * n = " + std::to_string(m * n));
  std::vector<float> out(m * n);
  for (size_t i = 0; i < out.size(); ++i) out[i] = t.at(i);
  return out;
}

// proxyLoss(W, What, H, {m, n, sigma}) -> Promise<number>: quantizeLinear's proxy loss for any W^.
Napi::Value ProxyLossJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MeasureOptions opt = MeasureOptionsArg(info, 3, "proxyLoss(W, What, H, options)");
  const int64_t m = opt.m, n = opt.n;
  const double sigma = opt.sigma;
  std::vector<float> W = WeightCopyArg(env, info[0], "W", m, n), What = WeightCopyArg(env, info[1], "What", m, n);
  auto h = HessianArg(env, info[2], n);
  std::vector<double> H(h.Data(), h.Data() + n * n);
  return RunJob(env, env.Undefined(), env.Undefined(), [W = std::move(W), What = std::move(What), H = std::move(H), m, n, sigma](const quip::JobHooks& hooks) -> ResultBuilder {
    const double loss = quip::relative_proxy_loss(W.data(), What.data(), m, n, H.data(), sigma, hooks);
    return [loss](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, loss); };
  });
}

// gaussianSource(W, H, {m, n, sigma}) -> Promise<{rowVariances, eigenvalues, signal}> (see
// quip::gaussian_source).
Napi::Value GaussianSourceJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MeasureOptions opt = MeasureOptionsArg(info, 2, "gaussianSource(W, H, options)");
  const int64_t m = opt.m, n = opt.n;
  const double sigma = opt.sigma;
  std::vector<float> W = WeightCopyArg(env, info[0], "W", m, n);
  auto h = HessianArg(env, info[1], n);
  std::vector<double> H(h.Data(), h.Data() + n * n);
  return RunJob(env, env.Undefined(), env.Undefined(), [W = std::move(W), H = std::move(H), m, n, sigma](const quip::JobHooks& hooks) -> ResultBuilder {
    auto g = std::make_shared<quip::GaussianSource>(quip::gaussian_source(W.data(), m, n, H.data(), sigma, hooks));
    return [g](Napi::Env env) -> Napi::Value {
      auto f64 = [&](const std::vector<double>& v) {
        auto a = Napi::Float64Array::New(env, v.size());
        std::copy(v.begin(), v.end(), a.Data());
        return a;
      };
      Napi::Object r = Napi::Object::New(env);
      r.Set("rowVariances", f64(g->row_variances));
      r.Set("eigenvalues", f64(g->eigenvalues));
      r.Set("signal", g->signal);
      return r;
    };
  });
}

quip::QuantizedLinear QuantizedFromJs(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "expected a quantized layer {m, n, codebook, scale, s2, incoherence, su, sv, codes}");
  Napi::Object o = v.As<Napi::Object>();
  quip::QuantizedLinear q;
  q.m = DimArg(o, "m"), q.n = DimArg(o, "n");
  q.n_padded = (q.n + 7) / 8 * 8;
  q.codebook = CodebookArg(env, o.Get("codebook"));
  q.scale = OptNumber(o, "scale", 1);
  q.s2 = OptNumber(o, "s2", quip::codebook_info(q.codebook).s2);
  q.incoherence = OptBool(o, "incoherence", true);
  q.plan_in = quip::hadamard_plan(q.n);
  q.plan_out = quip::hadamard_plan(q.m);
  if (q.incoherence) {
    q.su = SignsFromJs(env, o.Get("su"), q.n, "su");
    const Napi::Value sv = o.Get("sv");
    if (sv.IsTypedArray() && sv.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array)
      ScaledSignsFromJs(env, sv, q.m, &q.sv, &q.row_scale);
    else
      q.sv = SignsFromJs(env, sv, q.m, "sv");
  }
  q.codes = CodesFromJs(env, q.codebook, o.Get("codes"), static_cast<size_t>(q.m * (q.n_padded / 8)));
  return q;
}

// dequantizeLinear(layer) -> Float32Array (m x n, original basis)
Napi::Value DequantizeLinearJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  quip::QuantizedLinear q = QuantizedFromJs(env, info[0]);
  auto out = Napi::Float32Array::New(env, q.m * q.n);
  quip::dequantize_linear(q, out.Data());
  return out;
}

// rhtInput(x, su) / rhtOutput(y, sv): the activation-side transforms, in place on a Float32Array.
Napi::Value RhtInputJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto x = Float32ArrayArg(info, 0, "x");
  auto su = SignsFromJs(env, info[1], x.ElementLength(), "su");
  quip::rht_input(x.Data(), quip::hadamard_plan(x.ElementLength()), su.data());
  return x;
}
Napi::Value RhtOutputJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto y = Float32ArrayArg(info, 0, "y");
  auto sv = SignsFromJs(env, info[1], y.ElementLength(), "sv");
  quip::rht_output(y.Data(), quip::hadamard_plan(y.ElementLength()), sv.data());
  return y;
}

// e8pSourceTable() -> Float32Array(256 * 8): the magnitude patterns S in code-index order.
Napi::Value E8pSourceTableJs(const Napi::CallbackInfo& info) {
  auto a = Napi::Float32Array::New(info.Env(), 256 * 8);
  std::memcpy(a.Data(), quip::e8p_tables().source, sizeof(float) * 256 * 8);
  return a;
}

// codebookInfo(name) -> {name, bits, defaultRho, s2, stages}
Napi::Value CodebookInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const quip::CodebookInfo& c = quip::codebook_info(CodebookArg(env, info[0]));
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", c.name);
  o.Set("bits", c.bits);
  o.Set("defaultRho", c.default_rho);
  o.Set("s2", c.s2);
  o.Set("stages", c.stages);
  return o;
}

// quipBenchKernels({threads, quick}, onProgress?, cancel?) -> Promise<BenchFigure[]>
Napi::Value BenchKernelsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  int threads = static_cast<int>(OptNumber(o, "threads", 2));
  if (threads < 1 || threads > 256) throw Napi::RangeError::New(env, "threads must be between 1 and 256");
  bool quick = OptBool(o, "quick", false);
  return RunJob(env, info[1], info[2], [threads, quick](const quip::JobHooks& hooks) -> ResultBuilder {
    auto figs = std::make_shared<std::vector<quip::BenchFigure>>(quip::bench_kernels(threads, quick, hooks));
    return [figs](Napi::Env env) -> Napi::Value {
      Napi::Array a = Napi::Array::New(env, figs->size());
      for (size_t i = 0; i < figs->size(); ++i) {
        const auto& f = (*figs)[i];
        Napi::Object r = Napi::Object::New(env);
        r.Set("name", f.name);
        r.Set("variant", f.variant);
        r.Set("value", f.value);
        r.Set("unit", f.unit);
        r.Set("comparison", f.comparison);
        a.Set(static_cast<uint32_t>(i), r);
      }
      return a;
    };
  });
}

}  // namespace

void RegisterQuip(Napi::Env env, Napi::Object exports) {
  exports.Set("hadamardPlan", Napi::Function::New(env, HadamardPlanJs));
  exports.Set("quantizeLinear", Napi::Function::New(env, QuantizeLinearJs));
  exports.Set("dequantizeLinear", Napi::Function::New(env, DequantizeLinearJs));
  exports.Set("proxyLoss", Napi::Function::New(env, ProxyLossJs));
  exports.Set("gaussianSource", Napi::Function::New(env, GaussianSourceJs));
  exports.Set("rhtInput", Napi::Function::New(env, RhtInputJs));
  exports.Set("rhtOutput", Napi::Function::New(env, RhtOutputJs));
  exports.Set("e8pSourceTable", Napi::Function::New(env, E8pSourceTableJs));
  exports.Set("codebookInfo", Napi::Function::New(env, CodebookInfoJs));
  exports.Set("quipBenchKernels", Napi::Function::New(env, BenchKernelsJs));
}

}  // namespace quip_addon
