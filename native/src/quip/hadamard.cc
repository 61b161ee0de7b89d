#include "quip/hadamard.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <type_traits>

#include "common/cpu.h"
#include "common/thread_pool.h"
#include "quip/gemm.h"
#include "quip/rng.h"

namespace quip {

#ifdef QUIP_X86
void fwht_avx2(float* x, int64_t len);  // hadamard_avx2.cc
#endif
#ifdef QUIP_ARM64
void fwht_neon(float* x, int64_t len);  // hadamard_neon.cc
#endif

const char* hadamard_method_name(HadamardMethod m) {
  switch (m) {
    case HadamardMethod::Sylvester: return "sylvester";
    case HadamardMethod::Hadamard: return "hadamard";
    default: return "random-orthogonal";
  }
}

namespace {

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// ---- finite fields GF(p^e), enough for the quadratic character used by Paley's constructions ----
// Elements are integers 0..q-1 read as base-p digit vectors (polynomial coefficients, low digit first).
struct FiniteField {
  int p = 0, e = 0, q = 0;
  std::vector<int> digits;  // q x e base-p digits
  std::vector<int8_t> chi;  // quadratic character: 0, +1 (nonzero square), -1

  static bool prime_power(int q, int* p, int* e) {
    if (q < 2) return false;
    int d = 2;
    while (d * d <= q && q % d) ++d;
    if (d * d > q) d = q;  // q is prime
    int r = q, k = 0;
    while (r % d == 0) r /= d, ++k;
    if (r != 1) return false;
    *p = d, *e = k;
    return true;
  }

  int from_digits(const int* d) const {
    int v = 0;
    for (int i = e - 1; i >= 0; --i) v = v * p + ((d[i] % p) + p) % p;
    return v;
  }
  int sub(int a, int b) const {
    int d[32];
    for (int i = 0; i < e; ++i) d[i] = digits[a * e + i] - digits[b * e + i];
    return from_digits(d);
  }

  explicit FiniteField(int q_) : q(q_) {
    if (!prime_power(q, &p, &e)) throw std::logic_error("not a prime power");
    digits.resize(q * e);
    for (int a = 0; a < q; ++a)
      for (int i = 0, v = a; i < e; ++i, v /= p) digits[a * e + i] = v % p;
    // Multiplication modulo a monic irreducible f of degree e (f[0..e-1], leading 1): the first f whose
    // quotient ring has no zero divisors. Prime fields (e = 1) multiply modulo p directly.
    std::vector<int> f(e, 0);
    auto mul = [&](int a, int b, const std::vector<int>& fc) {
      if (e == 1) return (a * b) % p;
      int r[64] = {0};
      for (int i = 0; i < e; ++i)
        for (int j = 0; j < e; ++j) r[i + j] += digits[a * e + i] * digits[b * e + j];
      for (int k = 2 * e - 2; k >= e; --k) {  // x^e = -sum f_i x^i
        int c = r[k] % p;
        r[k] = 0;
        for (int i = 0; i < e; ++i) r[k - e + i] -= c * fc[i];
      }
      return from_digits(r);
    };
    if (e > 1) {
      for (int code = 0;; ++code) {
        if (code == q) throw std::logic_error("no irreducible polynomial found");
        for (int i = 0, v = code; i < e; ++i, v /= p) f[i] = v % p;
        bool field = true;
        for (int a = 1; a < q && field; ++a)
          for (int b = a; b < q; ++b)
            if (mul(a, b, f) == 0) { field = false; break; }
        if (field) break;
      }
    }
    chi.assign(q, -1);
    chi[0] = 0;
    for (int a = 1; a < q; ++a) chi[mul(a, a, f)] = 1;
  }
};

// Jacobsthal matrix Q_ab = chi(a - b).
std::vector<int> jacobsthal(const FiniteField& F) {
  std::vector<int> Q(F.q * F.q);
  for (int a = 0; a < F.q; ++a)
    for (int b = 0; b < F.q; ++b) Q[a * F.q + b] = F.chi[F.sub(a, b)];
  return Q;
}

// Paley I, q = 3 mod 4: H = I + S, S = [[0, 1^T], [-1, Q]] (S antisymmetric, S S^T = q I).
std::vector<int8_t> paley1(int q) {
  FiniteField F(q);
  auto Q = jacobsthal(F);
  int K = q + 1;
  std::vector<int8_t> H(K * K);
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < K; ++j) {
      int s;
      if (i == 0) s = j == 0 ? 0 : 1;
      else if (j == 0) s = -1;
      else s = Q[(i - 1) * q + (j - 1)];
      H[i * K + j] = static_cast<int8_t>(s + (i == j ? 1 : 0));
    }
  return H;
}

// Paley II, q = 1 mod 4: C = [[0, 1^T], [1, Q]] (symmetric, C^2 = q I);
// H = C (x) [[1, 1], [1, -1]] + I (x) [[1, -1], [-1, -1]].
std::vector<int8_t> paley2(int q) {
  FiniteField F(q);
  auto Q = jacobsthal(F);
  int c = q + 1, K = 2 * c;
  std::vector<int8_t> H(K * K);
  static const int A[2][2] = {{1, 1}, {1, -1}}, B[2][2] = {{1, -1}, {-1, -1}};
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < c; ++j) {
      int cij = (i == 0 || j == 0) ? (i == j ? 0 : 1) : Q[(i - 1) * q + (j - 1)];
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          H[(2 * i + a) * K + 2 * j + b] = static_cast<int8_t>(cij == 0 ? B[a][b] : cij * A[a][b]);
    }
  return H;
}

