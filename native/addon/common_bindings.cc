// Bindings shared by every module: CPU info, thread count, memory maps, async jobs, tensor args.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "addon.h"
#include "common/cpu.h"
#include "common/thread_pool.h"

namespace quip_addon {

// ---- argument helpers ---------------------------------------------------------------------------
double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}
Napi::Float32Array Float32ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Float32Array");
  return info[i].As<Napi::Float32Array>();
}

// ---- MappedFile object --------------------------------------------------------------------------
class MappedFileWrap : public Napi::ObjectWrap<MappedFileWrap> {
 public:
  static Napi::FunctionReference* constructor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MappedFile",
                       {InstanceAccessor<&MappedFileWrap::Size>("size"),
                        InstanceAccessor<&MappedFileWrap::Path>("path"),
                        InstanceMethod<&MappedFileWrap::Read>("read"),
                        InstanceMethod<&MappedFileWrap::Close>("close")});
  }
  explicit MappedFileWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MappedFileWrap>(info) {
    path_ = StringArg(info, 0, "path");
    try {
      file_ = std::make_shared<quip::MappedFile>(path_);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }
  std::shared_ptr<quip::MappedFile> file(Napi::Env env) const {
    if (!file_) throw Napi::Error::New(env, "mapped file " + path_ + " was closed");
    return file_;
  }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(file(info.Env())->size()));
  }
  Napi::Value Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }
  // read(offset, length) -> Buffer: a copy of a small range (headers, metadata).
  Napi::Value Read(const Napi::CallbackInfo& info) {
    auto f = file(info.Env());
    double off = NumberArg(info, 0, "offset"), len = NumberArg(info, 1, "length");
    if (off < 0 || len < 0 || off + len > static_cast<double>(f->size()))
      throw Napi::RangeError::New(info.Env(), "read past the end of " + path_);
    return Napi::Buffer<uint8_t>::Copy(info.Env(), f->data() + static_cast<size_t>(off), static_cast<size_t>(len));
  }
  // close(): drops this handle's reference; the mapping goes when no native work still uses it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    file_.reset();
    return info.Env().Undefined();
  }
  std::string path_;
  std::shared_ptr<quip::MappedFile> file_;
};
Napi::FunctionReference* MappedFileWrap::constructor = nullptr;

std::shared_ptr<quip::MappedFile> UnwrapMappedFile(Napi::Value v) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !MappedFileWrap::constructor ||
      !v.As<Napi::Object>().InstanceOf(MappedFileWrap::constructor->Value()))
    throw Napi::TypeError::New(env, "expected a MappedFile from native.mapFile()");
  return MappedFileWrap::Unwrap(v.As<Napi::Object>())->file(env);
}

TensorArg ReadTensorArg(Napi::Env env, Napi::Value v, const char* what) {
  TensorArg t;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    auto a = v.As<Napi::Float32Array>();
    t.data = a.Data();
    t.dtype = quip::DType::F32;
    t.shape = {static_cast<int64_t>(a.ElementLength())};
    return t;
  }
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string(what) + ": expected a tensor reference");
  Napi::Object o = v.As<Napi::Object>();
  t.keep = UnwrapMappedFile(o.Get("file"));
  std::string dt = o.Get("dtype").ToString().Utf8Value();
  if (dt == "F32") t.dtype = quip::DType::F32;
  else if (dt == "F16") t.dtype = quip::DType::F16;
  else if (dt == "BF16") t.dtype = quip::DType::BF16;
  else throw Napi::TypeError::New(env, std::string(what) + ": unsupported dtype " + dt);
  Napi::Array shape = o.Get("shape").As<Napi::Array>();
  for (uint32_t i = 0; i < shape.Length(); ++i)
    t.shape.push_back(static_cast<int64_t>(shape.Get(i).As<Napi::Number>().Int64Value()));
  double off = o.Get("offset").As<Napi::Number>().DoubleValue();
  size_t bytes = t.numel() * quip::dtype_size(t.dtype);
  if (off < 0 || off + static_cast<double>(bytes) > static_cast<double>(t.keep->size()))
    throw Napi::RangeError::New(env, std::string(what) + ": tensor data lies outside its file");
  t.data = t.keep->data() + static_cast<size_t>(off);
  return t;
}

