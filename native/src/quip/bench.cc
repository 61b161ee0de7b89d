#include "quip/bench.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "common/cpu.h"
#include "common/thread_pool.h"
#include "quip/e8p.h"
#include "quip/gemm.h"
#include "quip/hadamard.h"
#include "quip/ldlq.h"
#include "quip/rng.h"

namespace quip {

#ifdef QUIP_X86
double fma_peak_flops_avx2(long iters);  // gemm_avx2.cc: flops done
#endif
#ifdef QUIP_ARM64
double fma_peak_flops_neon(long iters);  // gemm_neon.cc: flops done
#endif

namespace {

// CPU time of the whole process (all threads): on a shared, loaded machine it shows what the
// wall-clock figures would be without the other load (CPU seconds / threads).
double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double gauss(SplitMix64& r) {  // Irwin-Hall approximation is enough for benchmark data
  double s = 0;
  for (int i = 0; i < 12; ++i) s += r.uniform();
  return s - 6;
}

std::vector<float> random_matrix(int64_t count, uint64_t seed) {
  std::vector<float> v(count);
  parallel_for((count + 65535) / 65536, 1, [&](size_t b, size_t e) {
    for (size_t c = b; c < e; ++c) {
      SplitMix64 r(seed * 1000003 + c);
      for (int64_t i = c * 65536; i < std::min<int64_t>(count, (c + 1) * 65536); ++i) v[i] = (float)gauss(r);
    }
  });
  return v;
}

}  // namespace

std::vector<double> synthetic_hessian(int64_t n, uint64_t seed) {
  SplitMix64 r(seed);
  std::vector<double> s(n), U(n * 8), H(n * n);
  for (auto& v : s) v = std::exp(gauss(r));
  for (auto& v : U) v = gauss(r);
  parallel_for(n, 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double t = std::pow(0.9, std::fabs(double(i) - double(j))) * s[i] * s[j], u = 0;
        for (int k = 0; k < 8; ++k) u += U[i * 8 + k] * U[j * 8 + k];
        H[i * n + j] = t + u;
      }
  });
  return H;
}

double fma_peak_gflops_this_thread(double seconds) {
#ifdef QUIP_X86
  if (cpu_features().avx2) {
    long iters = 1 << 20;
    double t0 = now(), flops = 0;
    while (now() - t0 < seconds) flops += fma_peak_flops_avx2(iters);
    return flops / (now() - t0) * 1e-9;
  }
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon) {
    long iters = 1 << 20;
    double t0 = now(), flops = 0;
    while (now() - t0 < seconds) flops += fma_peak_flops_neon(iters);
    return flops / (now() - t0) * 1e-9;
  }
#endif
  // Scalar: 8 independent multiply-add chains.
  volatile float sink;
  float a[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  const float m = 0.9999f, c = 0.0001f;
  double t0 = now(), flops = 0;
  while (now() - t0 < seconds) {
    for (int it = 0; it < 1 << 20; ++it)
      for (int k = 0; k < 8; ++k) a[k] = a[k] * m + c;
    flops += 2.0 * 8 * (1 << 20);
  }
  sink = a[0] + a[7];
  (void)sink;
  return flops / (now() - t0) * 1e-9;
}

