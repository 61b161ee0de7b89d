// Bindings of the QuIP# numeric core (native/src/quip): Hadamard plans, the randomized Hadamard
// transform on activations, the E8P table, and per-layer quantization / dequantization jobs.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "addon.h"
#include "quip/hadamard.h"

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

}  // namespace

void RegisterQuip(Napi::Env env, Napi::Object exports) {
  exports.Set("hadamardPlan", Napi::Function::New(env, HadamardPlanJs));
}

}  // namespace quip_addon