// ---- async jobs ---------------------------------------------------------------------------------
namespace {

class JobWorker : public Napi::AsyncProgressQueueWorker<char> {
 public:
  JobWorker(Napi::Env env, Napi::Value on_progress, Napi::Value cancel,
            std::function<ResultBuilder(const quip::JobHooks&)> work)
      : Napi::AsyncProgressQueueWorker<char>(env), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)) {
    if (on_progress.IsFunction()) progress_cb_ = Napi::Persistent(on_progress.As<Napi::Function>());
    if (cancel.IsTypedArray() && cancel.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      auto arr = cancel.As<Napi::Int32Array>();
      cancel_ref_ = Napi::Persistent(arr);
      cancel_flag_ = arr.Data();
    }
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    quip::JobHooks hooks;
    int32_t* flag = cancel_flag_;
    if (flag) hooks.cancelled = [flag] { return __atomic_load_n(flag, __ATOMIC_RELAXED) != 0; };
    hooks.report = [&progress](const std::string& json) { progress.Send(json.data(), json.size()); };
    try {
      result_ = work_(hooks);
    } catch (const quip::Cancelled&) {
      cancelled_ = true;
      SetError("cancelled");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnProgress(const char* data, size_t count) override {
    if (progress_cb_.IsEmpty()) return;
    Napi::HandleScope scope(Env());
    progress_cb_.Call({Napi::String::New(Env(), data, count)});
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    if (cancelled_) err.Set("code", Napi::String::New(Env(), "CANCELLED"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<ResultBuilder(const quip::JobHooks&)> work_;
  ResultBuilder result_;
  Napi::FunctionReference progress_cb_;
  Napi::Reference<Napi::Int32Array> cancel_ref_;
  int32_t* cancel_flag_ = nullptr;
  bool cancelled_ = false;
};

}  // namespace

Napi::Promise RunJob(Napi::Env env, Napi::Value on_progress, Napi::Value cancel,
                     std::function<ResultBuilder(const quip::JobHooks&)> work) {
  auto* w = new JobWorker(env, on_progress, cancel, std::move(work));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ---- exported functions -------------------------------------------------------------------------
static Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const quip::CpuFeatures& f = quip::cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("summary", quip::cpu_summary());
  o.Set("simd", f.simd());
  o.Set("avx2", f.avx2);
  o.Set("avx512", f.avx512);
  o.Set("neon", f.neon);
  o.Set("threads", quip::num_threads());
  return o;
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  quip::set_threads(static_cast<int>(NumberArg(info, 0, "threads")));
  return Napi::Number::New(info.Env(), quip::num_threads());
}

static Napi::Value MapFile(const Napi::CallbackInfo& info) {
  return MappedFileWrap::constructor->New({info[0]});
}

// tensorStats(tensor) -> Promise<{min, max, mean, rms, absMax, nonFinite}>, computed off the JS thread
// in float64 over a memory-mapped tensor; the inspection view shows these per tensor.
static Napi::Value TensorStats(const Napi::CallbackInfo& info) {
  TensorArg t = ReadTensorArg(info.Env(), info[0], "tensor");
  return RunJob(info.Env(), info[1], info[2], [t](const quip::JobHooks& hooks) -> ResultBuilder {
    size_t n = t.numel();
    const size_t chunk = 1 << 16;
    size_t nchunks = (n + chunk - 1) / chunk;
    struct Part { double sum = 0, sumsq = 0, mn = 1e300, mx = -1e300; size_t bad = 0; };
    std::vector<Part> parts(nchunks);
    quip::parallel_for(nchunks, 1, [&](size_t b, size_t e) {
      for (size_t c = b; c < e; ++c) {
        hooks.check();
        Part p;
        size_t end = std::min(n, (c + 1) * chunk);
        for (size_t i = c * chunk; i < end; ++i) {
          double v = t.at(i);
          if (!std::isfinite(v)) { ++p.bad; continue; }
          p.sum += v; p.sumsq += v * v;
          p.mn = std::min(p.mn, v); p.mx = std::max(p.mx, v);
        }
        parts[c] = p;
      }
    });
    Part all;
    for (auto& p : parts) {
      all.sum += p.sum; all.sumsq += p.sumsq; all.bad += p.bad;
      all.mn = std::min(all.mn, p.mn); all.mx = std::max(all.mx, p.mx);
    }
    double count = static_cast<double>(n - all.bad);
    return [all, count](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("min", count > 0 ? all.mn : 0.0);
      o.Set("max", count > 0 ? all.mx : 0.0);
      o.Set("mean", count > 0 ? all.sum / count : 0.0);
      o.Set("rms", count > 0 ? std::sqrt(all.sumsq / count) : 0.0);
      o.Set("absMax", count > 0 ? std::max(std::fabs(all.mn), std::fabs(all.mx)) : 0.0);
      o.Set("nonFinite", static_cast<double>(all.bad));
      return o;
    };
  });
}

void RegisterCommon(Napi::Env env, Napi::Object exports) {
  Napi::Function mf = MappedFileWrap::Define(env);
  MappedFileWrap::constructor = new Napi::FunctionReference(Napi::Persistent(mf));
  exports.Set("MappedFile", mf);
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  exports.Set("tensorStats", Napi::Function::New(env, TensorStats));
}

}  // namespace quip_addon
