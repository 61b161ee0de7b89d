// Bindings of the transformer engine: createModel(config, weights) -> EngineModel, which makes
// decoding sessions (prefill/decode/score) and calibration runs (per-block Hessians). Heavy calls run
// off the JS thread through RunJob (promise, progress events, Int32Array cancel flag).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "addon.h"
#include "runtime/calibration.h"
#include "runtime/model.h"
#include "runtime/roofline.h"

namespace quip_addon {
namespace {

using quip::runtime::Calibration;
using quip::runtime::Model;
using quip::runtime::ModelConfig;
using quip::runtime::Session;

// One call at a time per session / calibration: a second one while a job runs is a usage error.
class BusyGuard {
 public:
  explicit BusyGuard(std::shared_ptr<std::atomic<bool>> flag) : flag_(std::move(flag)) {}
  ~BusyGuard() { flag_->store(false); }
  static std::shared_ptr<BusyGuard> take(Napi::Env env, const std::shared_ptr<std::atomic<bool>>& flag, const char* what) {
    bool expected = false;
    if (!flag->compare_exchange_strong(expected, true))
      throw Napi::Error::New(env, std::string(what) + " is busy with another call; await it first");
    return std::make_shared<BusyGuard>(flag);
  }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

double num(Napi::Object o, const char* key, bool required, double fallback = 0) {
  Napi::Value v = o.Get(key);
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
  if (required) throw Napi::TypeError::New(o.Env(), std::string("model config: ") + key + " must be a number");
  return fallback;
}

// The Architecture object of app/contract/model.ts.
ModelConfig ReadConfig(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "model config must be an object (an Architecture)");
  Napi::Object o = v.As<Napi::Object>();
  ModelConfig c;
  c.hidden = static_cast<int>(num(o, "hiddenSize", true));
  c.intermediate = static_cast<int>(num(o, "intermediateSize", true));
  c.layers = static_cast<int>(num(o, "numLayers", true));
  c.heads = static_cast<int>(num(o, "numHeads", true));
  c.kv_heads = static_cast<int>(num(o, "numKeyValueHeads", false, c.heads));
  c.head_dim = static_cast<int>(num(o, "headDim", false, c.heads > 0 ? c.hidden / c.heads : 0));
  c.vocab = static_cast<int>(num(o, "vocabSize", true));
  c.context = static_cast<int>(num(o, "contextLength", false, 2048));
  c.rope_theta = num(o, "ropeTheta", false, 10000.0);
  c.rms_eps = num(o, "rmsNormEps", false, 1e-5);
  c.tied_embeddings = o.Get("tiedEmbeddings").ToBoolean().Value();
  c.attention_bias = o.Get("attentionBias").ToBoolean().Value();
  // Options only some families switch on (absent: the plain Llama block).
  c.qk_norm = o.Get("qkNorm").ToBoolean().Value();
  // A list of layer indices -> one flag per layer.
  auto layer_flags = [&](const char* key, uint8_t marked, uint8_t rest) {
    std::vector<uint8_t> flags;
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return flags;
    if (!v.IsArray()) throw Napi::TypeError::New(env, std::string("model config: ") + key + " must be an array of layer indices");
    Napi::Array a = v.As<Napi::Array>();
    flags.assign(c.layers > 0 ? c.layers : 0, rest);
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value x = a.Get(i);
      const double l = x.IsNumber() ? x.As<Napi::Number>().DoubleValue() : -1;
      if (!(l >= 0 && l < c.layers) || l != static_cast<int>(l))
        throw Napi::RangeError::New(env, std::string("model config: ") + key + " holds " + x.ToString().Utf8Value() +
                                             ", not a layer index below " + std::to_string(c.layers));
      flags[static_cast<int>(l)] = marked;
    }
    return flags;
  };
  c.sliding_layers = layer_flags("slidingLayers", 1, 0);
  c.rope_layers = layer_flags("noRopeLayers", 0, 1);
  c.sliding_window = static_cast<int>(num(o, "slidingWindow", false, 0));
  Napi::Value rs = o.Get("ropeScaling");
  if (rs.IsObject()) {
    Napi::Object r = rs.As<Napi::Object>();
    std::string type = r.Get("type").ToString().Utf8Value();
    if (type == "linear") c.rope_scaling = quip::runtime::RopeScalingType::Linear;
    else if (type == "llama3") c.rope_scaling = quip::runtime::RopeScalingType::Llama3;
    else if (type != "default" && type != "none")
      throw Napi::Error::New(env, "rope_scaling type '" + type + "' is not supported (supported: linear, llama3)");
    c.rope_factor = num(r, "factor", false, 1.0);
    c.rope_low_freq_factor = num(r, "lowFreqFactor", false, 1.0);
    c.rope_high_freq_factor = num(r, "highFreqFactor", false, 4.0);
    c.rope_original_context = num(r, "originalMaxPositionEmbeddings", false, 8192.0);
  }
  return c;
}

std::vector<int32_t> IdsArg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, std::string(what) + " must be an Int32Array of token ids");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Float32Array ToFloat32Array(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

// ---- EngineSession ------------------------------------------------------------------------------
class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EngineSession",
                       {InstanceAccessor<&SessionWrap::Position>("position"),
                        InstanceAccessor<&SessionWrap::Capacity>("capacity"),
                        InstanceMethod<&SessionWrap::Forward>("forward"),
                        InstanceMethod<&SessionWrap::Score>("score"),
                        InstanceMethod<&SessionWrap::Reset>("reset"),
                        InstanceMethod<&SessionWrap::Rewind>("rewind")});
  }
  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {}
  std::shared_ptr<Session> session;
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);

 private:
  Napi::Value Position(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session->position()); }
  Napi::Value Capacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session->capacity()); }
  // forward(ids, allLogits, onProgress?, cancel?, fastPrefill?) -> Promise<Float32Array>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ids = IdsArg(env, info[0], "ids");
    if (ids.empty()) throw Napi::Error::New(env, "forward needs at least one token id");
    bool all = info[1].ToBoolean().Value();
    bool fast = info.Length() > 4 && info[4].ToBoolean().Value();
    auto guard = BusyGuard::take(env, busy, "this session");
    auto s = session;
    return RunJob(env, info[2], info[3], [s, ids, all, fast, guard](const quip::JobHooks& hooks) -> ResultBuilder {
      auto logits = std::make_shared<std::vector<float>>(s->forward(ids.data(), static_cast<int>(ids.size()), all, &hooks, fast));
      return [logits](Napi::Env env) -> Napi::Value { return ToFloat32Array(env, *logits); };
    });
  }
  // score(ids, onProgress?, cancel?) -> Promise<{nll, count}>: one perplexity window from position 0.
  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ids = IdsArg(env, info[0], "ids");
    auto guard = BusyGuard::take(env, busy, "this session");
    auto s = session;
    return RunJob(env, info[1], info[2], [s, ids, guard](const quip::JobHooks& hooks) -> ResultBuilder {
      auto r = s->score(ids.data(), static_cast<int>(ids.size()), &hooks);
      return [r](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("nll", r.first);
        o.Set("count", r.second);
        return o;
      };
    });
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    if (busy->load()) throw Napi::Error::New(info.Env(), "this session is busy with another call; await it first");
    session->reset();
    return info.Env().Undefined();
  }
  // rewind(position): keep the first `position` cached positions.
  Napi::Value Rewind(const Napi::CallbackInfo& info) {
    if (busy->load()) throw Napi::Error::New(info.Env(), "this session is busy with another call; await it first");
    try {
      session->rewind(static_cast<int>(NumberArg(info, 0, "position")));
    } catch (const std::out_of_range& e) {
      throw Napi::RangeError::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }
};
Napi::FunctionReference* SessionWrap::constructor = nullptr;

