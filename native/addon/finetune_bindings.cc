// Bindings of fine-tuning (native/src/train): a BlockTuner over an EngineModel for in-block
// fine-tuning inside the quantization job.
//
//   createBlockTuner(model: EngineModel, ids: Int32Array, sequences, seqLen) -> BlockTuner
//   tuner.nextBlock
//   tuner.captureTargets(onProgress?, cancel?) -> Promise<number>      outputs of the original block
//   tuner.tune(settings, onProgress?, cancel?) -> Promise<BlockTuneResult>
//       settings: { epochs, batch, lr, lrSign, holdout, patience, seed }; one progress event per epoch:
//       {"type":"ft-epoch","block":b,"epoch":e,"trainLoss":x,"heldoutLoss":y,"seconds":s}
//   tuner.heldoutError(settings) -> Promise<number>                    MSE of the block as it is now
//   tuner.advance(onProgress?, cancel?) -> Promise<number>
//   tuner.denseWeight(kind) -> Float32Array (m x n)   tuner.signs(kind) -> { su, sv }   tuner.norms()
//   finetuneEndToEnd(student, teacher, ids, sequences, seqLen, tuneLmHead, settings, onProgress?, cancel?)
//       -> Promise<result>: distillation of the quantized student towards the original teacher (lm_head
//       tuned, and so untied, when tuneLmHead); progress
//       {"type":"ft-e2e-epoch","epoch":e,"trainLoss":x,"heldoutLoss":y,"seconds":s}
//   linearSigns(model, block, kind) -> { su, sv }   blockNorms(model, block) -> { attn, mlp }
//   setBlockNorms(model, block, attn: Float32Array, mlp: Float32Array)
//   finalNorm(model) -> Float32Array (hidden)   lmHead(model) -> Float32Array (vocab x hidden)
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "addon.h"
#include "runtime/model.h"
#include "qinfer/qlinear.h"
#include "finetune/block_tuner.h"

namespace quip_addon {
namespace {

using quip::finetune::BlockTrainResult;
using quip::finetune::BlockTrainSettings;
using quip::finetune::BlockTuner;

class Busy {
 public:
  explicit Busy(std::shared_ptr<std::atomic<bool>> f) : f_(std::move(f)) {}
  ~Busy() { f_->store(false); }
  static std::shared_ptr<Busy> take(Napi::Env env, const std::shared_ptr<std::atomic<bool>>& f) {
    bool expected = false;
    if (!f->compare_exchange_strong(expected, true)) throw Napi::Error::New(env, "the block tuner is busy with another call; await it first");
    return std::make_shared<Busy>(f);
  }

