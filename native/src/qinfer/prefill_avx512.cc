// AVX-512 VNNI microkernel of the int8 prefill GEMM (prefill.h): 16 tokens per zmm lane set, up to
// 2 token groups x 6 rows per call: 12 int32 accumulators (one block of 32 at a time), 12 float
// accumulators, 2 x vectors; each weight dword (4 int8 of one row) is broadcast from memory into
// vpdpbusd. Compiled with AVX-512 F/BW/VL/VBMI/VNNI; called only when cpu_features().avx512.
#include <immintrin.h>

#include "qinfer/prefill.h"

namespace quip::qinfer {
namespace {

template <int NG, int NR>
void tile_fixed(const PrefillX& px, const float* d, int g0, int b0, int nb, const int8_t* w, size_t ldw,
                const int32_t* comp, size_t ldcomp, float* C, size_t ldc) {
  const size_t steps = static_cast<size_t>(px.k32 / 4);
  const uint8_t* xg[NG];
  for (int v = 0; v < NG; ++v) xg[v] = px.q.data() + ((g0 + v) * steps + static_cast<size_t>(b0) * 8) * 64;
  __m512 af[NG][NR];
  for (int v = 0; v < NG; ++v)
    for (int r = 0; r < NR; ++r) af[v][r] = _mm512_loadu_ps(C + r * ldc + (g0 + v) * 16);
  for (int j = 0; j < nb; ++j) {
    __m512i ai[NG][NR];
    for (int r = 0; r < NR; ++r) {
      const __m512i c = _mm512_set1_epi32(comp[r * ldcomp + j]);
      for (int v = 0; v < NG; ++v) ai[v][r] = c;
    }
    const int8_t* wj = w + 32 * j;
#pragma GCC unroll 8
    for (int s = 0; s < 8; ++s) {
      __m512i xv[NG];
      for (int v = 0; v < NG; ++v) xv[v] = _mm512_loadu_si512(xg[v] + (static_cast<size_t>(j) * 8 + s) * 64);
      for (int r = 0; r < NR; ++r) {
        int32_t wd;
        __builtin_memcpy(&wd, wj + r * ldw + 4 * s, 4);
        const __m512i wb = _mm512_set1_epi32(wd);
        for (int v = 0; v < NG; ++v) ai[v][r] = _mm512_dpbusd_epi32(ai[v][r], xv[v], wb);
      }
    }
    const float* dj = d + static_cast<size_t>(b0 + j) * px.tpad + g0 * 16;
    for (int v = 0; v < NG; ++v) {
      const __m512 dv = _mm512_loadu_ps(dj + v * 16);
      for (int r = 0; r < NR; ++r) af[v][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[v][r]), dv, af[v][r]);
    }
  }
  for (int v = 0; v < NG; ++v)
    for (int r = 0; r < NR; ++r) _mm512_storeu_ps(C + r * ldc + (g0 + v) * 16, af[v][r]);
}

template <int NG>
void tile_rows(const PrefillX& px, const float* d, int g0, int b0, int nb, const int8_t* w, size_t ldw,
               const int32_t* comp, size_t ldcomp, int nr, float* C, size_t ldc) {
  switch (nr) {
    case 6: return tile_fixed<NG, 6>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, C, ldc);
    case 5: return tile_fixed<NG, 5>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, C, ldc);
    case 4: return tile_fixed<NG, 4>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, C, ldc);
    case 3: return tile_fixed<NG, 3>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, C, ldc);
    case 2: return tile_fixed<NG, 2>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, C, ldc);
    default: return tile_fixed<NG, 1>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, C, ldc);
  }
}

void tile_avx512(const PrefillX& px, const float* d, int g0, int ng, int b0, int nb, const int8_t* w, size_t ldw,
                 const int32_t* comp, size_t ldcomp, int nr, float* C, size_t ldc) {
  if (ng == 2) tile_rows<2>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, nr, C, ldc);
  else tile_rows<1>(px, d, g0, b0, nb, w, ldw, comp, ldcomp, nr, C, ldc);
}

// E8P codes -> int8 4 Q, 32 codes per step, no per-code scalar work. E8P's magnitudes are 1/2, 3/2
// or 5/2 (level 0, 1, 2), so a pattern is 16 bits of levels (2 per coordinate), and the parity that
// fixes coordinate 7's sign is the parity of the level sum, i.e. of popcount(levels & 0x5555):
//   - four vpermi2w and three blends look up the 32 codes' level words (a 256-word table); GFNI
//     gives each byte's parity of (levels & 0x5555) ^ (high byte & 0x7F), folded to one bit per code:
//     coordinate 7's sign;
//   - per 8 codes, one vpermt2w builds a qword per code: levels | high byte << 16 | sign 7 << 24, and
//     vpmultishiftqb moves coordinate j's level bits (2j), its sign bit (16 + j; 24 for j = 7) and
//     the shift bit (23) to the low bits of byte j;
//   - byte shuffles turn levels into 4 |Q| = 2, 6, 10 and the shift bit into +1 / -1; the sign is
//     applied as (m ^ s) - s with s = 0 or -1.
struct LevelTable {
  __m512i w[8];       // the 256 level words
  __m512i interleave[4];  // vpermt2w indices: qword i of step q = words (lv[8q + i], hp[8q + i], 0, 0)
};
const LevelTable& level_table() {
  static const LevelTable L = [] {
    LevelTable t;
    alignas(64) uint16_t words[256];
    const PrefillInt8Tables& T = prefill_int8_tables();
    for (int i = 0; i < 256; ++i) {
      uint16_t v = 0;
      for (int j = 0; j < 8; ++j) {
        int m = static_cast<int8_t>(static_cast<uint8_t>(T.mag[i] >> (8 * j)));
        if (m < 0) m = -m;
        v |= static_cast<uint16_t>(((m - 2) / 4) << (2 * j));  // 2, 6, 10 -> 0, 1, 2
      }
      words[i] = v;
    }
    for (int k = 0; k < 8; ++k) t.w[k] = _mm512_load_si512(words + 32 * k);
    for (int q = 0; q < 4; ++q) {
      alignas(64) uint16_t idx[32];
      for (int i = 0; i < 8; ++i) {
        idx[4 * i] = static_cast<uint16_t>(8 * q + i);           // from lv
        idx[4 * i + 1] = static_cast<uint16_t>(32 + 8 * q + i);  // from hp
        idx[4 * i + 2] = idx[4 * i + 3] = 0;                     // zeroed by the mask
      }
      t.interleave[q] = _mm512_load_si512(idx);
    }
    return t;
  }();
  return L;
}

