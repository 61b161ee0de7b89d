// AVX2 + FMA decode-matvec (compiled with -mavx2 -mfma; called only when cpu_features().avx2).
// One E8P group of 8 weights is one 256-bit vector:
//   w = (S'[code & 0xFF] XOR signmask[code >> 8]) + shift[code >> 15]
// The matvec leaves the shift out of the per-group work (it adds +-1/4 sum(x_g) per row from group
// sums), so a group costs two L1 table loads, a XOR and one FMA against x; 8 rows share each load of
// x (RVQ stages are summed per group into one accumulator per row). About 1.4 cycles per group and
// core on Zen 4 (E8P), 2.1 (RVQ3), 2.9 (RVQ4): the scalar work of splitting codes into table
// offsets is the bound, which is why codes are read 64 bits (4 groups) at a time. Tried and slower
// here: offsets precomputed with SIMD into a buffer, index bytes loaded straight from memory, one
// 64K-entry int8 table (L2-resident).
// Scalar RTN levels are unpacked with variable shifts: (word >> (b*lane)) & mask - c.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "qinfer/decode.h"

namespace quip::qinfer {

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline __m256 e8p_vec(const DecodeTables& T, uint16_t c) {
  const unsigned lo = c & 0xFF, hi = c >> 8;
  const __m256 a = _mm256_load_ps(T.mag[lo]);
  const __m256 s = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(T.signmask[hi])));
  return _mm256_add_ps(_mm256_xor_ps(a, s), _mm256_load_ps(T.shift_hb[hi]));
}

// Scalar levels of one group: b bytes -> 8 floats l - (2^b - 1) / 2.
static inline __m256 scalar_vec(const uint8_t* p, int b, __m256i shifts, __m256i mask, __m256 center) {
  uint32_t word = 0;
  std::memcpy(&word, p, static_cast<size_t>(b));
  const __m256i l = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(word)), shifts), mask);
  return _mm256_sub_ps(_mm256_cvtepi32_ps(l), center);
}

// Sum over groups of shift(code_g) * sum(x_g) = sum_g (+-1/4 sum(x_g)): gq[g] = sum(x_g) / 4 with its
// sign flipped where bit 15 of the code is set, 8 groups per step (the shift never enters the
// per-group vector work).
static inline float shift_term(const uint16_t* c, const float* gq, int groups) {
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  __m256 acc = _mm256_setzero_ps();
  int g = 0;
  for (; g + 8 <= groups; g += 8) {
    const __m256i codes = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + g)));
    const __m256 flip = _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(codes, 16), sign));
    acc = _mm256_add_ps(acc, _mm256_xor_ps(_mm256_loadu_ps(gq + g), flip));
  }
  float t = hsum(acc);
  for (; g < groups; ++g) t += (c[g] >> 15) ? -gq[g] : gq[g];
  return t;
}

// One group of NR rows: w = S'[lo] XOR signmask[hi & 0x7F] (the shift bit ignored: shift_term adds
// it), accumulated against x_g. `c` holds 4 consecutive codes of one row; `sh` picks one of them.
#define QUIP_E8P_FMA(acc, c, sh, xv)                                                                              \
  do {                                                                                                         \
    const unsigned lo_ = static_cast<unsigned>((c) >> (sh)) & 0xFFu, hi_ = static_cast<unsigned>((c) >> ((sh) + 8)) & 0x7Fu; \
    const __m256 w_ = _mm256_xor_ps(_mm256_load_ps(mag + 8 * lo_), _mm256_load_ps(sgn + 8 * hi_));                 \
    (acc) = _mm256_fmadd_ps(w_, (xv), (acc));                                                                  \
  } while (0)

// RVQ4: one group of both stages as w = w1 + w2 / s2 (one FMA) before the FMA against x, so a row
// keeps one accumulator and 8 rows fit the registers.
#define QUIP_RVQ4_FMA(acc, c, d, sh, xv)                                                                          \
  do {                                                                                                         \
    const unsigned lo_ = static_cast<unsigned>((c) >> (sh)) & 0xFFu, hi_ = static_cast<unsigned>((c) >> ((sh) + 8)) & 0x7Fu; \
    const unsigned lo2_ = static_cast<unsigned>((d) >> (sh)) & 0xFFu, hi2_ = static_cast<unsigned>((d) >> ((sh) + 8)) & 0x7Fu; \
    const __m256 w1_ = _mm256_xor_ps(_mm256_load_ps(mag + 8 * lo_), _mm256_load_ps(sgn + 8 * hi_));               \
    const __m256 w2_ = _mm256_xor_ps(_mm256_load_ps(mag + 8 * lo2_), _mm256_load_ps(sgn + 8 * hi2_));             \
    (acc) = _mm256_fmadd_ps(_mm256_fmadd_ps(w2_, inv, w1_), (xv), (acc));                                      \
  } while (0)

