// NEON kernels of the engine GEMM (arm64; Advanced SIMD and the float16 conversions are baseline
// there). The scalar reference kernels are in gemm.cc; tests compare the two.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>

#include "runtime/gemm.h"

namespace quip::runtime {
namespace {

// 8 weights as two float32 vectors.
struct F8 {
  float32x4_t lo, hi;
};
inline F8 load8_f32(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
inline F8 load8_f16(const uint16_t* p) {
  const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
  return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
}
inline F8 load8_bf16(const uint16_t* p) {
  const uint16x8_t u = vld1q_u16(p);
  return {vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(u), 16)), vreinterpretq_f32_u32(vshll_high_n_u16(u, 16))};
}

void convert_neon(const void* src, DType dtype, size_t offset, int count, float* dst) {
  int i = 0;
  if (dtype == DType::F32) {
    const float* s = static_cast<const float*>(src) + offset;
    for (; i + 4 <= count; i += 4) vst1q_f32(dst + i, vld1q_f32(s + i));
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(src) + offset;
    for (; i + 8 <= count; i += 8) {
      const F8 v = dtype == DType::F16 ? load8_f16(s + i) : load8_bf16(s + i);
      vst1q_f32(dst + i, v.lo);
      vst1q_f32(dst + i + 4, v.hi);
    }
  }
  for (; i < count; ++i) dst[i] = load_as_f32(src, dtype, offset + i);
}

// NT tokens x NR outputs of dot products along kc, 8 at a time: 2 x 12 accumulators, the X vectors
// and one W pair fit the 32 vector registers.
template <int NT, int NR>
void tile_fixed(const float* x, size_t ldx, const float* w, size_t ldw, int kc, float* y, size_t ldy, bool accumulate) {
  float32x4_t acc[NT][NR][2];
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) acc[t][r][0] = acc[t][r][1] = vdupq_n_f32(0.0f);
  int k = 0;
  for (; k + 8 <= kc; k += 8) {
    F8 xv[NT];
    for (int t = 0; t < NT; ++t) xv[t] = load8_f32(x + t * ldx + k);
    for (int r = 0; r < NR; ++r) {
      const F8 wv = load8_f32(w + r * ldw + k);
      for (int t = 0; t < NT; ++t) {
        acc[t][r][0] = vfmaq_f32(acc[t][r][0], xv[t].lo, wv.lo);
        acc[t][r][1] = vfmaq_f32(acc[t][r][1], xv[t].hi, wv.hi);
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) {
      float s = vaddvq_f32(vaddq_f32(acc[t][r][0], acc[t][r][1]));
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

void tile_neon(const float* x, size_t ldx, int nt, const float* w, size_t ldw, int nr, int kc, float* y, size_t ldy,
               bool accumulate) {
  if (nt == 2) tile_rows<2>(x, ldx, w, ldw, nr, kc, y, ldy, accumulate);
  else tile_rows<1>(x, ldx, w, ldw, nr, kc, y, ldy, accumulate);
}

// Four rows at a time, two vectors each, so eight independent FMA chains hide the latency; weights
// converted in registers.
template <typename Load>
void matvec_rows(const float* x, const WeightView& w, int m0, int m1, float* y, const uint16_t* base16, Load load8) {
  const int K = w.cols;
  int m = m0;
  for (; m + 4 <= m1; m += 4) {
    float32x4_t lo[4], hi[4];
    for (int i = 0; i < 4; ++i) lo[i] = hi[i] = vdupq_n_f32(0.0f);
    const uint16_t* r0 = base16 + static_cast<size_t>(m) * K;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
      const F8 xv = load8_f32(x + k);
      for (int i = 0; i < 4; ++i) {
        const F8 wv = load8(r0 + static_cast<size_t>(i) * K + k);
        lo[i] = vfmaq_f32(lo[i], xv.lo, wv.lo);
        hi[i] = vfmaq_f32(hi[i], xv.hi, wv.hi);
      }
    }
    for (int i = 0; i < 4; ++i) {
      float s = vaddvq_f32(vaddq_f32(lo[i], hi[i]));
      for (int kk = k; kk < K; ++kk) s += x[kk] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m + i) * K + kk);
      y[m + i] = s;
    }
  }
  for (; m < m1; ++m) {
    float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
    const uint16_t* r = base16 + static_cast<size_t>(m) * K;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
      const F8 xv = load8_f32(x + k), wv = load8(r + k);
      lo = vfmaq_f32(lo, xv.lo, wv.lo);
      hi = vfmaq_f32(hi, xv.hi, wv.hi);
    }
    float s = vaddvq_f32(vaddq_f32(lo, hi));
    for (; k < K; ++k) s += x[k] * load_as_f32(w.data, w.dtype, static_cast<size_t>(m) * K + k);
    y[m] = s;
  }
}

