#include "quip/e8p.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "common/cpu.h"

namespace quip {

#ifdef QUIP_X86
uint16_t e8p_nearest_avx2(const E8PTables& T, const float x[8]);  // e8p_avx2.cc
void e8p_quantize_batch_avx2(const E8PTables& T, const float* x, size_t stride, size_t count, float* out,
                             uint32_t* codes);
uint8_t e8_shell_nearest_avx2(const E8ShellSearch& S, const float x[8]);
float brute_force_min_score_avx2(const float* points_t, const float* norms2, size_t count, const float x[8]);
#endif
#ifdef QUIP_ARM64
uint16_t e8p_nearest_neon(const E8PTables& T, const float x[8]);  // e8p_neon.cc
void e8p_quantize_batch_neon(const E8PTables& T, const float* x, size_t stride, size_t count, float* out,
                             uint32_t* codes);
uint8_t e8_shell_nearest_neon(const E8ShellSearch& S, const float x[8]);
float brute_force_min_score_neon(const float* points_t, const float* norms2, size_t count, const float x[8]);
#endif

namespace {

// Appendix A of the spec: the 29 norm^2-12 patterns (2|a|), in the reference order.
const uint8_t kPadding[29][8] = {
    {3, 1, 1, 1, 3, 3, 3, 3}, {1, 3, 1, 1, 3, 3, 3, 3}, {1, 1, 3, 1, 3, 3, 3, 3}, {1, 1, 1, 3, 3, 3, 3, 3},
    {3, 3, 3, 1, 3, 3, 1, 1}, {3, 3, 3, 1, 3, 1, 3, 1}, {3, 3, 3, 1, 1, 3, 3, 1}, {3, 3, 3, 1, 3, 1, 1, 3},
    {3, 3, 3, 1, 1, 3, 1, 3}, {3, 3, 3, 1, 1, 1, 3, 3}, {3, 3, 1, 3, 3, 3, 1, 1}, {3, 3, 1, 3, 3, 1, 3, 1},
    {3, 3, 1, 3, 1, 3, 3, 1}, {3, 3, 1, 3, 3, 1, 1, 3}, {3, 3, 1, 3, 1, 3, 1, 3}, {3, 3, 1, 3, 1, 1, 3, 3},
    {3, 1, 3, 3, 3, 3, 1, 1}, {3, 1, 3, 3, 3, 1, 3, 1}, {3, 1, 3, 3, 1, 3, 3, 1}, {3, 1, 3, 3, 3, 1, 1, 3},
    {3, 1, 3, 3, 1, 3, 1, 3}, {1, 3, 3, 3, 1, 1, 3, 3}, {1, 3, 3, 3, 3, 3, 1, 1}, {1, 3, 3, 3, 3, 1, 3, 1},
    {1, 3, 3, 3, 1, 3, 3, 1}, {1, 3, 3, 3, 3, 1, 1, 3}, {1, 3, 3, 3, 1, 3, 1, 3}, {1, 1, 3, 3, 1, 3, 3, 3},
    {3, 3, 1, 1, 3, 3, 3, 1}};

E8PTables build_e8p() {
  // Every |x|, x in D8^ with ||x||^2 <= 10: all vectors of odd positive "twice-values" c with
  // sum c^2 <= 40 (any magnitude vector admits a sign pattern with even sum, see e8p.h). Enumerated in
  // lexicographic order directly: odometer over c_0 (most significant) .. c_7.
  std::vector<std::vector<int>> pats;
  std::vector<int> c(8, 1);
  for (;;) {
    int s = 0;
    for (int v : c) s += v * v;
    if (s <= 40) pats.push_back(c);
    int i = 7;
    while (i >= 0) {
      c[i] += 2;
      if (c[i] <= 5) break;  // 7^2 + 7 > 40
      c[i] = 1;
      --i;
    }
    if (i < 0) break;
  }
  if (pats.size() != 227) throw std::logic_error("E8P: expected 227 low-norm patterns");
  for (const auto& row : kPadding) pats.emplace_back(row, row + 8);
  E8PTables T{};
  for (int i = 0; i < 256; ++i) {
    int sum2 = 0, n2 = 0;
    for (int j = 0; j < 8; ++j) {
      T.source[i][j] = pats[i][j] * 0.5f;
      T.source_t[j][i] = T.source[i][j];
      sum2 += pats[i][j];
      n2 += pats[i][j] * pats[i][j];
    }
    T.norm2[i] = n2 * 0.25f;
    T.parity[i] = static_cast<uint8_t>((sum2 / 2) & 1);
    T.parity_mask[i] = T.parity[i] ? -1 : 0;
  }
  return T;
}

struct ShellTable {
  float v[256][8];
};
ShellTable build_shell() {
  ShellTable s{};
  int k = 1;
  for (int i = 0; i < 8; ++i)
    for (int j = i + 1; j < 8; ++j)
      for (int sg = 0; sg < 4; ++sg, ++k) {
        s.v[k][i] = (sg & 2) ? -1.f : 1.f;
        s.v[k][j] = (sg & 1) ? -1.f : 1.f;
      }
  for (int m = 0; m < 256; ++m) {
    if (__builtin_popcount(m) & 1) continue;
    for (int i = 0; i < 8; ++i) s.v[k][i] = ((m >> i) & 1) ? -0.5f : 0.5f;
    ++k;
  }
  for (int i = 0; i < 8; ++i, ++k) s.v[k][i] = 2.f;
  for (int i = 0; i < 7; ++i, ++k) s.v[k][i] = -2.f;
  if (k != 256) throw std::logic_error("E8 shell table size");
  return s;
}

const CodebookInfo kInfo[] = {
    {"e8p", 2, 1.03, 0.0, 1},  {"rvq3", 3, 0.98, 2.04, 2}, {"rvq4", 4, 1.03, 3.45, 2},
    {"rtn2", 2, 1.00, 0.0, 1}, {"rtn3", 3, 1.71, 0.0, 1},  {"rtn4", 4, 2.98, 0.0, 1},
};

}  // namespace

const E8PTables& e8p_tables() {
  static const E8PTables T = build_e8p();
  return T;
}

const float (&e8_shell_table())[256][8] {
  static const ShellTable s = build_shell();
  return s.v;
}

void e8p_decode(uint16_t code, float out[8]) {
  const E8PTables& T = e8p_tables();
  const float* a = T.source[code & 0xFF];
  int neg = 0;
  for (int i = 0; i < 7; ++i) neg += (code >> (8 + i)) & 1;
  int neg7 = (neg ^ T.parity[code & 0xFF]) & 1;
  float shift = (code >> 15) ? -0.25f : 0.25f;
  for (int i = 0; i < 7; ++i) out[i] = ((code >> (8 + i)) & 1 ? -a[i] : a[i]) + shift;
  out[7] = (neg7 ? -a[7] : a[7]) + shift;
}

uint16_t e8p_code_with_signs(const E8PTables& T, const float x[8], int idx, int shift) {
  const float t = shift ? -0.25f : 0.25f;
  const float* a = T.source[idx];
  int neg[8], negs = 0, cheapest = 0;
  float mn = INFINITY;
  for (int i = 0; i < 8; ++i) {
    float y = x[i] - t;
    neg[i] = y < 0;
    negs += neg[i];
    float p = a[i] * std::fabs(y);
    if (p < mn) mn = p, cheapest = i;
  }
  if ((negs ^ T.parity[idx]) & 1) neg[cheapest] ^= 1;
  uint16_t code = static_cast<uint16_t>(idx | (shift << 15));
  for (int i = 0; i < 7; ++i) code |= static_cast<uint16_t>(neg[i] << (8 + i));
  return code;
}

uint16_t e8p_nearest_scalar(const float x[8]) {
  const E8PTables& T = e8p_tables();
  float best = INFINITY;
  int best_idx = 0, best_shift = 0;
  for (int sh = 0; sh < 2; ++sh) {
    float t = sh ? -0.25f : 0.25f, ay[8], y2 = 0;
    int negs = 0;
    for (int i = 0; i < 8; ++i) {
      float y = x[i] - t;
      ay[i] = std::fabs(y);
      negs += y < 0;
      y2 += y * y;
    }
    for (int a = 0; a < 256; ++a) {
      float dot = 0, mn = INFINITY;
      for (int i = 0; i < 8; ++i) {
        float p = T.source[a][i] * ay[i];
        dot += p;
        mn = std::min(mn, p);
      }
      // A wrong sign parity costs flipping the cheapest coordinate: +4 a_i |y_i|.
      float err = y2 + T.norm2[a] - 2 * dot + (((negs ^ T.parity[a]) & 1) ? 4 * mn : 0.f);
      if (err < best) best = err, best_idx = a, best_shift = sh;
    }
  }
  return e8p_code_with_signs(T, x, best_idx, best_shift);
}

uint16_t e8p_nearest(const float x[8]) {
#ifdef QUIP_X86
  if (cpu_features().avx2) return e8p_nearest_avx2(e8p_tables(), x);
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon) return e8p_nearest_neon(e8p_tables(), x);
#endif
  return e8p_nearest_scalar(x);
}

