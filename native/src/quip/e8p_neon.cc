// NEON nearest-point search for E8P and the E8 shell codebook (arm64); scalar references in e8p.cc.
// Same scores as the AVX2 search, four patterns per register instead of eight.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>

#include "quip/e8p.h"

namespace quip {

namespace {

// Horizontal argmin over 4 lanes (ties: the lowest index, like the scalar loop).
inline void argmin_lanes(float32x4_t v, uint32x4_t idx, float* best, int* best_idx) {
  float vs[4];
  uint32_t is[4];
  vst1q_f32(vs, v);
  vst1q_u32(is, idx);
  for (int l = 0; l < 4; ++l)
    if (vs[l] < *best || (vs[l] == *best && static_cast<int>(is[l]) < *best_idx)) *best = vs[l], *best_idx = is[l];
}

}  // namespace

uint16_t e8p_nearest_neon(const E8PTables& T, const float x[8]) {
  // Both shifts in one pass over the 256 patterns (the table loads are shared).
  float32x4_t ay0[8], ay1[8];
  float y20 = 0, y21 = 0;
  int negs0 = 0, negs1 = 0;
  for (int i = 0; i < 8; ++i) {
    const float u = x[i] - 0.25f, v = x[i] + 0.25f;
    ay0[i] = vdupq_n_f32(std::fabs(u));
    ay1[i] = vdupq_n_f32(std::fabs(v));
    negs0 += u < 0, negs1 += v < 0;
    y20 += u * u, y21 += v * v;
  }
  const uint32x4_t want0 = vdupq_n_u32((negs0 & 1) ? ~0u : 0u), want1 = vdupq_n_u32((negs1 & 1) ? ~0u : 0u);
  const float32x4_t two = vdupq_n_f32(2.f), four = vdupq_n_f32(4.f);
  const float32x4_t y2v0 = vdupq_n_f32(y20), y2v1 = vdupq_n_f32(y21);
  float32x4_t best0 = vdupq_n_f32(INFINITY), best1 = best0;
  uint32x4_t idx0 = vdupq_n_u32(0), idx1 = idx0;
  uint32x4_t lane = {0, 1, 2, 3};
  const uint32x4_t step = vdupq_n_u32(4);
  for (int a = 0; a < 256; a += 4) {
    float32x4_t s = vld1q_f32(&T.source_t[0][a]);
    float32x4_t p0 = vmulq_f32(s, ay0[0]), p1 = vmulq_f32(s, ay1[0]);
    float32x4_t dot0 = p0, mn0 = p0, dot1 = p1, mn1 = p1;
    for (int i = 1; i < 8; ++i) {
      s = vld1q_f32(&T.source_t[i][a]);
      p0 = vmulq_f32(s, ay0[i]);
      p1 = vmulq_f32(s, ay1[i]);
      dot0 = vaddq_f32(dot0, p0), mn0 = vminq_f32(mn0, p0);
      dot1 = vaddq_f32(dot1, p1), mn1 = vminq_f32(mn1, p1);
    }
    const float32x4_t n2 = vld1q_f32(&T.norm2[a]);
    const uint32x4_t par = vreinterpretq_u32_s32(vld1q_s32(&T.parity_mask[a]));
    // y2 + |a|^2 - 2 dot, plus 4 min(a_i |y_i|) where the sign parity must be fixed.
    float32x4_t e0 = vfmsq_f32(vaddq_f32(y2v0, n2), two, dot0);
    float32x4_t e1 = vfmsq_f32(vaddq_f32(y2v1, n2), two, dot1);
    e0 = vaddq_f32(e0, vreinterpretq_f32_u32(vandq_u32(veorq_u32(par, want0), vreinterpretq_u32_f32(vmulq_f32(four, mn0)))));
    e1 = vaddq_f32(e1, vreinterpretq_f32_u32(vandq_u32(veorq_u32(par, want1), vreinterpretq_u32_f32(vmulq_f32(four, mn1)))));
    const uint32x4_t lt0 = vcltq_f32(e0, best0), lt1 = vcltq_f32(e1, best1);
    best0 = vbslq_f32(lt0, e0, best0);
    best1 = vbslq_f32(lt1, e1, best1);
    idx0 = vbslq_u32(lt0, lane, idx0);
    idx1 = vbslq_u32(lt1, lane, idx1);
    lane = vaddq_u32(lane, step);
  }
  float b0 = INFINITY, b1 = INFINITY;
  int i0 = 0, i1 = 0;
  argmin_lanes(best0, idx0, &b0, &i0);
  argmin_lanes(best1, idx1, &b1, &i1);
  const int shift = b1 < b0 ? 1 : 0, idx = shift ? i1 : i0;
  return e8p_code_with_signs(T, x, idx, shift);
}

void e8p_quantize_batch_neon(const E8PTables& T, const float* x, size_t stride, size_t count, float* out,
                             uint32_t* codes) {
  for (size_t g = 0; g < count; ++g) {
    const uint16_t c = e8p_nearest_neon(T, x + g * stride);
    codes[g] = c;
    e8p_decode(c, out + g * stride);
  }
}

uint8_t e8_shell_nearest_neon(const E8ShellSearch& S, const float x[8]) {
  const auto& tt = S.t;
  const auto& n2 = S.norm2;
  float32x4_t xv[8];
  for (int i = 0; i < 8; ++i) xv[i] = vdupq_n_f32(-2.f * x[i]);
  float32x4_t vbest = vdupq_n_f32(INFINITY);
  uint32x4_t vidx = vdupq_n_u32(0), lane = {0, 1, 2, 3};
  for (int k = 0; k < 256; k += 4) {
    float32x4_t d = vld1q_f32(&n2[k]);  // ||c||^2 - 2 x.c  (||x||^2 is common)
    for (int i = 0; i < 8; ++i) d = vfmaq_f32(d, vld1q_f32(&tt[i][k]), xv[i]);
    const uint32x4_t lt = vcltq_f32(d, vbest);
    vbest = vbslq_f32(lt, d, vbest);
    vidx = vbslq_u32(lt, lane, vidx);
    lane = vaddq_u32(lane, vdupq_n_u32(4));
  }
  float b = INFINITY;
  int bi = 0;
  argmin_lanes(vbest, vidx, &b, &bi);
  return static_cast<uint8_t>(bi);
}

float brute_force_min_score_neon(const float* points_t, const float* norms2, size_t count, const float x[8]) {
  float32x4_t xv[8];
  for (int i = 0; i < 8; ++i) xv[i] = vdupq_n_f32(-2.f * x[i]);
  // Two independent chains of minima (count is a multiple of 8).
  float32x4_t best0 = vdupq_n_f32(INFINITY), best1 = best0;
  for (size_t c = 0; c < count; c += 8) {
    float32x4_t d0 = vld1q_f32(norms2 + c), d1 = vld1q_f32(norms2 + c + 4);
    for (int i = 0; i < 8; ++i) {
      d0 = vfmaq_f32(d0, vld1q_f32(points_t + i * count + c), xv[i]);
      d1 = vfmaq_f32(d1, vld1q_f32(points_t + i * count + c + 4), xv[i]);
    }
    best0 = vminq_f32(best0, d0);
    best1 = vminq_f32(best1, d1);
  }
  return vminvq_f32(vminq_f32(best0, best1));
}

}  // namespace quip