// ---- EngineCalibration --------------------------------------------------------------------------
class CalibrationWrap : public Napi::ObjectWrap<CalibrationWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EngineCalibration",
                       {InstanceAccessor<&CalibrationWrap::NextBlock>("nextBlock"),
                        InstanceAccessor<&CalibrationWrap::Sequences>("sequences"),
                        InstanceAccessor<&CalibrationWrap::SeqLen>("seqLen"),
                        InstanceMethod<&CalibrationWrap::Hessians>("hessians"),
                        InstanceMethod<&CalibrationWrap::Advance>("advance")});
  }
  explicit CalibrationWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CalibrationWrap>(info) {}
  std::shared_ptr<Calibration> cal;
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);

 private:
  Napi::Value NextBlock(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cal->next_block()); }
  Napi::Value Sequences(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cal->sequences()); }
  Napi::Value SeqLen(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cal->seq_len()); }
  // hessians(onProgress?, cancel?) -> Promise<{block, qkv, o, gateUp, down}>, each {n, count, sum: Float64Array n*n}
  Napi::Value Hessians(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto guard = BusyGuard::take(env, busy, "this calibration");
    auto c = cal;
    return RunJob(env, info[0], info[1], [c, guard](const quip::JobHooks& hooks) -> ResultBuilder {
      int block = c->next_block();
      auto hs = std::make_shared<quip::runtime::BlockHessians>(c->hessians(hooks));
      return [hs, block](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("block", block);
        const char* names[4] = {"qkv", "o", "gateUp", "down"};
        for (int t = 0; t < 4; ++t) {
          auto& h = hs->tap[t];
          Napi::Object e = Napi::Object::New(env);
          e.Set("n", h.n);
          e.Set("count", static_cast<double>(h.count));
          Napi::Float64Array a = Napi::Float64Array::New(env, h.sum.size());
          std::memcpy(a.Data(), h.sum.data(), h.sum.size() * sizeof(double));
          // Freed as soon as it is copied: at most one tap exists twice (a 7B block's four are 1.4 GB).
          std::vector<double>().swap(hs->tap[t].sum);
          e.Set("sum", a);
          o.Set(names[t], e);
        }
        return o;
      };
    });
  }
  // advance(onProgress?, cancel?) -> Promise<number>: pushes the states through block nextBlock.
  Napi::Value Advance(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto guard = BusyGuard::take(env, busy, "this calibration");
    auto c = cal;
    return RunJob(env, info[0], info[1], [c, guard](const quip::JobHooks& hooks) -> ResultBuilder {
      c->advance(hooks);
      int next = c->next_block();
      return [next](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, next); };
    });
  }
};
Napi::FunctionReference* CalibrationWrap::constructor = nullptr;

