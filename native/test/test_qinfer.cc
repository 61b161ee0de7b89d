// Quantized inference tests: the decode-matvec kernels (scalar reference and this build's SIMD one:
// AVX2 or NEON) against a float64 dense matvec over the matrix decoded by the numeric core's own
// codebook_decode, the int8-activation kernels (AVX-512) against their scalar reference and the
// reference against the exact matvec within the rounding bound, the batched (prefill) path against
// the one-token path, and the whole quantized linear (RHT, padding, scale, sign vectors) against
// W^ x with W^ rebuilt densely in float64 from the quantizer's own output.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu.h"
#include "common/thread_pool.h"
#include "harness.h"
#include "runtime/linear.h"
#include "qinfer/decode.h"
#include "qinfer/prefill.h"
#include "qinfer/qlinear.h"
#include "quip/e8p.h"
#include "quip/hadamard.h"

using namespace quip;
using namespace quip::qinfer;

namespace {

// Code planes for one codebook, filled with random code words (every bit pattern is a valid code).
struct Planes {
  quip::Codebook cb;
  int m, groups;
  double s2;
  std::vector<uint32_t> words;  // quip's 32-bit code word per group
  std::vector<uint16_t> primary;
  std::vector<uint16_t> res16;
  std::vector<uint8_t> res8;
  std::vector<uint8_t> packed;

  Planes(quip::Codebook c, int rows, int g, std::mt19937& rng) : cb(c), m(rows), groups(g) {
    s2 = codebook_info(cb).s2;
    words.resize(static_cast<size_t>(m) * groups);
    for (auto& w : words) {
      uint32_t v = rng();
      if (cb == quip::Codebook::E8P) v &= 0xFFFF;
      if (cb == quip::Codebook::RVQ3) v &= 0xFFFFFF;
      if (cb == quip::Codebook::RTN2) v &= 0xFFFF;
      if (cb == quip::Codebook::RTN3) v &= 0xFFFFFF;
      w = v;
    }
    split();
  }
  void split() {
    const size_t G = words.size();
    primary.assign(G, 0);
    res16.assign(G, 0);
    res8.assign(G, 0);
    const int b = bits();
    packed.assign(G * b, 0);
    for (size_t i = 0; i < G; ++i) {
      primary[i] = static_cast<uint16_t>(words[i]);
      res16[i] = static_cast<uint16_t>(words[i] >> 16);
      res8[i] = static_cast<uint8_t>(words[i] >> 16);
      for (int k = 0; k < b; ++k) packed[i * b + k] = static_cast<uint8_t>(words[i] >> (8 * k));
    }
  }
  int bits() const { return codebook_info(cb).bits; }
  QCodes codes() const {
    QCodes q;
    q.rows = m;
    q.groups = groups;
    switch (cb) {
      case quip::Codebook::E8P: q.kind = CodeKind::E8P; q.primary = primary.data(); break;
      case quip::Codebook::RVQ3: q.kind = CodeKind::RVQ3; q.primary = primary.data(); q.residual = res8.data(); break;
      case quip::Codebook::RVQ4: q.kind = CodeKind::RVQ4; q.primary = primary.data(); q.residual = res16.data(); break;
      default: q.kind = CodeKind::Scalar; q.scalar_bits = bits(); q.packed = packed.data(); break;
    }
    q.residual_inv_scale = s2 > 0 ? static_cast<float>(1.0 / s2) : 0.0f;
    return q;
  }
  // Q (m x groups*8) in float64 from the numeric core's decoder.
  std::vector<double> dense() const {
    std::vector<double> Q(static_cast<size_t>(m) * groups * 8);
    float out[8];
    for (size_t i = 0; i < words.size(); ++i) {
      codebook_decode(cb, s2, words[i], out);
      for (int j = 0; j < 8; ++j) Q[i * 8 + j] = out[j];
    }
    return Q;
  }
};

const quip::Codebook kAll[] = {quip::Codebook::E8P, quip::Codebook::RVQ3, quip::Codebook::RVQ4,
                               quip::Codebook::RTN2, quip::Codebook::RTN3, quip::Codebook::RTN4};

std::vector<float> gaussian(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// The relative RMS difference of y from ref over all entries (the int8 kernels' criterion where a
// per-entry bound is not at hand: their rounding adds ~0.5% noise; one wrong sign or level is >10%).
double rel_rms(const std::vector<float>& y, const std::vector<double>& ref) {
  double e = 0, n = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    e += (y[i] - ref[i]) * (y[i] - ref[i]);
    n += ref[i] * ref[i];
  }
  return std::sqrt(e / n);
}

// Whether this CPU's automatic decode kernels round x to int8 (AVX-512).
bool auto_kernels_use_int8() { return decode_kernels().matvec_prepared != nullptr; }

std::vector<const DecodeKernels*> impls() {
  std::vector<const DecodeKernels*> k{&decode_kernels_scalar()};
  if (cpu_features().avx2) k.push_back(&decode_kernels(KernelImpl::Avx2));
  if (cpu_features().neon) k.push_back(&decode_kernels(KernelImpl::Neon));
  return k;
}

}  // namespace

