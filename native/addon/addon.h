// Shared pieces of the Node-API bindings: registration of each module's functions, running native
// work off the JS thread, and reading tensor arguments.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/half.h"
#include "common/job.h"
#include "common/mapped_file.h"

namespace quip::runtime {
class Model;
struct ModelConfig;
struct TensorView;
}  // namespace quip::runtime

namespace quip_addon {

// Each module's bindings file defines one of these; addon.cc calls them all.
void RegisterCommon(Napi::Env env, Napi::Object exports);
void RegisterEngine(Napi::Env env, Napi::Object exports);
void RegisterQuip(Napi::Env env, Napi::Object exports);
void RegisterGguf(Napi::Env env, Napi::Object exports);
void RegisterQinfer(Napi::Env env, Napi::Object exports);
void RegisterTrain(Napi::Env env, Napi::Object exports);

// ---- Running work off the JS thread -------------------------------------------------------------
// The work runs on a libuv worker thread and returns a builder that makes the JS result on the JS
// thread. `on_progress` (a JS function or undefined) receives each hooks.emit(json) as a string, in
// order. `cancel` (an Int32Array or undefined) cancels when JS stores a non-zero value in element 0.
// The promise rejects with an Error whose `code` is "CANCELLED" when the work threw quip::Cancelled,
// and with the exception's message otherwise.
using ResultBuilder = std::function<Napi::Value(Napi::Env)>;
Napi::Promise RunJob(Napi::Env env, Napi::Value on_progress, Napi::Value cancel,
                     std::function<ResultBuilder(const quip::JobHooks&)> work);

// ---- Memory-mapped files ------------------------------------------------------------------------
// JS holds a MappedFile object (native.mapFile(path)); bytes stay in the mapping (Electron forbids
// external ArrayBuffers, and weights should not be copied anyway).
std::shared_ptr<quip::MappedFile> UnwrapMappedFile(Napi::Value v);

// A tensor argument from JS: either { file: MappedFile, offset, dtype: 'F32'|'F16'|'BF16', shape }
// or a Float32Array (with an optional shape given separately). `keep` holds the mapping alive.
struct TensorArg {
  const void* data = nullptr;
  quip::DType dtype = quip::DType::F32;
  std::vector<int64_t> shape;
  std::shared_ptr<quip::MappedFile> keep;
  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  float at(size_t i) const { return quip::load_as_f32(data, dtype, i); }
};
TensorArg ReadTensorArg(Napi::Env env, Napi::Value v, const char* what);

// ---- Engine models shared with the qinfer bindings (defined in engine_bindings.cc) -------------------
// The Model behind an EngineModel object (quantized linears are swapped into it), an EngineModel
// around a Model built elsewhere, and the Architecture -> ModelConfig reader.
std::shared_ptr<quip::runtime::Model> UnwrapEngineModel(Napi::Value v);
Napi::Object WrapEngineModel(Napi::Env env, std::shared_ptr<quip::runtime::Model> model);
quip::runtime::ModelConfig ReadEngineModelConfig(Napi::Env env, Napi::Value v);
// The weights of a {name: TensorRef} object as views into their mappings (read in place); returns the
// mappings, which must stay alive as long as a model reads the views.
using MappingsKeep = std::shared_ptr<std::vector<std::shared_ptr<quip::MappedFile>>>;
MappingsKeep ReadEngineWeights(Napi::Env env, Napi::Value v, std::map<std::string, quip::runtime::TensorView>* views);

// Helpers for plain argument checking with a clear TypeError.
double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* what);
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what);
Napi::Float32Array Float32ArrayArg(const Napi::CallbackInfo& info, size_t i, const char* what);

}  // namespace quip_addon
