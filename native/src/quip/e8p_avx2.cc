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
  float best = INFINITY;
  int best_code = 0;  // idx | shift << 8
  alignas(32) static thread_local int32_t parity_mask[256];
  static thread_local bool init = false;
  if (!init) {
    for (int a = 0; a < 256; ++a) parity_mask[a] = T.parity[a] ? -1 : 0;
    init = true;
  }
  for (int sh = 0; sh < 2; ++sh) {
    const float t = sh ? -0.25f : 0.25f;
    __m256 ay[8];
    float y2 = 0;
    int negs = 0;
    for (int i = 0; i < 8; ++i) {
      float y = x[i] - t;
      ay[i] = _mm256_set1_ps(std::fabs(y));
      negs += y < 0;
      y2 += y * y;
    }
    const __m256i want = _mm256_set1_epi32((negs & 1) ? -1 : 0);
    const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), y2v = _mm256_set1_ps(y2);
    __m256 vbest = _mm256_set1_ps(INFINITY);
    __m256i vidx = _mm256_setzero_si256();
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int a = 0; a < 256; a += 8) {
      __m256 p = _mm256_mul_ps(_mm256_loadu_ps(&T.source_t[0][a]), ay[0]);
      __m256 dot = p, mn = p;
      for (int i = 1; i < 8; ++i) {
        p = _mm256_mul_ps(_mm256_loadu_ps(&T.source_t[i][a]), ay[i]);
        dot = _mm256_add_ps(dot, p);
        mn = _mm256_min_ps(mn, p);
      }
      __m256 err = _mm256_add_ps(y2v, _mm256_loadu_ps(&T.norm2[a]));
      err = _mm256_fnmadd_ps(two, dot, err);
      __m256i par = _mm256_load_si256(reinterpret_cast<const __m256i*>(&parity_mask[a]));
      __m256 wrong = _mm256_castsi256_ps(_mm256_xor_si256(par, want));
      err = _mm256_add_ps(err, _mm256_and_ps(wrong, _mm256_mul_ps(four, mn)));
      __m256 lt = _mm256_cmp_ps(err, vbest, _CMP_LT_OQ);
      vbest = _mm256_blendv_ps(vbest, err, lt);
      vidx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(vidx), _mm256_castsi256_ps(lane), lt));
      lane = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
    }
    float b = INFINITY;
    int bi = 0;
    argmin_lanes(vbest, vidx, &b, &bi);
    if (b < best) best = b, best_code = bi | (sh << 8);
  }
  const int idx = best_code & 0xFF, shift = best_code >> 8;
  const float t = shift ? -0.25f : 0.25f;
  const float* a = T.source[idx];
  int neg[8], negs = 0, cheapest = 0;
  float mn = INFINITY;
  for (int i = 0; i < 8; ++i) {
    float y = x[i] - t;
    neg[i] = y < 0;
    negs += neg[i];
    float p = a[i] * std::fabs(y);
    if (p < mn) mn = p, cheapest = i;
  }
  if ((negs ^ T.parity[idx]) & 1) neg[cheapest] ^= 1;
  uint16_t code = static_cast<uint16_t>(idx | (shift << 15));
  for (int i = 0; i < 7; ++i) code |= static_cast<uint16_t>(neg[i] << (8 + i));
  return code;
}

uint8_t e8_shell_nearest_avx2(const float (&table)[256][8], const float x[8]) {
  // Transposed copy of the table and squared norms, built once per thread.
  alignas(32) static thread_local float tt[8][256], n2[256];
  static thread_local bool init = false;
  if (!init) {
    for (int k = 0; k < 256; ++k) {
      float s = 0;
      for (int i = 0; i < 8; ++i) tt[i][k] = table[k][i], s += table[k][i] * table[k][i];
      n2[k] = s;
    }
    init = true;
  }
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
