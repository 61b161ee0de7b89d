// Fine-tuning backward passes against float64 central finite differences of the same forward
// (templated, evaluated in double), Adam against its formula in double, and the block trainer on a
// small synthetic block.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "harness.h"
#include "finetune/adam.h"
#include "finetune/block_trainer.h"
#include "finetune/e2e.h"
#include "finetune/ops.h"

using namespace quip::finetune;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, double sd = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, sd);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(d(rng));
  return v;
}
std::vector<double> to_d(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Central differences of f with respect to v (f reads v), step relative to the entry.
std::vector<double> numeric_grad(std::vector<double>& v, const std::function<double()>& f) {
  std::vector<double> g(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double old = v[i], h = 1e-6 * std::max(1.0, std::fabs(old));
    v[i] = old + h;
    const double fp = f();
    v[i] = old - h;
    const double fm = f();
    v[i] = old;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

double rel_error(const std::vector<float>& a, const std::vector<double>& n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n.size(); ++i) {
    num += (a[i] - n[i]) * (a[i] - n[i]);
    den += n[i] * n[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Relative L2 error of the analytic float32 gradient below tol; and the check is sharp enough to
// reject a gradient that is wrong by 1% of its norm in a single entry.
// Measured errors are ~1e-7 for the single operations (float32 rounding) and ~1e-5 for the whole
// block (float32 parameters perturbed 1e-3 apart, O(h^2) truncation).
constexpr double kTol = 2e-6, kBlockTol = 5e-6;
void expect_grad(const char* what, const std::vector<float>& analytic, const std::vector<double>& numeric, double tol = kTol) {
  const double err = rel_error(analytic, numeric);
  std::printf("    %-28s rel error %.2e\n", what, err);
  if (!(err < tol)) quip_test::fail(__FILE__, __LINE__, std::string(what) + ": gradient relative error " + std::to_string(err));
  double norm = 0;
  size_t imax = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    norm += numeric[i] * numeric[i];
    if (std::fabs(numeric[i]) > std::fabs(numeric[imax])) imax = i;
  }
  std::vector<float> wrong = analytic;
  wrong[imax] += static_cast<float>(0.01 * std::sqrt(norm));
  if (!(rel_error(wrong, numeric) > tol)) quip_test::fail(__FILE__, __LINE__, std::string(what) + ": the check cannot tell a 1% error");
  if (numeric.empty() || norm == 0) quip_test::fail(__FILE__, __LINE__, std::string(what) + ": zero reference gradient");
}

// sum(r .* y) in double: the projection whose gradient with respect to y is r.
double project(const std::vector<double>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
  return s;
}

}  // namespace

TEST(rms_norm_backward_matches_finite_differences) {
  const int T = 3, n = 12;
  std::vector<float> x = randn(T * n, 1), w = randn(n, 2), r = randn(T * n, 3), dx(T * n), dw(n, 0.0f);
  rms_norm_backward(x.data(), w.data(), r.data(), T, n, 1e-5, dx.data(), dw.data());
  std::vector<double> xd = to_d(x), wd = to_d(w), y(T * n);
  auto f = [&] { rms_norm_forward(xd.data(), wd.data(), T, n, 1e-5, y.data()); return project(y, r); };
  expect_grad("rms_norm dx", dx, numeric_grad(xd, f));
  expect_grad("rms_norm dw", dw, numeric_grad(wd, f));
}

TEST(linear_backward_matches_finite_differences) {
  const int T = 5, n = 7, m = 9;
  std::vector<float> x = randn(T * n, 4), W = randn(m * n, 5), r = randn(T * m, 6), dx(T * n), dW(m * n, 0.0f), y(T * m);
  linear_backward(x.data(), W.data(), r.data(), T, n, m, dx.data(), dW.data());
  std::vector<double> xd = to_d(x), Wd = to_d(W), yd(T * m);
  auto f = [&] { linear_forward(xd.data(), Wd.data(), T, n, m, yd.data()); return project(yd, r); };
  expect_grad("linear dx", dx, numeric_grad(xd, f));
  expect_grad("linear dW", dW, numeric_grad(Wd, f));
  // The float GEMM forward agrees with the double loop.
  linear_forward(x.data(), W.data(), T, n, m, y.data());
  f();
  double e = 0;
  for (int i = 0; i < T * m; ++i) e = std::max(e, std::fabs(y[i] - yd[i]));
  CHECK(e < 1e-4);
}

TEST(linear_backward_of_a_vocabulary_sized_layer_accumulates_dy_t_x) {
  // lm_head-like: more output rows than one band of the weight gradient (2500 > 1024), dW already
  // holding an earlier sequence's gradient; against the float64 sum dW[o][i] += sum_t dy[t][o] x[t][i].
  const int T = 3, n = 6, m = 2500;
  std::vector<float> x = randn(T * n, 7), W = randn(m * n, 8), dy = randn(T * m, 9), dx(T * n), dW = randn(m * n, 10);
  const std::vector<float> dW0 = dW;
  linear_backward(x.data(), W.data(), dy.data(), T, n, m, dx.data(), dW.data());
  double e = 0, ex = 0;
  for (int o = 0; o < m; ++o)
    for (int i = 0; i < n; ++i) {
      double want = dW0[o * n + i];
      for (int t = 0; t < T; ++t) want += static_cast<double>(dy[t * m + o]) * x[t * n + i];
      e = std::max(e, std::fabs(dW[o * n + i] - want));
    }
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < n; ++i) {
      double want = 0;
      for (int o = 0; o < m; ++o) want += static_cast<double>(dy[t * m + o]) * W[o * n + i];
      ex = std::max(ex, std::fabs(dx[t * n + i] - want) / (1 + std::fabs(want)));
    }
  CHECK(e < 1e-5);
  CHECK(ex < 1e-4);
}

TEST(quantized_linear_backward_matches_finite_differences) {
  // Output side with an order-12 Hadamard factor (24 = 12 * 2), input side pure Sylvester (16), and
  // the reverse, so both kinds of transform are differentiated.
  const int dims[2][2] = {{24, 16}, {16, 20}};
  for (auto& md : dims) {
    const int m = md[0], n = md[1], T = 4;
    const QLinearShape s = qlinear_shape(m, n, 0.7f);
    std::vector<float> Wt = randn(m * n, 7), su = randn(n, 8), sv = randn(m, 9), x = randn(T * n, 10), r = randn(T * m, 11);
    std::vector<float> y(T * m), c(T * m), dx(T * n), dsu(n, 0.0f), dsv(m, 0.0f);
    qlinear_forward(s, Wt.data(), su.data(), sv.data(), x.data(), T, y.data(), c.data());
    qlinear_backward(s, Wt.data(), su.data(), sv.data(), x.data(), c.data(), r.data(), T, dx.data(), dsu.data(), dsv.data());
    std::vector<double> Wd = to_d(Wt), sud = to_d(su), svd = to_d(sv), xd = to_d(x), yd(T * m);
    auto f = [&] { qlinear_forward(s, Wd.data(), sud.data(), svd.data(), xd.data(), T, yd.data()); return project(yd, r); };
    f();
    double e = 0;
    for (int i = 0; i < T * m; ++i) e = std::max(e, std::fabs(y[i] - yd[i]));
    CHECK(e < 1e-4);
    expect_grad("qlinear dx", dx, numeric_grad(xd, f));
    expect_grad("qlinear dsu", dsu, numeric_grad(sud, f));
    expect_grad("qlinear dsv", dsv, numeric_grad(svd, f));
  }
}

TEST(quantized_linear_forward_is_the_dense_product) {
  // With +-1 signs the layer is W^ = diag(sv) H_m (scale W~) H_n^T diag(su): check against the
  // dense matrix built column by column from unit inputs in double.
  const int m = 12, n = 8, T = 3;
  const QLinearShape s = qlinear_shape(m, n, 1.3f);
  std::vector<float> Wt = randn(m * n, 12), su(n), sv(m), x = randn(T * n, 13), y(T * m), c(T * m);
  for (int i = 0; i < n; ++i) su[i] = i % 3 ? 1.0f : -1.0f;
  for (int i = 0; i < m; ++i) sv[i] = i % 2 ? 1.0f : -1.0f;
  std::vector<double> Wd = to_d(Wt), sud = to_d(su), svd = to_d(sv), e(n), col(m), dense(m * n);
  for (int j = 0; j < n; ++j) {
    std::fill(e.begin(), e.end(), 0.0);
    e[j] = 1.0;
    qlinear_forward(s, Wd.data(), sud.data(), svd.data(), e.data(), 1, col.data());
    for (int o = 0; o < m; ++o) dense[o * n + j] = col[o];
  }
  qlinear_forward(s, Wt.data(), su.data(), sv.data(), x.data(), T, y.data(), c.data());
  double err = 0;
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < m; ++o) {
      double ref = 0;
      for (int j = 0; j < n; ++j) ref += dense[o * n + j] * x[t * n + j];
      err = std::max(err, std::fabs(ref - y[t * m + o]));
    }
  CHECK(err < 1e-4);
  // Orthogonal transforms preserve the Frobenius norm: ||W^|| = scale ||W~||.
  double fw = 0, fd = 0;
  for (int i = 0; i < m * n; ++i) {
    fw += Wd[i] * Wd[i];
    fd += dense[i] * dense[i];
  }
  CHECK_NEAR(std::sqrt(fd), 1.3 * std::sqrt(fw), 1e-6 * std::sqrt(fd));
}

TEST(rope_backward_matches_finite_differences) {
  const int T = 4, heads = 3, d = 8;
  std::vector<double> inv(d / 2);
  for (int i = 0; i < d / 2; ++i) inv[i] = 1.0 / std::pow(10000.0, 2.0 * i / d);
  std::vector<float> x = randn(T * heads * d, 14), r = randn(T * heads * d, 15), dx = r;
  rope_apply(dx.data(), T, heads, d, 3, inv.data(), true);
  std::vector<double> xd = to_d(x), y;
  auto f = [&] { y = xd; rope_apply(y.data(), T, heads, d, 3, inv.data()); return project(y, r); };
  expect_grad("rope dx", dx, numeric_grad(xd, f));
}

TEST(attention_backward_matches_finite_differences) {
  const int T = 5, nh = 4, nkv = 2, d = 4;
  std::vector<float> q = randn(T * nh * d, 16), k = randn(T * nkv * d, 17), v = randn(T * nkv * d, 18), r = randn(T * nh * d, 19);
  std::vector<float> out(T * nh * d), P(nh * T * T), dq(q.size()), dk(k.size()), dv(v.size());
  attention_forward(q.data(), k.data(), v.data(), T, nh, nkv, d, out.data(), P.data());
  attention_backward(q.data(), k.data(), v.data(), P.data(), r.data(), T, nh, nkv, d, dq.data(), dk.data(), dv.data());
  std::vector<double> qd = to_d(q), kd = to_d(k), vd = to_d(v), od(out.size());
  auto f = [&] { attention_forward(qd.data(), kd.data(), vd.data(), T, nh, nkv, d, od.data()); return project(od, r); };
  f();
  double e = 0;
  for (size_t i = 0; i < out.size(); ++i) e = std::max(e, std::fabs(out[i] - od[i]));
  CHECK(e < 1e-5);
  expect_grad("attention dq", dq, numeric_grad(qd, f));
  expect_grad("attention dk", dk, numeric_grad(kd, f));
  expect_grad("attention dv", dv, numeric_grad(vd, f));
}

TEST(swiglu_backward_matches_finite_differences) {
  const size_t n = 30;
  std::vector<float> g = randn(n, 20, 2.0), u = randn(n, 21), r = randn(n, 22), dg(n), du(n);
  swiglu_backward(g.data(), u.data(), r.data(), n, dg.data(), du.data());
  std::vector<double> gd = to_d(g), ud = to_d(u), h(n);
  auto f = [&] { swiglu_forward(gd.data(), ud.data(), n, h.data()); return project(h, r); };
  expect_grad("swiglu dgate", dg, numeric_grad(gd, f));
  expect_grad("swiglu dup", du, numeric_grad(ud, f));
}

TEST(losses_backward_match_finite_differences) {
  const int T = 3, V = 11;
  std::vector<float> y = randn(T * V, 23), target = randn(T * V, 24), teacher = randn(T * V, 25, 2.0), dy(T * V);
  std::vector<double> yd = to_d(y), td = to_d(target), teach = to_d(teacher);
  const double mse = mse_loss_backward(y.data(), target.data(), y.size(), dy.data());
  CHECK_NEAR(mse, mse_loss(yd.data(), td.data(), yd.size()), 1e-6 * mse);
  expect_grad("mse dy", dy, numeric_grad(yd, [&] { return mse_loss(yd.data(), td.data(), yd.size()); }));

  const int32_t ids[T] = {3, 0, 10};
  const double ce = cross_entropy_backward(y.data(), ids, T, V, dy.data());
  CHECK_NEAR(ce, cross_entropy_loss(yd.data(), ids, T, V), 1e-6 * ce);
  expect_grad("cross-entropy dlogits", dy, numeric_grad(yd, [&] { return cross_entropy_loss(yd.data(), ids, T, V); }));

  const double kd = distill_backward(y.data(), teacher.data(), T, V, dy.data());
  CHECK_NEAR(kd, distill_loss(yd.data(), teach.data(), T, V), 1e-6 * kd);
  expect_grad("distillation dlogits", dy, numeric_grad(yd, [&] { return distill_loss(yd.data(), teach.data(), T, V); }));
  // Distilling from oneself leaves only the entropy: the gradient vanishes.
  std::vector<float> self(T * V);
  distill_backward(teacher.data(), teacher.data(), T, V, self.data());
  for (float g : self) CHECK(std::fabs(g) < 1e-7);
}

TEST(final_norm_and_lm_head_chain_matches_finite_differences) {
  // logits = lm_head(RMSNorm(x)), cross-entropy: what end-to-end fine-tuning differentiates last.
  const int T = 4, H = 8, V = 13;
  std::vector<float> x = randn(T * H, 26), w = randn(H, 27), W = randn(V * H, 28), xn(T * H), logits(T * V);
  const int32_t ids[T] = {1, 12, 5, 5};
  rms_norm_forward(x.data(), w.data(), T, H, 1e-5, xn.data());
  linear_forward(xn.data(), W.data(), T, H, V, logits.data());
  std::vector<float> dl(T * V), dxn(T * H), dx(T * H), dw(H, 0.0f), dW(V * H, 0.0f);
  cross_entropy_backward(logits.data(), ids, T, V, dl.data());
  linear_backward(xn.data(), W.data(), dl.data(), T, H, V, dxn.data(), dW.data());
  rms_norm_backward(x.data(), w.data(), dxn.data(), T, H, 1e-5, dx.data(), dw.data());
  std::vector<double> xd = to_d(x), wd = to_d(w), Wd = to_d(W), xnd(T * H), ld(T * V);
  auto f = [&] {
    rms_norm_forward(xd.data(), wd.data(), T, H, 1e-5, xnd.data());
    linear_forward(xnd.data(), Wd.data(), T, H, V, ld.data());
    return cross_entropy_loss(ld.data(), ids, T, V);
  };
  expect_grad("head dx", dx, numeric_grad(xd, f));
  expect_grad("final norm dw", dw, numeric_grad(wd, f));
  expect_grad("lm_head dW", dW, numeric_grad(Wd, f));
}

namespace {

// A small block: hidden 16, MLP 24 (Hadamard 12 * 2), 4 query heads over 2 KV heads of size 4.
// quantized[i] picks which linears are quantized (frozen W~, trainable SU/SV).
TrainBlock small_block(uint32_t seed, const std::vector<bool>& quantized, double sd = 0.3) {
  TrainBlock b;
  b.shape.hidden = 16;
  b.shape.intermediate = 24;
  b.shape.heads = 4;
  b.shape.kv_heads = 2;
  b.shape.head_dim = 4;
  b.shape.inv_freq = {1.0, 0.01};
  b.attn_norm = randn(16, seed + 1, 0.2);
  b.mlp_norm = randn(16, seed + 2, 0.2);
  for (float& v : b.attn_norm) v += 1.0f;
  for (float& v : b.mlp_norm) v += 1.0f;
  const int nq = 16, nk = 8, H = 16, I = 24;
  const int dims[kLinearCount][2] = {{nq, H}, {nk, H}, {nk, H}, {H, nq}, {I, H}, {I, H}, {H, I}};
  for (int i = 0; i < kLinearCount; ++i) {
    const int m = dims[i][0], n = dims[i][1];
    std::vector<float> w = randn(m * n, seed + 10 + i, sd);
    if (quantized[i]) {
      std::vector<float> su = randn(n, seed + 30 + i, 0.1), sv = randn(m, seed + 40 + i, 0.1);
      for (size_t j = 0; j < su.size(); ++j) su[j] += (j % 2 ? 1.0f : -1.0f);
      for (size_t j = 0; j < sv.size(); ++j) sv[j] += (j % 3 ? 1.0f : -1.0f);
      b.lin[i] = TrainLinear::quantized_layer(m, n, std::move(w), 0.9f, std::move(su), std::move(sv));
    } else {
      b.lin[i] = TrainLinear::dense(m, n, std::move(w));
    }
  }
  return b;
}

}  // namespace

TEST(block_backward_matches_finite_differences) {
  // q/k/v and gate quantized, the rest dense: every kind of parameter of in-block fine-tuning.
  TrainBlock b = small_block(100, {true, true, true, false, true, false, false});
  b.validate();
  const int T = 6;
  std::vector<float> x = randn(T * 16, 50), r = randn(T * 16, 51), y(T * 16);
  std::vector<ParamRef> params = block_parameters(b);
  CHECK(params.size() == 2 + 3 * 2 + 1 + 2 + 1 + 1);
  std::vector<std::vector<float>> grads(params.size());
  for (size_t i = 0; i < params.size(); ++i) grads[i].assign(params[i].size, 0.0f);
  const double loss = block_backward(b, x.data(), T, [&](const float* yy, float* dy) {
    std::copy(r.begin(), r.end(), dy);
    double s = 0;
    for (int i = 0; i < T * 16; ++i) s += yy[i] * r[i];
    return s;
  }, grads);
  std::vector<double> xd = to_d(x), yd(T * 16);
  block_forward<double>(b, xd.data(), T, yd.data());
  CHECK_NEAR(loss, project(yd, r), 1e-4 * std::fabs(loss) + 1e-4);
  // The parameters are float32: perturb each entry in float, divide by the step actually taken, and
  // evaluate the block in float64.
  for (size_t p = 0; p < params.size(); ++p) {
    float* data = params[p].data;
    std::vector<double> g(params[p].size);
    for (size_t i = 0; i < g.size(); ++i) {
      const float old = data[i];
      const float up = old + 1e-3f * std::max(1.0f, std::fabs(old)), down = old - (up - old);
      data[i] = up;
      block_forward<double>(b, xd.data(), T, yd.data());
      const double fp = project(yd, r);
      data[i] = down;
      block_forward<double>(b, xd.data(), T, yd.data());
      const double fm = project(yd, r);
      data[i] = old;
      g[i] = (fp - fm) / (static_cast<double>(up) - static_cast<double>(down));
    }
    const std::string what = std::string("block ") + params[p].name + (params[p].sign_vector ? " sign" : "");
    expect_grad(what.c_str(), grads[p], g, kBlockTol);
  }
}

TEST(adam_matches_its_formula) {
  std::vector<float> p = {0.5f, -1.0f}, s = {1.0f, -1.0f}, gp(2), gs(2);
  Adam adam(AdamSettings{1e-2, 1e-1});
  adam.add(p.data(), gp.data(), 2, false);
  adam.add(s.data(), gs.data(), 2, true);
  std::vector<double> rp = {0.5, -1.0}, rs = {1.0, -1.0}, mp(2, 0), vp(2, 0), ms(2, 0), vs(2, 0);
  for (int t = 1; t <= 5; ++t) {
    for (int i = 0; i < 2; ++i) {
      gp[i] = static_cast<float>(0.3 * t - i);
      gs[i] = static_cast<float>(-0.2 * t + 0.5 * i);
    }
    adam.step();
    auto ref = [&](std::vector<double>& x, std::vector<double>& m, std::vector<double>& v, const std::vector<float>& g, double lr) {
      for (int i = 0; i < 2; ++i) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
        const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
        x[i] -= lr * mh / (std::sqrt(vh) + 1e-8);
      }
    };
    ref(rp, mp, vp, gp, 1e-2);
    ref(rs, ms, vs, gs, 1e-1);
  }
  for (int i = 0; i < 2; ++i) {
    CHECK_NEAR(p[i], rp[i], 1e-6);
    CHECK_NEAR(s[i], rs[i], 1e-5);
  }
  CHECK(adam.steps() == 5);
  // The sign-vector rate applies to sign vectors only: they moved about 10x further.
  CHECK(std::fabs(s[0] - 1.0f) > 5 * std::fabs(p[0] - 0.5f));
}

