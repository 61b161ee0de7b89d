#include "qinfer/decode.h"

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

const DecodeKernels& decode_kernels_scalar() {
  static const DecodeKernels k{matvec_scalar, decode_row_scalar};
  return k;
}

const DecodeKernels& decode_kernels(KernelImpl impl) {
  const CpuFeatures& cpu = cpu_features();
#ifdef QUIP_X86
  if (impl == KernelImpl::Avx2 || (impl == KernelImpl::Auto && cpu.avx2)) {
    if (!cpu.avx2) throw std::runtime_error("the AVX2 decode kernels need a CPU with AVX2, FMA and F16C");
    return decode_kernels_avx2();
  }
#else
  if (impl == KernelImpl::Avx2) throw std::runtime_error("the AVX2 decode kernels exist only on x86-64");
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
