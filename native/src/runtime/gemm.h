// Blocked GEMM of the engine: Y = X W^T with W a row-major [out x in] weight stored as F32, F16 or
// BF16 (straight from the memory map) and X, Y float32. This is what every dense linear layer runs.
//
// Tiling: each task owns kRowBlock output features; W is converted to float32 kKBlock columns at a
// time into a per-thread panel (so 16-bit weights are read from memory once per token block), and a
// microkernel computes 2 tokens x 6 outputs as dot products along K. One token (decode) skips the
// panel and converts inside the dot product, because then the weights are read exactly once anyway.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "common/half.h"

namespace quip::runtime {

constexpr int kRowBlock = 48;   // output features per task (a multiple of the microkernel's 6)
constexpr int kKBlock = 512;    // input features per panel
constexpr int kTokenBlock = 64; // tokens per pass over one panel (keeps the X rows in L2)

// A row-major [rows x cols] matrix in one of the weight dtypes (not owned).
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int rows = 0;
  int cols = 0;
};

enum class GemmImpl { Auto, Scalar, Avx2, Neon, Avx512 };

// y[t * w.rows + m] = sum_k x[t * w.cols + k] * W[m, k]  for t < tokens. Multithreaded (thread pool).
// Avx2 requires cpu_features().avx2, Neon cpu_features().neon, Avx512 cpu_features().avx512; Auto picks
// the one available. With several tokens on AVX-512 CPUs (Auto or Avx512) the batch runs
// matmul_wt_avx512 (gemm_avx512.cc: x transposed once, lanes = tokens, 4 x 16 tokens x 6 rows per
// microkernel); everything else uses the kernel table's 2 x 6 tile.
void matmul_wt(const float* x, int tokens, const WeightView& w, float* y, GemmImpl impl = GemmImpl::Auto);

struct GemmKernels;
// The AVX-512 batched GEMM (tokens >= 2); kern supplies the weight conversion. Only when cpu_features().avx512.
void matmul_wt_avx512(const float* x, int tokens, const WeightView& w, float* y, const GemmKernels& kern);
// The same GEMM over any weight source: panel(m0, mr, k0, kc, p, ldp) writes W[m0 + r, k0 .. k0 + kc)
// as float32 to p + r * ldp for r < mr (called once per row block and column chunk, on the worker).
// x: tokens rows of K floats, ldx apart; y[t * ldy + m] for m < M. Only when cpu_features().avx512.
using PanelFn = std::function<void(int m0, int mr, int k0, int kc, float* p, size_t ldp)>;
void gemm_panels_avx512(const float* x, int tokens, int K, size_t ldx, int M, const PanelFn& panel, float* y, size_t ldy);

// Vector helpers of the attention loop, dispatched the same way.
float dot_f32(const float* a, const float* b, int n);
void axpy_f32(float a, const float* x, float* y, int n);  // y += a x

// Kernel table: one row per implementation (scalar reference beside the AVX2 and NEON ones).
struct GemmKernels {
  // Converts `count` weights starting at element `offset` of a row to float32.
  void (*convert)(const void* src, DType dtype, size_t offset, int count, float* dst);
  // y[t * ldy + r] (+)= dot(x[t * ldx .. + kc], w[r * ldw .. + kc]) for t < nt (<= 2), r < nr (<= 6).
  void (*tile)(const float* x, size_t ldx, int nt, const float* w, size_t ldw, int nr, int kc, float* y,
               size_t ldy, bool accumulate);
  // y[m] = dot(x, W[m, :]) for m in [m0, m1), converting W on the fly (one-token decode).
  void (*matvec)(const float* x, const WeightView& w, int m0, int m1, float* y);
  float (*dot)(const float* a, const float* b, int n);
  void (*axpy)(float a, const float* x, float* y, int n);
  // One query row of causal attention over npos cached positions (rows of k and v `stride` floats
  // apart, d wide): scores_j = scale q.k_j, p = softmax(scores), out = sum_j p_j v_j.
  // `scores` has room for npos floats.
  void (*attend)(const float* q, const float* k, const float* v, size_t stride, int npos, int d, float scale,
                 float* scores, float* out);
};
const GemmKernels& gemm_kernels_scalar();
const GemmKernels& gemm_kernels_avx2();  // only call when cpu_features().avx2
const GemmKernels& gemm_kernels_neon();  // only call when cpu_features().neon
const GemmKernels& gemm_kernels(GemmImpl impl = GemmImpl::Auto);

}  // namespace quip::runtime