// Williamson matrices: symmetric circulant A, B, C, D of odd order t with A^2 + B^2 + C^2 + D^2 = 4t I
// give the order-4t Hadamard matrix [[A, B, C, D], [-B, A, -D, C], [-C, D, A, -B], [-D, -C, B, A]].
// Each entry is the first half of a first row (a_0 .. a_(t-1)/2, '+' = 1, '-' = -1; a_j = a_(t-j)),
// found by our own searches (quip/tools/williamson_search.cc: tabu search, t = 29;
// quip/tools/williamson_orbits.cc: exhaustive over rows constant on multiplier orbits, t = 43);
// test_quip_hadamard re-verifies H H^T = K I for every stored order. Order 156 (t = 39) is not in the
// table (neither search found one in time); it takes the documented random orthogonal fallback.
struct Williamson {
  int t;
  const char* rows[4];
};
const Williamson kWilliamson[] = {
#include "quip/williamson_table.inc"
    {0, {"", "", "", ""}},  // end marker
};

std::vector<int8_t> williamson(const Williamson& w) {
  int t = w.t, K = 4 * t;
  std::vector<std::vector<int>> first(4, std::vector<int>(t));
  for (int r = 0; r < 4; ++r)
    for (int j = 0; j <= t / 2; ++j) {
      int v = w.rows[r][j] == '+' ? 1 : -1;
      first[r][j] = v;
      first[r][(t - j) % t] = v;
    }
  static const int blk[4][4] = {{0, 1, 2, 3}, {1, 0, 3, 2}, {2, 3, 0, 1}, {3, 2, 1, 0}};
  static const int sgn[4][4] = {{1, 1, 1, 1}, {-1, 1, -1, 1}, {-1, 1, 1, -1}, {-1, -1, 1, 1}};
  std::vector<int8_t> H(K * K);
  for (int bi = 0; bi < 4; ++bi)
    for (int bj = 0; bj < 4; ++bj)
      for (int i = 0; i < t; ++i)
        for (int j = 0; j < t; ++j)
          H[(bi * t + i) * K + bj * t + j] =
              static_cast<int8_t>(sgn[bi][bj] * first[blk[bi][bj]][((j - i) % t + t) % t]);
  return H;
}

const Williamson* find_williamson(int64_t K) {
  for (const auto& w : kWilliamson)
    if (4 * w.t == K) return &w;
  return nullptr;
}