// RVQ3: w = w1 + shell[e] / s2 likewise (the shell stage has no shift).
#define QUIP_RVQ3_FMA(acc, c, e, sh, xv)                                                                          \
  do {                                                                                                         \
    const unsigned lo_ = static_cast<unsigned>((c) >> (sh)) & 0xFFu, hi_ = static_cast<unsigned>((c) >> ((sh) + 8)) & 0x7Fu; \
    const __m256 w1_ = _mm256_xor_ps(_mm256_load_ps(mag + 8 * lo_), _mm256_load_ps(sgn + 8 * hi_));               \
    (acc) = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_load_ps(shell + 8 * (e)), inv, w1_), (xv), (acc));          \
  } while (0)

// NR rows of E8P / RVQ codes against one x; gq as for shift_term. Codes are read 4 groups (64 bits)
// per row at a time and split in registers, rows addressed from one base pointer (no pointer array
// to spill), so a group costs one L1 load each for magnitude and sign, a XOR and an FMA.
template <int NR, CodeKind K>
static void rows_e8p(const QCodes& q, const float* x, const float* gq, int r, float* y) {
  const DecodeTables& T = decode_tables();
  const float* mag = &T.mag[0][0];
  const float* sgn = reinterpret_cast<const float*>(&T.signmask[0][0]);
  const float* shell = &T.shell[0][0];
  const __m256 inv = _mm256_set1_ps(q.residual_inv_scale);
  const int G = q.groups;
  const size_t base = static_cast<size_t>(r) * G;
  const uint16_t* c1 = q.primary + base;
  const uint16_t* r16 = K == CodeKind::RVQ4 ? static_cast<const uint16_t*>(q.residual) + base : nullptr;
  const uint8_t* r8 = K == CodeKind::RVQ3 ? static_cast<const uint8_t*>(q.residual) + base : nullptr;
  __m256 acc[NR];
  for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
  int g = 0;
  for (; g + 4 <= G; g += 4) {
    const __m256 x0 = _mm256_loadu_ps(x + 8 * g), x1 = _mm256_loadu_ps(x + 8 * g + 8);
    const __m256 x2 = _mm256_loadu_ps(x + 8 * g + 16), x3 = _mm256_loadu_ps(x + 8 * g + 24);
    for (int i = 0; i < NR; ++i) {
      uint64_t c;
      std::memcpy(&c, c1 + static_cast<size_t>(i) * G + g, 8);
      if (K == CodeKind::RVQ4) {
        uint64_t d;
        std::memcpy(&d, r16 + static_cast<size_t>(i) * G + g, 8);
        QUIP_RVQ4_FMA(acc[i], c, d, 0, x0);
        QUIP_RVQ4_FMA(acc[i], c, d, 16, x1);
        QUIP_RVQ4_FMA(acc[i], c, d, 32, x2);
        QUIP_RVQ4_FMA(acc[i], c, d, 48, x3);
      } else if (K == CodeKind::RVQ3) {
        uint32_t d;
        std::memcpy(&d, r8 + static_cast<size_t>(i) * G + g, 4);
        QUIP_RVQ3_FMA(acc[i], c, d & 0xFF, 0, x0);
        QUIP_RVQ3_FMA(acc[i], c, (d >> 8) & 0xFF, 16, x1);
        QUIP_RVQ3_FMA(acc[i], c, (d >> 16) & 0xFF, 32, x2);
        QUIP_RVQ3_FMA(acc[i], c, d >> 24, 48, x3);
      } else {
        QUIP_E8P_FMA(acc[i], c, 0, x0);
        QUIP_E8P_FMA(acc[i], c, 16, x1);
        QUIP_E8P_FMA(acc[i], c, 32, x2);
        QUIP_E8P_FMA(acc[i], c, 48, x3);
      }
    }
  }
  for (; g < G; ++g) {
    const __m256 xv = _mm256_loadu_ps(x + 8 * g);
    for (int i = 0; i < NR; ++i) {
      const uint64_t c = c1[static_cast<size_t>(i) * G + g];
      if (K == CodeKind::RVQ4) {
        const uint64_t d = r16[static_cast<size_t>(i) * G + g];
        QUIP_RVQ4_FMA(acc[i], c, d, 0, xv);
      } else if (K == CodeKind::RVQ3) {
        QUIP_RVQ3_FMA(acc[i], c, r8[static_cast<size_t>(i) * G + g], 0, xv);
      } else {
        QUIP_E8P_FMA(acc[i], c, 0, xv);
      }
    }
  }
  for (int i = 0; i < NR; ++i) {
    const size_t off = static_cast<size_t>(i) * G;
    const float first = hsum(acc[i]) + shift_term(c1 + off, gq, G);
    if (K == CodeKind::E8P) y[i] = first;
    else if (K == CodeKind::RVQ4) y[i] = first + shift_term(r16 + off, gq, G) * q.residual_inv_scale;
    else y[i] = first;
  }
}
#undef QUIP_E8P_FMA
#undef QUIP_RVQ4_FMA
#undef QUIP_RVQ3_FMA

