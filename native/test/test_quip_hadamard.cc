// Hadamard factors, plans, the fast transform and the randomized Hadamard transform against dense
// float64 references.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/cpu.h"
#include "harness.h"
#include "quip/hadamard.h"

using namespace quip;

static bool is_hadamard(const std::vector<int8_t>& H, int64_t K) {
  if (static_cast<int64_t>(H.size()) != K * K) return false;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      int64_t d = 0;
      for (int64_t c = 0; c < K; ++c) {
        if (H[i * K + c] != 1 && H[i * K + c] != -1) return false;
        d += H[i * K + c] * H[j * K + c];
      }
      if (d != (i == j ? K : 0)) return false;
    }
  return true;
}

// Every order this code can build satisfies H H^T = K I exactly.
TEST(every_constructed_order_is_hadamard) {
  int built = 0;
  for (int64_t K = 1; K <= 260; ++K) {
    if (hadamard_construction(K).empty()) continue;
    CHECK(is_hadamard(hadamard_matrix(K), K));
    ++built;
  }
  std::printf("  %d orders <= 260 constructed\n", built);
  for (int64_t K : {12, 20, 28, 36, 44, 52, 60, 76, 108, 116, 124, 140, 172})
    CHECK(!hadamard_construction(K).empty());
}

TEST(reference_list_orders) {
  for (int64_t K : {12, 20, 28, 36, 52, 60, 108, 116, 124, 140, 156, 172}) {
    HadamardPlan p = hadamard_plan(K * 4);
    CHECK(p.K == K);
    std::printf("  K = %lld: %s, %s\n", (long long)K, hadamard_method_name(p.method), p.construction.c_str());
    if (p.method == HadamardMethod::Hadamard) CHECK(is_hadamard(hadamard_matrix(K), K));
  }
}

TEST(plans_for_model_dimensions) {
  struct Want { int64_t n, K; };
  for (Want w : std::vector<Want>{{64, 1}, {172, 172}, {192, 12}, {576, 36}, {1536, 12}, {4096, 1},
                                  {5120, 20}, {5632, 44}, {11008, 172}, {13824, 108}, {28672, 28},
                                  {896, 28}, {4864, 76}, {14336, 28}, {8192, 1}, {49152, 12}}) {
    HadamardPlan p = hadamard_plan(w.n);
    CHECK(p.K == w.K);
    CHECK(p.K * p.pow2 == w.n);
    CHECK((p.pow2 & (p.pow2 - 1)) == 0);
    if (w.K == 1) CHECK(p.method == HadamardMethod::Sylvester);
    if (w.K == 44) CHECK(p.construction == "Paley I (q = 43)");
  }
  // No Hadamard of order 3 * 2^0..1 or odd order: the fallback takes the odd part.
  HadamardPlan odd = hadamard_plan(3 * 7);
  CHECK(odd.K == 21 && odd.method == HadamardMethod::RandomOrthogonal);
  HadamardPlan six = hadamard_plan(6);
  CHECK(six.K == 3 && six.method == HadamardMethod::RandomOrthogonal);
}

TEST(random_orthogonal_fallback_is_orthogonal_and_reproducible) {
  for (int64_t K : {3, 21, 172}) {
    auto Q = random_orthogonal_factor(K, 7);
    auto Q2 = random_orthogonal_factor(K, 7);
    CHECK(Q == Q2);
    double worst = 0;
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) {
        double d = 0;
        for (int64_t c = 0; c < K; ++c) d += Q[i * K + c] * Q[j * K + c];
        worst = std::max(worst, std::fabs(d - (i == j ? K : 0)));
      }
    CHECK(worst < 1e-9 * K);
  }
}

// fwht takes this build's SIMD path (AVX2 from length 8, NEON from length 4) unless forced scalar.
TEST(fwht_simd_matches_scalar) {
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  for (int64_t len : {4, 8, 16, 64, 1024, 4096}) {
    std::vector<float> a(len), b;
    for (auto& v : a) v = g(rng);
    b = a;
    fwht(a.data(), len);
    fwht_scalar(b.data(), len);
    double worst = 0;
    for (int64_t i = 0; i < len; ++i) worst = std::max(worst, (double)std::fabs(a[i] - b[i]));
    CHECK(worst < 1e-4 * std::sqrt((double)len));
  }
}

// Dense float64 H_n = (F_K (x) Sylvester_P) / sqrt(n) built entry by entry.
static std::vector<double> dense_hadamard(const HadamardPlan& p) {
  const auto& F = hadamard_factor(p);
  int64_t n = p.n, P = p.pow2;
  std::vector<double> H(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t a = i / P, b = i % P, c = j / P, d = j % P;
      double syl = (__builtin_popcountll(b & d) & 1) ? -1.0 : 1.0;
      H[i * n + j] = F[a * p.K + c] * syl / std::sqrt((double)n);
    }
  return H;
}

