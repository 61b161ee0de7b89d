// NEON fast path of the float32 -> float16 conversion of dequantized runs (arm64; the scalar
// reference is f32_to_f16_run_scalar in dequant.cc). FCVTN rounds to nearest even under the default
// FPCR and keeps subnormals, as the scalar reference does.
#include <arm_neon.h>

#include "common/half.h"
#include "gguf/dequant.h"

namespace quip::gguf {

void f32_to_f16_run_neon(const float* x, size_t n, uint16_t* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
    vst1q_u16(out + i, vreinterpretq_u16_f16(h));
  }
  for (; i < n; ++i) out[i] = f32_to_f16(x[i]);
}

}  // namespace quip::gguf