 private:
  std::shared_ptr<std::atomic<bool>> f_;
};

BlockTrainSettings ReadSettings(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "fine-tuning settings must be an object {epochs, batch, lr, lrSign, holdout, patience, seed}");
  Napi::Object o = v.As<Napi::Object>();
  auto num = [&](const char* key, double fallback) {
    Napi::Value x = o.Get(key);
    if (x.IsUndefined()) return fallback;
    if (!x.IsNumber()) throw Napi::TypeError::New(env, std::string("fine-tuning settings: ") + key + " must be a number");
    return x.As<Napi::Number>().DoubleValue();
  };
  BlockTrainSettings s;
  s.epochs = static_cast<int>(num("epochs", s.epochs));
  s.batch = static_cast<int>(num("batch", s.batch));
  s.lr = num("lr", s.lr);
  s.lr_sign = num("lrSign", s.lr_sign);
  s.holdout = num("holdout", s.holdout);
  s.patience = static_cast<int>(num("patience", s.patience));
  s.seed = static_cast<uint64_t>(num("seed", 0));
  try {
    s.validate();
  } catch (const std::exception& e) {
    throw Napi::RangeError::New(env, e.what());
  }
  return s;
}

quip::runtime::LinearKind KindArg(const Napi::CallbackInfo& info, size_t i) {
  const std::string kind = StringArg(info, i, "kind");
  for (int k = 0; k < 7; ++k) {
    auto lk = static_cast<quip::runtime::LinearKind>(k);
    if (kind == quip::runtime::linear_kind_name(lk)) return lk;
  }
  throw Napi::TypeError::New(info.Env(), "unknown linear kind '" + kind + "' (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
}

Napi::Float32Array Floats(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

std::string Fmt(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

Napi::Object ResultObject(Napi::Env env, const BlockTrainResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("trainSequences", r.train_sequences);
  o.Set("heldoutSequences", r.heldout_sequences);
  o.Set("initialTrainLoss", r.initial_train_loss);
  o.Set("initialHeldoutLoss", r.initial_heldout_loss);
  o.Set("bestHeldoutLoss", r.best_heldout_loss);
  o.Set("bestEpoch", r.best_epoch);
  o.Set("earlyStopped", r.early_stopped);
  o.Set("seconds", r.seconds);
  o.Set("tokensPerSecond", r.tokens_per_second);
  Napi::Array epochs = Napi::Array::New(env, r.epochs.size());
  for (size_t i = 0; i < r.epochs.size(); ++i) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("epoch", r.epochs[i].epoch);
    e.Set("trainLoss", r.epochs[i].train_loss);
    e.Set("heldoutLoss", r.epochs[i].heldout_loss);
    e.Set("seconds", r.epochs[i].seconds);
    epochs.Set(static_cast<uint32_t>(i), e);
  }
  o.Set("epochs", epochs);
  return o;
}

std::string EpochJson(const char* type, const quip::finetune::EpochStats& e, const std::string& extra) {
  return std::string("{\"type\":\"") + type + "\"" + extra + ",\"epoch\":" + std::to_string(e.epoch) + ",\"trainLoss\":" + Fmt(e.train_loss) +
         ",\"heldoutLoss\":" + Fmt(e.heldout_loss) + ",\"seconds\":" + Fmt(e.seconds) + "}";
}

class TunerWrap : public Napi::ObjectWrap<TunerWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BlockTuner",
                       {InstanceAccessor<&TunerWrap::NextBlock>("nextBlock"),
                        InstanceMethod<&TunerWrap::CaptureTargets>("captureTargets"),
                        InstanceMethod<&TunerWrap::Tune>("tune"),
                        InstanceMethod<&TunerWrap::HeldoutError>("heldoutError"),
                        InstanceMethod<&TunerWrap::Advance>("advance"),
                        InstanceMethod<&TunerWrap::DenseWeight>("denseWeight"),
                        InstanceMethod<&TunerWrap::Signs>("signs"),
                        InstanceMethod<&TunerWrap::Norms>("norms")});
  }
  explicit TunerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunerWrap>(info) {}
  std::shared_ptr<BlockTuner> tuner;
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);

 private:
  Napi::Value NextBlock(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tuner->next_block()); }

  Napi::Value CaptureTargets(const Napi::CallbackInfo& info) {
    auto guard = Busy::take(info.Env(), busy);
    auto t = tuner;
    return RunJob(info.Env(), info[0], info[1], [t, guard](const quip::JobHooks& hooks) -> ResultBuilder {
      t->capture_targets(hooks);
      const int b = t->next_block();
      return [b](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, b); };
    });
  }

  Napi::Value Tune(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const BlockTrainSettings s = ReadSettings(env, info[0]);
    auto guard = Busy::take(env, busy);
    auto t = tuner;
    return RunJob(env, info[1], info[2], [t, guard, s](const quip::JobHooks& hooks) -> ResultBuilder {
      const int block = t->next_block();
      auto r = std::make_shared<BlockTrainResult>(t->tune(s, hooks, [&](const quip::finetune::EpochStats& e) {
        hooks.emit(EpochJson("ft-epoch", e, ",\"block\":" + std::to_string(block)));
      }));
      return [r, block](Napi::Env env) -> Napi::Value {
        Napi::Object o = ResultObject(env, *r);
        o.Set("block", block);
        return o;
      };
    });
  }

  Napi::Value HeldoutError(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const BlockTrainSettings s = ReadSettings(env, info[0]);
    auto guard = Busy::take(env, busy);
    auto t = tuner;
    return RunJob(env, env.Undefined(), env.Undefined(), [t, guard, s](const quip::JobHooks&) -> ResultBuilder {
      const double e = t->heldout_error(s);
      return [e](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, e); };
    });
  }

  Napi::Value Advance(const Napi::CallbackInfo& info) {
    auto guard = Busy::take(info.Env(), busy);
    auto t = tuner;
    return RunJob(info.Env(), info[0], info[1], [t, guard](const quip::JobHooks& hooks) -> ResultBuilder {
      t->advance(hooks);
      const int next = t->next_block();
      return [next](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, next); };
    });
  }

  const quip::runtime::Block& CurrentBlock(Napi::Env env) {
    const int b = tuner->next_block();
    if (b >= tuner->model().config().layers) throw Napi::RangeError::New(env, "the tuner has advanced past the last block");
    return tuner->model().block(b);
  }

  Napi::Value DenseWeight(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto kind = KindArg(info, 0);
    if (busy->load()) throw Napi::Error::New(env, "the block tuner is busy with another call; await it first");
    try {
      return Floats(env, quip::finetune::dense_weight(CurrentBlock(env).linear(kind)));
    } catch (const std::invalid_argument& e) {
      throw Napi::Error::New(env, std::string(quip::runtime::linear_kind_name(kind)) + ": " + e.what());
    }
  }

  Napi::Value Signs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto kind = KindArg(info, 0);
    if (busy->load()) throw Napi::Error::New(env, "the block tuner is busy with another call; await it first");
    auto* q = dynamic_cast<const quip::qinfer::QuantizedLinear*>(&CurrentBlock(env).linear(kind));
    if (!q) throw Napi::Error::New(env, std::string(quip::runtime::linear_kind_name(kind)) + " is not quantized yet");
    Napi::Object o = Napi::Object::New(env);
    o.Set("su", Floats(env, q->params().su));
    o.Set("sv", Floats(env, q->params().sv));
    return o;
  }

  Napi::Value Norms(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy->load()) throw Napi::Error::New(env, "the block tuner is busy with another call; await it first");
    const auto& blk = CurrentBlock(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("attn", Floats(env, blk.attn_norm));
    o.Set("mlp", Floats(env, blk.mlp_norm));
    return o;
  }
};
Napi::FunctionReference* TunerWrap::constructor = nullptr;

