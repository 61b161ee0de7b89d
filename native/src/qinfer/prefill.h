// Int8 prefill GEMM of the quantized linear layers: Y (tokens x m) = X (tokens x n_pad) Q^T for a
// batch of tokens, with Q decoded from the codes once per call and reused by every token.
//
//   Activations: every token's transformed x is rounded to int8 per block of 32 values with one
//   scale d = max|x| / 127 per block (the decode path's prepare_x scheme), stored +128 as uint8 and
//   packed for lanes = tokens: [token group of 16][k-step of 4 values][16 tokens][4 bytes], scales
//   as [block][tokens padded to 16].
//   Weights: each RVQ stage is a separate int8 matrix of 4 Q_stage (E8P and both residual stages have
//   values on the quarter grid: 4 Q is an integer in [-11, 11]), decoded a panel of rows x 512 columns
//   at a time, row-major (AVX-512: word permutes + multishifts; elsewhere three 256-entry byte
//   tables), with the per-block term -128 sum(w) that removes the +128 of x.
//   Dot products: vpdpbusd (uint8 x from the packed panel, int8 w broadcast 4 at a time), one int32
//   accumulator per (16 tokens, row) per block of 32, then acc * d into a float accumulator. A stage
//   with weight 1 / s2 (RVQ's residual) reuses the kernel with scales d / s2.
// y[t][r] = (1/4) sum_stage sum_b d_stage[t][b] * (sum_{k in b} (xq[t][k] + 128) w[r][k] - 128 sum_{k in b} w[r][k]).
//
// Kernels: a scalar reference (the exact integer sums; tests hold the SIMD kernels to it), AVX-512
// VNNI (16 tokens per zmm), AVX2 with AVX-VNNI where present and vpmaddubsw + vpmaddwd otherwise (8
// tokens per ymm, same packed layout). No NEON kernel yet: on arm64 QuantizedLinear keeps its float
// prefill. Only chat prefill uses this (runtime::FastPrefillScope); calibration stays float.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qinfer/decode.h"

namespace quip::qinfer {

constexpr int kPrefillTokenGroup = 16;  // tokens per packed group (one zmm / two ymm)
constexpr int kPrefillRows = 48;        // rows per task (a multiple of the kernels' row tiles)
constexpr int kPrefillKChunk = 512;     // columns decoded per panel (16 blocks of 32)

// A batch of activations quantized for the int8 GEMM (filled by prefill_prepare_x).
struct PrefillX {
  int tokens = 0;
  int tpad = 0;     // tokens rounded up to a multiple of 16
  int k32 = 0;      // columns rounded up to a multiple of 32
  int blocks = 0;   // k32 / 32
  std::vector<uint8_t> q;   // [tpad / 16][k32 / 4][16][4]: round(x / d) + 128
  std::vector<float> d;     // [blocks][tpad]: the block scales (0 for all-zero blocks and padding)
  std::vector<float> d2;    // [blocks][tpad]: d * the second stage's weight (RVQ: 1 / s2)
};
// x: tokens rows of `cols` floats, `ldx` apart. The rounding is prepare_x's (round to nearest, d = max|x| / 127).
void prefill_prepare_x(const float* x, int tokens, int cols, size_t ldx, PrefillX& px);

struct PrefillKernels {
  // C[r * ldc + t] += sum_{j < nb} d[(b0 + j) * tpad + t] * (comp[r * ldcomp + j] + sum_{k < 32} xq(t, 32 (b0 + j) + k) w[r * ldw + 32 j + k])
  // for r < nr (<= 6) and the tokens t of token groups [g0, g0 + ng) (ng <= 2). x and d are indexed
  // by absolute block, w and comp from the panel's first block (the caller offsets them).
  void (*tile)(const PrefillX& px, const float* d, int g0, int ng, int b0, int nb, const int8_t* w, size_t ldw,
               const int32_t* comp, size_t ldcomp, int nr, float* C, size_t ldc);
  const char* name;
  // out[0 .. 8 n) = 4 x the E8P points of codes c[0 .. n), n a multiple of 32, and bsum[b] = the sum
  // of out's block b of 32 values (b < n / 4); null: the portable SWAR loop of prefill_decode_panel.
  void (*decode_e8p)(const uint16_t* c, int n, int8_t* out, int32_t* bsum) = nullptr;
};
const PrefillKernels& prefill_kernels_scalar();
const PrefillKernels& prefill_kernels_avx512();      // only when cpu_features().avx512
const PrefillKernels& prefill_kernels_avx2();        // only when cpu_features().avx2 (maddubs + maddwd)
const PrefillKernels& prefill_kernels_avx2_vnni();   // only when cpu_features().avx2 && cpu_features().avxvnni
// The fastest this CPU runs (Auto), or the named one (throws when the CPU lacks it).
const PrefillKernels& prefill_kernels(KernelImpl impl = KernelImpl::Auto);

// E8P codes as int8, by byte tables (see prefill.cc): 4 Q = (mag[c & 0xFF] XOR sign[c >> 8]) + add[c >> 8]
// bytewise; shell[i] = 4 x E8-shell point i. Eight bytes per entry, little-endian by coordinate.
struct PrefillInt8Tables {
  uint64_t mag[256], sign[256], add[256], shell[256];
};
const PrefillInt8Tables& prefill_int8_tables();

// Which code kinds the int8 prefill handles (E8P, RVQ3, RVQ4; not the scalar RTN codes).
bool prefill_int8_supported(const QCodes& q);

// y (tokens x m, row stride ldy) = xq Q^T with x from px, all rows of q, multithreaded over row
// blocks.
void prefill_int8_matmul(const QCodes& q, const PrefillX& px, const PrefillKernels& kern,
                         float* y, size_t ldy);

// Decodes stage `stage` (0: primary E8P, 1: residual) of rows [r0, r0 + nr), groups [g0, g0 + ng)
// into int8 4 Q_stage (row stride ldw) and fills comp[r * ldcomp + b] = -128 sum of block b's values
// (groups past q.groups, up to a multiple of 4, are zero). Exposed for the tests.
void prefill_decode_panel(const QCodes& q, int stage, const PrefillKernels& kern, int r0, int nr, int g0, int ng,
                          int8_t* w, size_t ldw, int32_t* comp, size_t ldcomp);

}  // namespace quip::qinfer