TEST(train_block_lowers_heldout_error_and_keeps_the_best_epoch) {
  // Teacher: a dense block. Student: the same block with q/k/v and gate/up quantized by rounding W to a
  // coarse grid in the transformed basis (a stand-in for codes) and its sign vectors starting at +-1.
  const std::vector<bool> none(kLinearCount, false);
  TrainBlock teacher = small_block(200, none);
  TrainBlock student = small_block(200, none);
  for (int i : {int(kQ), int(kK), int(kV), int(kGate), int(kUp)}) {
    TrainLinear& L = student.lin[i];
    std::vector<float> su(L.n), sv(L.m);
    for (int j = 0; j < L.n; ++j) su[j] = j % 2 ? 1.0f : -1.0f;
    for (int j = 0; j < L.m; ++j) sv[j] = j % 3 ? 1.0f : -1.0f;
    // W~ = H_m^T diag(sv) W diag(su) H_n, rounded to steps of 0.25 (~2 bits at this scale).
    std::vector<float> wt = L.w;
    std::vector<int8_t> su8(su.begin(), su.end()), sv8(sv.begin(), sv.end());
    quip::rht_forward_matrix(wt.data(), L.m, L.n, quip::hadamard_plan(L.m), quip::hadamard_plan(L.n), sv8.data(), su8.data());
    for (float& v : wt) v = std::round(v * 4.0f) / 4.0f;
    L = TrainLinear::quantized_layer(L.m, L.n, std::move(wt), 1.0f, std::move(su), std::move(sv));
  }
  const int N = 40, L = 16, H = 16;
  std::vector<float> in = randn(N * L * H, 300), out(N * L * H);
  for (int s = 0; s < N; ++s) block_forward<float>(teacher, in.data() + s * L * H, L, out.data() + s * L * H);
  BlockTrainSettings st;
  st.epochs = 10;
  st.batch = 4;
  st.lr = 1e-3;
  st.lr_sign = 1e-3;
  st.holdout = 0.2;
  st.patience = 3;
  std::vector<EpochStats> seen;
  const BlockTrainResult r = train_block(student, in.data(), out.data(), N, L, st, quip::JobHooks{}, [&](const EpochStats& e) { seen.push_back(e); });
  std::printf("    initial held-out %.4e, best %.4e at epoch %d of %zu\n", r.initial_heldout_loss, r.best_heldout_loss, r.best_epoch, r.epochs.size());
  CHECK(r.train_sequences == 32 && r.heldout_sequences == 8);
  CHECK(seen.size() == r.epochs.size() && !seen.empty());
  CHECK(r.best_heldout_loss < 0.8 * r.initial_heldout_loss);
  CHECK(r.best_epoch >= 1);
  // The block is left at the best epoch: its held-out error is the best one recorded.
  double best = r.initial_heldout_loss;
  for (const EpochStats& e : r.epochs) best = std::min(best, e.heldout_loss);
  CHECK_NEAR(r.best_heldout_loss, best, 0.0);
  CHECK(r.tokens_per_second > 0);
}