// ---- EngineModel --------------------------------------------------------------------------------
class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EngineModel",
                       {InstanceMethod<&ModelWrap::CreateSession>("createSession"),
                        InstanceMethod<&ModelWrap::CreateCalibration>("createCalibration"),
                        InstanceMethod<&ModelWrap::DescribeLinear>("describeLinear")});
  }
  // Constructed empty; createModel() and WrapEngineModel (qinfer hook) set `model`.
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}

  // The model of createModel(config, weights).
  static std::shared_ptr<Model> Build(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ModelConfig config = ReadConfig(env, info[0]);
    std::map<std::string, quip::runtime::TensorView> views;
    MappingsKeep keep = ReadEngineWeights(env, info[1], &views);
    try {
      Model* m = new Model(config, [&](const std::string& name) {
        auto it = views.find(name);
        return it == views.end() ? quip::runtime::TensorView{} : it->second;
      });
      // The model reads weights in place: its deleter holds the mappings alive.
      return std::shared_ptr<Model>(m, [keep](Model* p) { delete p; });
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string("cannot build the model: ") + e.what());
    }
  }
  std::shared_ptr<Model> model;

 private:
  // createSession(capacity?) -> EngineSession holding a KV cache of `capacity` positions.
  Napi::Value CreateSession(const Napi::CallbackInfo& info) {
    // Default: the model's context, at most 4096 positions (a 128k-context cache would not fit).
    int cap = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : std::min(model->config().context, 4096);
    if (cap <= 0) throw Napi::RangeError::New(info.Env(), "session capacity must be a positive number of positions");
    Napi::Object o = SessionWrap::constructor->New({});
    try {
      SessionWrap::Unwrap(o)->session = std::make_shared<Session>(model, cap);
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(info.Env(), "not enough memory for a key/value cache of " + std::to_string(cap) +
                                             " positions; ask for a shorter session");
    }
    return o;
  }
  // createCalibration(ids: Int32Array, sequences, seqLen) -> EngineCalibration at block 0.
  Napi::Value CreateCalibration(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ids = IdsArg(env, info[0], "calibration ids");
    int n = static_cast<int>(NumberArg(info, 1, "sequences")), len = static_cast<int>(NumberArg(info, 2, "seqLen"));
    Napi::Object o = CalibrationWrap::constructor->New({});
    try {
      CalibrationWrap::Unwrap(o)->cal = std::make_shared<Calibration>(model, std::move(ids), n, len);
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, "not enough memory for the hidden states of " + std::to_string(n) + " sequences of " +
                                      std::to_string(len) + " tokens; use fewer or shorter calibration sequences");
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return o;
  }
  // describeLinear(block, kind: 'q_proj' | ... | 'down_proj') -> e.g. "dense BF16 2048x5632"
  Napi::Value DescribeLinear(const Napi::CallbackInfo& info) {
    int b = static_cast<int>(NumberArg(info, 0, "block"));
    std::string kind = StringArg(info, 1, "kind");
    if (b < 0 || b >= model->config().layers) throw Napi::RangeError::New(info.Env(), "block out of range");
    for (int k = 0; k < 7; ++k) {
      auto lk = static_cast<quip::runtime::LinearKind>(k);
      if (kind == quip::runtime::linear_kind_name(lk)) return Napi::String::New(info.Env(), model->block(b).linear(lk).describe());
    }
    throw Napi::TypeError::New(info.Env(), "unknown linear kind " + kind);
  }
};
Napi::FunctionReference* ModelWrap::constructor = nullptr;

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  auto model = ModelWrap::Build(info);
  Napi::Object o = ModelWrap::constructor->New({});
  ModelWrap::Unwrap(o)->model = std::move(model);
  return o;
}

