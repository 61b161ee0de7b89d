// NEON decode-matvec (arm64). One E8P group of 8 weights is two 128-bit vectors:
//   w = (S'[code & 0xFF] XOR signmask[code >> 8]) + shift[code >> 15]
// the same table arithmetic as the AVX2 kernel (decode_avx2.cc) and the scalar reference
// (decode.cc), and the same structure as the AVX2 matvec: 8 rows share each load of x, codes are
// read 4 groups at a time, and the +-1/4 shift is summed per row from group sums of x (so a group
// costs one magnitude and one sign load, a XOR and an FMA per half).
// Scalar RTN levels are unpacked with per-lane shifts: (word >> (b*lane)) & mask - c.
#include <arm_neon.h>

#include <cstring>
#include <vector>

#include "qinfer/decode.h"

namespace quip::qinfer {

namespace {

struct V8 {
  float32x4_t lo, hi;
};

inline float32x4_t xor_f32(float32x4_t a, uint32x4_t m) {
  return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(a), m));
}

// One group: S'[lo] XOR signmask[hi & 0x7F] of the 16-bit code in the low bits of `c` (the shift
// bit ignored: shift_term adds it).
inline V8 e8p_unshifted(const float* mag, const uint32_t* sgn, uint64_t c) {
  const unsigned lo = static_cast<unsigned>(c) & 0xFFu, hi = static_cast<unsigned>(c >> 8) & 0x7Fu;
  const float* a = mag + 8 * lo;
  const uint32_t* s = sgn + 8 * hi;
  return {xor_f32(vld1q_f32(a), vld1q_u32(s)), xor_f32(vld1q_f32(a + 4), vld1q_u32(s + 4))};
}

// The E8P point with its shift.
inline V8 e8p_vec(const DecodeTables& T, uint16_t c) {
  const V8 v = e8p_unshifted(&T.mag[0][0], &T.signmask[0][0], c);
  const float* t = T.shift_hb[c >> 8];
  return {vaddq_f32(v.lo, vld1q_f32(t)), vaddq_f32(v.hi, vld1q_f32(t + 4))};
}

// Per-lane unpacking of scalar RTN levels: right shifts by b * lane (negative left shifts).
struct ScalarUnpack {
  int32x4_t shift_lo, shift_hi;
  uint32x4_t mask;
  float32x4_t center;
  explicit ScalarUnpack(int b) {
    const int32x4_t lane = {0, 1, 2, 3};
    shift_lo = vmulq_n_s32(lane, -b);
    shift_hi = vsubq_s32(shift_lo, vdupq_n_s32(4 * b));
    mask = vdupq_n_u32((1u << b) - 1);
    center = vdupq_n_f32(static_cast<float>((1 << b) - 1) * 0.5f);
  }
  // One group: b bytes -> 8 floats l - (2^b - 1) / 2.
  V8 operator()(const uint8_t* p, int b) const {
    uint32_t word = 0;
    std::memcpy(&word, p, static_cast<size_t>(b));
    const uint32x4_t w = vdupq_n_u32(word);
    const uint32x4_t l0 = vandq_u32(vshlq_u32(w, shift_lo), mask), l1 = vandq_u32(vshlq_u32(w, shift_hi), mask);
    return {vsubq_f32(vcvtq_f32_u32(l0), center), vsubq_f32(vcvtq_f32_u32(l1), center)};
  }
};

// acc += w . x over one group (both halves into one accumulator; rows give the independent chains).
inline float32x4_t fma8(float32x4_t acc, const V8& w, const V8& x) {
  return vfmaq_f32(vfmaq_f32(acc, w.lo, x.lo), w.hi, x.hi);
}

// Sum over groups of shift(code_g) * sum(x_g) = sum_g (+-1/4 sum(x_g)): gq[g] = sum(x_g) / 4 with its
// sign flipped where bit 15 of the code is set, 4 groups per step.
inline float shift_term(const uint16_t* c, const float* gq, int groups) {
  const uint32x4_t sign = vdupq_n_u32(0x80000000u);
  float32x4_t acc = vdupq_n_f32(0.0f);
  int g = 0;
  for (; g + 4 <= groups; g += 4) {
    const uint32x4_t flip = vandq_u32(vshlq_n_u32(vmovl_u16(vld1_u16(c + g)), 16), sign);
    acc = vaddq_f32(acc, xor_f32(vld1q_f32(gq + g), flip));
  }
  float t = vaddvq_f32(acc);
  for (; g < groups; ++g) t += (c[g] >> 15) ? -gq[g] : gq[g];
  return t;
}