Napi::Value CreateBlockTuner(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = UnwrapEngineModel(info[0]);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "calibration ids must be an Int32Array of token ids");
  auto a = info[1].As<Napi::Int32Array>();
  const int n = static_cast<int>(NumberArg(info, 2, "sequences")), len = static_cast<int>(NumberArg(info, 3, "seqLen"));
  Napi::Object o = TunerWrap::constructor->New({});
  try {
    TunerWrap::Unwrap(o)->tuner = std::make_shared<BlockTuner>(model, std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength()), n, len);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("cannot start fine-tuning: ") + e.what());
  }
  return o;
}

std::vector<float> FloatsArg(Napi::Env env, Napi::Value v, const char* what, size_t count) {
  TensorArg t = ReadTensorArg(env, v, what);
  if (t.numel() != count) throw Napi::RangeError::New(env, std::string(what) + " holds " + std::to_string(t.numel()) + " values, expected " + std::to_string(count));
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = t.at(i);
  return out;
}

Napi::Value FinetuneEndToEnd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto student = UnwrapEngineModel(info[0]);
  std::shared_ptr<const quip::runtime::Model> teacher = UnwrapEngineModel(info[1]);
  if (student == teacher) throw Napi::Error::New(env, "end-to-end fine-tuning needs the original model as teacher, not the quantized model itself");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "calibration ids must be an Int32Array of token ids");
  auto a = info[2].As<Napi::Int32Array>();
  auto ids = std::make_shared<std::vector<int32_t>>(a.Data(), a.Data() + a.ElementLength());
  const int n = static_cast<int>(NumberArg(info, 3, "sequences")), len = static_cast<int>(NumberArg(info, 4, "seqLen"));
  if (!info[5].IsBoolean()) throw Napi::TypeError::New(env, "tuneLmHead must be true or false");
  const bool tune_head = info[5].As<Napi::Boolean>().Value();
  const BlockTrainSettings s = ReadSettings(env, info[6]);
  return RunJob(env, info[7], info[8], [student, teacher, ids, n, len, tune_head, s](const quip::JobHooks& hooks) -> ResultBuilder {
    auto r = std::make_shared<BlockTrainResult>(quip::finetune::tune_end_to_end(
        *student, teacher, *ids, n, len, tune_head, s, hooks,
        [&](const quip::finetune::EpochStats& e) { hooks.emit(EpochJson("ft-e2e-epoch", e, "")); }));
    return [r](Napi::Env env) -> Napi::Value { return ResultObject(env, *r); };
  });
}

