// AVX2 + FMA + F16C kernels of the engine GEMM (compiled with -mavx2 -mfma -mf16c; called only when
// cpu_features().avx2). The scalar reference kernels are in gemm.cc; tests compare the two.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "runtime/gemm.h"

namespace quip::runtime {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 load8_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load8_bf16(const uint16_t* p) {
  __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

void convert_avx2(const void* src, DType dtype, size_t offset, int count, float* dst) {
  int i = 0;
  if (dtype == DType::F32) {
    const float* s = static_cast<const float*>(src) + offset;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(s + i));
  } else if (dtype == DType::F16) {
    const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8_f16(s + i));
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(s + i));
  }
  for (; i < count; ++i) dst[i] = load_as_f32(src, dtype, offset + i);
}

// NT tokens x NR outputs of dot products along kc: 12 accumulators, the X vectors and one W vector
// fit the 16 ymm registers.
template <int NT, int NR>
void tile_fixed(const float* x, size_t ldx, const float* w, size_t ldw, int kc, float* y, size_t ldy, bool accumulate) {
  __m256 acc[NT][NR];
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) acc[t][r] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 xv[NT];
    for (int t = 0; t < NT; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + k);
    for (int r = 0; r < NR; ++r) {
      __m256 wv = _mm256_loadu_ps(w + r * ldw + k);
      for (int t = 0; t < NT; ++t) acc[t][r] = _mm256_fmadd_ps(xv[t], wv, acc[t][r]);
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) {
      float s = hsum(acc[t][r]);
      for (int kk = k; kk < kc; ++kk) s += x[t * ldx + kk] * w[r * ldw + kk];
      float& out = y[t * ldy + r];
      out = accumulate ? out + s : s;
    }
}

template <int NT>
void tile_rows(const float* x, size_t ldx, const float* w, size_t ldw, int nr, int kc, float* y, size_t ldy, bool acc) {
  switch (nr) {
    case 6: tile_fixed<NT, 6>(x, ldx, w, ldw, kc, y, ldy, acc); break;
    case 5: tile_fixed<NT, 5>(x, ldx, w, ldw, kc, y, ldy, acc); break;
    case 4: tile_fixed<NT, 4>(x, ldx, w, ldw, kc, y, ldy, acc); break;
    case 3: tile_fixed<NT, 3>(x, ldx, w, ldw, kc, y, ldy, acc); break;
    case 2: tile_fixed<NT, 2>(x, ldx, w, ldw, kc, y, ldy, acc); break;
    default: tile_fixed<NT, 1>(x, ldx, w, ldw, kc, y, ldy, acc); break;
  }
}

void tile_avx2(const float* x, size_t ldx, int nt, const float* w, size_t ldw, int nr, int kc, float* y, size_t ldy,
               bool accumulate) {
  if (nt == 2) tile_rows<2>(x, ldx, w, ldw, nr, kc, y, ldy, accumulate);
  else tile_rows<1>(x, ldx, w, ldw, nr, kc, y, ldy, accumulate);
}

// Four rows at a time so four independent FMA chains hide the latency; weights converted in registers.
template <typename Load>
void matvec_rows(const float* x, const WeightView& w, int m0, int m1, float* y, const uint16_t* base16, Load load8) {
  const int K = w.cols;
  int m = m0;
  for (; m + 4 <= m1; m += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    const uint16_t* r0 = base16 + static_cast<size_t>(m) * K;
    const uint16_t* r1 = r0 + K;
    const uint16_t* r2 = r1 + K;
    const uint16_t* r3 = r2 + K;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
      __m256 xv = _mm256_loadu_ps(x + k);
      a0 = _mm256_fmadd_ps(xv, load8(r0 + k), a0);
      a1 = _mm256_fmadd_ps(xv, load8(r1 + k), a1);
      a2 = _mm256_fmadd_ps(xv, load8(r2 + k), a2);
      a3 = _mm256_fmadd_ps(xv, load8(r3 + k), a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; k < K; ++k) {
      s0 += x[k] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m) * K + k);
      s1 += x[k] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m + 1) * K + k);
      s2 += x[k] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m + 2) * K + k);
      s3 += x[k] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m + 3) * K + k);
    }
    y[m] = s0; y[m + 1] = s1; y[m + 2] = s2; y[m + 3] = s3;
  }
  for (; m < m1; ++m) {
    __m256 a = _mm256_setzero_ps();
    const uint16_t* r = base16 + static_cast<size_t>(m) * K;
    int k = 0;
    for (; k + 8 <= K; k += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), load8(r + k), a);
    float s = hsum(a);
    for (; k < K; ++k) s += x[k] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m) * K + k);
    y[m] = s;
  }
}

