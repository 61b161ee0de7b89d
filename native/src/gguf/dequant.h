// Dequantization of GGUF tensor data (ggml block formats) into float32 or float16.
//
// One table row per readable type: values per block, bytes per block and a scalar decoder of one
// block, so adding a type is adding a row. Layouts (little-endian, "d"/"m" are IEEE half floats):
//   Q4_0  32 values, 18 B: d, qs[16]           x = (q - 8) * d          q: low nibbles = values 0..15,
//   Q4_1  32 values, 20 B: d, m, qs[16]        x = q * d + m               high nibbles = values 16..31
//   Q5_0  32 values, 22 B: d, qh[4], qs[16]    x = (q - 16) * d         5th bit of value i = bit i of qh
//   Q5_1  32 values, 24 B: d, m, qh[4], qs[16] x = q * d + m
//   Q8_0  32 values, 34 B: d, int8 qs[32]      x = q * d
//   Q4_K 256 values, 144 B: d, dmin, scales[12], qs[128]     8 sub-blocks of 32 with 6-bit scale sc
//   Q5_K 256 values, 176 B: d, dmin, scales[12], qh[32], qs[128]  and min mn: x = d*sc*q - dmin*mn
//   Q6_K 256 values, 210 B: ql[128], qh[64], int8 scales[16], d    16 sub-blocks of 16:
//                                                                   x = d * scale * (q - 32)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/job.h"

namespace quip::gguf {

// ggml type ids as stored in a GGUF tensor info.
enum GgmlTypeId : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
  kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kBF16 = 30,
};

struct BlockFormat {
  uint32_t id;
  const char* name;
  size_t block_values;
  size_t block_bytes;
  // Decodes `nblocks` consecutive blocks into nblocks * block_values floats.
  void (*decode)(const uint8_t* blocks, size_t nblocks, float* out);
};

// The readable formats, in ggml id order.
const std::vector<BlockFormat>& block_formats();
// nullptr when the type cannot be read.
const BlockFormat* find_block_format(const std::string& name);
const BlockFormat* find_block_format(uint32_t id);
// "F32, F16, BF16, ..." for messages.
std::string supported_type_names();

// Bytes of a tensor of `numel` values; throws std::invalid_argument when numel is not a whole number
// of blocks.
size_t tensor_bytes(const BlockFormat& f, size_t numel);

// Whole-tensor decoders, split over the thread pool; hooks.check() runs between chunks. Each returns
// how many values are not finite in the output (for float16: beyond its range of +-65504), so a
// caller can refuse a tensor that would silently turn into infinities.
size_t dequantize_to_f32(const BlockFormat& f, const uint8_t* data, size_t numel, float* out,
                         const JobHooks& hooks = {});
size_t dequantize_to_f16(const BlockFormat& f, const uint8_t* data, size_t numel, uint16_t* out,
                         const JobHooks& hooks = {});

// The float32 -> float16 conversion of a run: f32_to_f16_run picks the fast path of this build and
// CPU (AVX2/F16C when cpu_features().avx2, NEON when cpu_features().neon), else the scalar reference.
// All give the same bits for every non-NaN input.
void f32_to_f16_run(const float* x, size_t n, uint16_t* out);
void f32_to_f16_run_scalar(const float* x, size_t n, uint16_t* out);
#ifdef QUIP_X86
void f32_to_f16_run_avx2(const float* x, size_t n, uint16_t* out);
#endif
#ifdef QUIP_ARM64
void f32_to_f16_run_neon(const float* x, size_t n, uint16_t* out);
#endif

}  // namespace quip::gguf
