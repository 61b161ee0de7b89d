// Bindings of the GGUF module: dequantizing one tensor of a memory-mapped GGUF file into JS memory
// (the importer streams a model tensor by tensor, so one tensor at a time is all that is copied).
#include <cmath>
#include <memory>

#include "addon.h"
#include "gguf/dequant.h"

namespace quip_addon {

// ggufSupportedTypes() -> string[]: the ggml types ggufDequantize reads.
static Napi::Value GgufSupportedTypes(const Napi::CallbackInfo& info) {
  const auto& formats = quip::gguf::block_formats();
  Napi::Array a = Napi::Array::New(info.Env(), formats.size());
  for (uint32_t i = 0; i < formats.size(); ++i) a.Set(i, formats[i].name);
  return a;
}

// ggufDequantize(file, offset, type, numel, out: 'f16' | 'f32', onProgress?, cancel?)
//   -> Promise<{ data: Buffer (float16 bits) | Float32Array, nonFinite: number }>
// The output is allocated here on the JS thread (so it is ordinary JS memory, which Electron
// requires) and filled off the JS thread; `nonFinite` counts values that are infinite or NaN in
// the output (for f16: beyond +-65504).
static Napi::Value GgufDequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<quip::MappedFile> file = UnwrapMappedFile(info[0]);
  double offset = NumberArg(info, 1, "offset");
  std::string type = StringArg(info, 2, "type");
  double numel_d = NumberArg(info, 3, "numel");
  std::string out = info.Length() > 4 && info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "f32";

  const quip::gguf::BlockFormat* fmt = quip::gguf::find_block_format(type);
  if (!fmt)
    throw Napi::TypeError::New(env, "tensor type " + type + " cannot be dequantized; supported: " +
                                        quip::gguf::supported_type_names());
  if (out != "f16" && out != "f32") throw Napi::TypeError::New(env, "out must be 'f16' or 'f32'");
  if (!(numel_d >= 1) || numel_d != std::floor(numel_d) || numel_d > 9.0e15)
    throw Napi::RangeError::New(env, "numel must be a positive whole number");
  if (!(offset >= 0) || offset != std::floor(offset)) throw Napi::RangeError::New(env, "offset must be a whole number >= 0");
  const size_t numel = static_cast<size_t>(numel_d);
  size_t bytes;
  try {
    bytes = quip::gguf::tensor_bytes(*fmt, numel);
  } catch (const std::exception& e) {
    throw Napi::RangeError::New(env, e.what());
  }
  if (offset + static_cast<double>(bytes) > static_cast<double>(file->size()))
    throw Napi::RangeError::New(env, "tensor data lies outside its file");
  const uint8_t* src = file->data() + static_cast<size_t>(offset);

  Napi::Object result_data;
  void* dst;
  if (out == "f16") {
    auto buf = Napi::Buffer<uint8_t>::New(env, numel * 2);
    dst = buf.Data();
    result_data = buf;
  } else {
    auto arr = Napi::Float32Array::New(env, numel);
    dst = arr.Data();
    result_data = arr;
  }
  // Keeps the output alive while the worker writes into it; released on the JS thread with the job.
  auto keep = std::make_shared<Napi::ObjectReference>(Napi::Persistent(result_data));
  const bool to_f16 = out == "f16";
  return RunJob(env, info[5], info[6], [file, fmt, src, numel, dst, keep, to_f16](const quip::JobHooks& hooks) -> ResultBuilder {
    size_t bad = to_f16 ? quip::gguf::dequantize_to_f16(*fmt, src, numel, static_cast<uint16_t*>(dst), hooks)
                        : quip::gguf::dequantize_to_f32(*fmt, src, numel, static_cast<float*>(dst), hooks);
    return [keep, bad](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("data", keep->Value());
      o.Set("nonFinite", static_cast<double>(bad));
      return o;
    };
  });
}

void RegisterGguf(Napi::Env env, Napi::Object exports) {
  exports.Set("ggufSupportedTypes", Napi::Function::New(env, GgufSupportedTypes));
  exports.Set("ggufDequantize", Napi::Function::New(env, GgufDequantize));
}

}  // namespace quip_addon
