// A QuIP# quantized linear layer for the engine's forward pass (spec section 7). Per token:
//   x <- H_n^T (su .* x)          randomized Hadamard transform of the input (incoherence on)
//   x <- [x, 0 ... 0]             zero-pad to n_pad (a multiple of 8) for the codes' groups
//   y~ = scale * decode-matvec(codes, x)   (RVQ: + decode-matvec(residual codes, x) / residual_scale)
//   y <- sv .* (H_m y~)
// so y = W^ x with W^ = diag(sv) H_m (scale * Q) H_n^T diag(su), Q the decoded codes (m x n_pad,
// padded columns dropped). Several tokens (prefill) decode each row once per call: inside an
// runtime::FastPrefillScope (chat prefill) into int8 panels multiplied with int8 activations by the
// VNNI / AVX2 int8 GEMM (qinfer/prefill.h), elsewhere (calibration, scoring) into float panels
// multiplied with the engine GEMM's float microkernel.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/linear.h"
#include "qinfer/decode.h"
#include "qinfer/prefill.h"
#include "quip/hadamard.h"

namespace quip::qinfer {

struct QuantizedLinearParams {
  int m = 0, n = 0;          // outputs, inputs (n_pad = round_up(n, 8))
  QCodes codes;              // points into `keep` (a memory map or owned vectors)
  float scale = 1.0f;
  bool incoherence = true;   // false: no Hadamard, no sign vectors (su, sv empty)
  std::vector<float> su, sv; // input (n) and output (m) sign vectors
  std::shared_ptr<const void> keep;  // owner of the code bytes
};

// Time spent inside QuantizedLinear::forward by phase, summed over all layers and calls while
// profiling is on (off by default: then forward reads one relaxed atomic flag and nothing else).
struct DecodeProfile {
  double transform_s = 0;  // input and output randomized Hadamard transforms, sign vectors, scale
  double matvec_s = 0;     // decode-matvec / decode + dot products from the codes
  long long calls = 0;     // forward calls
  long long tokens = 0;    // tokens summed over calls
};
void set_decode_profiling(bool on);  // on: clears the counters and starts counting
DecodeProfile decode_profile();

class QuantizedLinear : public runtime::Linear {
 public:
  // Throws std::invalid_argument naming the inconsistent field.
  explicit QuantizedLinear(QuantizedLinearParams p, KernelImpl impl = KernelImpl::Auto);
  int in_features() const override { return p_.n; }
  int out_features() const override { return p_.m; }
  void forward(const float* x, int tokens, float* y) const override;
  std::string describe() const override;

  // The dense m x n matrix this layer applies (float64), for tests and for exact comparisons.
  std::vector<double> dequantize() const;
  const QuantizedLinearParams& params() const { return p_; }
  // Bytes of codes read per forward token.
  size_t code_bytes() const;

 private:
  void prefill_matmul(const float* xt, int tokens, float* y) const;
  void prefill_matmul_int8(const float* xt, int tokens, float* y) const;

  QuantizedLinearParams p_;
  int n_pad_;
  HadamardPlan plan_in_, plan_out_;
  // Sizes with no power-of-two part (n = K, e.g. stories260k's 172): the whole transform is one dense
  // K x K matrix (H_n^T on the input side, H_n on the output side, 1/sqrt(n) folded in), applied to
  // all tokens at once by the engine GEMM instead of a K^2 loop per token. Empty otherwise.
  std::vector<float> dense_in_, dense_out_;
  const DecodeKernels* k_;
  const PrefillKernels* pk_ = nullptr;  // the int8 prefill kernels, or null (float prefill only)
  bool avx512_gemm_ = false;            // float prefill through runtime::gemm_panels_avx512
};

}  // namespace quip::qinfer
