#include "runtime/roofline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "common/thread_pool.h"
#include "runtime/gemm.h"

namespace quip::runtime {

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double measure_read_bandwidth(size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buf(n);
  // Touch every page (first touch from the pool, so pages spread like the weights' reads do).
  parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) buf[i] = static_cast<float>(i & 1023) * 1e-3f;
  });
  const size_t chunk = 1 << 18;  // floats per task (1 MiB)
  const size_t chunks = (n + chunk - 1) / chunk;
  std::vector<float> ones(chunk, 1.0f);
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int r = 0; r < repeats; ++r) {
    std::atomic<int> acc{0};
    double t0 = now_s();
    parallel_for(chunks, 1, [&](size_t b, size_t e) {
      float s = 0.0f;
      for (size_t c = b; c < e; ++c) {
        const size_t begin = c * chunk, len = std::min(chunk, n - begin);
        s += dot_f32(buf.data() + begin, ones.data(), static_cast<int>(len));  // a vectorized streaming read
      }
      acc.fetch_add(s > 1e30f ? 1 : 0);
    });
    double dt = now_s() - t0;
    sink = sink + static_cast<float>(acc.load());
    best = std::max(best, static_cast<double>(n * sizeof(float)) / dt / 1e9);
  }
  return best;
}

double measure_gemm_peak(int tokens, int m, int k, int repeats) {
  std::vector<float> x(static_cast<size_t>(tokens) * k), w(static_cast<size_t>(m) * k), y(static_cast<size_t>(tokens) * m);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) * 0.1f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 5) * 0.1f;
  WeightView wv{w.data(), DType::F32, m, k};
  matmul_wt(x.data(), tokens, wv, y.data());  // warm-up
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    double t0 = now_s();
    matmul_wt(x.data(), tokens, wv, y.data());
    double dt = now_s() - t0;
    best = std::max(best, 2.0 * tokens * m * static_cast<double>(k) / dt / 1e9);
  }
  return best;
}

}  // namespace quip::runtime