TEST(decode_tables_match_the_codebook_for_every_e8p_code) {
  // Every one of the 65,536 codes decodes to exactly the numeric core's point.
  std::vector<uint32_t> all(65536);
  for (uint32_t c = 0; c < 65536; ++c) all[c] = c;
  std::mt19937 rng(1);
  Planes p(quip::Codebook::E8P, 1, 8192, rng);
  p.words = all;
  p.split();
  p.m = 8;
  p.groups = 8192;
  std::vector<float> w(8192 * 8);
  int bad = 0;
  for (int r = 0; r < 8; ++r) {
    for (auto* k : impls()) {
      k->decode_row(p.codes(), r, w.data());
      for (int g = 0; g < 8192; ++g) {
        float ref[8];
        e8p_decode(static_cast<uint16_t>(r * 8192 + g), ref);
        for (int j = 0; j < 8; ++j) bad += w[g * 8 + j] != ref[j];
      }
    }
  }
  CHECK(bad == 0);
}

TEST(matvec_equals_dense_float64_for_every_codebook) {
  std::mt19937 rng(7);
  for (auto cb : kAll) {
    const int m = 37, groups = 22;  // odd row count exercises the 4-row tiles' remainder
    Planes p(cb, m, groups, rng);
    std::vector<double> Q = p.dense();
    std::vector<float> x = gaussian(groups * 8, rng);
    for (auto* k : impls()) {
      std::vector<float> y(m);
      k->matvec(p.codes(), x.data(), 0, m, y.data());
      std::vector<float> y2(m - 5);
      k->matvec(p.codes(), x.data(), 5, m, y2.data());  // a row range not starting at 0
      for (int r = 0; r < m; ++r) {
        double ref = 0, mag = 0;
        for (int c = 0; c < groups * 8; ++c) {
          ref += Q[static_cast<size_t>(r) * groups * 8 + c] * x[c];
          mag += std::fabs(Q[static_cast<size_t>(r) * groups * 8 + c] * x[c]);
        }
        CHECK_NEAR(y[r], ref, 1e-5 * mag + 1e-6);
        if (r >= 5) CHECK(y2[r - 5] == y[r]);
      }
      // decode_row reproduces the dense matrix exactly up to float rounding of the residual sum
      std::vector<float> w(groups * 8);
      for (int r = 0; r < m; ++r) {
        k->decode_row(p.codes(), r, w.data());
        for (int c = 0; c < groups * 8; ++c) CHECK_NEAR(w[c], Q[static_cast<size_t>(r) * groups * 8 + c], 1e-6);
      }
    }
  }
}