TEST(train_block_early_stops_cancels_and_rejects_bad_settings) {
  const std::vector<bool> none(kLinearCount, false);
  TrainBlock teacher = small_block(400, none), student = small_block(401, none);
  const int N = 6, L = 5, H = 16;
  std::vector<float> in = randn(N * L * H, 402), out(N * L * H);
  for (int s = 0; s < N; ++s) block_forward<float>(teacher, in.data() + s * L * H, L, out.data() + s * L * H);
  // A learning rate far too large: no epoch beats the start, so patience 2 stops after 2 epochs and
  // the parameters given are kept.
  const std::vector<float> norm0 = student.attn_norm;
  BlockTrainSettings st;
  st.epochs = 10;
  st.lr = 5.0;
  st.lr_sign = 5.0;
  st.patience = 2;
  st.holdout = 0.34;
  const BlockTrainResult r = train_block(student, in.data(), out.data(), N, L, st, quip::JobHooks{}, {});
  CHECK(r.best_epoch == 0 && r.epochs.size() == 2 && r.early_stopped);
  CHECK(student.attn_norm == norm0);
  // Cancellation throws Cancelled.
  quip::JobHooks hooks;
  hooks.cancelled = [] { return true; };
  bool cancelled = false;
  try {
    train_block(student, in.data(), out.data(), N, L, BlockTrainSettings{}, hooks, {});
  } catch (const quip::Cancelled&) {
    cancelled = true;
  }
  CHECK(cancelled);
  BlockTrainSettings bad;
  bad.holdout = 1.0;
  bool rejected = false;
  try {
    train_block(student, in.data(), out.data(), N, L, bad, quip::JobHooks{}, {});
  } catch (const std::invalid_argument& e) {
    rejected = std::string(e.what()).find("held-out") != std::string::npos;
  }
  CHECK(rejected);
}

