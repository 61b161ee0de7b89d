// Damping, block LDL (g = 8) and BlockLDLQ rounding of one linear layer (spec sections 1, 2, 5), plus
// the per-layer entry points quantize_linear / dequantize_linear used by the quantization job.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/job.h"
#include "quip/e8p.h"
#include "quip/hadamard.h"

namespace quip {

// H <- H / mean(diag H); H_ii += sigma (n x n, row-major, in place). Throws when diag H is not positive.
void damp_hessian(double* H, int64_t n, double sigma);

// Lower Cholesky factor in place (upper triangle zeroed). Returns false when the matrix is not
// numerically positive definite. Blocked; float32 uses the SIMD GEMM for trailing updates.
bool cholesky_lower(float* A, int64_t n);
bool cholesky_lower(double* A, int64_t n);

// Block LDL (g = 8, n a multiple of 8) from a lower Cholesky factor C (H = C C^T):
// D_i = C_ii C_ii^T, L[:, i] = C[:, i] C_ii^{-1}. L is n x n unit block-lower-triangular; D holds the
// n/8 diagonal 8x8 blocks (64 floats each). H = L D L^T.
void block_ldl_from_cholesky(const float* C, int64_t n, float* L, float* D);

// BlockLDLQ on an already transformed, scaled and padded problem: W (m x n, n a multiple of 8) and
// L, D of H. Rounds 8-column blocks from the last to the first, each with feedback
// W^_k = Q(W_k + (W - W^)_{done} L_{done,k}) (or, with feedback = false, nearest rounding Q(W_k)).
// Writes W^ (m x n) and one code word per group (m x n/8). Returns tr((W^-W) H (W^-W)^T) and sets
// *wHw = tr(W H W^T), both from the LDL form. hooks: cancellation and progress (fraction of blocks).
double block_ldlq(Codebook cb, double s2, const float* W, int64_t m, int64_t n, const float* L,
                  const float* D, bool feedback, float* What, uint32_t* codes, double* wHw,
                  const JobHooks& hooks, bool use_simd = true);

// Tune iterations (block coordinate descent): W^_k <- Q(W^_k + (W - W^) H_{:,k} H_kk^{-1}), blocks in
// the same order. Returns the new tr((W^-W) H (W^-W)^T).
double tune_blocks(Codebook cb, double s2, const float* W, int64_t m, int64_t n, const float* H, int iters,
                   float* What, uint32_t* codes, const JobHooks& hooks);

struct QuantizeOptions {
  Codebook codebook = Codebook::E8P;
  bool incoherence = true;
  bool ldlq = true;
  double sigma = 0.01;
  double rho = 0;  // <= 0: the codebook's default
  double s2 = 0;   // <= 0: the codebook's default residual scale
  int tune_iters = 0;
  uint64_t seed = 0;
  // With incoherence: divide each row of W by its RMS before the transform and fold the factors
  // into SV (which becomes real-valued, as fine-tuning makes it anyway). The RHT spreads the
  // codebook's error evenly over the output rows; without this, rows far smaller than the layer's
  // RMS (common in q/k projections) get a large relative error that the proxy loss, a sum over
  // rows, does not see but attention does.
  bool row_scale = true;
};

// Everything needed to rebuild W^ (and to run inference on it).
struct QuantizedLinear {
  int64_t m = 0, n = 0, n_padded = 0;
  Codebook codebook = Codebook::E8P;
  double rho = 0, s2 = 0, scale = 1;  // W~ was divided by scale before rounding
  bool incoherence = true;
  uint64_t seed = 0;
  std::vector<int8_t> su, sv;  // +-1, lengths n and m (all +1 without incoherence)
  std::vector<float> row_scale;  // length m when rows were normalised (QuantizeOptions::row_scale), else empty
  HadamardPlan plan_in, plan_out;
  std::vector<uint32_t> codes;  // m x n_padded/8 code words (see codebook_quantize)
};

struct QuantizeReport {
  double proxy_loss = 0;       // tr((W^-W) H (W^-W)^T) / tr(W H W^T), damped normalised H
  double frobenius_error = 0;  // ||W^ - W||^2 / ||W||^2
  double sigma_used = 0;
  std::string cholesky_fallback;  // "" (float32 worked), "float64", "float64, sigma = X"
  double seconds = 0;
};

// W: m x n row-major; H: n x n (float64, symmetric PSD input second moment, not yet damped).
// dequantized (optional): W^ in the original basis, m x n.
QuantizedLinear quantize_linear(const float* W, int64_t m, int64_t n, const double* H,
                                const QuantizeOptions& opts, const JobHooks& hooks,
                                std::vector<float>* dequantized, QuantizeReport* report);

// tr((W^-W) H (W^-W)^T) / tr(W H W^T) of any W^ (another quantizer's, say), with H damped and
// normalised as quantize_linear does: the same proxy loss its report gives.
double relative_proxy_loss(const float* W, const float* What, int64_t m, int64_t n, const double* H, double sigma,
                           const JobHooks& hooks);

// tr(W H W^T) with H damped and normalised the same way: the proxy loss's denominator.
double weighted_energy(const float* W, int64_t m, int64_t n, const double* H, double sigma, const JobHooks& hooks);

// W^ (m x n, original basis) from codes, scale, sign vectors and row scales.
void dequantize_linear(const QuantizedLinear& q, float* out);

}  // namespace quip
