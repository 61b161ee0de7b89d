#include "quip/ldlq.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <type_traits>

#include "common/thread_pool.h"
#include "quip/gemm.h"

namespace quip {

void damp_hessian(double* H, int64_t n, double sigma) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += H[i * n + i];
  mean /= n;
  if (!(mean > 0) || !std::isfinite(mean))
    throw std::invalid_argument("Hessian has no positive diagonal (mean " + std::to_string(mean) +
                                "); were any calibration tokens recorded for this layer?");
  const double inv = 1.0 / mean;
  for (int64_t i = 0; i < n * n; ++i) H[i] *= inv;
  for (int64_t i = 0; i < n; ++i) H[i * n + i] += sigma;
}

// ---- Cholesky ------------------------------------------------------------------------------------
static void gemm_t(int64_t M, int64_t N, int64_t K, float a, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc) {
  sgemm(M, N, K, a, A, lda, B, ldb, C, ldc);
}
static void gemm_t(int64_t M, int64_t N, int64_t K, double a, const double* A, int64_t lda,
                   const double* B, int64_t ldb, double* C, int64_t ldc) {
  dgemm(M, N, K, a, A, lda, B, ldb, C, ldc);
}

template <typename T>
static bool cholesky_t(T* A, int64_t n) {
  const int64_t NB = 128;
  std::vector<T> Pt;  // panel transposed (nb x rows) for the trailing update
  for (int64_t j0 = 0; j0 < n; j0 += NB) {
    const int64_t j1 = std::min(n, j0 + NB), nb = j1 - j0;
    // Unblocked factorisation of the diagonal block (accumulated in double).
    for (int64_t j = j0; j < j1; ++j) {
      double d = A[j * n + j];
      for (int64_t k = j0; k < j; ++k) d -= double(A[j * n + k]) * A[j * n + k];
      if (!(d > 0) || !std::isfinite(d)) return false;
      const double r = std::sqrt(d);
      A[j * n + j] = static_cast<T>(r);
      for (int64_t i = j + 1; i < j1; ++i) {
        double s = A[i * n + j];
        for (int64_t k = j0; k < j; ++k) s -= double(A[i * n + k]) * A[j * n + k];
        A[i * n + j] = static_cast<T>(s / r);
      }
    }
    // Panel below: L21 = A21 L11^{-T}. float32: one GEMM with the explicit inverse (L11 is a
    // well-conditioned factor of a damped matrix); float64: row by row forward substitution.
    if constexpr (std::is_same<T, float>::value) {
      std::vector<double> inv(nb * nb, 0.0);
      for (int64_t c = 0; c < nb; ++c)
        for (int64_t r = c; r < nb; ++r) {
          double v = r == c ? 1.0 : 0.0;
          for (int64_t k = c; k < r; ++k) v -= double(A[(j0 + r) * n + j0 + k]) * inv[k * nb + c];
          inv[r * nb + c] = v / A[(j0 + r) * n + j0 + r];
        }
      std::vector<float> invT(nb * nb), panel((n - j1) * nb, 0.f);
      for (int64_t r = 0; r < nb; ++r)
        for (int64_t c = 0; c < nb; ++c) invT[c * nb + r] = static_cast<float>(inv[r * nb + c]);
      sgemm(n - j1, nb, nb, 1.f, A + j1 * n + j0, n, invT.data(), nb, panel.data(), nb);
      for (int64_t i = 0; i < n - j1; ++i)
        std::copy(panel.begin() + i * nb, panel.begin() + (i + 1) * nb, A + (j1 + i) * n + j0);
    } else parallel_for(n - j1, 32, [&](size_t b, size_t e) {
      for (size_t ii = b; ii < e; ++ii) {
        T* row = A + (j1 + ii) * n;
        for (int64_t j = j0; j < j1; ++j) {
          double s = row[j];
          for (int64_t k = j0; k < j; ++k) s -= double(row[k]) * A[j * n + k];
          row[j] = static_cast<T>(s / A[j * n + j]);
        }
      }
    });
    if (j1 == n) break;
    // Trailing update of the lower triangle: A22 -= L21 L21^T, one block row at a time.
    const int64_t rest = n - j1;
    Pt.assign(nb * rest, T(0));
    for (int64_t i = 0; i < rest; ++i)
      for (int64_t k = 0; k < nb; ++k) Pt[k * rest + i] = A[(j1 + i) * n + j0 + k];
    for (int64_t r0 = j1; r0 < n; r0 += NB) {
      const int64_t r1 = std::min(n, r0 + NB);
      gemm_t(r1 - r0, r1 - j1, nb, T(-1), A + r0 * n + j0, n, Pt.data(), rest, A + r0 * n + j1, n);
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) A[i * n + j] = 0;
  return true;
}

bool cholesky_lower(float* A, int64_t n) { return cholesky_t(A, n); }
bool cholesky_lower(double* A, int64_t n) { return cholesky_t(A, n); }

// ---- block LDL -----------------------------------------------------------------------------------
// Inverse of a lower-triangular 8x8 block (double).
static void invert_lower8(const float* C, int64_t ldc, double inv[64]) {
  for (int c = 0; c < 8; ++c)
    for (int r = 0; r < 8; ++r) {
      double s = (r == c) ? 1.0 : 0.0;
      for (int k = c; k < r; ++k) s -= double(C[r * ldc + k]) * inv[k * 8 + c];
      inv[r * 8 + c] = r < c ? 0.0 : s / C[r * ldc + r];
    }
}

void block_ldl_from_cholesky(const float* C, int64_t n, float* L, float* D) {
  const int64_t nb = n / 8;
  std::fill(L, L + n * n, 0.f);
  parallel_for(nb, 1, [&](size_t b, size_t e) {
    for (size_t blk = b; blk < e; ++blk) {
      const int64_t c0 = blk * 8;
      const float* Cii = C + c0 * n + c0;
      for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 8; ++c) {
          double s = 0;
          for (int k = 0; k < 8; ++k) s += double(Cii[r * n + k]) * Cii[c * n + k];
          D[blk * 64 + r * 8 + c] = static_cast<float>(s);
        }
      double inv[64];
      invert_lower8(Cii, n, inv);
      for (int64_t i = c0; i < n; ++i)
        for (int c = 0; c < 8; ++c) {
          double s = 0;
          for (int k = 0; k < 8; ++k) s += double(C[i * n + c0 + k]) * inv[k * 8 + c];
          L[i * n + c0 + c] = static_cast<float>(s);
        }
      for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 8; ++c) L[(c0 + r) * n + c0 + c] = (r == c) ? 1.f : (r > c ? L[(c0 + r) * n + c0 + c] : 0.f);
    }
  });
}

