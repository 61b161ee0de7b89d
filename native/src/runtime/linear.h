// A linear layer y = x W^T as the transformer sees it. The forward pass only talks to this interface,
// so a block can hold dense weights (DenseLinear, straight from the memory map) or a quantized layer
// (QuIP#: codes + sign vectors + Hadamard transforms) side by side; Model::set_linear swaps one in.
#pragma once
#include <memory>
#include <string>

#include "runtime/gemm.h"

namespace quip::runtime {

// Batched (prefill) forwards of quantized layers may round their activations to int8 (the int8
// prefill GEMM, qinfer/prefill.h) only inside a FastPrefillScope on the calling thread: chat and
// generation prefill (Session::forward with fast_prefill, which only generation.ts asks for) open one; calibration (the Hessians),
// scoring / perplexity and training do not, so they stay in float32. QUIP_PRECISE_PREFILL=1 in the
// environment keeps every forward in float32. Dense (16-bit) layers are float32 everywhere.
bool fast_prefill_enabled();  // true inside a scope that enables it, unless the environment forbids it
class FastPrefillScope {
 public:
  explicit FastPrefillScope(bool on);
  ~FastPrefillScope();
  FastPrefillScope(const FastPrefillScope&) = delete;
  FastPrefillScope& operator=(const FastPrefillScope&) = delete;

 private:
  bool prev_;
};

struct Linear {
  virtual ~Linear() = default;
  virtual int in_features() const = 0;
  virtual int out_features() const = 0;
  // y[t * out + o] = sum_i x[t * in + i] W[o, i] for t < tokens. May use the thread pool.
  virtual void forward(const float* x, int tokens, float* y) const = 0;
  // Short description for logs, e.g. "dense BF16 2048x5632".
  virtual std::string describe() const = 0;
};

// Dense weights in F32/F16/BF16, read in place (the owner of the bytes must outlive the layer).
class DenseLinear : public Linear {
 public:
  explicit DenseLinear(WeightView w, GemmImpl impl = GemmImpl::Auto) : w_(w), impl_(impl) {}
  int in_features() const override { return w_.cols; }
  int out_features() const override { return w_.rows; }
  void forward(const float* x, int tokens, float* y) const override { matmul_wt(x, tokens, w_, y, impl_); }
  std::string describe() const override {
    const char* dt = w_.dtype == DType::F32 ? "F32" : w_.dtype == DType::F16 ? "F16" : "BF16";
    return std::string("dense ") + dt + " " + std::to_string(w_.rows) + "x" + std::to_string(w_.cols);
  }
  const WeightView& weight() const { return w_; }

 private:
  WeightView w_;
  GemmImpl impl_;
};

}  // namespace quip::runtime