float dot_neon(const float* a, const float* b, int n) {
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void matvec_neon(const float* x, const WeightView& w, int m0, int m1, float* y) {
  if (w.dtype == DType::F16) {
    matvec_rows(x, w, m0, m1, y, static_cast<const uint16_t*>(w.data), load8_f16);
  } else if (w.dtype == DType::BF16) {
    matvec_rows(x, w, m0, m1, y, static_cast<const uint16_t*>(w.data), load8_bf16);
  } else {
    const float* base = static_cast<const float*>(w.data);
    for (int m = m0; m < m1; ++m) y[m] = dot_neon(x, base + static_cast<size_t>(m) * w.cols, w.cols);
  }
}

void axpy_neon(float a, const float* x, float* y, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
  for (; i < n; ++i) y[i] += a * x[i];
}

// Head widths that are multiples of 4 up to 128 keep q and the output accumulator in registers
// (or at worst L1); other widths go through the generic helpers.
template <int DV>
void attend_fixed(const float* q, const float* k, const float* v, size_t stride, int npos, float scale, float* scores,
                  float* out) {
  float32x4_t qv[DV];
  for (int i = 0; i < DV; ++i) qv[i] = vld1q_f32(q + 4 * i);
  float mx = -INFINITY;
  for (int j = 0; j < npos; ++j) {
    const float* kj = k + j * stride;
    // Two chains: the reduction along d is latency-bound otherwise.
    float32x4_t a0 = vmulq_f32(qv[0], vld1q_f32(kj)), a1 = vdupq_n_f32(0.0f);
    for (int i = 1; i < DV; ++i) {
      if (i & 1) a1 = vfmaq_f32(a1, qv[i], vld1q_f32(kj + 4 * i));
      else a0 = vfmaq_f32(a0, qv[i], vld1q_f32(kj + 4 * i));
    }
    scores[j] = vaddvq_f32(vaddq_f32(a0, a1)) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < npos; ++j) sum += scores[j] = std::exp(scores[j] - mx);
  float32x4_t o[DV];
  for (int i = 0; i < DV; ++i) o[i] = vdupq_n_f32(0.0f);
  for (int j = 0; j < npos; ++j) {
    const float p = scores[j];
    const float* vj = v + j * stride;
    for (int i = 0; i < DV; ++i) o[i] = vfmaq_n_f32(o[i], vld1q_f32(vj + 4 * i), p);
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < DV; ++i) vst1q_f32(out + 4 * i, vmulq_n_f32(o[i], inv));
}

void attend_neon(const float* q, const float* k, const float* v, size_t stride, int npos, int d, float scale,
                 float* scores, float* out) {
  switch (d) {
    case 8: return attend_fixed<2>(q, k, v, stride, npos, scale, scores, out);
    case 16: return attend_fixed<4>(q, k, v, stride, npos, scale, scores, out);
    case 32: return attend_fixed<8>(q, k, v, stride, npos, scale, scores, out);
    case 64: return attend_fixed<16>(q, k, v, stride, npos, scale, scores, out);
    case 128: return attend_fixed<32>(q, k, v, stride, npos, scale, scores, out);
    default: break;
  }
  float mx = -INFINITY;
  for (int j = 0; j < npos; ++j) {
    scores[j] = dot_neon(q, k + j * stride, d) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < npos; ++j) sum += scores[j] = std::exp(scores[j] - mx);
  std::fill(out, out + d, 0.0f);
  const float inv = 1.0f / sum;
  for (int j = 0; j < npos; ++j) axpy_neon(scores[j] * inv, v + j * stride, out, d);
}

}  // namespace

const GemmKernels& gemm_kernels_neon() {
  static const GemmKernels k{convert_neon, tile_neon, matvec_neon, dot_neon, axpy_neon, attend_neon};
  return k;
}

}  // namespace quip::runtime
