#include "qinfer/prefill.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/cpu.h"
#include "common/thread_pool.h"

namespace quip::qinfer {

// x rounded as prepare_x rounds it (one scale per block of 32 values, max|x| / 127, round half to
// even), stored + 128 in the lanes = tokens layout.
void prefill_prepare_x(const float* x, int tokens, int cols, size_t ldx, PrefillX& px) {
  px.tokens = tokens;
  px.tpad = (tokens + kPrefillTokenGroup - 1) / kPrefillTokenGroup * kPrefillTokenGroup;
  px.k32 = (cols + 31) / 32 * 32;
  px.blocks = px.k32 / 32;
  const int steps = px.k32 / 4;
  px.q.assign(static_cast<size_t>(px.tpad) * px.k32, 128);
  px.d.assign(static_cast<size_t>(px.blocks) * px.tpad, 0.0f);
  px.d2.clear();
  const int blocks = px.blocks, tpad = px.tpad;
  uint8_t* q = px.q.data();
  float* d = px.d.data();
  parallel_for(static_cast<size_t>(tokens), 8, [&](size_t tb, size_t te) {
    for (size_t t = tb; t < te; ++t) {
      const float* xr = x + t * ldx;
      const size_t g = t / kPrefillTokenGroup, lane = t % kPrefillTokenGroup;
      for (int b = 0; b < blocks; ++b) {
        const int k0 = 32 * b, k1 = std::min(cols, k0 + 32);
        float amax = 0.0f;
        for (int k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(xr[k]));
        if (!(amax > 0.0f)) continue;  // an all-zero block: q stays 128 (zero), d 0 (NaN / inf not quantized)
        const float inv = 127.0f / amax;
        d[static_cast<size_t>(b) * tpad + t] = amax / 127.0f;
        for (int k = k0; k < k1; ++k) {
          // Round half to even as prepare_x does (the 1.5 * 2^23 trick); |x * inv| <= 127.
          const int v = static_cast<int>((xr[k] * inv + 12582912.0f) - 12582912.0f);
          q[((g * steps + k / 4) * kPrefillTokenGroup + lane) * 4 + (k & 3)] = static_cast<uint8_t>(v + 128);
        }
      }
    }
  });
}

// ---- scalar reference ---------------------------------------------------------------------------

static inline uint8_t xq_at(const PrefillX& px, int t, int k) {
  const size_t g = t / kPrefillTokenGroup, lane = t % kPrefillTokenGroup;
  return px.q[((g * (px.k32 / 4) + k / 4) * kPrefillTokenGroup + lane) * 4 + (k & 3)];
}

static void tile_scalar(const PrefillX& px, const float* d, int g0, int ng, int b0, int nb, const int8_t* w, size_t ldw,
                        const int32_t* comp, size_t ldcomp, int nr, float* C, size_t ldc) {
  for (int r = 0; r < nr; ++r)
    for (int t = g0 * kPrefillTokenGroup; t < (g0 + ng) * kPrefillTokenGroup; ++t) {
      float acc = C[r * ldc + t];
      for (int j = 0; j < nb; ++j) {
        int32_t s = comp[r * ldcomp + j];
        for (int k = 0; k < 32; ++k) s += static_cast<int32_t>(xq_at(px, t, 32 * (b0 + j) + k)) * w[r * ldw + 32 * j + k];
        acc = std::fma(static_cast<float>(s), d[static_cast<size_t>(b0 + j) * px.tpad + t], acc);
      }
      C[r * ldc + t] = acc;
    }
}

const PrefillKernels& prefill_kernels_scalar() {
  static const PrefillKernels k{tile_scalar, "scalar"};
  return k;
}

#ifndef QUIP_X86
const PrefillKernels& prefill_kernels_avx512() { return prefill_kernels_scalar(); }
const PrefillKernels& prefill_kernels_avx2() { return prefill_kernels_scalar(); }
const PrefillKernels& prefill_kernels_avx2_vnni() { return prefill_kernels_scalar(); }
#endif

const PrefillKernels& prefill_kernels(KernelImpl impl) {
  const CpuFeatures& cpu = cpu_features();
  switch (impl) {
    case KernelImpl::Scalar: return prefill_kernels_scalar();
    case KernelImpl::Avx512:
      if (!cpu.avx512) throw std::runtime_error("the AVX-512 prefill kernels need AVX-512 F/BW/VL/VBMI/VNNI and GFNI");
      return prefill_kernels_avx512();
    case KernelImpl::Avx2:
      if (!cpu.avx2) throw std::runtime_error("the AVX2 prefill kernels need AVX2/FMA/F16C");
      return cpu.avxvnni ? prefill_kernels_avx2_vnni() : prefill_kernels_avx2();
    case KernelImpl::Neon: return prefill_kernels_scalar();
    case KernelImpl::Auto: break;
  }
  if (cpu.avx512) return prefill_kernels_avx512();
  if (cpu.avx2) return cpu.avxvnni ? prefill_kernels_avx2_vnni() : prefill_kernels_avx2();
  return prefill_kernels_scalar();
}

bool prefill_int8_supported(const QCodes& q) {
  return q.kind == CodeKind::E8P || q.kind == CodeKind::RVQ3 || q.kind == CodeKind::RVQ4;
}

// ---- weight panels ------------------------------------------------------------------------------

namespace {
// E8P codes as int8 from three small tables (6 KiB, L1-resident): 4 x the magnitude pattern (with
// coordinate 7 pre-negated for odd-parity patterns, as in DecodeTables::mag) by the low byte, and by
// the high byte a sign mask S (0xFF where the coordinate is negated) and an addend A = (S ? 1 : 0) +
// 4 x the +-1/4 shift, so that 4 Q = (M XOR S) + A bytewise: the XOR and +1 negate, A adds the shift.
// Eight bytes per group in one 64-bit word (SWAR byte add), the same on every CPU. RVQ3's shell
// points come from a 256 x 8 table of 4 x the point.
uint64_t pack8(const int* v) {
  uint64_t w = 0;
  for (int j = 0; j < 8; ++j) w |= static_cast<uint64_t>(static_cast<uint8_t>(static_cast<int8_t>(v[j]))) << (8 * j);
  return w;
}
}  // namespace

const PrefillInt8Tables& prefill_int8_tables() {
  static const PrefillInt8Tables T = [] {
    PrefillInt8Tables t;
    const DecodeTables& D = decode_tables();
    for (int i = 0; i < 256; ++i) {
      int m[8], s[8], a[8], sh[8];
      for (int j = 0; j < 8; ++j) {
        m[j] = static_cast<int>(std::lround(4.0f * D.mag[i][j]));
        s[j] = D.signmask[i][j] ? -1 : 0;
        a[j] = (D.signmask[i][j] ? 1 : 0) + static_cast<int>(std::lround(4.0f * D.shift[i >> 7][j]));
        sh[j] = static_cast<int>(std::lround(4.0f * D.shell[i][j]));
      }
      t.mag[i] = pack8(m);
      t.sign[i] = pack8(s);
      t.add[i] = pack8(a);
      t.shell[i] = pack8(sh);
    }
    return t;
  }();
  return T;
}

namespace {
inline void prefetch_l2(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 2);
#else
  (void)p;
#endif
}
inline uint64_t add_bytes(uint64_t a, uint64_t b) {  // bytewise a + b modulo 256
  const uint64_t H = 0x8080808080808080ull;
  return ((a & ~H) + (b & ~H)) ^ ((a ^ b) & H);
}
inline int32_t sum_bytes(uint64_t v) {  // the sum of the 8 bytes as int8
  const uint64_t u = v ^ 0x8080808080808080ull;  // + 128 each: unsigned
  const uint64_t t = (u & 0x00FF00FF00FF00FFull) + ((u >> 8) & 0x00FF00FF00FF00FFull);
  return static_cast<int32_t>((t * 0x0001000100010001ull) >> 48) - 8 * 128;
}
}  // namespace