// sum over rows of e D e^T for the m x 8 block E (leading dimension lde).
static double quad8(const float* E, int64_t lde, int64_t m, const float* D) {
  std::vector<double> part((m + 255) / 256, 0.0);
  parallel_for(part.size(), 1, [&](size_t b, size_t e) {
    for (size_t p = b; p < e; ++p) {
      double s = 0;
      for (int64_t r = p * 256; r < std::min<int64_t>(m, (p + 1) * 256); ++r) {
        const float* v = E + r * lde;
        for (int i = 0; i < 8; ++i) {
          double t = 0;
          for (int j = 0; j < 8; ++j) t += double(D[i * 8 + j]) * v[j];
          s += v[i] * t;
        }
      }
      part[p] = s;
    }
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

double block_ldlq(Codebook cb, double s2, const float* W, int64_t m, int64_t n, const float* L,
                  const float* D, bool feedback, float* What, uint32_t* codes, double* wHw,
                  const JobHooks& hooks, bool use_simd) {
  if (n % 8) throw std::invalid_argument("block_ldlq: n must be a multiple of 8");
  const int64_t groups = n / 8, SB = 128;
  // Rows 0..m-1: U, the feedback-corrected targets W + (W - W^) L; rows m..2m-1: V = W L (for tr(W H W^T)).
  // Both get the same block updates, fed by [W - W^ ; W].
  std::vector<float> UV(2 * m * n), F(2 * m * n);
  std::copy(W, W + m * n, UV.begin());
  std::copy(W, W + m * n, UV.begin() + m * n);
  std::copy(W, W + m * n, F.begin() + m * n);
  double err = 0, tot = 0;
  std::vector<float> eta(m * 8);
  std::vector<uint32_t> cblk(m);
  int64_t done = 0;
  for (int64_t sb_end = n; sb_end > 0; sb_end -= SB) {
    const int64_t sb_start = std::max<int64_t>(0, sb_end - SB);
    for (int64_t k = sb_end - 8; k >= sb_start; k -= 8) {
      hooks.check();
      const float* src = feedback ? UV.data() + k : W + k;
      parallel_for(m, 64, [&](size_t b, size_t e) {
        codebook_quantize(cb, s2, src + b * n, n, e - b, What + b * n + k, cblk.data() + b, use_simd);
        for (size_t r = b; r < e; ++r) codes[r * groups + k / 8] = cblk[r];
      });
      // eta_k = W^_k - U_k; F_k = W_k - W^_k.
      for (int64_t r = 0; r < m; ++r)
        for (int c = 0; c < 8; ++c) {
          eta[r * 8 + c] = What[r * n + k + c] - UV[r * n + k + c];
          F[r * n + k + c] = W[r * n + k + c] - What[r * n + k + c];
        }
      err += quad8(eta.data(), 8, m, D + (k / 8) * 64);
      tot += quad8(UV.data() + m * n + k, n, m, D + (k / 8) * 64);
      // Feedback into the earlier blocks of this super-block.
      if (k > sb_start)
        sgemm(2 * m, k - sb_start, 8, 1.f, F.data() + k, n, L + k * n + sb_start, n, UV.data() + sb_start, n);
      ++done;
    }
    if (sb_start > 0)
      sgemm(2 * m, sb_start, sb_end - sb_start, 1.f, F.data() + sb_start, n, L + sb_start * n, n, UV.data(), n);
    char buf[96];
    std::snprintf(buf, sizeof buf, "{\"stage\":\"ldlq\",\"fraction\":%.4f}", double(done) / groups);
    hooks.emit(buf);
  }
  *wHw = tot;
  return err;
}

double tune_blocks(Codebook cb, double s2, const float* W, int64_t m, int64_t n, const float* H, int iters,
                   float* What, uint32_t* codes, const JobHooks& hooks) {
  const int64_t groups = n / 8;
  std::vector<float> Dl(m * n), R(m * n, 0.f), tgt(m * 8), q(m * 8), delta(m * 8);
  std::vector<uint32_t> cc(m);
  for (int64_t i = 0; i < m * n; ++i) Dl[i] = W[i] - What[i];
  sgemm(m, n, n, 1.f, Dl.data(), n, H, n, R.data(), n);  // R = (W - W^) H
  for (int it = 0; it < iters; ++it) {
    for (int64_t k = n - 8; k >= 0; k -= 8) {
      hooks.check();
      double inv[64];  // H_kk^{-1} by Gauss-Jordan
      {
        double a[8][16];
        for (int r = 0; r < 8; ++r)
          for (int c = 0; c < 16; ++c) a[r][c] = c < 8 ? H[(k + r) * n + k + c] : (c - 8 == r);
        for (int c = 0; c < 8; ++c) {
          int piv = c;
          for (int r = c + 1; r < 8; ++r) if (std::fabs(a[r][c]) > std::fabs(a[piv][c])) piv = r;
          std::swap(a[c], a[piv]);
          double p = a[c][c];
          for (int j = 0; j < 16; ++j) a[c][j] /= p;
          for (int r = 0; r < 8; ++r)
            if (r != c) {
              double f = a[r][c];
              for (int j = 0; j < 16; ++j) a[r][j] -= f * a[c][j];
            }
        }
        for (int r = 0; r < 8; ++r) for (int c = 0; c < 8; ++c) inv[r * 8 + c] = a[r][c + 8];
      }
      parallel_for(m, 64, [&](size_t b, size_t e) {
        for (size_t r = b; r < e; ++r)
          for (int c = 0; c < 8; ++c) {
            double s = What[r * n + k + c];
            for (int j = 0; j < 8; ++j) s += double(R[r * n + k + j]) * inv[j * 8 + c];
            tgt[r * 8 + c] = static_cast<float>(s);
          }
        codebook_quantize(cb, s2, tgt.data() + b * 8, 8, e - b, q.data() + b * 8, cc.data() + b);
        for (size_t r = b; r < e; ++r) {
          codes[r * groups + k / 8] = cc[r];
          for (int c = 0; c < 8; ++c) {
            delta[r * 8 + c] = q[r * 8 + c] - What[r * n + k + c];
            What[r * n + k + c] = q[r * 8 + c];
          }
        }
      });
      sgemm(m, n, 8, -1.f, delta.data(), 8, H + k * n, n, R.data(), n);  // R -= delta H_{k,:}
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "{\"stage\":\"tune\",\"iteration\":%d,\"of\":%d}", it + 1, iters);
    hooks.emit(buf);
  }
  double err = 0;
  for (int64_t i = 0; i < m * n; ++i) err += double(W[i] - What[i]) * R[i];  // R = (W - W^) H now
  return err;
}

// ---- the per-layer entry points ------------------------------------------------------------------
// tr((W^-W) H (W^-W)^T) and tr(W H W^T) with H damped and normalised as damp_hessian does (plus the
// damping actually used), in the original basis: two float32 GEMMs against column panels of H, so
// no second n x n copy of H is held. Without What (nullptr) only tr(W H W^T), one GEMM.
static void proxy_terms(const float* W, const float* What, int64_t m, int64_t n, const double* H0, double sigma,
                        double* err, double* wHw, const JobHooks& hooks) {
  double diag = 0;
  for (int64_t i = 0; i < n; ++i) diag += H0[i * n + i];
  const double inv_mean = double(n) / diag;
  std::vector<float> E(What ? m * n : 0);
  for (size_t i = 0; i < E.size(); ++i) E[i] = What[i] - W[i];
  const int64_t panel = std::min<int64_t>(n, 256);
  std::vector<float> Hp(n * panel), Y(m * panel);
  double e = 0, w = 0;
  std::vector<std::pair<const float*, double*>> terms{{W, &w}};
  if (What) terms.push_back({E.data(), &e});
  for (int64_t j0 = 0; j0 < n; j0 += panel) {
    hooks.check();
    const int64_t pw = std::min(panel, n - j0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < pw; ++j)
        Hp[i * pw + j] = static_cast<float>(H0[i * n + j0 + j] * inv_mean + (i == j0 + j ? sigma : 0.0));
    for (const auto& [A, acc] : terms) {
      std::fill(Y.begin(), Y.begin() + m * pw, 0.f);
      sgemm(m, pw, n, 1.f, A, n, Hp.data(), pw, Y.data(), pw);
      double s = 0;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < pw; ++j) s += double(Y[r * pw + j]) * A[r * n + j0 + j];
      *acc += s;
    }
  }
  if (err) *err = e;
  *wHw = w;
}

double relative_proxy_loss(const float* W, const float* What, int64_t m, int64_t n, const double* H, double sigma,
                           const JobHooks& hooks) {
  double err = 0, wHw = 0;
  proxy_terms(W, What, m, n, H, sigma, &err, &wHw, hooks);
  return wHw > 0 ? err / wHw : 0;
}

double weighted_energy(const float* W, int64_t m, int64_t n, const double* H, double sigma, const JobHooks& hooks) {
  double wHw = 0;
  proxy_terms(W, nullptr, m, n, H, sigma, nullptr, &wHw, hooks);
  return wHw;
}

QuantizedLinear quantize_linear(const float* W0, int64_t m, int64_t n, const double* H0,
                                const QuantizeOptions& opts, const JobHooks& hooks,
                                std::vector<float>* dequantized, QuantizeReport* report) {
  auto t0 = std::chrono::steady_clock::now();
  if (m < 1 || n < 1) throw std::invalid_argument("quantize_linear: empty weight matrix");
  const CodebookInfo& info = codebook_info(opts.codebook);
  QuantizedLinear q;
  q.m = m, q.n = n, q.n_padded = (n + 7) / 8 * 8;
  q.codebook = opts.codebook;
  q.rho = opts.rho > 0 ? opts.rho : info.default_rho;
  q.s2 = opts.s2 > 0 ? opts.s2 : info.s2;
  q.incoherence = opts.incoherence;
  q.seed = opts.seed;
  q.plan_in = hadamard_plan(n);
  q.plan_out = hadamard_plan(m);
  const int64_t np = q.n_padded;
  for (int64_t i = 0; i < m * n; ++i)
    if (!std::isfinite(W0[i])) throw std::invalid_argument("quantize_linear: the weights contain NaN or infinity");

  for (int64_t i = 0; i < n * n; ++i)
    if (!std::isfinite(H0[i])) throw std::invalid_argument("quantize_linear: the Hessian contains NaN or infinity");
  // Damped, normalised Hessian, then the same transform as W.
  std::vector<double> H(H0, H0 + n * n);
  damp_hessian(H.data(), n, opts.sigma);
  std::vector<float> Wt(W0, W0 + m * n);
  if (opts.incoherence && opts.row_scale) {
    q.row_scale.resize(m);
    for (int64_t r = 0; r < m; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < n; ++c) ss += double(Wt[r * n + c]) * Wt[r * n + c];
      const double rms = std::sqrt(ss / double(n));
      q.row_scale[r] = rms > 0 ? static_cast<float>(rms) : 1.f;
      for (int64_t c = 0; c < n; ++c) Wt[r * n + c] /= q.row_scale[r];
    }
  }
  if (opts.incoherence) {
    q.su = random_signs(opts.seed, 0, n);
    q.sv = random_signs(opts.seed, 1, m);
    rht_forward_matrix(Wt.data(), m, n, q.plan_out, q.plan_in, q.sv.data(), q.su.data());
    rht_hessian(H.data(), n, q.plan_in, q.su.data());
  } else {
    q.su.assign(n, 1);
    q.sv.assign(m, 1);
  }
  hooks.check();
  double ss = 0;
  for (float v : Wt) ss += double(v) * v;
  const double rms = std::sqrt(ss / (double(m) * n));
  q.scale = rms > 0 ? rms / q.rho : 1.0;
  // Scaled, zero-padded W~ and H~ (identity on the padded block).
  std::vector<float> Wp(m * np, 0.f), Hf(np * np, 0.f);
  const float inv_scale = static_cast<float>(1.0 / q.scale);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) Wp[r * np + c] = Wt[r * n + c] * inv_scale;
  for (int64_t i = 0; i < np; ++i)
    for (int64_t j = 0; j < np; ++j)
      Hf[i * np + j] = (i < n && j < n) ? static_cast<float>(H[i * n + j]) : (i == j ? 1.f : 0.f);

  // Cholesky: float32, then float64, then float64 with a larger sigma.
  std::string fallback;
  double sigma_used = opts.sigma;
  std::vector<float> C(Hf);
  if (!cholesky_lower(C.data(), np)) {
    std::vector<double> Cd(np * np);
    double extra = 0;
    for (int attempt = 0;; ++attempt) {
      for (int64_t i = 0; i < np; ++i)
        for (int64_t j = 0; j < np; ++j)
          Cd[i * np + j] = ((i < n && j < n) ? H[i * n + j] : (i == j ? 1.0 : 0.0)) + (i == j && i < n ? extra : 0.0);
      if (cholesky_lower(Cd.data(), np)) break;
      if (attempt == 6) throw std::runtime_error("quantize_linear: the Hessian stays indefinite even with sigma = " + std::to_string(sigma_used));
      extra = extra == 0 ? std::max(opts.sigma, 1e-3) * 9 : extra * 10;  // sigma -> 10 sigma -> 100 sigma ...
      sigma_used = opts.sigma + extra;
    }
    fallback = extra == 0 ? "float64" : "float64, sigma = " + std::to_string(sigma_used);
    for (int64_t i = 0; i < np * np; ++i) C[i] = static_cast<float>(Cd[i]);
    if (extra > 0)
      for (int64_t i = 0; i < n; ++i) Hf[i * np + i] += static_cast<float>(extra);
  }
  hooks.check();
  // Memory matters for wide layers (n = 11008: 0.5 GB per float matrix): drop what is not needed.
  H.clear(), H.shrink_to_fit();
  Wt.clear(), Wt.shrink_to_fit();
  if (opts.tune_iters <= 0) Hf.clear(), Hf.shrink_to_fit();
  std::vector<float> L(np * np), D((np / 8) * 64), What(m * np);
  block_ldl_from_cholesky(C.data(), np, L.data(), D.data());
  C.clear(), C.shrink_to_fit();
  q.codes.assign(m * (np / 8), 0);
  double wHw = 0;
  double err = block_ldlq(q.codebook, q.s2, Wp.data(), m, np, L.data(), D.data(), opts.ldlq, What.data(),
                          q.codes.data(), &wHw, hooks);
  if (opts.tune_iters > 0)
    err = tune_blocks(q.codebook, q.s2, Wp.data(), m, np, Hf.data(), opts.tune_iters, What.data(),
                      q.codes.data(), hooks);
  // The padded columns (targets 0, identity block of H~, uncoupled) are dropped when dequantizing;
  // their share sum (W^_pad)^2 of the loss is not part of the layer's error.
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = n; c < np; ++c) err -= double(What[r * np + c]) * What[r * np + c];

  L.clear(), L.shrink_to_fit();
  What.clear(), What.shrink_to_fit();
  std::vector<float> out(m * n);
  dequantize_linear(q, out.data());
  // With row scales the LDL-form loss weighs the normalised rows equally; the layer's own loss is
  // measured in the original basis.
  if (!q.row_scale.empty()) proxy_terms(W0, out.data(), m, n, H0, sigma_used, &err, &wHw, hooks);
  double fe = 0, fw = 0;
  for (int64_t i = 0; i < m * n; ++i) fe += double(out[i] - W0[i]) * (out[i] - W0[i]), fw += double(W0[i]) * W0[i];
  if (report) {
    report->proxy_loss = wHw > 0 ? err / wHw : 0;
    report->frobenius_error = fw > 0 ? fe / fw : 0;
    report->sigma_used = sigma_used;
    report->cholesky_fallback = fallback;
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (dequantized) *dequantized = std::move(out);
  return q;
}

void dequantize_linear(const QuantizedLinear& q, float* out) {
  const int64_t m = q.m, n = q.n, groups = q.n_padded / 8;
  if (static_cast<int64_t>(q.codes.size()) != m * groups)
    throw std::invalid_argument("dequantize_linear: expected " + std::to_string(m * groups) + " code words, got " +
                                std::to_string(q.codes.size()));
  const float scale = static_cast<float>(q.scale);
  parallel_for(m, 16, [&](size_t b, size_t e) {
    float v[8];
    for (size_t r = b; r < e; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        codebook_decode(q.codebook, q.s2, q.codes[r * groups + g], v);
        for (int c = 0; c < 8 && g * 8 + c < n; ++c) out[r * n + g * 8 + c] = v[c] * scale;
      }
  });
  if (q.incoherence) rht_inverse_matrix(out, m, n, q.plan_out, q.plan_in, q.sv.data(), q.su.data());
  if (!q.row_scale.empty()) {
    if (static_cast<int64_t>(q.row_scale.size()) != m)
      throw std::invalid_argument("dequantize_linear: expected " + std::to_string(m) + " row scales, got " + std::to_string(q.row_scale.size()));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) out[r * n + c] *= q.row_scale[r];
  }
}

}  // namespace quip
