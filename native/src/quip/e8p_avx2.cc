// AVX2 nearest-point search for E8P and the E8 shell codebook; scalar references in e8p.cc.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "quip/e8p.h"

namespace quip {

namespace {

// Horizontal argmin over 8 lanes (ties: the lowest index, like the scalar loop).
inline void argmin_lanes(__m256 v, __m256i idx, float* best, int* best_idx) {
  alignas(32) float vs[8];
  alignas(32) int is[8];
  _mm256_store_ps(vs, v);
  _mm256_store_si256(reinterpret_cast<__m256i*>(is), idx);
  for (int l = 0; l < 8; ++l)
    if (vs[l] < *best || (vs[l] == *best && is[l] < *best_idx)) *best = vs[l], *best_idx = is[l];
}

}  // namespace

uint16_t e8p_nearest_avx2(const E8PTables& T, const float x[8]) {
  // Both shifts in one pass over the 256 patterns (the table loads are shared).
  __m256 ay0[8], ay1[8];
  float y20 = 0, y21 = 0;
  int negs0 = 0, negs1 = 0;
  for (int i = 0; i < 8; ++i) {
    const float u = x[i] - 0.25f, v = x[i] + 0.25f;
    ay0[i] = _mm256_set1_ps(std::fabs(u));
    ay1[i] = _mm256_set1_ps(std::fabs(v));
    negs0 += u < 0, negs1 += v < 0;
    y20 += u * u, y21 += v * v;
  }
  const __m256i want0 = _mm256_set1_epi32((negs0 & 1) ? -1 : 0), want1 = _mm256_set1_epi32((negs1 & 1) ? -1 : 0);
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f);
  const __m256 y2v0 = _mm256_set1_ps(y20), y2v1 = _mm256_set1_ps(y21);
  __m256 best0 = _mm256_set1_ps(INFINITY), best1 = best0;
  __m256i idx0 = _mm256_setzero_si256(), idx1 = idx0;
  __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i eight = _mm256_set1_epi32(8);
  for (int a = 0; a < 256; a += 8) {
    __m256 s = _mm256_load_ps(&T.source_t[0][a]);
    __m256 p0 = _mm256_mul_ps(s, ay0[0]), p1 = _mm256_mul_ps(s, ay1[0]);
    __m256 dot0 = p0, mn0 = p0, dot1 = p1, mn1 = p1;
    for (int i = 1; i < 8; ++i) {
      s = _mm256_load_ps(&T.source_t[i][a]);
      p0 = _mm256_mul_ps(s, ay0[i]);
      p1 = _mm256_mul_ps(s, ay1[i]);
      dot0 = _mm256_add_ps(dot0, p0), mn0 = _mm256_min_ps(mn0, p0);
      dot1 = _mm256_add_ps(dot1, p1), mn1 = _mm256_min_ps(mn1, p1);
    }
    const __m256 n2 = _mm256_load_ps(&T.norm2[a]);
    const __m256i par = _mm256_load_si256(reinterpret_cast<const __m256i*>(&T.parity_mask[a]));
    __m256 e0 = _mm256_fnmadd_ps(two, dot0, _mm256_add_ps(y2v0, n2));
    __m256 e1 = _mm256_fnmadd_ps(two, dot1, _mm256_add_ps(y2v1, n2));
    e0 = _mm256_add_ps(e0, _mm256_and_ps(_mm256_castsi256_ps(_mm256_xor_si256(par, want0)), _mm256_mul_ps(four, mn0)));
    e1 = _mm256_add_ps(e1, _mm256_and_ps(_mm256_castsi256_ps(_mm256_xor_si256(par, want1)), _mm256_mul_ps(four, mn1)));
    const __m256 lt0 = _mm256_cmp_ps(e0, best0, _CMP_LT_OQ), lt1 = _mm256_cmp_ps(e1, best1, _CMP_LT_OQ);
    best0 = _mm256_blendv_ps(best0, e0, lt0);
    best1 = _mm256_blendv_ps(best1, e1, lt1);
    idx0 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(idx0), _mm256_castsi256_ps(lane), lt0));
    idx1 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(idx1), _mm256_castsi256_ps(lane), lt1));
    lane = _mm256_add_epi32(lane, eight);
  }
  float b0 = INFINITY, b1 = INFINITY;
  int i0 = 0, i1 = 0;
  argmin_lanes(best0, idx0, &b0, &i0);
  argmin_lanes(best1, idx1, &b1, &i1);
  const int shift = b1 < b0 ? 1 : 0, idx = shift ? i1 : i0;
  return e8p_code_with_signs(T, x, idx, shift);
}

void e8p_quantize_batch_avx2(const E8PTables& T, const float* x, size_t stride, size_t count, float* out,
                             uint32_t* codes) {
  for (size_t g = 0; g < count; ++g) {
    const uint16_t c = e8p_nearest_avx2(T, x + g * stride);
    codes[g] = c;
    e8p_decode(c, out + g * stride);
  }
}

uint8_t e8_shell_nearest_avx2(const E8ShellSearch& S, const float x[8]) {
  const auto& tt = S.t;
  const auto& n2 = S.norm2;
  __m256 xv[8];
  for (int i = 0; i < 8; ++i) xv[i] = _mm256_set1_ps(-2.f * x[i]);
  __m256 vbest = _mm256_set1_ps(INFINITY);
  __m256i vidx = _mm256_setzero_si256(), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int k = 0; k < 256; k += 8) {
    __m256 d = _mm256_load_ps(&n2[k]);  // ||c||^2 - 2 x.c  (||x||^2 is common)
    for (int i = 0; i < 8; ++i) d = _mm256_fmadd_ps(_mm256_load_ps(&tt[i][k]), xv[i], d);
    __m256 lt = _mm256_cmp_ps(d, vbest, _CMP_LT_OQ);
    vbest = _mm256_blendv_ps(vbest, d, lt);
    vidx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(vidx), _mm256_castsi256_ps(lane), lt));
    lane = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
  }
  float b = INFINITY;
  int bi = 0;
  argmin_lanes(vbest, vidx, &b, &bi);
  return static_cast<uint8_t>(bi);
}

float brute_force_min_score_avx2(const float* points_t, const float* norms2, size_t count, const float x[8]) {
  __m256 xv[8];
  for (int i = 0; i < 8; ++i) xv[i] = _mm256_set1_ps(-2.f * x[i]);
  __m256 best = _mm256_set1_ps(INFINITY);
  for (size_t c = 0; c < count; c += 8) {
    __m256 d = _mm256_loadu_ps(norms2 + c);
    for (int i = 0; i < 8; ++i) d = _mm256_fmadd_ps(_mm256_loadu_ps(points_t + i * count + c), xv[i], d);
    best = _mm256_min_ps(best, d);
  }
  alignas(32) float v[8];
  _mm256_store_ps(v, best);
  float b = v[0];
  for (int l = 1; l < 8; ++l) b = std::fmin(b, v[l]);
  return b;
}

}  // namespace quip