const E8ShellSearch& e8_shell_search() {
  static const E8ShellSearch S = [] {
    E8ShellSearch s{};
    const auto& table = e8_shell_table();
    for (int k = 0; k < 256; ++k) {
      for (int i = 0; i < 8; ++i) s.t[i][k] = table[k][i], s.norm2[k] += table[k][i] * table[k][i];
    }
    return s;
  }();
  return S;
}

uint8_t e8_shell_nearest_scalar(const float x[8]) {
  const auto& tab = e8_shell_table();
  float best = INFINITY;
  int bi = 0;
  for (int k = 0; k < 256; ++k) {
    float d = 0;
    for (int i = 0; i < 8; ++i) {
      float e = x[i] - tab[k][i];
      d += e * e;
    }
    if (d < best) best = d, bi = k;
  }
  return static_cast<uint8_t>(bi);
}

uint8_t e8_shell_nearest(const float x[8]) {
#ifdef QUIP_X86
  if (cpu_features().avx2) return e8_shell_nearest_avx2(e8_shell_search(), x);
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon) return e8_shell_nearest_neon(e8_shell_search(), x);
#endif
  return e8_shell_nearest_scalar(x);
}

float brute_force_min_score(const float* points_t, const float* norms2, size_t count, const float x[8]) {
#ifdef QUIP_X86
  if (cpu_features().avx2) return brute_force_min_score_avx2(points_t, norms2, count, x);
#endif
#ifdef QUIP_ARM64
  if (cpu_features().neon) return brute_force_min_score_neon(points_t, norms2, count, x);
#endif
  float best = INFINITY;
  for (size_t c = 0; c < count; ++c) {
    float s = norms2[c];
    for (int i = 0; i < 8; ++i) s -= 2 * x[i] * points_t[i * count + c];
    best = std::min(best, s);
  }
  return best;
}