void prefill_decode_panel(const QCodes& q, int stage, const PrefillKernels& kern, int r0, int nr, int g0, int ng,
                          int8_t* w, size_t ldw, int32_t* comp, size_t ldcomp) {
  const PrefillInt8Tables& T = prefill_int8_tables();
  const int have = std::max(0, std::min(ng, q.groups - g0));
  const int ng4 = (ng + 3) / 4 * 4;
  const void* plane = stage == 0 ? static_cast<const void*>(q.primary) : q.residual;
  const size_t code_bytes = stage == 1 && q.kind == CodeKind::RVQ3 ? 1 : 2;
  for (int r = 0; r < nr; ++r) {
    const size_t at = static_cast<size_t>(r0 + r) * q.groups + g0;
    int8_t* wr = w + r * ldw;
    int32_t* cr = comp + r * ldcomp;
    // The codes stream from memory once per call, a row slice at a time (rows are q.groups codes
    // apart): fetch this row's next slice into L2 now, so the next panel's decode does not wait.
    if (g0 + 2 * ng <= q.groups) {
      const char* next = static_cast<const char*>(plane) + (at + ng) * code_bytes;
      for (size_t o = 0; o < ng * code_bytes; o += 64) prefetch_l2(next + o);
    }
    std::fill(cr, cr + ng4 / 4, 0);
    int g = 0;
    if (stage == 0 || q.kind == CodeKind::RVQ4) {
      // E8P codes: the primary plane, or RVQ4's residual plane (also E8P).
      const uint16_t* c = (stage == 0 ? q.primary : static_cast<const uint16_t*>(q.residual)) + at;
      if (kern.decode_e8p) {
        g = have / 32 * 32;
        kern.decode_e8p(c, g, wr, cr);
      }
      for (; g < have; ++g) {
        const unsigned lo = c[g] & 0xFF, hi = c[g] >> 8;
        const uint64_t v = add_bytes(T.mag[lo] ^ T.sign[hi], T.add[hi]);
        std::memcpy(wr + 8 * g, &v, 8);
        cr[g >> 2] += sum_bytes(v);
      }
    } else {
      const uint8_t* c = static_cast<const uint8_t*>(q.residual) + at;
      for (; g < have; ++g) {
        std::memcpy(wr + 8 * g, &T.shell[c[g]], 8);
        cr[g >> 2] += sum_bytes(T.shell[c[g]]);
      }
    }
    std::fill(wr + 8 * have, wr + 8 * ng4, int8_t{0});
    for (int b = 0; b < ng4 / 4; ++b) cr[b] *= -128;
  }
}