bool paley1_ok(int64_t K, int* p, int* e) {
  int64_t q = K - 1;
  return q >= 3 && q < 4096 && q % 4 == 3 && FiniteField::prime_power(static_cast<int>(q), p, e);
}
bool paley2_ok(int64_t K, int* p, int* e) {
  if (K % 2) return false;
  int64_t q = K / 2 - 1;
  return q >= 5 && q < 4096 && q % 4 == 1 && FiniteField::prime_power(static_cast<int>(q), p, e);
}

const int64_t kReferenceOrders[] = {12, 20, 28, 36, 52, 60, 108, 116, 124, 140, 156, 172};

std::string fallback_description(int64_t K) {
  return "seeded random orthogonal " + std::to_string(K) + "x" + std::to_string(K) +
         " (no Hadamard matrix of order " + std::to_string(K) + " is built by this code)";
}

uint64_t fallback_seed(int64_t K) { return 0x51D0A7A11u ^ (static_cast<uint64_t>(K) << 20); }

}  // namespace

std::string hadamard_construction(int64_t K) {
  int p, e;
  auto q_text = [&](int64_t q) {
    std::string s = "q = " + std::to_string(q);
    if (e > 1) s += " = " + std::to_string(p) + "^" + std::to_string(e);
    return s;
  };
  if (K == 1) return "trivial";
  if (K == 2) return "Sylvester (order 2)";
  if (paley1_ok(K, &p, &e)) return "Paley I (" + q_text(K - 1) + ")";
  if (paley2_ok(K, &p, &e)) return "Paley II (" + q_text(K / 2 - 1) + ")";
  if (find_williamson(K)) return "Williamson (t = " + std::to_string(K / 4) + ")";
  return "";
}

std::vector<int8_t> hadamard_matrix(int64_t K) {
  int p, e;
  if (K == 1) return {1};
  if (K == 2) return {1, 1, 1, -1};
  if (paley1_ok(K, &p, &e)) return paley1(static_cast<int>(K - 1));
  if (paley2_ok(K, &p, &e)) return paley2(static_cast<int>(K / 2 - 1));
  if (const Williamson* w = find_williamson(K)) return williamson(*w);
  throw std::invalid_argument("no Hadamard construction of order " + std::to_string(K));
}

HadamardPlan hadamard_plan(int64_t n) {
  if (n < 1) throw std::invalid_argument("Hadamard size must be positive, got " + std::to_string(n));
  HadamardPlan plan;
  plan.n = n;
  if (is_pow2(n)) {
    plan.pow2 = n;
    return plan;
  }
  auto choose = [&](int64_t K, HadamardMethod m, std::string how) {
    plan.K = K, plan.pow2 = n / K, plan.method = m, plan.construction = std::move(how);
  };
  for (int64_t K : kReferenceOrders)
    if (n % K == 0 && is_pow2(n / K)) {
      std::string how = hadamard_construction(K);
      if (how.empty()) choose(K, HadamardMethod::RandomOrthogonal, fallback_description(K));
      else choose(K, HadamardMethod::Hadamard, how);
      return plan;
    }
  int64_t odd = n;
  while (odd % 2 == 0) odd /= 2;
  for (int64_t K = odd; K <= n; K *= 2) {
    if (K % 4) continue;
    std::string how = hadamard_construction(K);
    if (!how.empty()) {
      choose(K, HadamardMethod::Hadamard, how);
      return plan;
    }
  }
  choose(odd, HadamardMethod::RandomOrthogonal, fallback_description(odd));
  return plan;
}