// engineRoofline({bandwidthBytes, gemmTokens, gemmM, gemmK, repeats}) -> Promise<{readGBs, gemmGflops}>
Napi::Value EngineRoofline(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
  size_t bytes = static_cast<size_t>(num(o, "bandwidthBytes", false, 512.0 * 1024 * 1024));
  int tokens = static_cast<int>(num(o, "gemmTokens", false, 192));
  int m = static_cast<int>(num(o, "gemmM", false, 768));
  int k = static_cast<int>(num(o, "gemmK", false, 512));
  int repeats = std::max(1, static_cast<int>(num(o, "repeats", false, 5)));
  if (bytes < (1 << 20) || tokens < 1 || m < 1 || k < 1) throw Napi::RangeError::New(env, "engineRoofline: sizes too small");
  return RunJob(env, info[1], info[2], [=](const quip::JobHooks& hooks) -> ResultBuilder {
    double bw = quip::runtime::measure_read_bandwidth(bytes, repeats);
    hooks.check();
    double gf = quip::runtime::measure_gemm_peak(tokens, m, k, repeats);
    return [bw, gf](Napi::Env env) -> Napi::Value {
      Napi::Object r = Napi::Object::New(env);
      r.Set("readGBs", bw);
      r.Set("gemmGflops", gf);
      return r;
    };
  });
}

}  // namespace

// ---- hooks for the qinfer bindings: quantized linears swapped into an EngineModel ----------------
std::shared_ptr<quip::runtime::Model> UnwrapEngineModel(Napi::Value v) {
  if (!v.IsObject() || !ModelWrap::constructor || !v.As<Napi::Object>().InstanceOf(ModelWrap::constructor->Value()))
    throw Napi::TypeError::New(v.Env(), "expected an EngineModel from createModel()");
  return ModelWrap::Unwrap(v.As<Napi::Object>())->model;
}
Napi::Object WrapEngineModel(Napi::Env env, std::shared_ptr<quip::runtime::Model> model) {
  Napi::Object o = ModelWrap::constructor->New({});
  ModelWrap::Unwrap(o)->model = std::move(model);
  return o;
}
quip::runtime::ModelConfig ReadEngineModelConfig(Napi::Env env, Napi::Value v) { return ReadConfig(env, v); }

MappingsKeep ReadEngineWeights(Napi::Env env, Napi::Value v, std::map<std::string, quip::runtime::TensorView>* views) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "weights must be an object of tensor references by name");
  Napi::Object w = v.As<Napi::Object>();
  auto keep = std::make_shared<std::vector<std::shared_ptr<quip::MappedFile>>>();
  Napi::Array names = w.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    std::string name = names.Get(i).ToString().Utf8Value();
    TensorArg t = ReadTensorArg(env, w.Get(name), name.c_str());
    if (!t.keep) throw Napi::TypeError::New(env, "weight " + name + " must be a tensor reference into a mapped file");
    keep->push_back(t.keep);
    (*views)[name] = quip::runtime::TensorView{t.data, t.dtype, t.shape};
  }
  return keep;
}

void RegisterEngine(Napi::Env env, Napi::Object exports) {
  SessionWrap::constructor = new Napi::FunctionReference(Napi::Persistent(SessionWrap::Define(env)));
  CalibrationWrap::constructor = new Napi::FunctionReference(Napi::Persistent(CalibrationWrap::Define(env)));
  ModelWrap::constructor = new Napi::FunctionReference(Napi::Persistent(ModelWrap::Define(env)));
  exports.Set("createModel", Napi::Function::New(env, CreateModel));
  exports.Set("engineRoofline", Napi::Function::New(env, EngineRoofline));
}

}  // namespace quip_addon
