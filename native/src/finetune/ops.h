// Forward and backward passes of everything QuIP# fine-tuning differentiates through (spec section 6),
// over row-major buffers of `T` tokens x features. Forwards are templates (float for training,
// double for the finite-difference references of the tests); backwards are float32 and write input
// gradients (overwritten) and parameter gradients (accumulated, so a mini-batch sums into them).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "quip/hadamard.h"

namespace quip::finetune {

// ---- RMSNorm: y = w .* x / sqrt(mean(x^2) + eps) ----------------------------------------------------
template <class F>
void rms_norm_forward(const F* x, const F* w, int T, int n, double eps, F* y) {
  for (int t = 0; t < T; ++t) {
    const F* xr = x + static_cast<size_t>(t) * n;
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const F r = static_cast<F>(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; ++i) y[static_cast<size_t>(t) * n + i] = w[i] * (xr[i] * r);
  }
}
// dx overwritten, dw accumulated; either may be null.
void rms_norm_backward(const float* x, const float* w, const float* dy, int T, int n, double eps, float* dx,
                       float* dw);

// ---- Dense linear: y = x W^T, W is m x n ----------------------------------------------------------------
template <class F>
void linear_forward(const F* x, const F* W, int T, int n, int m, F* y) {
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < m; ++o) {
      F s = 0;
      for (int i = 0; i < n; ++i) s += x[static_cast<size_t>(t) * n + i] * W[static_cast<size_t>(o) * n + i];
      y[static_cast<size_t>(t) * m + o] = s;
    }
}
// Float32 version on the engine's GEMM (multithreaded).
void linear_forward(const float* x, const float* W, int T, int n, int m, float* y);
// dx = dy W (overwritten; skipped when dx is null), dW += dy^T x (skipped when dW is null).
void linear_backward(const float* x, const float* W, const float* dy, int T, int n, int m, float* dx, float* dW);

// ---- Quantized linear with real-valued sign vectors (codes frozen) ------------------------------------
//   a = H_n^T (su .* x),  b = scale * W~ a,  c = H_m b,  y = sv .* c
// W~ (m x n) is the decoded codebook matrix in the transformed basis, given densely by the caller.
struct QLinearShape {
  int m = 0, n = 0;
  HadamardPlan pm, pn;
  float scale = 1.0f;
};
QLinearShape qlinear_shape(int m, int n, float scale);

// Keeps c (T x m) for the backward pass when c_cache is non-null (the codes are frozen, so the
// backward needs no input-side activations).
template <class F>
void qlinear_forward(const QLinearShape& s, const F* Wt, const F* su, const F* sv, const F* x, int T, F* y,
                     F* c_cache = nullptr) {
  std::vector<F> a(s.n), c(s.m), work;
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < s.n; ++i) a[i] = su[i] * x[static_cast<size_t>(t) * s.n + i];
    hadamard_apply(s.pn, a.data(), true, work);
    for (int o = 0; o < s.m; ++o) {
      F acc = 0;
      for (int i = 0; i < s.n; ++i) acc += Wt[static_cast<size_t>(o) * s.n + i] * a[i];
      c[o] = acc * static_cast<F>(s.scale);
    }
    hadamard_apply(s.pm, c.data(), false, work);
    for (int o = 0; o < s.m; ++o) y[static_cast<size_t>(t) * s.m + o] = sv[o] * c[o];
    if (c_cache) std::copy(c.begin(), c.end(), c_cache + static_cast<size_t>(t) * s.m);
  }
}
// Float32 version: transforms per token, the W~ product on the engine's GEMM.
void qlinear_forward(const QLinearShape& s, const float* Wt, const float* su, const float* sv, const float* x,
                     int T, float* y, float* c_cache);
// From the cache of the forward: dx (overwritten), dsu += .., dsv += .. (each skipped when null).
void qlinear_backward(const QLinearShape& s, const float* Wt, const float* su, const float* sv, const float* x,
                      const float* c_cache, const float* dy, int T, float* dx, float* dsu,
                      float* dsv);

// ---- Rotary embeddings (HF rotate-half), in place, positions pos0 .. pos0 + T - 1 ---------------------
// Pairs (i, i + d/2) of each head rotate by angle pos * inv_freq[i]. The backward is the rotation by
// the negative angle (the transform is orthogonal), so it is the same call with inverse = true.
template <class F>
void rope_apply(F* x, int T, int heads, int d, int pos0, const double* inv_freq, bool inverse = false) {
  const int half = d / 2;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < half; ++i) {
      const double ang = static_cast<double>(pos0 + t) * inv_freq[i];
      const F c = static_cast<F>(std::cos(ang)), sn = static_cast<F>(inverse ? -std::sin(ang) : std::sin(ang));
      for (int h = 0; h < heads; ++h) {
        F* v = x + (static_cast<size_t>(t) * heads + h) * d;
        const F x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c - x2 * sn;
        v[i + half] = x2 * c + x1 * sn;
      }
    }
}