template <int NR>
static void rows_scalar(const QCodes& q, const float* x, int r, float* y) {
  const int b = q.scalar_bits;
  const __m256i shifts = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(b));
  const __m256i mask = _mm256_set1_epi32((1 << b) - 1);
  const __m256 center = _mm256_set1_ps(static_cast<float>((1 << b) - 1) * 0.5f);
  const size_t row_bytes = static_cast<size_t>(q.groups) * b;
  __m256 acc[NR];
  for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
  for (int g = 0; g < q.groups; ++g) {
    const __m256 xv = _mm256_loadu_ps(x + 8 * g);
    for (int i = 0; i < NR; ++i) {
      const uint8_t* p = q.packed + (r + i) * row_bytes + static_cast<size_t>(g) * b;
      acc[i] = _mm256_fmadd_ps(scalar_vec(p, b, shifts, mask, center), xv, acc[i]);
    }
  }
  for (int i = 0; i < NR; ++i) y[i] = hsum(acc[i]);
}

template <int NR>
static void rows_any(const QCodes& q, const float* x, const float* gq, int r, float* y) {
  switch (q.kind) {
    case CodeKind::E8P: rows_e8p<NR, CodeKind::E8P>(q, x, gq, r, y); return;
    case CodeKind::RVQ3: rows_e8p<NR, CodeKind::RVQ3>(q, x, gq, r, y); return;
    case CodeKind::RVQ4: rows_e8p<NR, CodeKind::RVQ4>(q, x, gq, r, y); return;
    case CodeKind::Scalar: rows_scalar<NR>(q, x, r, y); return;
  }
}

static void matvec_avx2(const QCodes& q, const float* x, int r0, int r1, float* y) {
  // gq[g] = sum(x_g) / 4, shared by every row of this range.
  thread_local std::vector<float> gq;
  gq.resize(q.groups);
  for (int g = 0; g < q.groups; ++g) {
    const float* xg = x + 8 * g;
    gq[g] = 0.25f * (((xg[0] + xg[1]) + (xg[2] + xg[3])) + ((xg[4] + xg[5]) + (xg[6] + xg[7])));
  }
  int r = r0;
  // 8 rows share each load of x (one accumulator per row; RVQ stages are summed per group).
  for (; r + 8 <= r1; r += 8) rows_any<8>(q, x, gq.data(), r, y + (r - r0));
  for (; r + 4 <= r1; r += 4) rows_any<4>(q, x, gq.data(), r, y + (r - r0));
  for (; r < r1; ++r) rows_any<1>(q, x, gq.data(), r, y + (r - r0));
}

static void decode_row_avx2(const QCodes& q, int r, float* w) {
  const DecodeTables& T = decode_tables();
  const size_t base = static_cast<size_t>(r) * q.groups;
  if (q.kind == CodeKind::Scalar) {
    const int b = q.scalar_bits;
    const __m256i shifts = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(b));
    const __m256i mask = _mm256_set1_epi32((1 << b) - 1);
    const __m256 center = _mm256_set1_ps(static_cast<float>((1 << b) - 1) * 0.5f);
    const uint8_t* p = q.packed + base * b;
    for (int g = 0; g < q.groups; ++g) _mm256_storeu_ps(w + 8 * g, scalar_vec(p + static_cast<size_t>(g) * b, b, shifts, mask, center));
    return;
  }
  const __m256 inv = _mm256_set1_ps(q.residual_inv_scale);
  for (int g = 0; g < q.groups; ++g) {
    __m256 v = e8p_vec(T, q.primary[base + g]);
    // Same rounding as the scalar reference: w = q1 + (q2 * inv), not fused.
    if (q.kind == CodeKind::RVQ4)
      v = _mm256_add_ps(v, _mm256_mul_ps(e8p_vec(T, static_cast<const uint16_t*>(q.residual)[base + g]), inv));
    else if (q.kind == CodeKind::RVQ3)
      v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_load_ps(T.shell[static_cast<const uint8_t*>(q.residual)[base + g]]), inv));
    _mm256_storeu_ps(w + 8 * g, v);
  }
}

const DecodeKernels& decode_kernels_avx2() {
  static const DecodeKernels k{matvec_avx2, decode_row_avx2};
  return k;
}

}  // namespace quip::qinfer