float dot_avx2(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void matvec_avx2(const float* x, const WeightView& w, int m0, int m1, float* y) {
  if (w.dtype == DType::F16) {
    matvec_rows(x, w, m0, m1, y, static_cast<const uint16_t*>(w.data), load8_f16);
  } else if (w.dtype == DType::BF16) {
    matvec_rows(x, w, m0, m1, y, static_cast<const uint16_t*>(w.data), load8_bf16);
  } else {
    const float* base = static_cast<const float*>(w.data);
    for (int m = m0; m < m1; ++m) y[m] = dot_avx2(x, base + static_cast<size_t>(m) * w.cols, w.cols);
  }
}

void axpy_avx2(float a, const float* x, float* y, int n) {
  __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// Head widths that are multiples of 8 keep q and the output accumulator in registers (up to 128
// wide); other widths go through the generic helpers.
template <int DV>
void attend_fixed(const float* q, const float* k, const float* v, size_t stride, int npos, float scale, float* scores,
                  float* out) {
  __m256 qv[DV];
  for (int i = 0; i < DV; ++i) qv[i] = _mm256_loadu_ps(q + 8 * i);
  float mx = -INFINITY;
  for (int j = 0; j < npos; ++j) {
    const float* kj = k + j * stride;
    __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kj));
    for (int i = 1; i < DV; ++i) acc = _mm256_fmadd_ps(qv[i], _mm256_loadu_ps(kj + 8 * i), acc);
    scores[j] = hsum(acc) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < npos; ++j) sum += scores[j] = std::exp(scores[j] - mx);
  __m256 o[DV];
  for (int i = 0; i < DV; ++i) o[i] = _mm256_setzero_ps();
  for (int j = 0; j < npos; ++j) {
    const __m256 p = _mm256_set1_ps(scores[j]);
    const float* vj = v + j * stride;
    for (int i = 0; i < DV; ++i) o[i] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * i), o[i]);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (int i = 0; i < DV; ++i) _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(o[i], inv));
}

void attend_avx2(const float* q, const float* k, const float* v, size_t stride, int npos, int d, float scale,
                 float* scores, float* out) {
  switch (d) {
    case 8: return attend_fixed<1>(q, k, v, stride, npos, scale, scores, out);
    case 16: return attend_fixed<2>(q, k, v, stride, npos, scale, scores, out);
    case 32: return attend_fixed<4>(q, k, v, stride, npos, scale, scores, out);
    case 64: return attend_fixed<8>(q, k, v, stride, npos, scale, scores, out);
    case 128: return attend_fixed<16>(q, k, v, stride, npos, scale, scores, out);
    default: break;
  }
  float mx = -INFINITY;
  for (int j = 0; j < npos; ++j) {
    scores[j] = dot_avx2(q, k + j * stride, d) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < npos; ++j) sum += scores[j] = std::exp(scores[j] - mx);
  std::fill(out, out + d, 0.0f);
  const float inv = 1.0f / sum;
  for (int j = 0; j < npos; ++j) axpy_avx2(scores[j] * inv, v + j * stride, out, d);
}

}  // namespace

const GemmKernels& gemm_kernels_avx2() {
  static const GemmKernels k{convert_avx2, tile_avx2, matvec_avx2, dot_avx2, axpy_avx2, attend_avx2};
  return k;
}

}  // namespace quip::runtime
