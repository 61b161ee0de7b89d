// AVX-512 decode-matvec with int8 activations (compiled with AVX-512 F/BW/VL/VBMI/VNNI + GFNI; called
// only when cpu_features().avx512). x comes prepared by prepare_x: rounded to int8 with one scale per
// 32 values and transposed per chunk of 64 groups (coordinate j of the 64 groups in one register),
// so a chunk of one row costs a fixed handful of 512-bit instructions and no scalar index work:
//   - the 64 codes are split into pattern bytes and sign bytes by two byte permutes;
//   - each pattern byte looks up its 8 magnitude levels (m = (2|a| - 1) / 2, 2 bits each, packed 4 per
//     byte) in two 256-byte tables held as 128-byte permute pairs;
//   - GFNI turns coordinate j's 2 level bits into the value 2|a| = 2m + 1 (one affine per coordinate)
//     and computes the parity that gives coordinate 7 its sign;
//   - the signs go onto x (masked negate), and VNNI multiplies the unsigned values with the signed x,
//     4 products per 32-bit lane: lane l ends up with the 32 values of block l, scaled by d[l].
// The +-1/4 shift adds +-sum(x_g) / 4 per group from the float x (gq), picked by the codes' bit 15.
// RVQ3's shell stage looks up 2 p + 4 (0..8, unsigned; two coordinates per byte) and takes 4 sum(q)
// back out.
// Scalar RTN codes have no int8 path here; they go to the AVX2 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "qinfer/decode.h"

// GCC 12 reports its own intrinsics' placeholder `__m512 __Y = __Y` (_mm512_undefined_ps, used by
// _mm512_cvtepi32_ps and _mm512_reduce_add_ps) as maybe-uninitialized once they are inlined here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace quip::qinfer {

namespace {

struct Tables512 {
  alignas(64) uint8_t mlo[256];        // levels of coordinates 0-3 (coordinate j at bits 2j, 2j + 1)
  alignas(64) uint8_t mhi[256];        // levels of coordinates 4-7
  alignas(64) uint8_t shell[4][256];   // RVQ3 residual: 2 * shell[idx][j] + 4 (0..8) for j = 2k (low
                                       // nibble) and j = 2k + 1 (high nibble) in table k
};

Tables512 build_tables512() {
  const DecodeTables& T = decode_tables();
  Tables512 t{};
  for (int i = 0; i < 256; ++i) {
    for (int j = 0; j < 8; ++j) {
      const int level = (static_cast<int>(std::lround(2.0f * std::fabs(T.mag[i][j]))) - 1) / 2;
      if (j < 4) t.mlo[i] = static_cast<uint8_t>(t.mlo[i] | level << (2 * j));
      else t.mhi[i] = static_cast<uint8_t>(t.mhi[i] | level << (2 * (j - 4)));
      t.shell[j / 2][i] = static_cast<uint8_t>(t.shell[j / 2][i] | (std::lround(2.0f * T.shell[i][j]) + 4) << (4 * (j % 2)));
    }
  }
  return t;
}

const Tables512& tables512() {
  static const Tables512 t = build_tables512();
  return t;
}

// GF(2) affine matrices (output bit i = parity of the matrix's byte 7 - i AND the input byte).
constexpr uint64_t level_matrix(int j) {  // bits 2j, 2j + 1 -> bits 1, 2 (with +1: 2m + 1)
  return (uint64_t{1} << (2 * j)) << 48 | (uint64_t{2} << (2 * j)) << 40;
}
constexpr uint64_t kParity7F = 0x7F;  // bit 7 = parity of the 7 sign bits
constexpr uint64_t kParity55 = 0x55;  // bit 7 = parity of the four levels' low bits
constexpr uint64_t kHighNibble = 0x1020408000000000;  // bits 4-7 -> bits 0-3

struct Consts {
  __m512i even, odd;   // byte selectors: low / high bytes of 64 uint16 codes
  __m512i level[4];
  __m512i p7f, p55, high_nibble, low_nibble;
  __m512i bit[7];
};

Consts make_consts() {
  Consts k;
  alignas(64) uint8_t e[64], o[64];
  for (int i = 0; i < 64; ++i) {
    e[i] = static_cast<uint8_t>((2 * i) & 127);
    o[i] = static_cast<uint8_t>((2 * i + 1) & 127);
  }
  k.even = _mm512_load_si512(e);
  k.odd = _mm512_load_si512(o);
  for (int j = 0; j < 4; ++j) k.level[j] = _mm512_set1_epi64(static_cast<long long>(level_matrix(j)));
  k.p7f = _mm512_set1_epi64(static_cast<long long>(kParity7F));
  k.p55 = _mm512_set1_epi64(static_cast<long long>(kParity55));
  k.high_nibble = _mm512_set1_epi64(static_cast<long long>(kHighNibble));
  k.low_nibble = _mm512_set1_epi8(0x0F);
  for (int j = 0; j < 7; ++j) k.bit[j] = _mm512_set1_epi8(static_cast<char>(1 << j));
  return k;
}

// 256-entry byte table lookup for 64 indices: two 128-entry permutes, picked by the index's bit 7.
inline __m512i lut256(__m512i idx, __mmask64 upper, const uint8_t* table) {
  const __m512i* t = reinterpret_cast<const __m512i*>(table);
  const __m512i a = _mm512_permutex2var_epi8(_mm512_load_si512(t), idx, _mm512_load_si512(t + 1));
  const __m512i b = _mm512_permutex2var_epi8(_mm512_load_si512(t + 2), idx, _mm512_load_si512(t + 3));
  return _mm512_mask_blend_epi8(upper, a, b);
}

// The n (<= 64) uint16 codes at c, split into low bytes (pattern index) and high bytes (signs, shift);
// missing codes read as 0 (their x is zero).
inline void load_codes(const uint16_t* c, int n, const Consts& K, __m512i& lo, __m512i& hi) {
  __m512i a, b;
  if (n == 64) {
    a = _mm512_loadu_si512(c);
    b = _mm512_loadu_si512(c + 32);
  } else {
    const __mmask32 m0 = n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << n) - 1);
    const __mmask32 m1 = n <= 32 ? 0 : static_cast<__mmask32>((uint64_t{1} << (n - 32)) - 1);
    a = _mm512_maskz_loadu_epi16(m0, c);
    b = _mm512_maskz_loadu_epi16(m1, c + 32);
  }
  lo = _mm512_permutex2var_epi8(a, K.even, b);
  hi = _mm512_permutex2var_epi8(a, K.odd, b);
}

