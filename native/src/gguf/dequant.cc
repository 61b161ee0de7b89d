#include "gguf/dequant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/cpu.h"
#include "common/half.h"
#include "common/thread_pool.h"

namespace quip::gguf {
namespace {

inline uint16_t u16_at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t u32_at(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
inline float half_at(const uint8_t* p) { return f16_to_f32(u16_at(p)); }

void decode_f32(const uint8_t* b, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = bits_to_f32(u32_at(b + 4 * i));
}
void decode_f16(const uint8_t* b, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(u16_at(b + 2 * i));
}
void decode_bf16(const uint8_t* b, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(u16_at(b + 2 * i));
}

// Type-0/1 formats of 32 values: byte j of qs holds value j (low nibble) and value j + 16 (high).
void decode_q4_0(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 18, out += 32) {
    const float d = half_at(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      out[j] = d * static_cast<float>((qs[j] & 15) - 8);
      out[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

void decode_q4_1(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 20, out += 32) {
    const float d = half_at(b), m = half_at(b + 2);
    const uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
      out[j] = d * static_cast<float>(qs[j] & 15) + m;
      out[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

// Q5: the fifth bit of value i is bit i of the 32-bit word qh.
void decode_q5_0(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 22, out += 32) {
    const float d = half_at(b);
    const uint32_t qh = u32_at(b + 2);
    const uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      int lo = (qs[j] & 15) | static_cast<int>(((qh >> j) & 1u) << 4);
      int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      out[j] = d * static_cast<float>(lo - 16);
      out[j + 16] = d * static_cast<float>(hi - 16);
    }
  }
}

void decode_q5_1(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 24, out += 32) {
    const float d = half_at(b), m = half_at(b + 2);
    const uint32_t qh = u32_at(b + 4);
    const uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      int lo = (qs[j] & 15) | static_cast<int>(((qh >> j) & 1u) << 4);
      int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      out[j] = d * static_cast<float>(lo) + m;
      out[j + 16] = d * static_cast<float>(hi) + m;
    }
  }
}

void decode_q8_0(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 34, out += 32) {
    const float d = half_at(b);
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
    for (int j = 0; j < 32; ++j) out[j] = d * static_cast<float>(qs[j]);
  }
}

// The 12-byte scale field of Q4_K/Q5_K: eight 6-bit scales and eight 6-bit mins. Sub-blocks 0..3 keep
// their low 6 bits in bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 keep their low 4 bits in
// the nibbles of bytes 8..11 and their top 2 bits in the top 2 bits of bytes 0..7.
inline void k_scale_min(const uint8_t* s, int sub, int* scale, int* min) {
  if (sub < 4) {
    *scale = s[sub] & 63;
    *min = s[sub + 4] & 63;
  } else {
    *scale = (s[sub + 4] & 15) | ((s[sub - 4] >> 6) << 4);
    *min = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
  }
}

// Q4_K: 4 groups of 64 values; group g uses qs[32g..32g+31], low nibbles for sub-block 2g (values
// 64g..64g+31) and high nibbles for sub-block 2g+1.
void decode_q4_k(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 144, out += 256) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qs = b + 16;
    for (int g = 0; g < 4; ++g) {
      int sc0, mn0, sc1, mn1;
      k_scale_min(scales, 2 * g, &sc0, &mn0);
      k_scale_min(scales, 2 * g + 1, &sc1, &mn1);
      const float d0 = d * static_cast<float>(sc0), m0 = dmin * static_cast<float>(mn0);
      const float d1 = d * static_cast<float>(sc1), m1 = dmin * static_cast<float>(mn1);
      const uint8_t* q = qs + 32 * g;
      float* y = out + 64 * g;
      for (int l = 0; l < 32; ++l) {
        y[l] = d0 * static_cast<float>(q[l] & 15) - m0;
        y[l + 32] = d1 * static_cast<float>(q[l] >> 4) - m1;
      }
    }
  }
}

// Q5_K: as Q4_K, plus a fifth bit per value: bit 2g (low half of group g) or 2g+1 (high half) of qh[l].
void decode_q5_k(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 176, out += 256) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48;
    for (int g = 0; g < 4; ++g) {
      int sc0, mn0, sc1, mn1;
      k_scale_min(scales, 2 * g, &sc0, &mn0);
      k_scale_min(scales, 2 * g + 1, &sc1, &mn1);
      const float d0 = d * static_cast<float>(sc0), m0 = dmin * static_cast<float>(mn0);
      const float d1 = d * static_cast<float>(sc1), m1 = dmin * static_cast<float>(mn1);
      const uint8_t* q = qs + 32 * g;
      float* y = out + 64 * g;
      for (int l = 0; l < 32; ++l) {
        int lo = (q[l] & 15) | (((qh[l] >> (2 * g)) & 1) << 4);
        int hi = (q[l] >> 4) | (((qh[l] >> (2 * g + 1)) & 1) << 4);
        y[l] = d0 * static_cast<float>(lo) - m0;
        y[l + 32] = d1 * static_cast<float>(hi) - m1;
      }
    }
  }
}