// ---- Causal grouped-query attention ----------------------------------------------------------------
// q: T x (nh*d), k, v: T x (nkv*d), out: T x (nh*d); query head h reads KV head h / (nh / nkv).
// P (nh x T x T, optional) keeps the softmax probabilities for the backward pass.
template <class F>
void attention_forward(const F* q, const F* k, const F* v, int T, int nh, int nkv, int d, F* out, F* P = nullptr) {
  const int group = nh / nkv, nq = nh * d, nk = nkv * d;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(d)));
  std::vector<F> s(T);
  for (int h = 0; h < nh; ++h) {
    const int kh = h / group;
    for (int t = 0; t < T; ++t) {
      F mx = -INFINITY;
      for (int j = 0; j <= t; ++j) {
        F acc = 0;
        for (int e = 0; e < d; ++e) acc += q[static_cast<size_t>(t) * nq + h * d + e] * k[static_cast<size_t>(j) * nk + kh * d + e];
        s[j] = acc * scale;
        mx = std::max(mx, s[j]);
      }
      F sum = 0;
      for (int j = 0; j <= t; ++j) sum += (s[j] = std::exp(s[j] - mx));
      F* o = out + static_cast<size_t>(t) * nq + h * d;
      std::fill(o, o + d, F(0));
      for (int j = 0; j <= t; ++j) {
        const F p = s[j] / sum;
        if (P) P[(static_cast<size_t>(h) * T + t) * T + j] = p;
        for (int e = 0; e < d; ++e) o[e] += p * v[static_cast<size_t>(j) * nk + kh * d + e];
      }
      if (P)
        for (int j = t + 1; j < T; ++j) P[(static_cast<size_t>(h) * T + t) * T + j] = 0;
    }
  }
}
// Float32 version, parallel over heads.
void attention_forward(const float* q, const float* k, const float* v, int T, int nh, int nkv, int d, float* out,
                       float* P);
// dq, dk, dv overwritten. P from the forward.
void attention_backward(const float* q, const float* k, const float* v, const float* P, const float* dout, int T,
                        int nh, int nkv, int d, float* dq, float* dk, float* dv);

// ---- SwiGLU: h = silu(g) .* u --------------------------------------------------------------------
template <class F>
void swiglu_forward(const F* g, const F* u, size_t count, F* h) {
  for (size_t i = 0; i < count; ++i) h[i] = g[i] / (F(1) + std::exp(-g[i])) * u[i];
}
void swiglu_backward(const float* g, const float* u, const float* dh, size_t count, float* dg, float* du);

// ---- Losses (return the loss in float64; write d loss / d input, overwritten) ---------------------------
// Mean squared error over all `count` elements.
template <class F>
double mse_loss(const F* y, const F* target, size_t count) {
  double s = 0.0;
  for (size_t i = 0; i < count; ++i) {
    const double e = static_cast<double>(y[i]) - target[i];
    s += e * e;
  }
  return s / static_cast<double>(count);
}
double mse_loss_backward(const float* y, const float* target, size_t count, float* dy);

// Mean over T tokens of -log softmax(logits_t)[target_t].
template <class F>
double cross_entropy_loss(const F* logits, const int32_t* targets, int T, int V) {
  double total = 0.0;
  for (int t = 0; t < T; ++t) {
    const F* l = logits + static_cast<size_t>(t) * V;
    double mx = l[0];
    for (int i = 1; i < V; ++i) mx = std::max(mx, static_cast<double>(l[i]));
    double s = 0.0;
    for (int i = 0; i < V; ++i) s += std::exp(l[i] - mx);
    total += mx + std::log(s) - l[targets[t]];
  }
  return total / T;
}
double cross_entropy_backward(const float* logits, const int32_t* targets, int T, int V, float* dlogits);

// Distillation: mean over T tokens of the cross-entropy -sum_v p_teacher(v) log p_student(v), with
// p = softmax of each one's logits (the KL divergence up to the teacher's entropy, a constant).
template <class F>
double distill_loss(const F* student, const F* teacher, int T, int V) {
  double total = 0.0;
  for (int t = 0; t < T; ++t) {
    const F* s = student + static_cast<size_t>(t) * V;
    const F* q = teacher + static_cast<size_t>(t) * V;
    double ms = s[0], mq = q[0];
    for (int i = 1; i < V; ++i) {
      ms = std::max(ms, static_cast<double>(s[i]));
      mq = std::max(mq, static_cast<double>(q[i]));
    }
    double zs = 0.0, zq = 0.0;
    for (int i = 0; i < V; ++i) {
      zs += std::exp(s[i] - ms);
      zq += std::exp(q[i] - mq);
    }
    const double lse = ms + std::log(zs);
    for (int i = 0; i < V; ++i) total -= std::exp(q[i] - mq) / zq * (s[i] - lse);
  }
  return total / T;
}
double distill_backward(const float* student, const float* teacher, int T, int V, float* dstudent);

}  // namespace quip::finetune