// acc += per block of 4 groups, sum of 2 (s .* |a|) * q over one chunk of E8P codes (lo, hi).
inline __m512i e8p_chunk(__m512i acc, __m512i lo, __m512i hi, const int8_t* xq, const Tables512& T, const Consts& K) {
  const __mmask64 upper = _mm512_movepi8_mask(lo);
  const __m512i ml = lut256(lo, upper, T.mlo), mh = lut256(lo, upper, T.mhi);
  // Coordinate 7 is negative when the 7 sign bits and the pattern's level sum have unlike parity.
  const __m512i par = _mm512_ternarylogic_epi64(_mm512_gf2p8affine_epi64_epi8(hi, K.p7f, 0),
                                                _mm512_gf2p8affine_epi64_epi8(ml, K.p55, 0),
                                                _mm512_gf2p8affine_epi64_epi8(mh, K.p55, 0), 0x96);
  const __m512i zero = _mm512_setzero_si512();
  for (int j = 0; j < 8; ++j) {
    const __m512i w = _mm512_gf2p8affine_epi64_epi8(j < 4 ? ml : mh, K.level[j & 3], 1);
    const __mmask64 neg = j < 7 ? _mm512_test_epi8_mask(hi, K.bit[j]) : _mm512_movepi8_mask(par);
    const __m512i x = _mm512_loadu_si512(xq + 64 * j);
    acc = _mm512_dpbusd_epi32(acc, w, _mm512_mask_sub_epi8(x, neg, zero, x));
  }
  return acc;
}

// acc += per block, sum of (2 p + 4) * q over one chunk of shell indices (two coordinates per lookup).
inline __m512i shell_chunk(__m512i acc, __m512i idx, const int8_t* xq, const Tables512& T, const Consts& K) {
  const __mmask64 upper = _mm512_movepi8_mask(idx);
  for (int k = 0; k < 4; ++k) {
    const __m512i v = lut256(idx, upper, T.shell[k]);
    acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(v, K.low_nibble), _mm512_loadu_si512(xq + 128 * k));
    acc = _mm512_dpbusd_epi32(acc, _mm512_gf2p8affine_epi64_epi8(v, K.high_nibble, 0), _mm512_loadu_si512(xq + 128 * k + 64));
  }
  return acc;
}

// The shift bits of one chunk (bit 7 of the high bytes) as sum over set bits of gq[g], 16 at a time.
inline __m512 shift_chunk(__m512 acc, __m512i hi, const float* gq, int n) {
  const __mmask64 s = _mm512_movepi8_mask(hi);
  for (int k = 0; k < 4 && 16 * k < n; ++k) {
    const __mmask16 m = static_cast<__mmask16>(s >> (16 * k));
    acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(n >= 16 * (k + 1) ? 0xFFFF : static_cast<__mmask16>((1u << (n - 16 * k)) - 1), gq + 16 * k));
  }
  return acc;
}