namespace {

// Two small blocks, final norm, lm_head (vocab 20). quantized: every block linear quantized (as in
// end-to-end fine-tuning) with W~ from rounding the teacher's transformed weights.
TrainModel small_model(uint32_t seed, bool quantized) {
  TrainModel m;
  const std::vector<bool> none(kLinearCount, false);
  for (int i = 0; i < 2; ++i) {
    TrainBlock b = small_block(seed + 100 * i, none);
    if (quantized)
      for (int s = 0; s < kLinearCount; ++s) {
        TrainLinear& L = b.lin[s];
        std::vector<float> su(L.n), sv(L.m), wt = L.w;
        for (int j = 0; j < L.n; ++j) su[j] = j % 2 ? 1.0f : -1.0f;
        for (int j = 0; j < L.m; ++j) sv[j] = j % 3 ? 1.0f : -1.0f;
        std::vector<int8_t> su8(su.begin(), su.end()), sv8(sv.begin(), sv.end());
        quip::rht_forward_matrix(wt.data(), L.m, L.n, quip::hadamard_plan(L.m), quip::hadamard_plan(L.n), sv8.data(), su8.data());
        for (float& v : wt) v = std::round(v * 4.0f) / 4.0f;
        L = TrainLinear::quantized_layer(L.m, L.n, std::move(wt), 1.0f, std::move(su), std::move(sv));
      }
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = randn(16, seed + 7, 0.1);
  for (float& v : m.final_norm) v += 1.0f;
  m.lm_head = TrainLinear::dense(20, 16, randn(20 * 16, seed + 8, 0.5));
  return m;
}

}  // namespace

TEST(model_backward_with_distillation_matches_finite_differences) {
  TrainModel m = small_model(500, true);
  m.validate();
  const int T = 5, V = 20;
  std::vector<float> x = randn(T * 16, 60), teacher = randn(T * V, 61, 2.0);
  std::vector<ParamRef> params = model_parameters(m);
  std::vector<std::vector<float>> grads(params.size());
  for (size_t i = 0; i < params.size(); ++i) grads[i].assign(params[i].size, 0.0f);
  model_backward(m, x.data(), T, [&](const float* logits, float* d) { return distill_backward(logits, teacher.data(), T, V, d); }, grads);
  std::vector<double> xd = to_d(x), td = to_d(teacher), ld(T * V);
  auto f = [&] {
    model_forward<double>(m, xd.data(), T, ld.data());
    return distill_loss(ld.data(), td.data(), T, V);
  };
  for (size_t p = 0; p < params.size(); ++p) {
    float* data = params[p].data;
    std::vector<double> g(params[p].size);
    for (size_t i = 0; i < g.size(); ++i) {
      const float old = data[i];
      const float up = old + 1e-3f * std::max(1.0f, std::fabs(old)), down = old - (up - old);
      data[i] = up;
      const double fp = f();
      data[i] = down;
      const double fm = f();
      data[i] = old;
      g[i] = (fp - fm) / (static_cast<double>(up) - static_cast<double>(down));
    }
    const std::string what = std::string("model ") + params[p].name + (params[p].sign_vector ? " sign" : "");
    expect_grad(what.c_str(), grads[p], g, kBlockTol);
  }
}

TEST(distillation_lowers_heldout_loss_and_keeps_tied_heads_frozen) {
  TrainModel teacher = small_model(600, false), student = small_model(600, true);
  student.tune_lm_head = false;  // as for tied embeddings
  const std::vector<float> head0 = student.lm_head.w;
  const int N = 24, L = 8, H = 16, V = 20;
  std::vector<float> emb = randn(N * L * H, 601);
  BlockTrainSettings st;
  st.epochs = 12;
  st.batch = 4;
  st.lr = 5e-3;
  st.lr_sign = 5e-3;
  st.holdout = 0.25;
  int teacher_calls = 0;
  const BlockTrainResult r = train_model_distill(student, emb.data(), N, L, [&](int seq, float* logits) {
    ++teacher_calls;
    model_forward<float>(teacher, emb.data() + seq * L * H, L, logits);
  }, st, quip::JobHooks{}, {});
  // The loss is KL(teacher || student) plus the teacher's entropy on the held-out sequences.
  double entropy = 0;
  const SequenceSplit split = split_sequences(N, st.holdout, st.seed);
  std::vector<float> tl(L * V);
  for (int s : split.heldout) {
    model_forward<float>(teacher, emb.data() + s * L * H, L, tl.data());
    entropy += distill_loss(tl.data(), tl.data(), L, V) / split.heldout.size();
  }
  const double kl0 = r.initial_heldout_loss - entropy, kl = r.best_heldout_loss - entropy;
  std::printf("    held-out KL %.4e -> %.4e (best epoch %d)\n", kl0, kl, r.best_epoch);
  CHECK(r.best_epoch >= 1);
  CHECK(kl > 0 && kl < 0.85 * kl0);
  CHECK(student.lm_head.w == head0);
  CHECK(teacher_calls > 0);
}

QUIP_TEST_MAIN()