std::vector<BenchFigure> bench_kernels(int threads, bool quick, const JobHooks& hooks) {
  std::vector<BenchFigure> out;
  const std::string simd = cpu_features().simd();
  const int saved = num_threads();
  auto on = [&](int t) { set_threads(t); return std::to_string(t) + (t == 1 ? " thread" : " threads"); };
  auto emit = [&](const BenchFigure& f) {
    out.push_back(f);
    char buf[256];
    std::snprintf(buf, sizeof buf, "{\"kind\":\"figure\",\"name\":\"%s\",\"variant\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}",
                  f.name.c_str(), f.variant.c_str(), f.value, f.unit.c_str());
    hooks.emit(buf);
    hooks.check();
  };
  try {
    // ---- E8P quantization throughput (groups of 8 at RMS 1.03) ----
    const int64_t groups = quick ? 20000 : 400000;
    auto x = random_matrix(groups * 8, 1);
    for (auto& v : x) v *= 1.03f;
    std::vector<float> q(x.size());
    std::vector<uint32_t> codes(groups);
    double per_cpu = 0;  // weights per CPU-second of the last run
    auto e8p_rate = [&](bool simd_on, int t, int64_t count) {
      std::string label = on(t);
      const double t0 = now(), c0 = process_cpu_seconds();
      parallel_for(count / 64, 1, [&](size_t b, size_t e) {
        codebook_quantize(Codebook::E8P, 0, x.data() + b * 512, 8, (e - b) * 64, q.data() + b * 512,
                          codes.data() + b * 64, simd_on);
      });
      const double w = count / 64 * 64 * 8;
      per_cpu = w / (process_cpu_seconds() - c0);
      return w / (now() - t0);
    };
    auto cpu_note = [&] {
      char b[96];
      std::snprintf(b, sizeof b, "; %.3g weights per CPU-second", per_cpu);
      return std::string(b);
    };
    double scalar1 = e8p_rate(false, 1, groups / 8);
    emit({"e8p_quantize", "scalar reference, 1 thread", scalar1, "weights/s", "baseline" + cpu_note()});
    double fast1 = e8p_rate(true, 1, groups);
    emit({"e8p_quantize", simd + ", 1 thread", fast1, "weights/s",
          std::to_string(fast1 / scalar1).substr(0, 5) + "x the scalar reference" + cpu_note()});
    double fastn = e8p_rate(true, threads, groups);
    emit({"e8p_quantize", simd + ", " + on(threads), fastn, "weights/s",
          std::to_string(fastn / fast1).substr(0, 5) + "x 1 thread; goal >= 2e7 on 2 threads" + cpu_note()});

    // ---- RHT throughput on activation vectors ----
    set_threads(1);
    for (int64_t n : {4096, 11008}) {
      HadamardPlan p = hadamard_plan(n);
      auto su = random_signs(3, 0, n);
      auto v = random_matrix(n, 2);
      const int reps = quick ? 20 : 400;
      double t0 = now();
      for (int r = 0; r < reps; ++r) rht_input(v.data(), p, su.data());
      double dt = (now() - t0) / reps;
      // Comparison: a dense n x n matrix-vector product of the same size (2 n^2 flops) at GEMM speed.
      emit({"rht_input", "n = " + std::to_string(n) + " (K = " + std::to_string(p.K) + "), 1 thread", n / dt,
            "elements/s", std::to_string(dt * 1e6).substr(0, 7) + " us per vector"});
    }

    // ---- GEMM vs measured FMA peak ----
    set_threads(threads);
    std::vector<double> peaks(threads, 0);
    parallel_for(threads, 1, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) peaks[i] = fma_peak_gflops_this_thread(quick ? 0.05 : 0.5);
    });
    double peak = 0;
    for (double p : peaks) peak += p;
    {
      const int64_t S = quick ? 256 : 2048;
      auto A = random_matrix(S * S, 4), B = random_matrix(S * S, 5);
      std::vector<float> C(S * S, 0.f);
      sgemm(S, S, S, 1.f, A.data(), S, B.data(), S, C.data(), S);  // warm-up
      double t0 = now();
      const int reps = quick ? 1 : 3;
      for (int r = 0; r < reps; ++r) sgemm(S, S, S, 1.f, A.data(), S, B.data(), S, C.data(), S);
      double gf = 2.0 * S * S * S * reps / (now() - t0) * 1e-9;
      emit({"fma_peak", simd + ", " + on(threads), peak, "GFLOP/s", "register-only FMA loop, all threads"});
      emit({"sgemm", std::to_string(S) + "^3, " + simd + ", " + on(threads), gf, "GFLOP/s",
            std::to_string(100 * gf / peak).substr(0, 5) + "% of the measured peak"});
    }

    // ---- BlockLDLQ + E8P of whole layers ----
    std::vector<std::pair<int64_t, int64_t>> shapes =
        quick ? std::vector<std::pair<int64_t, int64_t>>{{256, 256}} : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {4096, 11008}};
    for (auto [m, n] : shapes) {
      auto H = synthetic_hessian(n, 6);
      auto W = random_matrix(m * n, 7);
      QuantizeOptions o;
      o.seed = 1;
      QuantizeReport rep;
      set_threads(threads);
      const double cpu0 = process_cpu_seconds();
      quantize_linear(W.data(), m, n, H.data(), o, hooks, nullptr, &rep);
      const double cpu = process_cpu_seconds() - cpu0;
      char cmp[200];
      std::snprintf(cmp, sizeof cmp, "CPU %.1f s (= %.1f s wall if unloaded); proxy loss %.4f; goal <= 10 s for 4096x4096",
                    cpu, cpu / threads, rep.proxy_loss);
      emit({"blockldlq_e8p", std::to_string(m) + "x" + std::to_string(n) + ", " + on(threads), rep.seconds, "s", cmp});
    }
  } catch (...) {
    set_threads(saved);
    throw;
  }
  set_threads(saved);
  return out;
}

}  // namespace quip
