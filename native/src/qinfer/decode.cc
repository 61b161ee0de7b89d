#include "qinfer/decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/cpu.h"
#include "quip/e8p.h"

namespace quip::qinfer {

static DecodeTables build_tables() {
  const E8PTables& E = e8p_tables();
  DecodeTables T{};
  for (int i = 0; i < 256; ++i) {
    for (int j = 0; j < 8; ++j) T.mag[i][j] = E.source[i][j];
    if (E.parity[i]) T.mag[i][7] = -T.mag[i][7];
    int neg = 0;
    for (int j = 0; j < 7; ++j) {
      const int bit = (i >> j) & 1;
      neg += bit;
      T.signmask[i][j] = bit ? 0x80000000u : 0u;
    }
    T.signmask[i][7] = (neg & 1) ? 0x80000000u : 0u;
    for (int j = 0; j < 8; ++j) T.shell[i][j] = e8_shell_table()[i][j];
    for (int j = 0; j < 8; ++j) T.shift_hb[i][j] = (i >> 7) ? -0.25f : 0.25f;
  }
  for (int j = 0; j < 8; ++j) {
    T.shift[0][j] = 0.25f;
    T.shift[1][j] = -0.25f;
  }
  return T;
}

const DecodeTables& decode_tables() {
  static const DecodeTables T = build_tables();
  return T;
}

void validate(const QCodes& q) {
  if (q.rows <= 0 || q.groups <= 0) throw std::invalid_argument("quantized codes need at least one row and one group");
  switch (q.kind) {
    case CodeKind::E8P:
      if (!q.primary) throw std::invalid_argument("E8P codes are missing");
      break;
    case CodeKind::RVQ3:
    case CodeKind::RVQ4:
      if (!q.primary || !q.residual) throw std::invalid_argument("RVQ needs both the E8P and the residual code planes");
      if (!(q.residual_inv_scale > 0)) throw std::invalid_argument("RVQ needs a positive residual scale");
      break;
    case CodeKind::Scalar:
      if (!q.packed) throw std::invalid_argument("scalar codes are missing");
      if (q.scalar_bits < 2 || q.scalar_bits > 4) throw std::invalid_argument("scalar codes need 2, 3 or 4 bits, got " + std::to_string(q.scalar_bits));
      break;
  }
}

// ---- scalar reference ---------------------------------------------------------------------------

// w[0..8) = decoded E8P code (same arithmetic as the AVX2 kernel: sign flip, then + shift).
static inline void e8p_group(const DecodeTables& T, uint16_t c, float* w) {
  const float* a = T.mag[c & 0xFF];
  const uint32_t* s = T.signmask[c >> 8];
  const float t = T.shift[c >> 15][0];
  for (int j = 0; j < 8; ++j) {
    uint32_t u;
    std::memcpy(&u, &a[j], 4);
    u ^= s[j];
    float v;
    std::memcpy(&v, &u, 4);
    w[j] = v + t;
  }
}

static void decode_row_scalar(const QCodes& q, int r, float* w) {
  const DecodeTables& T = decode_tables();
  const size_t base = static_cast<size_t>(r) * q.groups;
  switch (q.kind) {
    case CodeKind::E8P:
      for (int g = 0; g < q.groups; ++g) e8p_group(T, q.primary[base + g], w + 8 * g);
      return;
    case CodeKind::RVQ4: {
      const uint16_t* res = static_cast<const uint16_t*>(q.residual);
      float r2[8];
      for (int g = 0; g < q.groups; ++g) {
        e8p_group(T, q.primary[base + g], w + 8 * g);
        e8p_group(T, res[base + g], r2);
        for (int j = 0; j < 8; ++j) w[8 * g + j] += r2[j] * q.residual_inv_scale;
      }
      return;
    }
    case CodeKind::RVQ3: {
      const uint8_t* res = static_cast<const uint8_t*>(q.residual);
      for (int g = 0; g < q.groups; ++g) {
        e8p_group(T, q.primary[base + g], w + 8 * g);
        const float* s = T.shell[res[base + g]];
        for (int j = 0; j < 8; ++j) w[8 * g + j] += s[j] * q.residual_inv_scale;
      }
      return;
    }
    case CodeKind::Scalar: {
      const int b = q.scalar_bits;
      const uint32_t mask = (1u << b) - 1;
      const float c = static_cast<float>(mask) * 0.5f;
      const uint8_t* p = q.packed + static_cast<size_t>(r) * q.groups * b;
      for (int g = 0; g < q.groups; ++g, p += b) {
        uint32_t word = 0;
        for (int k = 0; k < b; ++k) word |= static_cast<uint32_t>(p[k]) << (8 * k);
        for (int j = 0; j < 8; ++j) w[8 * g + j] = static_cast<float>((word >> (b * j)) & mask) - c;
      }
      return;
    }
  }
}

static void matvec_scalar(const QCodes& q, const float* x, int r0, int r1, float* y) {
  const DecodeTables& T = decode_tables();
  float w[8];
  for (int r = r0; r < r1; ++r) {
    const size_t base = static_cast<size_t>(r) * q.groups;
    float acc = 0.0f;
    if (q.kind == CodeKind::Scalar) {
      // Scalar levels: decode group by group through the row decoder's rule.
      const int b = q.scalar_bits;
      const uint32_t mask = (1u << b) - 1;
      const float c = static_cast<float>(mask) * 0.5f;
      const uint8_t* p = q.packed + base * b;
      for (int g = 0; g < q.groups; ++g, p += b) {
        uint32_t word = 0;
        for (int k = 0; k < b; ++k) word |= static_cast<uint32_t>(p[k]) << (8 * k);
        for (int j = 0; j < 8; ++j) acc += (static_cast<float>((word >> (b * j)) & mask) - c) * x[8 * g + j];
      }
      y[r - r0] = acc;
      continue;
    }
    float acc2 = 0.0f;
    for (int g = 0; g < q.groups; ++g) {
      e8p_group(T, q.primary[base + g], w);
      for (int j = 0; j < 8; ++j) acc += w[j] * x[8 * g + j];
      if (q.kind == CodeKind::RVQ4) {
        e8p_group(T, static_cast<const uint16_t*>(q.residual)[base + g], w);
        for (int j = 0; j < 8; ++j) acc2 += w[j] * x[8 * g + j];
      } else if (q.kind == CodeKind::RVQ3) {
        const float* s = T.shell[static_cast<const uint8_t*>(q.residual)[base + g]];
        for (int j = 0; j < 8; ++j) acc2 += s[j] * x[8 * g + j];
      }
    }
    y[r - r0] = acc + acc2 * q.residual_inv_scale;
  }
}

// ---- int8 activations (the AVX-512 kernels' input) and their scalar reference ---------------------

void prepare_x(const float* x, int groups, PreparedX& px) {
  const int chunks = (groups + 63) / 64;
  px.x = x;
  px.groups = groups;
  px.chunks = chunks;
  px.q.assign(static_cast<size_t>(chunks) * 512, 0);
  px.d.assign(static_cast<size_t>(chunks) * 16, 0.0f);
  px.bsum4.assign(static_cast<size_t>(chunks) * 16, 0);
  px.gq.resize(groups);
  px.gq_sum = 0.0f;
  for (int g = 0; g < groups; ++g) {
    const float* xg = x + 8 * g;
    px.gq[g] = 0.25f * (((xg[0] + xg[1]) + (xg[2] + xg[3])) + ((xg[4] + xg[5]) + (xg[6] + xg[7])));
    px.gq_sum += px.gq[g];
  }
  const int blocks = (groups + 3) / 4;
  for (int b = 0; b < blocks; ++b) {
    const int g0 = 4 * b, ng = std::min(4, groups - g0);
    const float* xb = x + 8 * g0;
    float amax = 0.0f;
    for (int i = 0; i < 8 * ng; ++i) amax = std::max(amax, std::fabs(xb[i]));
    if (!(amax > 0.0f)) continue;  // an all-zero block stays zero (and NaN/inf are not quantized)
    const float inv = 127.0f / amax;
    const int c = b / 16, l = b % 16;
    int8_t* qc = px.q.data() + static_cast<size_t>(c) * 512;
    int sum = 0;
    for (int gg = 0; gg < ng; ++gg) {
      for (int j = 0; j < 8; ++j) {
        // Round half to even through the 1.5 * 2^23 trick (vectorises on baseline x86-64 and equals
        // the AVX-512 conversion under the default rounding mode); |x * inv| <= 127.
        const float r = (xb[8 * gg + j] * inv + 12582912.0f) - 12582912.0f;
        const int v = static_cast<int>(r);
        qc[64 * j + 4 * l + gg] = static_cast<int8_t>(v);
        sum += v;
      }
    }
    px.d[static_cast<size_t>(c) * 16 + l] = amax / 127.0f;
    px.bsum4[static_cast<size_t>(c) * 16 + l] = 4 * sum;
  }
}

// Integer value of coordinate j of a group times 2: E8P 2 * (s .* |a|) (the shift is in gq), shell 2 * p.
static int e8p_twice(const DecodeTables& T, uint16_t c, int j) {
  return static_cast<int>(std::lround(2.0f * (T.mag[c & 0xFF][j] * ((T.signmask[c >> 8][j] ? -1.0f : 1.0f)))));
}

void matvec_prepared_reference(const QCodes& q, const PreparedX& px, int r0, int r1, float* y) {
  const DecodeTables& T = decode_tables();
  const int G = q.groups;
  for (int r = r0; r < r1; ++r) {
    const size_t base = static_cast<size_t>(r) * G;
    double y1 = 0, y2 = 0, shift1 = 0, shift2 = 0;
    for (int g0 = 0; g0 < G; g0 += 4) {
      const int c = g0 / 64, l = (g0 % 64) / 4;
      const int8_t* qc = px.q.data() + static_cast<size_t>(c) * 512;
      long long a1 = 0, a2 = 0;
      for (int g = g0; g < std::min(G, g0 + 4); ++g) {
        const uint16_t c1 = q.primary[base + g];
        for (int j = 0; j < 8; ++j) {
          const int xq = qc[64 * j + g % 64];
          a1 += static_cast<long long>(e8p_twice(T, c1, j)) * xq;
          if (q.kind == CodeKind::RVQ4)
            a2 += static_cast<long long>(e8p_twice(T, static_cast<const uint16_t*>(q.residual)[base + g], j)) * xq;
          else if (q.kind == CodeKind::RVQ3)
            a2 += static_cast<long long>(std::lround(2.0f * T.shell[static_cast<const uint8_t*>(q.residual)[base + g]][j])) * xq;
        }
        shift1 += (c1 >> 15) ? -px.gq[g] : px.gq[g];
        if (q.kind == CodeKind::RVQ4) shift2 += (static_cast<const uint16_t*>(q.residual)[base + g] >> 15) ? -px.gq[g] : px.gq[g];
      }
      const double d = px.d[static_cast<size_t>(c) * 16 + l];
      y1 += 0.5 * d * static_cast<double>(a1);
      y2 += 0.5 * d * static_cast<double>(a2);
    }
    y[r - r0] = static_cast<float>(y1 + shift1 + (y2 + shift2) * q.residual_inv_scale);
  }
}

const DecodeKernels& decode_kernels_scalar() {
  static const DecodeKernels k{matvec_scalar, decode_row_scalar};
  return k;
}

const DecodeKernels& decode_kernels(KernelImpl impl) {
  const CpuFeatures& cpu = cpu_features();
#ifdef QUIP_X86
  if (impl == KernelImpl::Avx512 || (impl == KernelImpl::Auto && cpu.avx512)) {
    if (!cpu.avx512) throw std::runtime_error("the AVX-512 decode kernels need a CPU with AVX-512 F/BW/VL/VBMI/VNNI and GFNI");
    return decode_kernels_avx512();
  }
  if (impl == KernelImpl::Avx2 || (impl == KernelImpl::Auto && cpu.avx2)) {
    if (!cpu.avx2) throw std::runtime_error("the AVX2 decode kernels need a CPU with AVX2, FMA and F16C");
    return decode_kernels_avx2();
  }
#else
  if (impl == KernelImpl::Avx2 || impl == KernelImpl::Avx512)
    throw std::runtime_error("the AVX2 and AVX-512 decode kernels exist only on x86-64");
#endif
#ifdef QUIP_ARM64
  if (impl == KernelImpl::Neon || (impl == KernelImpl::Auto && cpu.neon)) {
    if (!cpu.neon) throw std::runtime_error("the NEON decode kernels are switched off (QUIP_FORCE_SCALAR)");
    return decode_kernels_neon();
  }
#else
  if (impl == KernelImpl::Neon) throw std::runtime_error("the NEON decode kernels exist only on arm64");
#endif
  return decode_kernels_scalar();
}

}  // namespace quip::qinfer