// Auto picks this build's SIMD kernels: AVX-512 (int8) or AVX2 on x86-64 CPUs that have them, NEON
// on every arm64 build.
TEST(auto_decode_dispatch_picks_the_simd_kernels_of_this_build) {
  const CpuFeatures& cpu = cpu_features();
  const DecodeKernels* simd = cpu.avx512 ? &decode_kernels(KernelImpl::Avx512)
                              : cpu.avx2 ? &decode_kernels(KernelImpl::Avx2)
                              : cpu.neon ? &decode_kernels(KernelImpl::Neon)
                                         : &decode_kernels_scalar();
  CHECK(&decode_kernels() == simd);
  if (cpu.avx2 || cpu.neon) CHECK(simd != &decode_kernels_scalar());
  CHECK((decode_kernels().matvec_prepared != nullptr) == cpu.avx512);
#if defined(__aarch64__)
  if (cpu.neon) CHECK(&decode_kernels() == &decode_kernels_neon());
#endif
  bool threw = false;
  try {
    decode_kernels(cpu.neon ? KernelImpl::Avx2 : KernelImpl::Neon);  // the other ISA's kernels
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(simd_and_scalar_kernels_agree) {
  if (!cpu_features().avx2 && !cpu_features().neon) return;
  std::mt19937 rng(11);
  for (auto cb : kAll) {
    Planes p(cb, 64, 72, rng);
    std::vector<float> x = gaussian(72 * 8, rng);
    std::vector<float> a(64), b(64);
    decode_kernels_scalar().matvec(p.codes(), x.data(), 0, 64, a.data());
    decode_kernels(cpu_features().avx2 ? KernelImpl::Avx2 : KernelImpl::Neon).matvec(p.codes(), x.data(), 0, 64, b.data());
    for (int r = 0; r < 64; ++r) CHECK_NEAR(a[r], b[r], 1e-4 * (1 + std::fabs(a[r])));
  }
}

// ---- int8 activations ------------------------------------------------------------------------------

TEST(prepare_x_rounds_each_block_of_32_values_to_int8_with_its_own_scale) {
  std::mt19937 rng(5);
  const int groups = 70;  // two chunks of 64 groups; the second holds 6 (blocks 16 and half of 17)
  std::vector<float> x = gaussian(groups * 8, rng);
  for (int i = 32; i < 64; ++i) x[i] = 0.0f;                   // block 1: all zero
  for (int i = 64; i < 96; ++i) x[i] = 0.0f;                   // block 2: max 127, so d = 1 exactly
  x[64] = 127.0f, x[65] = 2.5f, x[66] = 3.5f, x[67] = -2.5f;   // halves round to even
  PreparedX px;
  prepare_x(x.data(), groups, px);
  CHECK(px.chunks == 2 && px.q.size() == 1024 && px.d.size() == 32);
  auto q_at = [&](int g, int j) { return px.q[static_cast<size_t>(g / 64) * 512 + 64 * j + g % 64]; };
  auto d_at = [&](int g) { return px.d[static_cast<size_t>(g / 64) * 16 + (g % 64) / 4]; };
  CHECK(d_at(4) == 0.0f && d_at(8) == 1.0f);
  CHECK(q_at(8, 0) == 127 && q_at(8, 1) == 2 && q_at(8, 2) == 4 && q_at(8, 3) == -2);
  std::vector<int> block_max((groups + 3) / 4, 0);
  for (int g = 0; g < groups; ++g) {
    float sum = 0;
    for (int j = 0; j < 8; ++j) {
      const float v = x[8 * g + j], d = d_at(g);
      CHECK(std::abs(q_at(g, j)) <= 127);
      CHECK(std::fabs(q_at(g, j) * d - v) <= 0.5f * d * (1 + 1e-6f));
      block_max[g / 4] = std::max(block_max[g / 4], std::abs(static_cast<int>(q_at(g, j))));
      sum += v;
    }
    CHECK_NEAR(px.gq[g], sum / 4, 1e-6 * (1 + std::fabs(sum)));
  }
  for (size_t b = 0; b < block_max.size(); ++b) CHECK(block_max[b] == (b == 1 ? 0 : 127));  // max|x| -> 127
  for (int g = groups; g < 128; ++g)
    for (int j = 0; j < 8; ++j) CHECK(q_at(g, j) == 0);  // padding
  for (int b = 0; b < 32; ++b) {
    int sum = 0;
    for (int gg = 0; gg < 4; ++gg)
      for (int j = 0; j < 8; ++j) sum += px.q[static_cast<size_t>(b / 16) * 512 + 64 * j + 4 * (b % 16) + gg];
    CHECK(px.bsum4[b] == 4 * sum);
  }
}

TEST(int8_reference_stays_within_the_rounding_bound_of_the_exact_matvec) {
  // |y - Q x| <= sum_e |Q_e| d_b(e) / 2 per row, with every E8P code among the rows.
  std::mt19937 rng(17);
  for (auto cb : {quip::Codebook::E8P, quip::Codebook::RVQ3, quip::Codebook::RVQ4}) {
    const int m = 37, groups = 70;
    Planes p(cb, m, groups, rng);
    std::vector<double> Q = p.dense();
    std::vector<float> x = gaussian(groups * 8, rng), y(m);
    PreparedX px;
    prepare_x(x.data(), groups, px);
    matvec_prepared_reference(p.codes(), px, 0, m, y.data());
    std::vector<double> exact(m);
    for (int r = 0; r < m; ++r) {
      double bound = 0, mag = 0;
      for (int c = 0; c < groups * 8; ++c) {
        const double w = Q[static_cast<size_t>(r) * groups * 8 + c];
        exact[r] += w * x[c];
        mag += std::fabs(w * x[c]);
        bound += std::fabs(w) * 0.5 * px.d[static_cast<size_t>(c / 512) * 16 + (c % 512) / 32];
      }
      CHECK(std::fabs(y[r] - exact[r]) <= bound + 1e-6 * mag + 1e-6);
    }
    CHECK(rel_rms(y, exact) < 0.02);
  }
}

TEST(avx512_kernels_equal_the_int8_reference) {
  if (!cpu_features().avx512) return;  // needs AVX-512 VBMI/VNNI + GFNI
  const DecodeKernels& k = decode_kernels(KernelImpl::Avx512);
  std::mt19937 rng(23);
  struct Case { quip::Codebook cb; int m, groups; };
  // Whole chunks, ragged last chunks (masked code loads), one-group rows, and every E8P code.
  const Case cases[] = {{quip::Codebook::E8P, 37, 22},   {quip::Codebook::E8P, 9, 64},    {quip::Codebook::E8P, 8, 8192},
                        {quip::Codebook::RVQ3, 37, 130}, {quip::Codebook::RVQ3, 5, 1},    {quip::Codebook::RVQ4, 37, 72},
                        {quip::Codebook::RVQ4, 11, 519}, {quip::Codebook::RTN3, 13, 40}};
  for (const Case& cs : cases) {
    Planes p(cs.cb, cs.m, cs.groups, rng);
    if (cs.groups == 8192) {
      for (uint32_t c = 0; c < 65536; ++c) p.words[c] = c;
      p.split();
    }
    std::vector<double> Q = p.dense();
    std::vector<float> x = gaussian(static_cast<size_t>(cs.groups) * 8, rng), ref(cs.m), y(cs.m), y2(cs.m - 1);
    PreparedX px;
    prepare_x(x.data(), cs.groups, px);
    if (cs.cb == quip::Codebook::RTN3) decode_kernels(KernelImpl::Avx2).matvec(p.codes(), x.data(), 0, cs.m, ref.data());
    else matvec_prepared_reference(p.codes(), px, 0, cs.m, ref.data());
    k.matvec(p.codes(), x.data(), 0, cs.m, y.data());
    k.matvec_prepared(p.codes(), px, 1, cs.m, y2.data());  // a row range not starting at 0
    for (int r = 0; r < cs.m; ++r) {
      double mag = 0;
      for (int c = 0; c < cs.groups * 8; ++c) mag += std::fabs(Q[static_cast<size_t>(r) * cs.groups * 8 + c] * x[c]);
      CHECK_NEAR(y[r], ref[r], 1e-5 * mag + 1e-6);
      if (r >= 1) CHECK(y2[r - 1] == y[r]);
    }
  }
}

namespace {

// A real quantized layer: W~ = RHT(W) / scale quantized by the numeric core's codebook; returns the
// layer and the float64 dense W^ = diag(sv) H_m (scale Q~) H_n^T diag(su) from the quantizer's own
// decoded points (not from qinfer's decoder).
struct RealLayer {
  Planes planes;
  std::vector<double> What;
  std::unique_ptr<QuantizedLinear> layer;
};

RealLayer make_layer(quip::Codebook cb, int m, int n, bool incoherence, std::mt19937& rng, KernelImpl impl) {
  const int n_pad = (n + 7) / 8 * 8, groups = n_pad / 8;
  const double s2 = codebook_info(cb).s2;
  // W~ (already "transformed") ~ Gaussian at RMS rho, padded columns zero.
  std::vector<float> Wt(static_cast<size_t>(m) * n_pad, 0.0f), out(Wt.size());
  std::normal_distribution<float> nd(0.0f, static_cast<float>(codebook_info(cb).default_rho));
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < n; ++c) Wt[static_cast<size_t>(r) * n_pad + c] = nd(rng);
  Planes p(cb, m, groups, rng);
  codebook_quantize(cb, s2, Wt.data(), 8, Wt.size() / 8, out.data(), p.words.data());
  p.split();
  const float scale = 0.037f;
  std::vector<int8_t> su = random_signs(99, 0, n), sv = random_signs(99, 1, m);
  // Dense W^ in float64: columns of scale * out through the inverse transform.
  std::vector<double> What(static_cast<size_t>(m) * n);
  HadamardPlan pn = hadamard_plan(n), pm = hadamard_plan(m);
  std::vector<double> work, col(n_pad), yo(m);
  for (int j = 0; j < n; ++j) {
    std::fill(col.begin(), col.end(), 0.0);
    if (incoherence) {
      col[j] = su[j];
      hadamard_apply(pn, col.data(), true, work);
    } else {
      col[j] = 1.0;
    }
    for (int r = 0; r < m; ++r) {
      double acc = 0;
      for (int c = 0; c < n; ++c) acc += static_cast<double>(out[static_cast<size_t>(r) * n_pad + c]) * col[c];
      yo[r] = acc * scale;
    }
    if (incoherence) {
      hadamard_apply(pm, yo.data(), false, work);
      for (int r = 0; r < m; ++r) yo[r] *= sv[r];
    }
    for (int r = 0; r < m; ++r) What[static_cast<size_t>(r) * n + j] = yo[r];
  }
  QuantizedLinearParams qp;
  qp.m = m;
  qp.n = n;
  qp.codes = p.codes();
  qp.scale = scale;
  qp.incoherence = incoherence;
  if (incoherence) {
    qp.su.assign(su.begin(), su.end());
    qp.sv.assign(sv.begin(), sv.end());
  }
  RealLayer L{p, What, nullptr};
  qp.codes = L.planes.codes();  // the layer reads the planes the returned struct owns
  L.layer = std::make_unique<QuantizedLinear>(qp, impl);
  return L;
}

}  // namespace

TEST(quantized_linear_equals_dense_reconstruction) {
  std::mt19937 rng(3);
  struct Shape { int m, n; };
  // stories260k's shapes (64, 172 = K 172, n not a multiple of 8 -> padding), a power of two, and
  // SmolLM2's K = 36 / 12 factors at reduced size.
  const Shape shapes[] = {{64, 172}, {172, 64}, {32, 64}, {36, 24}, {48, 36}};
  std::vector<KernelImpl> ks{KernelImpl::Scalar};
  if (cpu_features().avx2) ks.push_back(KernelImpl::Avx2);
  if (cpu_features().avx512) ks.push_back(KernelImpl::Avx512);
  if (cpu_features().neon) ks.push_back(KernelImpl::Neon);
  for (auto cb : kAll)
    for (const Shape& s : shapes)
      for (bool inc : {true, false})
        for (KernelImpl impl : ks) {
          RealLayer L = make_layer(cb, s.m, s.n, inc, rng, impl);
          const bool int8 = decode_kernels(impl).matvec_prepared && cb != quip::Codebook::RTN2 &&
                            cb != quip::Codebook::RTN3 && cb != quip::Codebook::RTN4;
          const int tokens = 3;
          std::vector<float> x = gaussian(static_cast<size_t>(tokens) * s.n, rng), y(static_cast<size_t>(tokens) * s.m), y1(s.m);
          L.layer->forward(x.data(), tokens, y.data());
          for (int t = 0; t < tokens; ++t) {
            L.layer->forward(x.data() + t * s.n, 1, y1.data());  // decode path, token by token
            std::vector<double> refs(s.m);
            for (int r = 0; r < s.m; ++r) {
              double ref = 0, mag = 0;
              for (int c = 0; c < s.n; ++c) {
                ref += L.What[static_cast<size_t>(r) * s.n + c] * x[t * s.n + c];
                mag += std::fabs(L.What[static_cast<size_t>(r) * s.n + c] * x[t * s.n + c]);
              }
              refs[r] = ref;
              CHECK_NEAR(y[t * s.m + r], ref, 2e-5 * mag + 1e-6);  // prefill stays float
              if (!int8) CHECK_NEAR(y1[r], ref, 2e-5 * mag + 1e-6);
            }
            if (int8) CHECK(rel_rms(y1, refs) < 0.02);
          }
          // The layer's own float64 reconstruction matches too.
          std::vector<double> W = L.layer->dequantize();
          double err = 0, nrm = 0;
          for (size_t i = 0; i < W.size(); ++i) {
            err = std::max(err, std::fabs(W[i] - L.What[i]));
            nrm = std::max(nrm, std::fabs(L.What[i]));
          }
          CHECK(err <= 1e-5 * nrm);
        }
}

TEST(prefill_panels_equal_the_one_token_path_across_panel_edges) {
  // n = 1100 pads to 1104: three 512-column panels (the last partial), m = 101 rows: three 48-row
  // blocks and a ragged 6-row microkernel tile, 67 tokens: two 64-token passes and an odd pair.
  std::mt19937 rng(13);
  const int m = 101, n = 1100, tokens = 67;
  for (auto cb : {quip::Codebook::E8P, quip::Codebook::RVQ3, quip::Codebook::RVQ4, quip::Codebook::RTN3}) {
    RealLayer L = make_layer(cb, m, n, true, rng, KernelImpl::Auto);
    std::vector<float> x = gaussian(static_cast<size_t>(tokens) * n, rng), y(static_cast<size_t>(tokens) * m), y1(m);
    L.layer->forward(x.data(), tokens, y.data());
    const bool int8 = auto_kernels_use_int8() && cb != quip::Codebook::RTN3;
    for (int t = 0; t < tokens; t += 11) {
      L.layer->forward(x.data() + static_cast<size_t>(t) * n, 1, y1.data());
      std::vector<double> refs(m);
      for (int r = 0; r < m; ++r) {
        double ref = 0, mag = 0;
        for (int c = 0; c < n; ++c) {
          ref += L.What[static_cast<size_t>(r) * n + c] * x[static_cast<size_t>(t) * n + c];
          mag += std::fabs(L.What[static_cast<size_t>(r) * n + c] * x[static_cast<size_t>(t) * n + c]);
        }
        refs[r] = ref;
        CHECK_NEAR(y[static_cast<size_t>(t) * m + r], ref, 2e-5 * mag + 1e-6);
        if (!int8) CHECK_NEAR(y1[r], ref, 2e-5 * mag + 1e-6);
      }
      if (int8) CHECK(rel_rms(y1, refs) < 0.02);
    }
  }
}

TEST(results_do_not_depend_on_thread_count) {
  std::mt19937 rng(21);
  RealLayer L = make_layer(quip::Codebook::RVQ4, 96, 172, true, rng, KernelImpl::Auto);
  std::vector<float> x = gaussian(4 * 172, rng), a(4 * 96), b(4 * 96), c(96), d(96);
  set_threads(1);
  L.layer->forward(x.data(), 4, a.data());
  L.layer->forward(x.data(), 1, c.data());
  set_threads(3);
  L.layer->forward(x.data(), 4, b.data());
  L.layer->forward(x.data(), 1, d.data());
  set_threads(0);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
  CHECK(std::memcmp(c.data(), d.data(), c.size() * 4) == 0);
}

TEST(bad_parameters_are_refused_with_a_reason) {
  std::mt19937 rng(2);
  Planes p(quip::Codebook::E8P, 8, 2, rng);
  QuantizedLinearParams qp;
  qp.m = 8;
  qp.n = 24;  // needs 3 groups, codes have 2
  qp.codes = p.codes();
  qp.incoherence = false;
  bool threw = false;
  try {
    QuantizedLinear l(qp);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("groups") != std::string::npos;
  }
  CHECK(threw);
  qp.n = 16;
  qp.incoherence = true;  // without sign vectors
  threw = false;
  try {
    QuantizedLinear l(qp);
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("su") != std::string::npos;
  }
  CHECK(threw);
}

// ---- int8 prefill GEMM (qinfer/prefill.h) ---------------------------------------------------------

namespace {
std::vector<const PrefillKernels*> prefill_impls() {
  std::vector<const PrefillKernels*> k{&prefill_kernels_scalar()};
  if (cpu_features().avx2) k.push_back(&prefill_kernels_avx2());
  if (cpu_features().avx2 && cpu_features().avxvnni) k.push_back(&prefill_kernels_avx2_vnni());
  if (cpu_features().avx512) k.push_back(&prefill_kernels_avx512());
  return k;
}
}  // namespace

TEST(prefill_prepare_x_rounds_every_token_as_prepare_x_does) {
  // The batch quantizer gives each token exactly the decode path's int8 values and block scales.
  std::mt19937 rng(29);
  const int tokens = 19, cols = 1104;  // 138 groups: 34.5 blocks, the last one half full
  std::vector<float> x = gaussian(static_cast<size_t>(tokens) * cols, rng);
  for (int k = 64; k < 96; ++k) x[cols + k] = 0.0f;  // token 1, block 2: all zero
  PrefillX px;
  prefill_prepare_x(x.data(), tokens, cols, cols, px);
  CHECK(px.tpad == 32 && px.k32 == 1120 && px.blocks == 35);
  int bad = 0;
  for (int t = 0; t < tokens; ++t) {
    PreparedX one;
    prepare_x(x.data() + static_cast<size_t>(t) * cols, cols / 8, one);
    for (int b = 0; b < px.blocks; ++b)
      if (px.d[static_cast<size_t>(b) * px.tpad + t] != one.d[static_cast<size_t>(b / 16) * 16 + b % 16]) ++bad;
    for (int k = 0; k < cols; ++k) {
      const int G = k / 8, j = k % 8, b = G / 4;
      const int want = one.q[static_cast<size_t>(b / 16) * 512 + 64 * j + 4 * (b % 16) + G % 4];
      const int got = static_cast<int>(px.q[((static_cast<size_t>(t / 16) * (px.k32 / 4) + k / 4) * 16 + t % 16) * 4 + k % 4]) - 128;
      if (got != want) ++bad;
    }
  }
  CHECK(bad == 0);
  CHECK(px.d[2 * px.tpad + 1] == 0.0f);
  for (int t = tokens; t < px.tpad; ++t) CHECK(px.d[t] == 0.0f);  // padding tokens
}

TEST(prefill_int8_panels_hold_4q_of_each_stage) {
  // The int8 panel of every stage is exactly 4 Q_stage, and Q1 + Q2 / s2 rebuilds the decoded row;
  // comp is -128 x the block sums; columns past the codes are zero. Every kernel set's decoder
  // (AVX-512: 32 codes per step by word permutes and multishifts, the rest of a row by the SWAR
  // loop). Rows of 77 groups; panels of all 77 (2 x 32 + 13: a partial last block) and of groups
  // [40, 77) (a slice not starting at 0, 37 = 32 + 5).
  std::mt19937 rng(31);
  const int G = 77;
  for (const PrefillKernels* kern : prefill_impls())
    for (auto cb : {quip::Codebook::E8P, quip::Codebook::RVQ3, quip::Codebook::RVQ4})
      for (int g0 : {0, 40}) {
        Planes p(cb, 7, G, rng);
        const QCodes q = p.codes();
        const std::vector<double> Q = p.dense();
        const int stages = cb == quip::Codebook::E8P ? 1 : 2, ng = G - g0, ng4 = (ng + 3) / 4 * 4;
        std::vector<int8_t> w[2];
        std::vector<int32_t> comp[2];
        const size_t ldw = 8 * ng4 + 24, ldc = ng4 / 4 + 1;
        for (int st = 0; st < stages; ++st) {
          w[st].assign(7 * ldw, 99);
          comp[st].assign(7 * ldc, 0);
          prefill_decode_panel(q, st, *kern, 0, 7, g0, ng, w[st].data(), ldw, comp[st].data(), ldc);
        }
        int bad = 0;
        for (int r = 0; r < 7; ++r) {
          for (int k = 0; k < 8 * ng; ++k) {
            double v = w[0][r * ldw + k] / 4.0;
            if (stages == 2) v += w[1][r * ldw + k] / 4.0 * q.residual_inv_scale;
            if (std::fabs(v - Q[static_cast<size_t>(r) * G * 8 + 8 * g0 + k]) > 1e-6) ++bad;
          }
          for (int st = 0; st < stages; ++st) {
            for (int k = 8 * ng; k < 8 * ng4; ++k) CHECK(w[st][r * ldw + k] == 0);
            for (int b = 0; b < ng4 / 4; ++b) {
              int32_t sum = 0;
              for (int k = 0; k < 32; ++k) sum += w[st][r * ldw + 32 * b + k];
              CHECK(comp[st][r * ldc + b] == -128 * sum);
            }
          }
        }
        if (bad) std::fprintf(stderr, "  %s, g0 %d: %d values differ\n", kern->name, g0, bad);
        CHECK(bad == 0);
      }
}

TEST(prefill_int8_kernels_equal_the_scalar_reference_and_stay_within_the_rounding_bound) {
  // m = 53 rows: a 48-row block and a ragged one, a 5-row microkernel tile; 1100 columns (138 groups,
  // 1104 padded to 1120 = 35 blocks): three 512-column panels, the last partial and a partial block;
  // token counts around the 16-token groups and the 2-group pairs.
  std::mt19937 rng(37);
  const int m = 53, groups = 138, cols = groups * 8;
  for (auto cb : {quip::Codebook::E8P, quip::Codebook::RVQ3, quip::Codebook::RVQ4}) {
    Planes p(cb, m, groups, rng);
    const QCodes q = p.codes();
    const std::vector<double> Q = p.dense();
    for (int tokens : {1, 5, 16, 17, 37, 64}) {
      std::vector<float> x = gaussian(static_cast<size_t>(tokens) * cols, rng);
      for (int k = 0; k < 32; ++k) x[k] = 0.0f;  // an all-zero block (d = 0)
      PrefillX px;
      prefill_prepare_x(x.data(), tokens, cols, cols, px);
      if (cb != quip::Codebook::E8P) {
        px.d2.resize(px.d.size());
        for (size_t i = 0; i < px.d.size(); ++i) px.d2[i] = px.d[i] * q.residual_inv_scale;
      }
      std::vector<float> ref(static_cast<size_t>(tokens) * m);
      prefill_int8_matmul(q, px, prefill_kernels_scalar(), ref.data(), m);
      // The reference against the exact product: |error| <= sum_k |Q_rk| d_b(k) / 2 (+ float rounding).
      for (int t = 0; t < tokens; ++t)
        for (int r = 0; r < m; ++r) {
          double exact = 0, bound = 0, mag = 0;
          for (int k = 0; k < cols; ++k) {
            const double qv = Q[static_cast<size_t>(r) * cols + k];
            exact += qv * x[static_cast<size_t>(t) * cols + k];
            mag += std::fabs(qv * x[static_cast<size_t>(t) * cols + k]);
            bound += std::fabs(qv) * px.d[static_cast<size_t>(k / 32) * px.tpad + t] / 2;
          }
          CHECK_NEAR(ref[static_cast<size_t>(t) * m + r], exact, bound * 1.0001 + 1e-5 * mag + 1e-6);
        }
      for (const PrefillKernels* k : prefill_impls()) {
        std::vector<float> y(ref.size(), -1.0f);
        prefill_int8_matmul(q, px, *k, y.data(), m);
        int bad = 0;
        for (size_t i = 0; i < y.size(); ++i)
          if (!(std::fabs(y[i] - ref[i]) <= 1e-6f * (1.0f + std::fabs(ref[i])))) ++bad;
        if (bad) std::fprintf(stderr, "  %s, %d tokens: %d of %zu differ\n", k->name, tokens, bad, y.size());
        CHECK(bad == 0);
      }
    }
  }
}

TEST(fast_prefill_scope_switches_quantized_layers_to_the_int8_gemm) {
  // Inside a FastPrefillScope a batched forward runs the int8 GEMM (within the int8 noise of the
  // float path, and not equal to it); outside it stays the float path. The scalar RTN codes stay float.
  std::mt19937 rng(41);
  const int m = 101, n = 1100, tokens = 37;
  for (auto cb : {quip::Codebook::E8P, quip::Codebook::RVQ3, quip::Codebook::RVQ4, quip::Codebook::RTN3}) {
    RealLayer L = make_layer(cb, m, n, true, rng, KernelImpl::Auto);
    std::vector<float> x = gaussian(static_cast<size_t>(tokens) * n, rng), yf(static_cast<size_t>(tokens) * m), yi(yf.size());
    L.layer->forward(x.data(), tokens, yf.data());
    {
      runtime::FastPrefillScope scope(true);
      L.layer->forward(x.data(), tokens, yi.data());
    }
    std::vector<double> ref(yf.begin(), yf.end());
    CHECK(!runtime::fast_prefill_enabled());  // the scope has closed
    // The int8 GEMM runs where a SIMD kernel exists (AVX2 or AVX-512), unless the environment forbids it.
    const char* precise = std::getenv("QUIP_PRECISE_PREFILL");
    const bool int8 = cb != quip::Codebook::RTN3 && (cpu_features().avx2 || cpu_features().avx512) &&
                      !(precise && precise[0] != '\0' && std::strcmp(precise, "0") != 0);
    if (int8) {
      CHECK(rel_rms(yi, ref) < 0.02);
      CHECK(rel_rms(yi, ref) > 0.0);
    } else {
      CHECK(std::memcmp(yi.data(), yf.data(), yf.size() * 4) == 0);
    }
    std::vector<float> again(yf.size());
    L.layer->forward(x.data(), tokens, again.data());
    CHECK(std::memcmp(again.data(), yf.data(), yf.size() * 4) == 0);
  }
}

QUIP_TEST_MAIN()
