// Entry point of the quip_native addon: one Register call per module.
#include "addon.h"

static Napi::Object InitQuipNative(Napi::Env env, Napi::Object exports) {
  quip_addon::RegisterCommon(env, exports);
  quip_addon::RegisterQuip(env, exports);
  quip_addon::RegisterGguf(env, exports);
  quip_addon::RegisterEngine(env, exports);
  quip_addon::RegisterQinfer(env, exports);
  quip_addon::RegisterTrain(env, exports);
  return exports;
}

NODE_API_MODULE(quip_native, InitQuipNative)