void decode_e8p_avx512(const uint16_t* c, int n, int8_t* out, int32_t* bsum) {
  const LevelTable& L = level_table();
  const __m512i lo_mask = _mm512_set1_epi16(0xFF), b6 = _mm512_set1_epi16(0x40), b7 = _mm512_set1_epi16(0x80);
  const __m512i odd_levels = _mm512_set1_epi16(0x5555), sign_bits = _mm512_set1_epi16(0x7F), one16 = _mm512_set1_epi16(1);
  const __m512i ctrl_lvl = _mm512_set1_epi64(0x0E0C0A0806040200ll);
  const __m512i ctrl_sgn = _mm512_set1_epi64(0x1816151413121110ll);  // byte 7: bit 24 (sign 7)
  const __m512i ctrl_sh = _mm512_set1_epi64(0x1717171717171717ll);
  const __m512i par_A = _mm512_set1_epi64(static_cast<long long>(0xFF00000000000000ull));  // bit 0 = parity of the byte
  const __m512i mag_tbl = _mm512_broadcast_i32x4(_mm_setr_epi8(2, 6, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  const __m512i sh_tbl = _mm512_broadcast_i32x4(_mm_setr_epi8(1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i three = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  const __mmask32 keep = 0x33333333u;
  for (int g = 0; g < n; g += 32) {
    const __m512i codes = _mm512_loadu_si512(c + g);
    const __m512i lo = _mm512_and_si512(codes, lo_mask), hi = _mm512_srli_epi16(codes, 8);
    const __m512i t0 = _mm512_permutex2var_epi16(L.w[0], lo, L.w[1]);
    const __m512i t1 = _mm512_permutex2var_epi16(L.w[2], lo, L.w[3]);
    const __m512i t2 = _mm512_permutex2var_epi16(L.w[4], lo, L.w[5]);
    const __m512i t3 = _mm512_permutex2var_epi16(L.w[6], lo, L.w[7]);
    const __mmask32 m6 = _mm512_test_epi16_mask(lo, b6), m7 = _mm512_test_epi16_mask(lo, b7);
    const __m512i lv = _mm512_mask_blend_epi16(m7, _mm512_mask_blend_epi16(m6, t0, t1), _mm512_mask_blend_epi16(m6, t2, t3));
    // Coordinate 7's sign per code: parity of the odd levels and of the 7 sign bits.
    const __m512i pin = _mm512_xor_si512(_mm512_and_si512(lv, odd_levels), _mm512_and_si512(hi, sign_bits));
    const __m512i pb = _mm512_gf2p8affine_epi64_epi8(pin, par_A, 0);
    const __m512i p7 = _mm512_and_si512(_mm512_xor_si512(pb, _mm512_srli_epi16(pb, 8)), one16);
    const __m512i hp = _mm512_or_si512(hi, _mm512_slli_epi16(p7, 8));  // high byte | sign 7 << 8
    for (int q = 0; q < 4; ++q) {
      const __m512i Q = _mm512_maskz_permutex2var_epi16(keep, lv, L.interleave[q], hp);
      const __m512i mag = _mm512_shuffle_epi8(mag_tbl, _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl_lvl, Q), three));
      const __m512i neg = _mm512_sub_epi8(zero, _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl_sgn, Q), one));
      const __m512i sh = _mm512_shuffle_epi8(sh_tbl, _mm512_and_si512(_mm512_multishift_epi64_epi8(ctrl_sh, Q), one));
      const __m512i v = _mm512_add_epi8(_mm512_sub_epi8(_mm512_xor_si512(mag, neg), neg), sh);
      _mm512_storeu_si512(out + 8 * (g + 8 * q), v);
      // Codes 8q .. 8q + 7 are blocks 2q (qwords 0-3) and 2q + 1 (qwords 4-7): sum each half into its
      // first qword.
      __m512i a = _mm512_sad_epu8(_mm512_xor_si512(v, bias), zero);
      a = _mm512_add_epi64(a, _mm512_shuffle_epi32(a, _MM_PERM_BADC));
      a = _mm512_add_epi64(a, _mm512_shuffle_i64x2(a, a, _MM_SHUFFLE(2, 3, 0, 1)));
      bsum[g / 4 + 2 * q] = static_cast<int32_t>(_mm_cvtsi128_si64(_mm512_castsi512_si128(a))) - 32 * 128;
      bsum[g / 4 + 2 * q + 1] = static_cast<int32_t>(_mm_cvtsi128_si64(_mm512_extracti32x4_epi32(a, 2))) - 32 * 128;
    }
  }
}

}  // namespace

const PrefillKernels& prefill_kernels_avx512() {
  static const PrefillKernels k{tile_avx512, "avx512-vnni", decode_e8p_avx512};
  return k;
}

}  // namespace quip::qinfer