// ---- driver -------------------------------------------------------------------------------------

// The first `ng` codes of rows [r0, r0 + nr) of every plane, towards L2, all at once (the row block's
// first panels then find them there instead of waiting on memory row by row).
static void prefetch_first_slices(const QCodes& q, int r0, int nr, int ng) {
  for (int r = r0; r < r0 + nr; ++r) {
    const size_t at = static_cast<size_t>(r) * q.groups;
    for (int o = 0; o < 2 * ng; o += 64) prefetch_l2(reinterpret_cast<const char*>(q.primary + at) + o);
    if (q.kind == CodeKind::RVQ4)
      for (int o = 0; o < 2 * ng; o += 64) prefetch_l2(static_cast<const char*>(q.residual) + 2 * at + o);
    if (q.kind == CodeKind::RVQ3)
      for (int o = 0; o < ng; o += 64) prefetch_l2(static_cast<const char*>(q.residual) + at + o);
  }
}

void prefill_int8_matmul(const QCodes& q, const PrefillX& px, const PrefillKernels& kern,
                         float* y, size_t ldy) {
  if (!prefill_int8_supported(q)) throw std::invalid_argument("the int8 prefill handles E8P and RVQ codes only");
  const int m = q.rows, stages = q.kind == CodeKind::E8P ? 1 : 2;
  if (stages == 2 && px.d2.size() != px.d.size()) throw std::invalid_argument("int8 prefill: RVQ needs the stage-2 scales (px.d2)");
  if (px.k32 < q.groups * 8) throw std::invalid_argument("int8 prefill: x has fewer columns than the codes");
  const int RB = kPrefillRows, KC = kPrefillKChunk, tpad = px.tpad, ngroups = tpad / kPrefillTokenGroup;
  const size_t ldw = KC + 64;  // not a power of two
  const size_t ldcomp = KC / 32;
  const size_t row_blocks = static_cast<size_t>((m + RB - 1) / RB);
  parallel_for(row_blocks, 1, [&](size_t rb0, size_t rb1) {
    thread_local std::vector<int8_t> wpanel;
    thread_local std::vector<int32_t> comp;
    thread_local std::vector<float> C;
    wpanel.resize(static_cast<size_t>(RB) * ldw);
    comp.resize(static_cast<size_t>(RB) * ldcomp);
    C.resize(static_cast<size_t>(RB) * tpad);
    for (size_t rb = rb0; rb < rb1; ++rb) {
      const int m0 = static_cast<int>(rb) * RB, mr = std::min(RB, m - m0);
      std::fill(C.begin(), C.begin() + static_cast<size_t>(mr) * tpad, 0.0f);
      prefetch_first_slices(q, m0, mr, std::min(KC / 8, q.groups));
      for (int k0 = 0; k0 < px.k32; k0 += KC) {
        const int kc = std::min(KC, px.k32 - k0), nb = kc / 32, b0 = k0 / 32;
        for (int st = 0; st < stages; ++st) {
          prefill_decode_panel(q, st, kern, m0, mr, k0 / 8, kc / 8, wpanel.data(), ldw, comp.data(), ldcomp);
          const float* d = st == 0 ? px.d.data() : px.d2.data();
          for (int g = 0; g < ngroups; g += 2) {
            const int ng = std::min(2, ngroups - g);
            for (int r = 0; r < mr; r += 6)
              kern.tile(px, d, g, ng, b0, nb, wpanel.data() + r * ldw, ldw, comp.data() + r * ldcomp, ldcomp,
                        std::min(6, mr - r), C.data() + static_cast<size_t>(r) * tpad, tpad);
          }
        }
      }
      for (int t = 0; t < px.tokens; ++t)
        for (int r = 0; r < mr; ++r) y[t * ldy + m0 + r] = 0.25f * C[static_cast<size_t>(r) * tpad + t];
    }
  });
}

}  // namespace quip::qinfer