constexpr int kAhead = 2048;  // bytes of codes fetched ahead (1024, 4096: 4-5% slower on Zen 4)

template <CodeKind Kind>
void rows_q8(const QCodes& q, const PreparedX& px, int r0, int r1, float* y) {
  const Tables512& T = tables512();
  static const Consts K = make_consts();
  const int G = q.groups;
  const __m512i zero = _mm512_setzero_si512();
  for (int r = r0; r < r1; ++r) {
    const size_t base = static_cast<size_t>(r) * G;
    const uint16_t* c1 = q.primary + base;
    const uint16_t* r16 = Kind == CodeKind::RVQ4 ? static_cast<const uint16_t*>(q.residual) + base : nullptr;
    const uint8_t* r8 = Kind == CodeKind::RVQ3 ? static_cast<const uint8_t*>(q.residual) + base : nullptr;
    __m512 f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps();
    for (int c = 0; c < px.chunks; ++c) {
      const int g = 64 * c, n = std::min(64, G - g);
      const int8_t* xq = px.q.data() + 512 * static_cast<size_t>(c);
      const __m512 d = _mm512_loadu_ps(px.d.data() + 16 * static_cast<size_t>(c));
      // The codes stream from memory once per token: fetch ahead (rows are contiguous, so past a
      // row's end this fetches the next row's start).
      _mm_prefetch(reinterpret_cast<const char*>(c1 + g) + kAhead, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c1 + g) + kAhead + 64, _MM_HINT_T0);
      if (Kind == CodeKind::RVQ4) {
        _mm_prefetch(reinterpret_cast<const char*>(r16 + g) + kAhead, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(r16 + g) + kAhead + 64, _MM_HINT_T0);
      } else if (Kind == CodeKind::RVQ3) {
        _mm_prefetch(reinterpret_cast<const char*>(r8 + g) + kAhead / 2, _MM_HINT_T0);
      }
      __m512i lo, hi;
      load_codes(c1 + g, n, K, lo, hi);
      f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(e8p_chunk(zero, lo, hi, xq, T, K)), d, f1);
      s1 = shift_chunk(s1, hi, px.gq.data() + g, n);
      if (Kind == CodeKind::RVQ4) {
        load_codes(r16 + g, n, K, lo, hi);
        f2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(e8p_chunk(zero, lo, hi, xq, T, K)), d, f2);
        s2 = shift_chunk(s2, hi, px.gq.data() + g, n);
      } else if (Kind == CodeKind::RVQ3) {
        const __m512i idx = n == 64 ? _mm512_loadu_si512(r8 + g) : _mm512_maskz_loadu_epi8((uint64_t{1} << n) - 1, r8 + g);
        const __m512i a2 = _mm512_sub_epi32(shell_chunk(zero, idx, xq, T, K), _mm512_loadu_si512(px.bsum4.data() + 16 * static_cast<size_t>(c)));
        f2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), d, f2);
      }
    }
    float v = 0.5f * _mm512_reduce_add_ps(f1) + (px.gq_sum - 2.0f * _mm512_reduce_add_ps(s1));
    if (Kind == CodeKind::RVQ4) v += (0.5f * _mm512_reduce_add_ps(f2) + (px.gq_sum - 2.0f * _mm512_reduce_add_ps(s2))) * q.residual_inv_scale;
    if (Kind == CodeKind::RVQ3) v += 0.5f * _mm512_reduce_add_ps(f2) * q.residual_inv_scale;
    y[r - r0] = v;
  }
}

void matvec_prepared_avx512(const QCodes& q, const PreparedX& px, int r0, int r1, float* y) {
  switch (q.kind) {
    case CodeKind::E8P: rows_q8<CodeKind::E8P>(q, px, r0, r1, y); return;
    case CodeKind::RVQ3: rows_q8<CodeKind::RVQ3>(q, px, r0, r1, y); return;
    case CodeKind::RVQ4: rows_q8<CodeKind::RVQ4>(q, px, r0, r1, y); return;
    case CodeKind::Scalar: decode_kernels_avx2().matvec(q, px.x, r0, r1, y); return;
  }
}

void matvec_avx512(const QCodes& q, const float* x, int r0, int r1, float* y) {
  if (q.kind == CodeKind::Scalar) return decode_kernels_avx2().matvec(q, x, r0, r1, y);
  thread_local PreparedX px;
  prepare_x(x, q.groups, px);
  matvec_prepared_avx512(q, px, r0, r1, y);
}

}  // namespace

const DecodeKernels& decode_kernels_avx512() {
  static const DecodeKernels k{matvec_avx512, decode_kernels_avx2().decode_row, matvec_prepared_avx512};
  return k;
}

}  // namespace quip::qinfer
