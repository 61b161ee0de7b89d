// Decode-matvec kernels: y = Q x straight from QuIP# codes, never materialising Q (spec section 7).
// Codes come in planes, one entry per group of 8 weights, rows of n_pad / 8 groups:
//   E8P    primary: uint16 E8P codes (layout of quip/e8p.h: bits 0-7 pattern index into S, 8-14 the
//          signs of coordinates 0-6, 15 the -1/4 shift; coordinate 7's sign by parity)
//   RVQ4   primary E8P + residual uint16 E8P codes:            Q = Q1 + Q2 / s2
//   RVQ3   primary E8P + residual uint8 E8-shell indices:      Q = Q1 + Q2 / s2
//   Scalar packed: `bits` bytes per group, the little-endian low bytes of quip's RTN code word
//          (level index l of coordinate i at bits [b i, b i + b)), value l - (2^b - 1) / 2
// The E8P decode keeps a 256 x 8 magnitude table (8 KiB) and a 256-entry sign/shift table hot in L1:
//   w = (S'[idx] XOR signmask[code >> 8]) + shift[code >> 15]
// where S' is S with coordinate 7 pre-negated for odd-parity patterns, so the parity rule becomes a
// pure function of the high byte. One scalar reference, an AVX2 kernel (x86-64) and a NEON kernel
// (arm64) sit side by side.
// On x86-64 CPUs with AVX-512 VBMI, VNNI and GFNI a fourth kernel set multiplies int8 codebook
// values with an int8 copy of x (one scale per 32 values: x is Hadamard-transformed, so it has no
// outliers and the rounding adds ~0.5% noise to a matvec whose weights carry 5-30%). Its table
// lookups are byte permutes over 64 groups at a time instead of one scalar index per group; its
// scalar reference is matvec_prepared_reference.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace quip::qinfer {

enum class CodeKind { E8P, RVQ3, RVQ4, Scalar };

struct QCodes {
  CodeKind kind = CodeKind::E8P;
  int rows = 0;
  int groups = 0;                  // n_pad / 8
  const uint16_t* primary = nullptr;   // E8P / RVQ: [rows][groups]
  const void* residual = nullptr;      // RVQ4: uint16, RVQ3: uint8; [rows][groups]
  float residual_inv_scale = 0.0f;     // 1 / s2
  int scalar_bits = 0;                 // Scalar: 2, 3 or 4
  const uint8_t* packed = nullptr;     // Scalar: [rows][groups * scalar_bits]
};

enum class KernelImpl { Auto, Scalar, Avx2, Avx512, Neon };

// x as the int8 kernels read it, prepared once per matvec and shared by every row and thread.
struct PreparedX {
  const float* x = nullptr;     // the float activation (groups * 8 values)
  int groups = 0;
  int chunks = 0;               // chunks of 64 groups (512 values), the last one zero-padded
  std::vector<int8_t> q;        // [chunk][coordinate j][64 groups]: x / d rounded, transposed per chunk
  std::vector<float> d;         // [chunk][16]: scale of each block of 4 groups (32 values), max|x| / 127
  std::vector<int32_t> bsum4;   // [chunk][16]: 4 x the sum of q over each block (RVQ3's offset)
  std::vector<float> gq;        // [groups]: sum(x_g) / 4, the E8P shift terms (taken from the float x)
  float gq_sum = 0.0f;          // sum of gq: a row's shift term is gq_sum - 2 * (gq where bit 15 is set)
};
// Fills px from x (groups * 8 floats); the one quantizer every int8 kernel and its reference use.
void prepare_x(const float* x, int groups, PreparedX& px);

struct DecodeKernels {
  // y[r - r0] = dot(row r of Q, x) for r in [r0, r1); x holds groups * 8 floats.
  void (*matvec)(const QCodes& q, const float* x, int r0, int r1, float* y);
  // w[0 .. groups * 8) = row r of Q. (Prefill decodes row slices with it and multiplies them with
  // the engine GEMM's microkernel; see QuantizedLinear.)
  void (*decode_row)(const QCodes& q, int r, float* w);
  // Set by kernels that read x prepared by prepare_x (then matvec prepares it per call itself):
  // the caller prepares x once and splits the rows over threads.
  void (*matvec_prepared)(const QCodes& q, const PreparedX& px, int r0, int r1, float* y) = nullptr;
};
const DecodeKernels& decode_kernels_scalar();
const DecodeKernels& decode_kernels_avx2();    // only when cpu_features().avx2
const DecodeKernels& decode_kernels_avx512();  // only when cpu_features().avx512
const DecodeKernels& decode_kernels_neon();    // only when cpu_features().neon
// What the AVX-512 kernels compute, in plain C++: int8 sums per block of 32 values, scaled by d.
void matvec_prepared_reference(const QCodes& q, const PreparedX& px, int r0, int r1, float* y);
const DecodeKernels& decode_kernels(KernelImpl impl = KernelImpl::Auto);

// The tables the kernels share (built once from quip::e8p_tables()).
struct DecodeTables {
  alignas(32) float mag[256][8];        // S with coordinate 7 negated where parity[idx] = 1
  alignas(32) uint32_t signmask[256][8];  // high byte -> per-lane float sign bit (lane 7: parity of bits 0-6)
  alignas(32) float shift[2][8];        // code >> 15 -> +1/4 or -1/4 in every lane
  alignas(32) float shift_hb[256][8];   // the same indexed by the high byte (one index for sign and shift)
  alignas(32) float shell[256][8];      // E8 shell codebook (RVQ3 residual stage)
};
const DecodeTables& decode_tables();

// Checks a QCodes description (pointers present, sizes positive); throws std::invalid_argument.
void validate(const QCodes& q);

}  // namespace quip::qinfer