// acc += w . x_g for one group of codebook K: E8P w = the E8P point (unshifted); RVQ4 w = w1 + w2 / s2
// and RVQ3 w = w1 + shell[d] / s2 (one FMA each, so a row keeps one accumulator).
template <CodeKind K>
inline void group_fma(float32x4_t& acc, const DecodeTables& T, uint64_t c, uint64_t d, float32x4_t inv,
                      const V8& x) {
  const float* mag = &T.mag[0][0];
  const uint32_t* sgn = &T.signmask[0][0];
  V8 w = e8p_unshifted(mag, sgn, c);
  if (K == CodeKind::RVQ4) {
    const V8 w2 = e8p_unshifted(mag, sgn, d);
    w = {vfmaq_f32(w.lo, w2.lo, inv), vfmaq_f32(w.hi, w2.hi, inv)};
  } else if (K == CodeKind::RVQ3) {
    const float* sh = T.shell[d & 0xFF];
    w = {vfmaq_f32(w.lo, vld1q_f32(sh), inv), vfmaq_f32(w.hi, vld1q_f32(sh + 4), inv)};
  }
  acc = fma8(acc, w, x);
}

// NR rows of E8P / RVQ codes against one x; gq as for shift_term. Codes are read 4 groups (64 bits;
// RVQ3 residuals 32 bits) per row at a time and split in registers, rows addressed from one base.
template <int NR, CodeKind K>
void rows_e8p(const QCodes& q, const float* x, const float* gq, int r, float* y) {
  const DecodeTables& T = decode_tables();
  const float32x4_t inv = vdupq_n_f32(q.residual_inv_scale);
  const int G = q.groups;
  const size_t base = static_cast<size_t>(r) * G;
  const uint16_t* c1 = q.primary + base;
  const uint16_t* r16 = K == CodeKind::RVQ4 ? static_cast<const uint16_t*>(q.residual) + base : nullptr;
  const uint8_t* r8 = K == CodeKind::RVQ3 ? static_cast<const uint8_t*>(q.residual) + base : nullptr;
  float32x4_t acc[NR];
  for (int i = 0; i < NR; ++i) acc[i] = vdupq_n_f32(0.0f);
  int g = 0;
  for (; g + 4 <= G; g += 4) {
    V8 xv[4];
    for (int j = 0; j < 4; ++j) xv[j] = {vld1q_f32(x + 8 * (g + j)), vld1q_f32(x + 8 * (g + j) + 4)};
    for (int i = 0; i < NR; ++i) {
      const size_t off = static_cast<size_t>(i) * G + g;
      uint64_t c, d = 0;
      std::memcpy(&c, c1 + off, 8);
      if (K == CodeKind::RVQ4) std::memcpy(&d, r16 + off, 8);
      if (K == CodeKind::RVQ3) {
        uint32_t d8;
        std::memcpy(&d8, r8 + off, 4);
        // Spread the four residual bytes to the code word's 16-bit slots.
        d = (d8 & 0xFFull) | (static_cast<uint64_t>((d8 >> 8) & 0xFF) << 16) |
            (static_cast<uint64_t>((d8 >> 16) & 0xFF) << 32) | (static_cast<uint64_t>(d8 >> 24) << 48);
      }
      for (int j = 0; j < 4; ++j) group_fma<K>(acc[i], T, c >> (16 * j), d >> (16 * j), inv, xv[j]);
    }
  }
  for (; g < G; ++g) {
    const V8 xv{vld1q_f32(x + 8 * g), vld1q_f32(x + 8 * g + 4)};
    for (int i = 0; i < NR; ++i) {
      const size_t off = static_cast<size_t>(i) * G + g;
      const uint64_t d = K == CodeKind::RVQ4 ? r16[off] : K == CodeKind::RVQ3 ? r8[off] : 0;
      group_fma<K>(acc[i], T, c1[off], d, inv, xv);
    }
  }
  for (int i = 0; i < NR; ++i) {
    const size_t off = static_cast<size_t>(i) * G;
    const float first = vaddvq_f32(acc[i]) + shift_term(c1 + off, gq, G);
    // The shell stage has no shift.
    y[i] = K == CodeKind::RVQ4 ? first + shift_term(r16 + off, gq, G) * q.residual_inv_scale : first;
  }
}