const CodebookInfo& codebook_info(Codebook cb) { return kInfo[static_cast<int>(cb)]; }

bool parse_codebook(const std::string& name, Codebook* out) {
  for (int i = 0; i < 6; ++i)
    if (name == kInfo[i].name) {
      *out = static_cast<Codebook>(i);
      return true;
    }
  return false;
}

static int rtn_bits(Codebook cb) { return cb == Codebook::RTN2 ? 2 : cb == Codebook::RTN3 ? 3 : 4; }

void codebook_decode(Codebook cb, double s2, uint32_t code, float out[8]) {
  switch (cb) {
    case Codebook::E8P: e8p_decode(static_cast<uint16_t>(code), out); return;
    case Codebook::RVQ3: case Codebook::RVQ4: {
      float r[8];
      e8p_decode(static_cast<uint16_t>(code), out);
      if (cb == Codebook::RVQ4) e8p_decode(static_cast<uint16_t>(code >> 16), r);
      else for (int i = 0; i < 8; ++i) r[i] = e8_shell_table()[(code >> 16) & 0xFF][i];
      const float inv = static_cast<float>(1.0 / s2);
      for (int i = 0; i < 8; ++i) out[i] += r[i] * inv;
      return;
    }
    default: {
      const int b = rtn_bits(cb);
      const float c = ((1 << b) - 1) * 0.5f;
      for (int i = 0; i < 8; ++i) out[i] = static_cast<float>((code >> (b * i)) & ((1u << b) - 1)) - c;
    }
  }
}

void codebook_quantize(Codebook cb, double s2, const float* x, size_t stride, size_t count, float* out,
                       uint32_t* codes, bool use_simd) {
  auto e8p = use_simd ? e8p_nearest : e8p_nearest_scalar;
  auto shell = use_simd ? e8_shell_nearest : e8_shell_nearest_scalar;
  const float s2f = static_cast<float>(s2), inv = static_cast<float>(1.0 / (s2 == 0 ? 1 : s2));
#ifdef QUIP_X86
  if (cb == Codebook::E8P && use_simd && cpu_features().avx2)
    return e8p_quantize_batch_avx2(e8p_tables(), x, stride, count, out, codes);
#endif
#ifdef QUIP_ARM64
  if (cb == Codebook::E8P && use_simd && cpu_features().neon)
    return e8p_quantize_batch_neon(e8p_tables(), x, stride, count, out, codes);
#endif
  for (size_t g = 0; g < count; ++g) {
    const float* xg = x + g * stride;
    float* og = out + g * stride;
    uint32_t code;
    switch (cb) {
      case Codebook::E8P:
        code = e8p(xg);
        e8p_decode(static_cast<uint16_t>(code), og);
        break;
      case Codebook::RVQ3: case Codebook::RVQ4: {
        uint16_t c1 = e8p(xg);
        float q1[8], r[8], q2[8];
        e8p_decode(c1, q1);
        for (int i = 0; i < 8; ++i) r[i] = (xg[i] - q1[i]) * s2f;
        uint32_t c2;
        if (cb == Codebook::RVQ4) {
          c2 = e8p(r);
          e8p_decode(static_cast<uint16_t>(c2), q2);
        } else {
          c2 = shell(r);
          for (int i = 0; i < 8; ++i) q2[i] = e8_shell_table()[c2][i];
        }
        for (int i = 0; i < 8; ++i) og[i] = q1[i] + q2[i] * inv;
        code = c1 | (c2 << 16);
        break;
      }
      default: {
        const int b = rtn_bits(cb), top = (1 << b) - 1;
        const float c = top * 0.5f;
        code = 0;
        for (int i = 0; i < 8; ++i) {
          int l = static_cast<int>(std::floor(xg[i] + c + 0.5f));
          l = std::min(top, std::max(0, l));
          code |= static_cast<uint32_t>(l) << (b * i);
          og[i] = l - c;
        }
      }
    }
    codes[g] = code;
  }
}

}  // namespace quip