std::vector<double> random_orthogonal_factor(int64_t K, uint64_t seed) {
  // Uniform entries in [-1, 1) then modified Gram-Schmidt (twice, for orthogonality to rounding):
  // only +, *, / and sqrt, so the result is bit-identical on IEEE platforms.
  SplitMix64 rng(seed);
  std::vector<double> Q(K * K);
  for (auto& v : Q) v = 2.0 * rng.uniform() - 1.0;
  for (int64_t i = 0; i < K; ++i) {
    double* qi = &Q[i * K];
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t j = 0; j < i; ++j) {
        const double* qj = &Q[j * K];
        double d = 0;
        for (int64_t c = 0; c < K; ++c) d += qi[c] * qj[c];
        for (int64_t c = 0; c < K; ++c) qi[c] -= d * qj[c];
      }
    double nrm = 0;
    for (int64_t c = 0; c < K; ++c) nrm += qi[c] * qi[c];
    double s = 1.0 / std::sqrt(nrm);
    for (int64_t c = 0; c < K; ++c) qi[c] *= s;
  }
  double r = std::sqrt(static_cast<double>(K));
  for (auto& v : Q) v *= r;
  return Q;
}

// Cached factors per (K, method): [0] F, [1] F^T.
static const std::vector<float>& factor_cached(const HadamardPlan& plan, bool transposed) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, int>, std::unique_ptr<std::vector<float>[]>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(plan.K, static_cast<int>(plan.method));
  auto& slot = cache[key];
  if (!slot) {
    slot.reset(new std::vector<float>[2]);
    const int64_t K = plan.K;
    if (plan.method == HadamardMethod::RandomOrthogonal) {
      auto Q = random_orthogonal_factor(K, fallback_seed(K));
      slot[0].assign(Q.begin(), Q.end());
    } else {
      auto H = hadamard_matrix(K);
      slot[0].assign(H.begin(), H.end());
    }
    slot[1].resize(K * K);
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) slot[1][j * K + i] = slot[0][i * K + j];
  }
  return slot[transposed ? 1 : 0];
}

const std::vector<float>& hadamard_factor(const HadamardPlan& plan) { return factor_cached(plan, false); }

template <typename T>
static void fwht_generic(T* x, int64_t len) {
  for (int64_t h = 1; h < len; h <<= 1)
    for (int64_t i = 0; i < len; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        T a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

void fwht_scalar(float* x, int64_t len) { fwht_generic(x, len); }

void fwht(float* x, int64_t len) {
#ifdef QUIP_X86
  if (cpu_features().avx2 && len >= 8) return fwht_avx2(x, len);
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon && len >= 4) return fwht_neon(x, len);
#endif
  fwht_scalar(x, len);
}

static void fwht_any(float* x, int64_t len) { fwht(x, len); }
static void fwht_any(double* x, int64_t len) { fwht_generic(x, len); }

// (H_K (x) H_P) x: view x as K rows of length P; transform each row, then mix rows with H_K (or H_K^T).
template <typename T>
static void hadamard_apply_t(const HadamardPlan& plan, T* x, bool transpose, std::vector<T>& work) {
  const int64_t K = plan.K, P = plan.pow2;
  for (int64_t r = 0; r < K; ++r) fwht_any(x + r * P, P);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(plan.n)));
  if (K == 1) {
    for (int64_t i = 0; i < P; ++i) x[i] *= scale;
    return;
  }
  work.assign(K * P, T(0));
  if constexpr (std::is_same<T, float>::value) {
    // The K x K mixing is a small GEMM: work = F X (F^T X for the transpose).
    const std::vector<float>& M = factor_cached(plan, transpose);
    sgemm(K, P, K, 1.f, M.data(), K, x, P, work.data(), P);
  } else {
    const std::vector<float>& F = hadamard_factor(plan);
    for (int64_t a = 0; a < K; ++a) {
      T* out = work.data() + a * P;
      for (int64_t b = 0; b < K; ++b) {
        const T f = static_cast<T>(transpose ? F[b * K + a] : F[a * K + b]);
        const T* in = x + b * P;
        for (int64_t i = 0; i < P; ++i) out[i] += f * in[i];
      }
    }
  }
  for (int64_t i = 0; i < K * P; ++i) x[i] = work[i] * scale;
}