TEST(hadamard_apply_matches_dense_and_is_orthogonal) {
  std::mt19937 rng(2);
  std::normal_distribution<double> g;
  for (int64_t n : {64, 172, 192, 576, 344}) {
    HadamardPlan p = hadamard_plan(n);
    auto H = dense_hadamard(p);
    // Orthogonality of the dense matrix.
    double worst = 0;
    for (int64_t i = 0; i < n; i += 7)
      for (int64_t j = 0; j < n; ++j) {
        double d = 0;
        for (int64_t c = 0; c < n; ++c) d += H[i * n + c] * H[j * n + c];
        worst = std::max(worst, std::fabs(d - (i == j ? 1.0 : 0.0)));
      }
    CHECK(worst < 1e-6);
    std::vector<float> x(n), y, work;
    for (auto& v : x) v = (float)g(rng);
    for (bool tr : {false, true}) {
      y = x;
      hadamard_apply(p, y.data(), tr, work);
      double err = 0;
      for (int64_t i = 0; i < n; ++i) {
        double ref = 0;
        for (int64_t j = 0; j < n; ++j) ref += (tr ? H[j * n + i] : H[i * n + j]) * x[j];
        err = std::max(err, std::fabs(ref - y[i]));
      }
      CHECK(err < 1e-4);
    }
  }
}

TEST(rht_preserves_trace_and_inverts) {
  std::mt19937 rng(3);
  std::normal_distribution<double> g;
  const int64_t m = 64, n = 172;
  HadamardPlan pm = hadamard_plan(m), pn = hadamard_plan(n);
  auto su = random_signs(11, 0, n), sv = random_signs(11, 1, m);
  CHECK(random_signs(11, 0, n) == su);
  std::vector<float> W(m * n);
  for (auto& v : W) v = (float)g(rng);
  // A correlated PSD H = X^T X / t.
  const int64_t t = 400;
  std::vector<double> X(t * n), H(n * n, 0.0);
  for (int64_t r = 0; r < t; ++r) {
    double common = g(rng);
    for (int64_t c = 0; c < n; ++c) X[r * n + c] = g(rng) + 0.8 * common + (c == 5 ? 20 * g(rng) : 0);
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t r = 0; r < t; ++r) s += X[r * n + i] * X[r * n + j];
      H[i * n + j] = s / t;
    }
  auto trace = [&](const std::vector<float>& A, const std::vector<double>& M) {
    double tr = 0;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += M[i * n + j] * A[r * n + j];
        tr += A[r * n + i] * s;
      }
    return tr;
  };
  double before = trace(W, H);
  std::vector<float> Wt = W;
  std::vector<double> Ht = H;
  rht_forward_matrix(Wt.data(), m, n, pm, pn, sv.data(), su.data());
  rht_hessian(Ht.data(), n, pn, su.data());
  double after = trace(Wt, Ht);
  CHECK(std::fabs(after - before) < 1e-5 * before);
  // Dense reference of the forward transform.
  auto Hm = dense_hadamard(pm), Hn = dense_hadamard(pn);
  double err = 0;
  for (int64_t r = 0; r < m; r += 5)
    for (int64_t c = 0; c < n; c += 3) {
      double s = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) s += Hm[i * m + r] * sv[i] * W[i * n + j] * su[j] * Hn[j * n + c];
      err = std::max(err, std::fabs(s - Wt[r * n + c]));
    }
  CHECK(err < 1e-4);
  rht_inverse_matrix(Wt.data(), m, n, pm, pn, sv.data(), su.data());
  double back = 0;
  for (int64_t i = 0; i < m * n; ++i) back = std::max(back, (double)std::fabs(Wt[i] - W[i]));
  CHECK(back < 1e-5);
  // Activation side: y = W x equals sv .* H_m (W~ (H_n^T (su .* x))).
  std::vector<float> x(n), xt(n), y(m, 0.0f);
  for (auto& v : x) v = (float)g(rng);
  xt = x;
  rht_input(xt.data(), pn, su.data());
  std::vector<float> W2 = W;
  rht_forward_matrix(W2.data(), m, n, pm, pn, sv.data(), su.data());
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) y[r] += W2[r * n + c] * xt[c];
  rht_output(y.data(), pm, sv.data());
  double yerr = 0;
  for (int64_t r = 0; r < m; ++r) {
    double ref = 0;
    for (int64_t c = 0; c < n; ++c) ref += W[r * n + c] * x[c];
    yerr = std::max(yerr, std::fabs(ref - y[r]));
  }
  CHECK(yerr < 1e-3);
}

QUIP_TEST_MAIN()