template <int NR>
void rows_scalar(const QCodes& q, const float* x, int r, float* y) {
  const int b = q.scalar_bits;
  const ScalarUnpack unpack(b);
  const size_t row_bytes = static_cast<size_t>(q.groups) * b;
  float32x4_t acc[NR];
  for (int i = 0; i < NR; ++i) acc[i] = vdupq_n_f32(0.0f);
  for (int g = 0; g < q.groups; ++g) {
    const V8 xv{vld1q_f32(x + 8 * g), vld1q_f32(x + 8 * g + 4)};
    for (int i = 0; i < NR; ++i) acc[i] = fma8(acc[i], unpack(q.packed + (r + i) * row_bytes + static_cast<size_t>(g) * b, b), xv);
  }
  for (int i = 0; i < NR; ++i) y[i] = vaddvq_f32(acc[i]);
}

template <int NR>
void rows_any(const QCodes& q, const float* x, const float* gq, int r, float* y) {
  switch (q.kind) {
    case CodeKind::E8P: rows_e8p<NR, CodeKind::E8P>(q, x, gq, r, y); return;
    case CodeKind::RVQ3: rows_e8p<NR, CodeKind::RVQ3>(q, x, gq, r, y); return;
    case CodeKind::RVQ4: rows_e8p<NR, CodeKind::RVQ4>(q, x, gq, r, y); return;
    case CodeKind::Scalar: rows_scalar<NR>(q, x, r, y); return;
  }
}

void matvec_neon(const QCodes& q, const float* x, int r0, int r1, float* y) {
  // gq[g] = sum(x_g) / 4, shared by every row of this range.
  thread_local std::vector<float> gq;
  gq.resize(q.groups);
  for (int g = 0; g < q.groups; ++g) {
    const float* xg = x + 8 * g;
    gq[g] = 0.25f * (((xg[0] + xg[1]) + (xg[2] + xg[3])) + ((xg[4] + xg[5]) + (xg[6] + xg[7])));
  }
  int r = r0;
  for (; r + 8 <= r1; r += 8) rows_any<8>(q, x, gq.data(), r, y + (r - r0));
  for (; r + 4 <= r1; r += 4) rows_any<4>(q, x, gq.data(), r, y + (r - r0));
  for (; r < r1; ++r) rows_any<1>(q, x, gq.data(), r, y + (r - r0));
}

void decode_row_neon(const QCodes& q, int r, float* w) {
  const DecodeTables& T = decode_tables();
  const size_t base = static_cast<size_t>(r) * q.groups;
  if (q.kind == CodeKind::Scalar) {
    const int b = q.scalar_bits;
    const ScalarUnpack unpack(b);
    const uint8_t* p = q.packed + base * b;
    for (int g = 0; g < q.groups; ++g) {
      const V8 v = unpack(p + static_cast<size_t>(g) * b, b);
      vst1q_f32(w + 8 * g, v.lo);
      vst1q_f32(w + 8 * g + 4, v.hi);
    }
    return;
  }
  const float32x4_t inv = vdupq_n_f32(q.residual_inv_scale);
  for (int g = 0; g < q.groups; ++g) {
    V8 v = e8p_vec(T, q.primary[base + g]);
    V8 res{vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    if (q.kind == CodeKind::RVQ4) {
      res = e8p_vec(T, static_cast<const uint16_t*>(q.residual)[base + g]);
    } else if (q.kind == CodeKind::RVQ3) {
      const float* s = T.shell[static_cast<const uint8_t*>(q.residual)[base + g]];
      res = V8{vld1q_f32(s), vld1q_f32(s + 4)};
    }
    if (q.kind != CodeKind::E8P) {
      v.lo = vaddq_f32(v.lo, vmulq_f32(res.lo, inv));
      v.hi = vaddq_f32(v.hi, vmulq_f32(res.hi, inv));
    }
    vst1q_f32(w + 8 * g, v.lo);
    vst1q_f32(w + 8 * g + 4, v.hi);
  }
}

}  // namespace

const DecodeKernels& decode_kernels_neon() {
  static const DecodeKernels k{matvec_neon, decode_row_neon};
  return k;
}

}  // namespace quip::qinfer