// Q6_K: two halves of 128 values, each with 64 bytes of low nibbles and 32 bytes of 2-bit highs.
// In half h, byte l of ql (l < 32) gives values l (low nibble) and l + 64 (high nibble); byte
// l + 32 gives values l + 32 and l + 96; byte l of qh gives the top 2 bits of values l, l + 32,
// l + 64, l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7. Value v has the signed scale scales[v / 16].
void decode_q6_k(const uint8_t* b, size_t nb, float* out) {
  for (size_t k = 0; k < nb; ++k, b += 210, out += 256) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
    const float d = half_at(b + 208);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* lo = ql + 64 * h;
      const uint8_t* hi = qh + 32 * h;
      float* y = out + 128 * h;
      const int8_t* sc = scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        int q0 = ((lo[l] & 15) | (((hi[l] >> 0) & 3) << 4)) - 32;
        int q1 = ((lo[l + 32] & 15) | (((hi[l] >> 2) & 3) << 4)) - 32;
        int q2 = ((lo[l] >> 4) | (((hi[l] >> 4) & 3) << 4)) - 32;
        int q3 = ((lo[l + 32] >> 4) | (((hi[l] >> 6) & 3) << 4)) - 32;
        int s = l / 16;
        y[l] = d * static_cast<float>(sc[s]) * static_cast<float>(q0);
        y[l + 32] = d * static_cast<float>(sc[s + 2]) * static_cast<float>(q1);
        y[l + 64] = d * static_cast<float>(sc[s + 4]) * static_cast<float>(q2);
        y[l + 96] = d * static_cast<float>(sc[s + 6]) * static_cast<float>(q3);
      }
    }
  }
}

// Plain formats decode "blocks" of one value.
const std::vector<BlockFormat> kFormats = {
    {kF32, "F32", 1, 4, decode_f32},
    {kF16, "F16", 1, 2, decode_f16},
    {kQ4_0, "Q4_0", 32, 18, decode_q4_0},
    {kQ4_1, "Q4_1", 32, 20, decode_q4_1},
    {kQ5_0, "Q5_0", 32, 22, decode_q5_0},
    {kQ5_1, "Q5_1", 32, 24, decode_q5_1},
    {kQ8_0, "Q8_0", 32, 34, decode_q8_0},
    {kQ4_K, "Q4_K", 256, 144, decode_q4_k},
    {kQ5_K, "Q5_K", 256, 176, decode_q5_k},
    {kQ6_K, "Q6_K", 256, 210, decode_q6_k},
    {kBF16, "BF16", 1, 2, decode_bf16},
};

// Values decoded per task: large enough to amortise scheduling, small enough for a stack-free
// per-task scratch buffer that stays in cache.
constexpr size_t kChunkValues = 1 << 14;

template <typename Emit>
size_t decode_chunks(const BlockFormat& f, const uint8_t* data, size_t numel, const JobHooks& hooks, Emit emit) {
  const size_t nblocks = numel / f.block_values;
  const size_t blocks_per_chunk = std::max<size_t>(1, kChunkValues / f.block_values);
  const size_t nchunks = (nblocks + blocks_per_chunk - 1) / blocks_per_chunk;
  std::vector<size_t> bad(nchunks, 0);
  parallel_for(nchunks, 1, [&](size_t cb, size_t ce) {
    std::vector<float> scratch(blocks_per_chunk * f.block_values);
    for (size_t c = cb; c < ce; ++c) {
      hooks.check();
      size_t b0 = c * blocks_per_chunk, b1 = std::min(nblocks, b0 + blocks_per_chunk);
      f.decode(data + b0 * f.block_bytes, b1 - b0, scratch.data());
      bad[c] = emit(scratch.data(), b0 * f.block_values, (b1 - b0) * f.block_values);
    }
  });
  size_t total = 0;
  for (size_t n : bad) total += n;
  return total;
}

}  // namespace

const std::vector<BlockFormat>& block_formats() { return kFormats; }

const BlockFormat* find_block_format(const std::string& name) {
  for (const auto& f : kFormats)
    if (name == f.name) return &f;
  return nullptr;
}
const BlockFormat* find_block_format(uint32_t id) {
  for (const auto& f : kFormats)
    if (id == f.id) return &f;
  return nullptr;
}

std::string supported_type_names() {
  std::string s;
  for (const auto& f : kFormats) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

size_t tensor_bytes(const BlockFormat& f, size_t numel) {
  if (numel % f.block_values != 0)
    throw std::invalid_argument(std::to_string(numel) + " values are not a whole number of " + f.name + " blocks of " +
                                std::to_string(f.block_values));
  return numel / f.block_values * f.block_bytes;
}

size_t dequantize_to_f32(const BlockFormat& f, const uint8_t* data, size_t numel, float* out, const JobHooks& hooks) {
  tensor_bytes(f, numel);
  return decode_chunks(f, data, numel, hooks, [out](const float* x, size_t at, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += !std::isfinite(x[i]);
    std::memcpy(out + at, x, n * sizeof(float));
    return bad;
  });
}

size_t dequantize_to_f16(const BlockFormat& f, const uint8_t* data, size_t numel, uint16_t* out, const JobHooks& hooks) {
  tensor_bytes(f, numel);
  return decode_chunks(f, data, numel, hooks, [out](const float* x, size_t at, size_t n) {
    // 65520 is where float16 rounding reaches infinity.
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += !(std::fabs(x[i]) < 65520.0f);
    f32_to_f16_run(x, n, out + at);
    return bad;
  });
}

void f32_to_f16_run_scalar(const float* x, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_f16(x[i]);
}

void f32_to_f16_run(const float* x, size_t n, uint16_t* out) {
#ifdef QUIP_X86
  if (cpu_features().avx2) return f32_to_f16_run_avx2(x, n, out);
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon) return f32_to_f16_run_neon(x, n, out);
#endif
  f32_to_f16_run_scalar(x, n, out);
}

}  // namespace quip::gguf
