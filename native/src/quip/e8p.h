// Lattice codebooks of QuIP# (spec sections 3-4): the 2-bit E8P codebook (65,536 points of E8 + 1/4
// from 256 magnitude patterns), the 256-point E8 shell codebook of the 3-bit residual stage, the 3-
// and 4-bit residual (RVQ) codebooks, and the scalar round-to-nearest baseline.
//
// E8P code layout (16 bits): bits 0-7 index into the source set S; bits 8-14 the signs of
// coordinates 0-6 (1 = negative); bit 15 the shift (0: +1/4, 1: -1/4). The sign of coordinate 7 is
// implied: the number of negative coordinates has the parity of sum(S[idx]), which puts the signed
// pattern in D8^ (even coordinate sum).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace quip {

// ---- E8P ------------------------------------------------------------------------------------------
struct alignas(32) E8PTables {
  float source[256][8];                // S: magnitudes (positive half-integers), reference order
  alignas(32) float source_t[8][256];  // S transposed (SIMD search)
  alignas(32) float norm2[256];        // ||S[i]||^2
  uint8_t parity[256];     // sum(S[i]) mod 2: parity of the number of negated coordinates
  alignas(32) int32_t parity_mask[256];  // -1 where parity is odd (SIMD search)
};
const E8PTables& e8p_tables();

void e8p_decode(uint16_t code, float out[8]);
// Exact nearest E8P point to x (spec: 2 shifts x 256 patterns, sign copy + parity fix-up).
uint16_t e8p_nearest(const float x[8]);         // AVX2 when available
uint16_t e8p_nearest_scalar(const float x[8]);  // reference
// The code of pattern idx with shift (0: +1/4, 1: -1/4) nearest to x: the signs of x - shift, with the
// cheapest coordinate flipped when their parity is wrong. Every search ends here once it has its winner.
uint16_t e8p_code_with_signs(const E8PTables& T, const float x[8], int idx, int shift);

// ---- E8 shell codebook (3-bit residual stage) ------------------------------------------------------
// 256 points of E8: index 0 the origin; 1-112 the roots +-e_i +- e_j (i < j; sign pairs ++, +-, -+,
// --); 113-240 the roots (+-1/2)^8 with an even number of minus signs (bit i of the k-th even-weight
// byte in ascending order = coordinate i negative); 241-248 +2e_1..+2e_8; 249-255 -2e_1..-2e_7.
const float (&e8_shell_table())[256][8];
uint8_t e8_shell_nearest(const float x[8]);
// The shell codebook laid out for the SIMD searches: coordinates transposed, squared norms.
struct alignas(32) E8ShellSearch {
  float t[8][256];
  alignas(32) float norm2[256];
};
const E8ShellSearch& e8_shell_search();
uint8_t e8_shell_nearest_scalar(const float x[8]);

// Brute-force reference (tests): min over all `count` points of ||x - p||^2 - ||x||^2, i.e.
// ||p||^2 - 2 x.p, with the table given transposed (points_t[i * count + c] = coordinate i of point c)
// and the squared norms. count must be a multiple of 8.
float brute_force_min_score(const float* points_t, const float* norms2, size_t count, const float x[8]);

// ---- codebooks as the quantizer sees them ------------------------------------------------------------
enum class Codebook { E8P, RVQ3, RVQ4, RTN2, RTN3, RTN4 };

struct CodebookInfo {
  const char* name;     // "e8p" | "rvq3" | "rvq4" | "rtn2" | "rtn3" | "rtn4"
  int bits;             // bits per weight
  double default_rho;   // RMS the quantizer input is scaled to (Gaussian-MSE optimal)
  double s2;            // residual-stage scale (RVQ), 0 otherwise
  int stages;           // code arrays per group: 1 or 2
};
const CodebookInfo& codebook_info(Codebook cb);
bool parse_codebook(const std::string& name, Codebook* out);

// One group of 8 weights -> one 32-bit code word: E8P: the 16-bit code; RVQ3: E8P | shell << 16;
// RVQ4: E8P | E8P2 << 16; RTN b bits: 8 level indices of b bits, coordinate i at bits [b*i, b*i + b).
// RTN level l means the value l - (2^b - 1) / 2 (half-integer steps).
// Quantizes `count` groups (group g at x + g * stride) and writes the decoded points (out + g * stride)
// and code words. `s2` is the residual scale (ignored by single-stage codebooks).
void codebook_quantize(Codebook cb, double s2, const float* x, size_t stride, size_t count, float* out,
                       uint32_t* codes, bool use_simd = true);
void codebook_decode(Codebook cb, double s2, uint32_t code, float out[8]);

}  // namespace quip
