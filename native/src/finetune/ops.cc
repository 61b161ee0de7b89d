#include "finetune/ops.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/thread_pool.h"
#include "runtime/gemm.h"

namespace quip::finetune {

using runtime::gemm_kernels;
using runtime::matmul_wt;
using runtime::WeightView;

namespace {

// dst (cols x rows) = src^T for a row-major rows x cols matrix.
std::vector<float> transposed(const float* src, int rows, int cols) {
  std::vector<float> dst(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[static_cast<size_t>(c) * rows + r] = src[static_cast<size_t>(r) * cols + c];
  return dst;
}

WeightView f32_view(const float* w, int rows, int cols) { return WeightView{w, DType::F32, rows, cols}; }

}  // namespace

void rms_norm_backward(const float* x, const float* w, const float* dy, int T, int n, double eps, float* dx,
                       float* dw) {
  for (int t = 0; t < T; ++t) {
    const float* xr = x + static_cast<size_t>(t) * n;
    const float* g = dy + static_cast<size_t>(t) * n;
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const double r = 1.0 / std::sqrt(ss / n + eps);
    // y = w .* xhat with xhat = x r:  dx = r (gw - xhat mean(gw .* xhat)), gw = dy .* w.
    double dot = 0.0;
    for (int i = 0; i < n; ++i) dot += static_cast<double>(g[i]) * w[i] * xr[i] * r;
    const double mean = dot / n;
    for (int i = 0; i < n; ++i) {
      const double xhat = xr[i] * r;
      if (dw) dw[i] += static_cast<float>(g[i] * xhat);
      if (dx) dx[static_cast<size_t>(t) * n + i] = static_cast<float>(r * (g[i] * w[i] - xhat * mean));
    }
  }
}

void linear_forward(const float* x, const float* W, int T, int n, int m, float* y) {
  matmul_wt(x, T, f32_view(W, m, n), y);
}

void linear_backward(const float* x, const float* W, const float* dy, int T, int n, int m, float* dx, float* dW) {
  if (dx) {
    const std::vector<float> wt = transposed(W, m, n);  // n x m: dx = dy (W^T)^T
    matmul_wt(dy, T, f32_view(wt.data(), n, m), dx);
  }
  if (dW) {
    // dW += dy^T x, a band of output rows at a time, so the temporaries stay small when m is a
    // vocabulary (lm_head: a full m x n product and T x m transpose would be hundreds of MB).
    constexpr int kBand = 1024;
    const std::vector<float> xt = transposed(x, T, n);
    std::vector<float> dyt, g;
    for (int r0 = 0; r0 < m; r0 += kBand) {
      const int rows = std::min(kBand, m - r0);
      dyt.resize(static_cast<size_t>(rows) * T);
      for (int t = 0; t < T; ++t)
        for (int r = 0; r < rows; ++r) dyt[static_cast<size_t>(r) * T + t] = dy[static_cast<size_t>(t) * m + r0 + r];
      g.resize(static_cast<size_t>(rows) * n);
      matmul_wt(dyt.data(), rows, f32_view(xt.data(), n, T), g.data());  // g = dy[:, band]^T x
      float* d = dW + static_cast<size_t>(r0) * n;
      for (size_t i = 0; i < g.size(); ++i) d[i] += g[i];
    }
  }
}

QLinearShape qlinear_shape(int m, int n, float scale) {
  if (m <= 0 || n <= 0) throw std::invalid_argument("quantized linear needs positive sizes, got " + std::to_string(m) + "x" + std::to_string(n));
  QLinearShape s;
  s.m = m;
  s.n = n;
  s.pm = hadamard_plan(m);
  s.pn = hadamard_plan(n);
  s.scale = scale;
  return s;
}

void qlinear_forward(const QLinearShape& s, const float* Wt, const float* su, const float* sv, const float* x,
                     int T, float* y, float* c_cache) {
  const size_t n = s.n, m = s.m;
  std::vector<float> a(T * n), c(T * m);
  parallel_for(T, 8, [&](size_t t0, size_t t1) {
    thread_local std::vector<float> work;
    for (size_t t = t0; t < t1; ++t) {
      float* at = a.data() + t * n;
      for (size_t i = 0; i < n; ++i) at[i] = su[i] * x[t * n + i];
      hadamard_apply(s.pn, at, true, work);
    }
  });
  matmul_wt(a.data(), T, f32_view(Wt, s.m, s.n), c.data());
  parallel_for(T, 8, [&](size_t t0, size_t t1) {
    thread_local std::vector<float> work;
    for (size_t t = t0; t < t1; ++t) {
      float* ct = c.data() + t * m;
      for (size_t o = 0; o < m; ++o) ct[o] *= s.scale;
      hadamard_apply(s.pm, ct, false, work);
      for (size_t o = 0; o < m; ++o) y[t * m + o] = sv[o] * ct[o];
    }
  });
  if (c_cache) std::copy(c.begin(), c.end(), c_cache);
}

void qlinear_backward(const QLinearShape& s, const float* Wt, const float* su, const float* sv, const float* x,
                      const float* c_cache, const float* dy, int T, float* dx, float* dsu,
                      float* dsv) {
  const size_t n = s.n, m = s.m;
  // y = sv .* c: dsv = sum_t dy .* c, dc = sv .* dy; c = H_m b: db = H_m^T dc.
  if (dsv)
    for (size_t t = 0; t < static_cast<size_t>(T); ++t)
      for (size_t o = 0; o < m; ++o) dsv[o] += dy[t * m + o] * c_cache[t * m + o];
  if (!dx && !dsu) return;
  std::vector<float> db(T * m), da(T * n);
  parallel_for(T, 8, [&](size_t t0, size_t t1) {
    thread_local std::vector<float> work;
    for (size_t t = t0; t < t1; ++t) {
      float* d = db.data() + t * m;
      for (size_t o = 0; o < m; ++o) d[o] = sv[o] * dy[t * m + o] * s.scale;
      hadamard_apply(s.pm, d, true, work);
    }
  });
  // b = scale W~ a: da = scale db W~ (scale folded in above); a = H_n^T u: du = H_n da.
  const std::vector<float> wtt = transposed(Wt, s.m, s.n);
  matmul_wt(db.data(), T, f32_view(wtt.data(), s.n, s.m), da.data());
  parallel_for(T, 8, [&](size_t t0, size_t t1) {
    thread_local std::vector<float> work;
    for (size_t t = t0; t < t1; ++t) hadamard_apply(s.pn, da.data() + t * n, false, work);
  });
  // u = su .* x: dsu = sum_t du .* x, dx = su .* du.
  for (size_t t = 0; t < static_cast<size_t>(T); ++t)
    for (size_t i = 0; i < n; ++i) {
      const float du = da[t * n + i];
      if (dsu) dsu[i] += du * x[t * n + i];
      if (dx) dx[t * n + i] = su[i] * du;
    }
}

void attention_forward(const float* q, const float* k, const float* v, int T, int nh, int nkv, int d, float* out,
                       float* P) {
  const int group = nh / nkv, nq = nh * d, nk = nkv * d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const auto& kern = gemm_kernels();
  parallel_for(static_cast<size_t>(nh) * T, 4, [&](size_t j0, size_t j1) {
    thread_local std::vector<float> s;
    s.resize(T);
    for (size_t job = j0; job < j1; ++job) {
      const int h = static_cast<int>(job / T), t = static_cast<int>(job % T), kh = h / group;
      const float* qt = q + static_cast<size_t>(t) * nq + h * d;
      float mx = -INFINITY;
      for (int j = 0; j <= t; ++j) {
        s[j] = kern.dot(qt, k + static_cast<size_t>(j) * nk + kh * d, d) * scale;
        mx = std::max(mx, s[j]);
      }
      float sum = 0.0f;
      for (int j = 0; j <= t; ++j) sum += (s[j] = std::exp(s[j] - mx));
      const float inv = 1.0f / sum;
      float* o = out + static_cast<size_t>(t) * nq + h * d;
      std::fill(o, o + d, 0.0f);
      float* prow = P ? P + (static_cast<size_t>(h) * T + t) * T : nullptr;
      for (int j = 0; j <= t; ++j) {
        const float p = s[j] * inv;
        if (prow) prow[j] = p;
        kern.axpy(p, v + static_cast<size_t>(j) * nk + kh * d, o, d);
      }
      if (prow) std::fill(prow + t + 1, prow + T, 0.0f);
    }
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* P, const float* dout, int T,
                        int nh, int nkv, int d, float* dq, float* dk, float* dv) {
  const int group = nh / nkv, nq = nh * d, nk = nkv * d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const auto& kern = gemm_kernels();
  // Each task owns one KV head: its dk/dv columns and the dq columns of the query heads it serves.
  parallel_for(nkv, 1, [&](size_t k0, size_t k1) {
    std::vector<float> ds(T);
    for (size_t kh = k0; kh < k1; ++kh) {
      for (int t = 0; t < T; ++t) {
        std::fill(dk + static_cast<size_t>(t) * nk + kh * d, dk + static_cast<size_t>(t) * nk + (kh + 1) * d, 0.0f);
        std::fill(dv + static_cast<size_t>(t) * nk + kh * d, dv + static_cast<size_t>(t) * nk + (kh + 1) * d, 0.0f);
      }
      for (int h = static_cast<int>(kh) * group; h < static_cast<int>(kh + 1) * group; ++h)
        for (int t = 0; t < T; ++t) {
          const float* prow = P + (static_cast<size_t>(h) * T + t) * T;
          const float* go = dout + static_cast<size_t>(t) * nq + h * d;
          const float* qt = q + static_cast<size_t>(t) * nq + h * d;
          // out_t = sum_j p_j v_j: dv_j += p_j dout_t, dp_j = dout_t . v_j;
          // softmax: ds_j = p_j (dp_j - sum_i p_i dp_i); s_j = scale q_t . k_j.
          double pdp = 0.0;
          for (int j = 0; j <= t; ++j) {
            const float* vj = v + static_cast<size_t>(j) * nk + kh * d;
            ds[j] = kern.dot(go, vj, d);
            pdp += static_cast<double>(prow[j]) * ds[j];
            kern.axpy(prow[j], go, dv + static_cast<size_t>(j) * nk + kh * d, d);
          }
          float* gq = dq + static_cast<size_t>(t) * nq + h * d;
          std::fill(gq, gq + d, 0.0f);
          for (int j = 0; j <= t; ++j) {
            const float g = prow[j] * (ds[j] - static_cast<float>(pdp)) * scale;
            kern.axpy(g, k + static_cast<size_t>(j) * nk + kh * d, gq, d);
            kern.axpy(g, qt, dk + static_cast<size_t>(j) * nk + kh * d, d);
          }
        }
    }
  });
}

void swiglu_backward(const float* g, const float* u, const float* dh, size_t count, float* dg, float* du) {
  for (size_t i = 0; i < count; ++i) {
    const float sig = 1.0f / (1.0f + std::exp(-g[i]));
    const float silu = g[i] * sig;
    du[i] = dh[i] * silu;
    dg[i] = dh[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
  }
}

double mse_loss_backward(const float* y, const float* target, size_t count, float* dy) {
  double s = 0.0;
  const double k = 2.0 / static_cast<double>(count);
  for (size_t i = 0; i < count; ++i) {
    const double e = static_cast<double>(y[i]) - target[i];
    s += e * e;
    dy[i] = static_cast<float>(k * e);
  }
  return s / static_cast<double>(count);
}

namespace {
// Softmax of one row in float64 into p; returns log-sum-exp.
double softmax_row(const float* l, int V, std::vector<double>& p) {
  p.resize(V);
  double mx = l[0];
  for (int i = 1; i < V; ++i) mx = std::max(mx, static_cast<double>(l[i]));
  double z = 0.0;
  for (int i = 0; i < V; ++i) z += (p[i] = std::exp(l[i] - mx));
  for (int i = 0; i < V; ++i) p[i] /= z;
  return mx + std::log(z);
}
}  // namespace

double cross_entropy_backward(const float* logits, const int32_t* targets, int T, int V, float* dlogits) {
  std::vector<double> p;
  double total = 0.0;
  for (int t = 0; t < T; ++t) {
    const float* l = logits + static_cast<size_t>(t) * V;
    if (targets[t] < 0 || targets[t] >= V) throw std::out_of_range("cross-entropy target " + std::to_string(targets[t]) + " is outside the vocabulary");
    total += softmax_row(l, V, p) - l[targets[t]];
    for (int i = 0; i < V; ++i) dlogits[static_cast<size_t>(t) * V + i] = static_cast<float>((p[i] - (i == targets[t])) / T);
  }
  return total / T;
}

double distill_backward(const float* student, const float* teacher, int T, int V, float* dstudent) {
  std::vector<double> ps, pt;
  double total = 0.0;
  for (int t = 0; t < T; ++t) {
    const float* s = student + static_cast<size_t>(t) * V;
    const double lse = softmax_row(s, V, ps);
    softmax_row(teacher + static_cast<size_t>(t) * V, V, pt);
    for (int i = 0; i < V; ++i) {
      total -= pt[i] * (s[i] - lse);
      dstudent[static_cast<size_t>(t) * V + i] = static_cast<float>((ps[i] - pt[i]) / T);
    }
  }
  return total / T;
}

}  // namespace quip::finetune
