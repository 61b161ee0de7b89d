// NEON fast Walsh-Hadamard transform (arm64); the scalar reference is fwht_scalar in hadamard.cc.
// Same butterflies as the scalar loop, so the results are bit-identical to it.
#include <arm_neon.h>

#include <cstdint>

namespace quip {

void fwht_neon(float* x, int64_t len) {
  // Stages h = 1, 2 inside each 4-float register, then butterflies between registers.
  const float32x4_t sign1 = {1, -1, 1, -1}, sign2 = {1, 1, -1, -1};
  for (int64_t i = 0; i < len; i += 4) {
    float32x4_t v = vld1q_f32(x + i);
    v = vfmaq_f32(vrev64q_f32(v), v, sign1);     // (a + b, a - b): the sign sits on the kept lane
    v = vfmaq_f32(vextq_f32(v, v, 2), v, sign2);  // halves swapped
    vst1q_f32(x + i, v);
  }
  for (int64_t h = 4; h < len; h <<= 1)
    for (int64_t i = 0; i < len; i += 2 * h)
      for (int64_t j = i; j < i + h; j += 4) {
        const float32x4_t a = vld1q_f32(x + j), b = vld1q_f32(x + j + h);
        vst1q_f32(x + j, vaddq_f32(a, b));
        vst1q_f32(x + j + h, vsubq_f32(a, b));
      }
}

}  // namespace quip
