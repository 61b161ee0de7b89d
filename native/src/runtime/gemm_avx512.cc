// AVX-512 prefill GEMM of the engine (compiled with the AVX-512 flags; called only when
// cpu_features().avx512): Y = X W^T for a batch of tokens with float32 accumulation, lanes = tokens.
// X is transposed once per call into [token group of 16][k][16 tokens]; each task owns kRowBlock rows
// of W, converts them kChunk columns at a time into a float panel (the 16-bit weights are read and
// converted once per call, not once per token) and runs a 4 token groups x 6 rows microkernel: 24
// zmm accumulators, one x vector per group and k, every weight broadcast from the panel into the FMA.
// The float sums run along k in the same order for every token, so the result does not depend on
// the thread count; it differs from the AVX2 / scalar GEMM only by float summation order.
#include <immintrin.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "common/thread_pool.h"
#include "runtime/gemm.h"

namespace quip::runtime {
namespace {

constexpr int kChunk = 256;  // columns per weight panel

template <int NG, int NR>
void tile(const float* xg, size_t ldg, const float* w, size_t ldw, int kc, float* C, size_t ldc) {
  __m512 acc[NG][NR];
  for (int g = 0; g < NG; ++g)
    for (int r = 0; r < NR; ++r) acc[g][r] = _mm512_loadu_ps(C + r * ldc + g * 16);
  for (int k = 0; k < kc; ++k) {
    __m512 xv[NG];
    for (int g = 0; g < NG; ++g) xv[g] = _mm512_loadu_ps(xg + g * ldg + static_cast<size_t>(k) * 16);
    for (int r = 0; r < NR; ++r) {
      const __m512 wb = _mm512_set1_ps(w[r * ldw + k]);
      for (int g = 0; g < NG; ++g) acc[g][r] = _mm512_fmadd_ps(xv[g], wb, acc[g][r]);
    }
  }
  for (int g = 0; g < NG; ++g)
    for (int r = 0; r < NR; ++r) _mm512_storeu_ps(C + r * ldc + g * 16, acc[g][r]);
}

template <int NG>
void tile_rows(const float* xg, size_t ldg, const float* w, size_t ldw, int nr, int kc, float* C, size_t ldc) {
  switch (nr) {
    case 6: return tile<NG, 6>(xg, ldg, w, ldw, kc, C, ldc);
    case 5: return tile<NG, 5>(xg, ldg, w, ldw, kc, C, ldc);
    case 4: return tile<NG, 4>(xg, ldg, w, ldw, kc, C, ldc);
    case 3: return tile<NG, 3>(xg, ldg, w, ldw, kc, C, ldc);
    case 2: return tile<NG, 2>(xg, ldg, w, ldw, kc, C, ldc);
    default: return tile<NG, 1>(xg, ldg, w, ldw, kc, C, ldc);
  }
}

}  // namespace

void gemm_panels_avx512(const float* x, int tokens, int K, size_t ldx, int M, const PanelFn& panel, float* y, size_t ldy) {
  const int tpad = (tokens + 15) / 16 * 16, groups = tpad / 16;
  const size_t ldg = static_cast<size_t>(K) * 16;  // floats per packed token group
  // X^T per token group: xt[g][k][lane] = x[16 g + lane][k] (zero for padding tokens).
  thread_local std::vector<float> xt;
  xt.assign(static_cast<size_t>(groups) * ldg, 0.0f);
  float* xtw = xt.data();
  parallel_for(static_cast<size_t>(tokens), 4, [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      float* dst = xtw + (t / 16) * ldg + (t % 16);
      const float* src = x + t * ldx;
      for (int k = 0; k < K; ++k) dst[static_cast<size_t>(k) * 16] = src[k];
    }
  });
  const size_t row_blocks = static_cast<size_t>((M + kRowBlock - 1) / kRowBlock);
  const float* xtp = xtw;
  parallel_for(row_blocks, 1, [&](size_t rb0, size_t rb1) {
    thread_local std::vector<float> wpanel, C;
    const size_t ldw = kChunk + 16;
    wpanel.resize(static_cast<size_t>(kRowBlock) * ldw);
    C.resize(static_cast<size_t>(kRowBlock) * tpad);
    for (size_t rb = rb0; rb < rb1; ++rb) {
      const int m0 = static_cast<int>(rb) * kRowBlock, mr = std::min(kRowBlock, M - m0);
      std::fill(C.begin(), C.begin() + static_cast<size_t>(mr) * tpad, 0.0f);
      for (int k0 = 0; k0 < K; k0 += kChunk) {
        const int kc = std::min(kChunk, K - k0);
        panel(m0, mr, k0, kc, wpanel.data(), ldw);
        for (int g = 0; g < groups; g += 4) {
          const int ng = std::min(4, groups - g);
          const float* xg = xtp + g * ldg + static_cast<size_t>(k0) * 16;
          for (int r = 0; r < mr; r += 6) {
            const int nr = std::min(6, mr - r);
            float* Cr = C.data() + static_cast<size_t>(r) * tpad + g * 16;
            const float* wr = wpanel.data() + r * ldw;
            switch (ng) {
              case 4: tile_rows<4>(xg, ldg, wr, ldw, nr, kc, Cr, tpad); break;
              case 3: tile_rows<3>(xg, ldg, wr, ldw, nr, kc, Cr, tpad); break;
              case 2: tile_rows<2>(xg, ldg, wr, ldw, nr, kc, Cr, tpad); break;
              default: tile_rows<1>(xg, ldg, wr, ldw, nr, kc, Cr, tpad); break;
            }
          }
        }
      }
      for (int t = 0; t < tokens; ++t)
        for (int r = 0; r < mr; ++r) y[static_cast<size_t>(t) * ldy + m0 + r] = C[static_cast<size_t>(r) * tpad + t];
    }
  });
}

void matmul_wt_avx512(const float* x, int tokens, const WeightView& w, float* y, const GemmKernels& kern) {
  const int K = w.cols;
  const size_t elem = w.dtype == DType::F32 ? 4 : 2;
  const char* base = static_cast<const char*>(w.data);
  gemm_panels_avx512(x, tokens, K, static_cast<size_t>(K), w.rows,
                     [&](int m0, int mr, int k0, int kc, float* p, size_t ldp) {
                       for (int r = 0; r < mr; ++r) {
                         // The weights stream from memory once per call, a row slice per panel: fetch
                         // the row's next slice into L2 while this one converts.
                         const size_t row = static_cast<size_t>(m0 + r) * K;
                         const int next = std::min(kChunk, K - k0 - kc);
                         for (size_t o = 0; next > 0 && o < next * elem; o += 64)
                           _mm_prefetch(base + (row + k0 + kc) * elem + o, _MM_HINT_T1);
                         kern.convert(w.data, w.dtype, row + k0, kc, p + r * ldp);
                       }
                     },
                     y, static_cast<size_t>(w.rows));
}

}  // namespace quip::runtime
