// NEON GEMM micro-kernel (arm64; 6 rows x 16 columns, 24 accumulators of the 32 vector registers);
// scalar reference in gemm.cc. Same packing as the AVX2 kernel.
#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace quip {

namespace {

// c[j] += b[j] * a[L] for the four 4-column slices of one row (A value taken by lane, no broadcast).
template <int L>
inline void row_q(float32x4_t (&c)[4], const float32x4_t (&b)[4], float32x4_t a) {
  for (int j = 0; j < 4; ++j) c[j] = vfmaq_laneq_f32(c[j], b[j], a, L);
}
template <int L>
inline void row_d(float32x4_t (&c)[4], const float32x4_t (&b)[4], float32x2_t a) {
  for (int j = 0; j < 4; ++j) c[j] = vfmaq_lane_f32(c[j], b[j], a, L);
}

// Ap: A packed as kc x 6 (row r of step k at Ap[k * 6 + r]); Bp: kc x 16.
template <int R>
inline void kernel(int64_t kc, float alpha, const float* Ap, const float* Bp, float* C, int64_t ldc, int64_t w) {
  float32x4_t acc[6][4];
  for (int r = 0; r < 6; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = vdupq_n_f32(0.f);
  for (int64_t k = 0; k < kc; ++k) {
    const float* bp = Bp + k * 16;
    const float32x4_t b[4] = {vld1q_f32(bp), vld1q_f32(bp + 4), vld1q_f32(bp + 8), vld1q_f32(bp + 12)};
    const float* a = Ap + k * 6;
    const float32x4_t a03 = vld1q_f32(a);
    const float32x2_t a45 = vld1_f32(a + 4);
    row_q<0>(acc[0], b, a03);
    if (R > 1) row_q<1>(acc[1], b, a03);
    if (R > 2) row_q<2>(acc[2], b, a03);
    if (R > 3) row_q<3>(acc[3], b, a03);
    if (R > 4) row_d<0>(acc[4], b, a45);
    if (R > 5) row_d<1>(acc[5], b, a45);
  }
  const float32x4_t al = vdupq_n_f32(alpha);
  if (w == 16) {
    for (int r = 0; r < R; ++r) {
      float* c = C + r * ldc;
      for (int j = 0; j < 4; ++j) vst1q_f32(c + 4 * j, vfmaq_f32(vld1q_f32(c + 4 * j), al, acc[r][j]));
    }
  } else {
    float tmp[16];
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < 4; ++j) vst1q_f32(tmp + 4 * j, acc[r][j]);
      for (int64_t j = 0; j < w; ++j) C[r * ldc + j] += alpha * tmp[j];
    }
  }
}

}  // namespace

void sgemm_block_neon(int64_t rows, int64_t N, int64_t kc, float alpha, const float* A, int64_t lda,
                      const float* Bp, float* C, int64_t ldc) {
  // Pack the row block into 6-row micro-panels so each step's A values come from one cache line.
  const int64_t panels = (rows + 5) / 6;
  thread_local std::vector<float> Ap;
  Ap.assign(panels * kc * 6, 0.f);
  for (int64_t pr = 0; pr < panels; ++pr)
    for (int64_t r = 0; r < 6 && pr * 6 + r < rows; ++r) {
      const float* src = A + (pr * 6 + r) * lda;
      float* dst = Ap.data() + pr * kc * 6 + r;
      for (int64_t k = 0; k < kc; ++k) dst[k * 6] = src[k];
    }
  const int64_t NP = (N + 15) / 16;
  for (int64_t p = 0; p < NP; ++p) {
    const float* B = Bp + p * kc * 16;
    const int64_t j0 = p * 16, w = std::min<int64_t>(16, N - j0);
    for (int64_t pr = 0; pr < panels; ++pr) {
      const float* a = Ap.data() + pr * kc * 6;
      float* c = C + pr * 6 * ldc + j0;
      switch (std::min<int64_t>(6, rows - pr * 6)) {
        case 6: kernel<6>(kc, alpha, a, B, c, ldc, w); break;
        case 5: kernel<5>(kc, alpha, a, B, c, ldc, w); break;
        case 4: kernel<4>(kc, alpha, a, B, c, ldc, w); break;
        case 3: kernel<3>(kc, alpha, a, B, c, ldc, w); break;
        case 2: kernel<2>(kc, alpha, a, B, c, ldc, w); break;
        default: kernel<1>(kc, alpha, a, B, c, ldc, w); break;
      }
    }
  }
}

// Twelve independent FMA chains on registers: the machine's FMA throughput (flops returned).
double fma_peak_flops_neon(long iters) {
  float32x4_t acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = vdupq_n_f32(static_cast<float>(i));
  const float32x4_t a = vdupq_n_f32(0.9999f), b = vdupq_n_f32(0.0001f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = vfmaq_f32(b, acc[i], a);
  float32x4_t s = acc[0];
  for (int i = 1; i < 12; ++i) s = vaddq_f32(s, acc[i]);
  volatile float sink = vaddvq_f32(s);
  (void)sink;
  return 2.0 * 4 * 12 * static_cast<double>(iters);
}

}  // namespace quip
