// Orthogonal Hadamard transforms of any size n = K * 2^k used by QuIP# incoherence processing
// (spec section 2): H_n = (H_K (x) H_{2^k}) / sqrt(n), with H_{2^k} the Sylvester matrix applied by the
// fast Walsh-Hadamard transform and H_K an order-K Hadamard matrix (constructed) or, where none is
// available, a fixed seeded random orthogonal K x K matrix scaled by sqrt(K).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace quip {

enum class HadamardMethod { Sylvester, Hadamard, RandomOrthogonal };
const char* hadamard_method_name(HadamardMethod m);  // "sylvester" | "hadamard" | "random-orthogonal"

struct HadamardPlan {
  int64_t n = 0;
  int64_t K = 1;     // the non-power-of-two factor
  int64_t pow2 = 1;  // 2^k, n = K * pow2
  HadamardMethod method = HadamardMethod::Sylvester;
  std::string construction;  // e.g. "Paley I (q = 11)"; empty for K = 1
};

// The factorisation used for size n (n >= 1). Rule: K = 1 for powers of two; else the first K of
// {12, 20, 28, 36, 52, 60, 108, 116, 124, 140, 156, 172} with n / K a power of two; else the smallest
// multiple of 4 with n / K a power of two that we can construct; else the random orthogonal fallback
// with K = the odd part of n.
HadamardPlan hadamard_plan(int64_t n);

// How an order-K Hadamard matrix is built here, or "" when this code has no construction for K.
std::string hadamard_construction(int64_t K);

// The K x K factor, row-major, with F F^T = K I: entries +-1 for a Hadamard matrix, a seeded random
// orthogonal matrix times sqrt(K) for the fallback. Cached per K; thread-safe.
const std::vector<float>& hadamard_factor(const HadamardPlan& plan);

// The +-1 order-K Hadamard matrix of hadamard_construction(K) (throws when there is none).
std::vector<int8_t> hadamard_matrix(int64_t K);

// The random orthogonal fallback (times sqrt(K)), exposed for tests: rows orthogonal, norms sqrt(K).
std::vector<double> random_orthogonal_factor(int64_t K, uint64_t seed);

// In-place unnormalised fast Walsh-Hadamard transform of length `len` (a power of two).
void fwht(float* x, int64_t len);
void fwht_scalar(float* x, int64_t len);

// x <- H_n x (transpose = false) or H_n^T x (transpose = true), in place on one vector of length n.
// `work` is scratch space (resized as needed; keep one per thread).
void hadamard_apply(const HadamardPlan& plan, float* x, bool transpose, std::vector<float>& work);
void hadamard_apply(const HadamardPlan& plan, double* x, bool transpose, std::vector<double>& work);

// Seeded +-1 sign vector: splitmix64 started at seed ^ (0xA0761D6478BD642F * (stream + 1)); entry i is
// -1 when bit 63 of draw i is set. Streams: 0 = SU (input side, length n), 1 = SV (output, length m).
std::vector<int8_t> random_signs(uint64_t seed, uint64_t stream, int64_t len);

// Randomized Hadamard transform of a weight matrix W (m x n, row-major), in place:
//   forward: W~ = H_m^T diag(sv) W diag(su) H_n     inverse: W = diag(sv) H_m W~ H_n^T diag(su)
void rht_forward_matrix(float* W, int64_t m, int64_t n, const HadamardPlan& pm, const HadamardPlan& pn,
                        const int8_t* sv, const int8_t* su);
void rht_inverse_matrix(float* W, int64_t m, int64_t n, const HadamardPlan& pm, const HadamardPlan& pn,
                        const int8_t* sv, const int8_t* su);
// H~ = H_n^T diag(su) H diag(su) H_n for a symmetric n x n matrix (double, row-major), in place.
void rht_hessian(double* H, int64_t n, const HadamardPlan& pn, const int8_t* su);

// Activation side (inference, spec section 7): x <- H_n^T (su .* x) and y <- sv .* (H_m y).
void rht_input(float* x, const HadamardPlan& pn, const int8_t* su);
void rht_output(float* y, const HadamardPlan& pm, const int8_t* sv);

}  // namespace quip