void hadamard_apply(const HadamardPlan& plan, float* x, bool transpose, std::vector<float>& work) {
  hadamard_apply_t(plan, x, transpose, work);
}
void hadamard_apply(const HadamardPlan& plan, double* x, bool transpose, std::vector<double>& work) {
  hadamard_apply_t(plan, x, transpose, work);
}

std::vector<int8_t> random_signs(uint64_t seed, uint64_t stream, int64_t len) {
  SplitMix64 rng(seed ^ (0xA0761D6478BD642Full * (stream + 1)));
  std::vector<int8_t> s(len);
  for (auto& v : s) v = (rng.next() >> 63) ? -1 : 1;
  return s;
}

// Applies the n-side transform to every row and the m-side transform to every column.
template <typename T>
static void transform_rows(T* A, int64_t rows, int64_t cols, const HadamardPlan& p, bool transpose,
                           const int8_t* pre, const int8_t* post) {
  parallel_for(rows, 16, [&](size_t b, size_t e) {
    std::vector<T> work;
    for (size_t r = b; r < e; ++r) {
      T* row = A + r * cols;
      if (pre) for (int64_t c = 0; c < cols; ++c) row[c] *= pre[c];
      hadamard_apply(p, row, transpose, work);
      if (post) for (int64_t c = 0; c < cols; ++c) row[c] *= post[c];
    }
  });
}

template <typename T>
static void transpose_into(const T* A, int64_t rows, int64_t cols, T* B) {
  const int64_t bs = 32;
  parallel_for((rows + bs - 1) / bs, 1, [&](size_t b, size_t e) {
    for (int64_t r0 = b * bs; r0 < std::min<int64_t>(rows, e * bs); r0 += bs)
      for (int64_t c0 = 0; c0 < cols; c0 += bs)
        for (int64_t r = r0; r < std::min(rows, r0 + bs); ++r)
          for (int64_t c = c0; c < std::min(cols, c0 + bs); ++c) B[c * rows + r] = A[r * cols + c];
  });
}

// W <- A_m W B_n with row transform on both sides via a transpose.
template <typename T>
static void transform_both(T* W, int64_t m, int64_t n, const HadamardPlan& pm, const HadamardPlan& pn,
                           bool transpose, const int8_t* row_pre, const int8_t* row_post,
                           const int8_t* col_pre, const int8_t* col_post) {
  transform_rows(W, m, n, pn, transpose, row_pre, row_post);
  std::vector<T> Wt(m * n);
  transpose_into(W, m, n, Wt.data());
  transform_rows(Wt.data(), n, m, pm, transpose, col_pre, col_post);
  transpose_into(Wt.data(), n, m, W);
}

void rht_forward_matrix(float* W, int64_t m, int64_t n, const HadamardPlan& pm, const HadamardPlan& pn,
                        const int8_t* sv, const int8_t* su) {
  // Row r of W diag(su) H_n is (H_n^T (su .* w_r))^T; columns likewise get H_m^T (sv .* c).
  transform_both(W, m, n, pm, pn, true, su, nullptr, sv, nullptr);
}

void rht_inverse_matrix(float* W, int64_t m, int64_t n, const HadamardPlan& pm, const HadamardPlan& pn,
                        const int8_t* sv, const int8_t* su) {
  transform_both(W, m, n, pm, pn, false, nullptr, su, nullptr, sv);
}

void rht_hessian(double* H, int64_t n, const HadamardPlan& pn, const int8_t* su) {
  transform_both(H, n, n, pn, pn, true, su, nullptr, su, nullptr);
}

void rht_input(float* x, const HadamardPlan& pn, const int8_t* su) {
  std::vector<float> work;
  for (int64_t i = 0; i < pn.n; ++i) x[i] *= su[i];
  hadamard_apply(pn, x, true, work);
}

void rht_output(float* y, const HadamardPlan& pm, const int8_t* sv) {
  std::vector<float> work;
  hadamard_apply(pm, y, false, work);
  for (int64_t i = 0; i < pm.n; ++i) y[i] *= sv[i];
}

}  // namespace quip
