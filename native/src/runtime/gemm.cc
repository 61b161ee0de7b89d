#include "runtime/gemm.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "common/cpu.h"
#include "common/thread_pool.h"

namespace quip::runtime {
namespace {

// ---- scalar reference kernels -------------------------------------------------------------------
void convert_scalar(const void* src, DType dtype, size_t offset, int count, float* dst) {
  for (int i = 0; i < count; ++i) dst[i] = load_as_f32(src, dtype, offset + static_cast<size_t>(i));
}

void tile_scalar(const float* x, size_t ldx, int nt, const float* w, size_t ldw, int nr, int kc, float* y,
                 size_t ldy, bool accumulate) {
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < nr; ++r) {
      const float* a = x + t * ldx;
      const float* b = w + r * ldw;
      float s = 0.0f;
      for (int k = 0; k < kc; ++k) s += a[k] * b[k];
      float& out = y[t * ldy + r];
      out = accumulate ? out + s : s;
    }
}

void matvec_scalar(const float* x, const WeightView& w, int m0, int m1, float* y) {
  for (int m = m0; m < m1; ++m) {
    size_t base = static_cast<size_t>(m) * w.cols;
    float s = 0.0f;
    for (int k = 0; k < w.cols; ++k) s += x[k] * load_as_f32(w.data, w.dtype, base + k);
    y[m] = s;
  }
}

float dot_scalar(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_scalar(float a, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

void attend_scalar(const float* q, const float* k, const float* v, size_t stride, int npos, int d, float scale,
                   float* scores, float* out) {
  float mx = -INFINITY;
  for (int j = 0; j < npos; ++j) {
    scores[j] = dot_scalar(q, k + j * stride, d) * scale;
    mx = std::max(mx, scores[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < npos; ++j) sum += scores[j] = std::exp(scores[j] - mx);
  std::fill(out, out + d, 0.0f);
  const float inv = 1.0f / sum;
  for (int j = 0; j < npos; ++j) axpy_scalar(scores[j] * inv, v + j * stride, out, d);
}

}  // namespace

const GemmKernels& gemm_kernels_scalar() {
  static const GemmKernels k{convert_scalar, tile_scalar, matvec_scalar, dot_scalar, axpy_scalar, attend_scalar};
  return k;
}

#ifndef QUIP_X86
const GemmKernels& gemm_kernels_avx2() { return gemm_kernels_scalar(); }
void matmul_wt_avx512(const float*, int, const WeightView&, float*, const GemmKernels&) {
  throw std::runtime_error("the AVX-512 GEMM is x86-64 only");
}
void gemm_panels_avx512(const float*, int, int, size_t, int, const PanelFn&, float*, size_t) {
  throw std::runtime_error("the AVX-512 GEMM is x86-64 only");
}
#endif
#ifndef QUIP_ARM64
const GemmKernels& gemm_kernels_neon() { return gemm_kernels_scalar(); }
#endif

const GemmKernels& gemm_kernels(GemmImpl impl) {
  const CpuFeatures& cpu = cpu_features();
  switch (impl) {
    case GemmImpl::Scalar: return gemm_kernels_scalar();
    case GemmImpl::Avx2:
      if (!cpu.avx2) throw std::runtime_error("the AVX2 GEMM was requested on a CPU without AVX2/FMA/F16C");
      return gemm_kernels_avx2();
    case GemmImpl::Avx512:
      if (!cpu.avx512) throw std::runtime_error("the AVX-512 GEMM was requested on a CPU without AVX-512 F/BW/VL/VBMI/VNNI and GFNI");
      return gemm_kernels_avx2();  // the batched GEMM is matmul_wt_avx512; the rest is AVX2
    case GemmImpl::Neon:
      if (!cpu.neon) throw std::runtime_error("the NEON GEMM was requested on a build or CPU without NEON (arm64 only)");
      return gemm_kernels_neon();
    case GemmImpl::Auto: break;
  }
  return cpu.avx2 ? gemm_kernels_avx2() : cpu.neon ? gemm_kernels_neon() : gemm_kernels_scalar();
}

float dot_f32(const float* a, const float* b, int n) { return gemm_kernels().dot(a, b, n); }
void axpy_f32(float a, const float* x, float* y, int n) { gemm_kernels().axpy(a, x, y, n); }

void matmul_wt(const float* x, int tokens, const WeightView& w, float* y, GemmImpl impl) {
  const GemmKernels& kern = gemm_kernels(impl);
  const int M = w.rows, K = w.cols;
  if (tokens <= 0 || M <= 0) return;
  if (tokens == 1) {
    // Decode: memory-bound, so convert inside the dot product and split rows finely.
    parallel_for(static_cast<size_t>(M), 16, [&](size_t b, size_t e) {
      kern.matvec(x, w, static_cast<int>(b), static_cast<int>(e), y);
    });
    return;
  }
  if (impl == GemmImpl::Avx512 || (impl == GemmImpl::Auto && cpu_features().avx512)) {
    matmul_wt_avx512(x, tokens, w, y, kern);
    return;
  }
  const size_t row_blocks = static_cast<size_t>((M + kRowBlock - 1) / kRowBlock);
  // Panels are stored with a row stride of kc + 8 floats: power-of-two strides (K = 2048, ...) would
  // map every row of a panel to the same L1 sets.
  parallel_for(row_blocks, 1, [&](size_t rb0, size_t rb1) {
    thread_local std::vector<float> wpanel, xpanel;
    wpanel.resize(static_cast<size_t>(kRowBlock) * (kKBlock + 8));
    xpanel.resize(static_cast<size_t>(kTokenBlock) * (kKBlock + 8));
    for (size_t rb = rb0; rb < rb1; ++rb) {
      const int m0 = static_cast<int>(rb) * kRowBlock;
      const int mr = std::min(kRowBlock, M - m0);
      for (int k0 = 0; k0 < K; k0 += kKBlock) {
        const int kc = std::min(kKBlock, K - k0);
        const size_t ld = static_cast<size_t>(kc) + 8;
        // W[m0 .. m0+mr, k0 .. k0+kc) -> float32 panel.
        for (int r = 0; r < mr; ++r)
          kern.convert(w.data, w.dtype, static_cast<size_t>(m0 + r) * K + k0, kc, wpanel.data() + r * ld);
        for (int t0 = 0; t0 < tokens; t0 += kTokenBlock) {
          const int tb = std::min(kTokenBlock, tokens - t0);
          for (int t = 0; t < tb; ++t)
            std::copy(x + static_cast<size_t>(t0 + t) * K + k0, x + static_cast<size_t>(t0 + t) * K + k0 + kc, xpanel.data() + t * ld);
          for (int r = 0; r < mr; r += 6) {
            const int nr = std::min(6, mr - r);
            for (int t = 0; t < tb; t += 2) {
              const int nt = std::min(2, tb - t);
              kern.tile(xpanel.data() + t * ld, ld, nt, wpanel.data() + r * ld, ld, nr, kc,
                        y + static_cast<size_t>(t0 + t) * M + m0 + r, M, k0 > 0);
            }
          }
        }
      }
    }
  });
}

}  // namespace quip::runtime