const quip::runtime::Block& ModelBlock(const Napi::CallbackInfo& info, const quip::runtime::Model& m) {
  const int b = static_cast<int>(NumberArg(info, 1, "block"));
  if (b < 0 || b >= m.config().layers) throw Napi::RangeError::New(info.Env(), "block " + std::to_string(b) + " is out of range");
  return m.block(b);
}

Napi::Value LinearSigns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = UnwrapEngineModel(info[0]);
  const auto kind = KindArg(info, 2);
  auto* q = dynamic_cast<const quip::qinfer::QuantizedLinear*>(&ModelBlock(info, *model).linear(kind));
  if (!q) throw Napi::Error::New(env, std::string(quip::runtime::linear_kind_name(kind)) + " is not quantized");
  Napi::Object o = Napi::Object::New(env);
  o.Set("su", Floats(env, q->params().su));
  o.Set("sv", Floats(env, q->params().sv));
  return o;
}

Napi::Value BlockNorms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = UnwrapEngineModel(info[0]);
  const auto& blk = ModelBlock(info, *model);
  Napi::Object o = Napi::Object::New(env);
  o.Set("attn", Floats(env, blk.attn_norm));
  o.Set("mlp", Floats(env, blk.mlp_norm));
  return o;
}

Napi::Value SetBlockNorms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto model = UnwrapEngineModel(info[0]);
  ModelBlock(info, *model);  // range check
  const int H = model->config().hidden;
  std::vector<float> attn = FloatsArg(env, info[2], "attn", H), mlp = FloatsArg(env, info[3], "mlp", H);
  quip::runtime::Block& blk = model->block(static_cast<int>(NumberArg(info, 1, "block")));
  blk.attn_norm = std::move(attn);
  blk.mlp_norm = std::move(mlp);
  return env.Undefined();
}

Napi::Value FinalNorm(const Napi::CallbackInfo& info) {
  return Floats(info.Env(), UnwrapEngineModel(info[0])->final_norm());
}

Napi::Value LmHead(const Napi::CallbackInfo& info) {
  return Floats(info.Env(), quip::finetune::dense_weight(UnwrapEngineModel(info[0])->lm_head()));
}

}  // namespace

void RegisterTrain(Napi::Env env, Napi::Object exports) {
  Napi::Function tuner = TunerWrap::Define(env);
  TunerWrap::constructor = new Napi::FunctionReference(Napi::Persistent(tuner));
  exports.Set("createBlockTuner", Napi::Function::New(env, CreateBlockTuner));
  exports.Set("finetuneEndToEnd", Napi::Function::New(env, FinetuneEndToEnd));
  exports.Set("linearSigns", Napi::Function::New(env, LinearSigns));
  exports.Set("blockNorms", Napi::Function::New(env, BlockNorms));
  exports.Set("setBlockNorms", Napi::Function::New(env, SetBlockNorms));
  exports.Set("finalNorm", Napi::Function::New(env, FinalNorm));
  exports.Set("lmHead", Napi::Function::New(env, LmHead));
}

}  // namespace quip_addon
