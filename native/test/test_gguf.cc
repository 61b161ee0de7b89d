// GGUF dequantization against float64 references written from the block layouts:
//  1. blocks packed here from chosen quants, scales and mins (extremes included) must decode to the
//     values those parameters define, computed in double;
//  2. random blocks must decode like a per-value float64 decoder that reads each value's bits by
//     index (a different formulation from the library's loops);
//  3. the SIMD float16 conversion of this build (AVX2/F16C on x86-64, NEON on arm64) must match the
//     scalar one bit for bit.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/cpu.h"
#include "common/half.h"
#include "common/thread_pool.h"
#include "gguf/dequant.h"
#include "harness.h"

using quip::gguf::BlockFormat;
using quip::gguf::find_block_format;

namespace {

// IEEE half -> double, from the definition (sign, 5-bit exponent with bias 15, 10-bit fraction).
double half_value(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  double v;
  if (exp == 0) v = std::ldexp(static_cast<double>(man), -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = std::ldexp(1.0 + man / 1024.0, exp - 15);
  return sign ? -v : v;
}
double bf16_value(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void wr16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
int bit(const uint8_t* bytes, int index) { return (bytes[index / 8] >> (index % 8)) & 1; }

// 6-bit scale s and min of K-quant sub-block j (0..7) from the 12-byte field, by bit position:
// j < 4: scale = bits 0-5 of byte j, min = bits 0-5 of byte j+4;
// j >= 4: scale = low nibble of byte j+4 plus bits 6-7 of byte j-4 as bits 4-5,
//         min = high nibble of byte j+4 plus bits 6-7 of byte j as bits 4-5.
void k_fields(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] % 64;
    *min = s[j + 4] % 64;
  } else {
    *scale = s[j + 4] % 16 + 16 * (s[j - 4] / 64);
    *min = s[j + 4] / 16 + 16 * (s[j] / 64);
  }
}

// Float64 decoder of value i of one block, indexed directly.
double reference_value(const std::string& type, const uint8_t* b, int i) {
  if (type == "F32") {
    float f;
    std::memcpy(&f, b + 4 * i, 4);
    return f;
  }
  if (type == "F16") return half_value(rd16(b + 2 * i));
  if (type == "BF16") return bf16_value(rd16(b + 2 * i));
  // 32-value formats: value i is nibble (i / 16) of byte (i % 16) of qs.
  auto nibble32 = [](const uint8_t* qs, int i) { return i < 16 ? qs[i] % 16 : qs[i - 16] / 16; };
  if (type == "Q4_0") return half_value(rd16(b)) * (nibble32(b + 2, i) - 8);
  if (type == "Q4_1") return half_value(rd16(b)) * nibble32(b + 4, i) + half_value(rd16(b + 2));
  if (type == "Q5_0") return half_value(rd16(b)) * (nibble32(b + 6, i) + 16 * bit(b + 2, i) - 16);
  if (type == "Q5_1") return half_value(rd16(b)) * (nibble32(b + 8, i) + 16 * bit(b + 4, i)) + half_value(rd16(b + 2));
  if (type == "Q8_0") return half_value(rd16(b)) * static_cast<int8_t>(b[2 + i]);
  if (type == "Q4_K" || type == "Q5_K") {
    // Sub-block j = i / 32; its quants sit in byte 32 * (j / 2) + i % 32 of qs, low nibble for even j.
    bool five = type == "Q5_K";
    const uint8_t* qs = b + (five ? 48 : 16);
    int j = i / 32, sc, mn;
    k_fields(b + 4, j, &sc, &mn);
    int byte = qs[32 * (j / 2) + i % 32];
    int q = j % 2 == 0 ? byte % 16 : byte / 16;
    if (five) q += 16 * bit(b + 16 + i % 32, j);  // bit j of qh[i % 32]
    return half_value(rd16(b)) * sc * q - half_value(rd16(b + 2)) * mn;
  }
  if (type == "Q6_K") {
    // Half h = i / 128, r = i % 128; quarter t = r / 32 picks the nibble (t >= 2: high) of ql byte
    // 64 h + r % 64 and the bit pair t of qh byte 32 h + r % 32.
    int h = i / 128, r = i % 128, t = r / 32;
    int lowbyte = b[64 * h + r % 64];
    int low = t >= 2 ? lowbyte / 16 : lowbyte % 16;
    int high = (b[128 + 32 * h + r % 32] >> (2 * t)) % 4;
    int scale = static_cast<int8_t>(b[192 + i / 16]);
    return half_value(rd16(b + 208)) * scale * (low + 16 * high - 32);
  }
  throw std::runtime_error("no reference for " + type);
}

// Largest term a block's arithmetic meets before any cancellation (scale * quant, minimum), which
// bounds its float32 rounding error.
double term_magnitude(const std::string& type, const uint8_t* b) {
  if (type == "Q6_K") return std::fabs(half_value(rd16(b + 208))) * 128 * 32;
  double d = std::fabs(half_value(rd16(b)));
  if (type == "Q4_K" || type == "Q5_K") return d * 63 * 31 + std::fabs(half_value(rd16(b + 2))) * 63;
  if (type == "Q4_1" || type == "Q5_1") return d * 31 + std::fabs(half_value(rd16(b + 2)));
  return d * 128;
}

const char* kTypes[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};

// Random finite half (any exponent except 31).
uint16_t random_finite_half(std::mt19937& rng) {
  for (;;) {
    uint16_t h = static_cast<uint16_t>(rng());
    if (((h >> 10) & 31) != 31) return h;
  }
}

// Random bytes for `nblocks` blocks, with every float16 scale field made finite (so the reference
// and the library both see ordinary numbers) and plain float formats kept finite.
std::vector<uint8_t> random_blocks(const BlockFormat& f, size_t nblocks, std::mt19937& rng) {
  std::vector<uint8_t> data(nblocks * f.block_bytes);
  for (auto& x : data) x = static_cast<uint8_t>(rng());
  std::string t = f.name;
  for (size_t k = 0; k < nblocks; ++k) {
    uint8_t* b = data.data() + k * f.block_bytes;
    if (t == "F32") {
      float v = std::ldexp(static_cast<float>(rng() % 2000000) / 1e6f - 1.0f, static_cast<int>(rng() % 60) - 30);
      std::memcpy(b, &v, 4);
    } else if (t == "F16") {
      wr16(b, random_finite_half(rng));
    } else if (t == "BF16") {
      if (((b[1] & 0x7f) == 0x7f) && (b[0] & 0x80)) b[1] &= 0xbf;  // exponent all ones -> finite
    } else if (t == "Q6_K") {
      wr16(b + 208, random_finite_half(rng));
    } else {
      wr16(b, random_finite_half(rng));
      if (t == "Q4_1" || t == "Q5_1" || t == "Q4_K" || t == "Q5_K") wr16(b + 2, random_finite_half(rng));
    }
  }
  return data;
}

bool close_to(double got, double want, double magnitude) {
  // float32 arithmetic of a few operations: a few units of float32 rounding of the largest term,
  // plus an absolute floor below the float32 normal range.
  return std::fabs(got - want) <= 4 * 1.2e-7 * magnitude + 1e-44;
}

}  // namespace

TEST(every_type_matches_the_float64_decoder_on_random_blocks) {
  std::mt19937 rng(1234);
  for (const char* type : kTypes) {
    const BlockFormat* f = find_block_format(type);
    CHECK(f != nullptr);
    if (!f) continue;
    size_t nblocks = f->block_values == 1 ? 4096 : 300;
    auto data = random_blocks(*f, nblocks, rng);
    size_t numel = nblocks * f->block_values;
    std::vector<float> out(numel);
    size_t bad = quip::gguf::dequantize_to_f32(*f, data.data(), numel, out.data());
    CHECK(bad == 0);
    int wrong = 0;
    for (size_t k = 0; k < nblocks; ++k) {
      const uint8_t* b = data.data() + k * f->block_bytes;
      double mag = term_magnitude(type, b);
      for (size_t i = 0; i < f->block_values; ++i) {
        double want = reference_value(type, b, static_cast<int>(i));
        double got = out[k * f->block_values + i];
        if (!close_to(got, want, f->block_values == 1 ? std::fabs(want) : mag) && wrong++ < 3)
          std::fprintf(stderr, "  %s block %zu value %zu: got %.9g want %.9g\n", type, k, i, got, want);
      }
    }
    CHECK(wrong == 0);
  }
}

// ---- blocks packed from chosen parameters ------------------------------------------------------
namespace {

struct Chosen {
  uint16_t d = 0, m = 0;          // float16 bits of the block scale and minimum (or dmin)
  std::vector<int> q;             // unsigned quants as stored (before any offset)
  std::vector<int> sc, mn;        // K-quant sub-block scales/mins (6-bit) or Q6_K int8 scales
};

void set_nibble32(uint8_t* qs, int i, int q) {
  if (i < 16) qs[i] = static_cast<uint8_t>((qs[i] & 0xf0) | q);
  else qs[i - 16] = static_cast<uint8_t>((qs[i - 16] & 0x0f) | (q << 4));
}
void set_bit(uint8_t* bytes, int index, int v) {
  if (v) bytes[index / 8] |= static_cast<uint8_t>(1 << (index % 8));
}
void pack_k_fields(uint8_t* s, const std::vector<int>& sc, const std::vector<int>& mn) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] |= static_cast<uint8_t>(sc[j] & 63);
      s[j + 4] |= static_cast<uint8_t>(mn[j] & 63);
    } else {
      s[j + 4] |= static_cast<uint8_t>((sc[j] & 15) | ((mn[j] & 15) << 4));
      s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
    }
  }
}

// Packs one block of `type` and returns the values its parameters define (computed in double).
std::vector<uint8_t> pack(const std::string& type, const Chosen& c, std::vector<double>* want) {
  const BlockFormat* f = find_block_format(type);
  std::vector<uint8_t> b(f->block_bytes, 0);
  double d = half_value(c.d), m = half_value(c.m);
  want->assign(f->block_values, 0);
  if (type == "Q4_0" || type == "Q4_1" || type == "Q5_0" || type == "Q5_1" || type == "Q8_0") {
    wr16(b.data(), c.d);
    bool has_min = type == "Q4_1" || type == "Q5_1";
    if (has_min) wr16(b.data() + 2, c.m);
    int head = type == "Q8_0" ? 2 : type == "Q4_0" ? 2 : type == "Q4_1" ? 4 : type == "Q5_0" ? 6 : 8;
    uint8_t* qh = b.data() + (type == "Q5_0" ? 2 : 4);
    for (int i = 0; i < 32; ++i) {
      int q = c.q[i];
      if (type == "Q8_0") {
        b[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(q));
        (*want)[i] = d * q;
        continue;
      }
      set_nibble32(b.data() + head, i, q & 15);
      if (type == "Q5_0" || type == "Q5_1") set_bit(qh, i, q >> 4);
      int offset = type == "Q4_0" ? 8 : type == "Q5_0" ? 16 : 0;
      (*want)[i] = d * (q - offset) + (has_min ? m : 0);
    }
  } else if (type == "Q4_K" || type == "Q5_K") {
    bool five = type == "Q5_K";
    wr16(b.data(), c.d);
    wr16(b.data() + 2, c.m);
    pack_k_fields(b.data() + 4, c.sc, c.mn);
    uint8_t* qh = b.data() + 16;
    uint8_t* qs = b.data() + (five ? 48 : 16);
    for (int i = 0; i < 256; ++i) {
      int j = i / 32, q = c.q[i];
      uint8_t& byte = qs[32 * (j / 2) + i % 32];
      byte |= static_cast<uint8_t>(j % 2 == 0 ? (q & 15) : (q & 15) << 4);
      if (five) set_bit(qh + i % 32, j, q >> 4);
      (*want)[i] = d * c.sc[j] * q - m * c.mn[j];
    }
  } else if (type == "Q6_K") {
    wr16(b.data() + 208, c.d);
    for (int s = 0; s < 16; ++s) b[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(c.sc[s]));
    for (int i = 0; i < 256; ++i) {
      int h = i / 128, r = i % 128, t = r / 32, q = c.q[i];
      uint8_t& low = b[64 * h + r % 64];
      low |= static_cast<uint8_t>(t >= 2 ? (q & 15) << 4 : (q & 15));
      b[128 + 32 * h + r % 32] |= static_cast<uint8_t>((q >> 4) << (2 * t));
      (*want)[i] = d * c.sc[i / 16] * (q - 32);
    }
  }
  return b;
}

int max_quant(const std::string& type) {
  if (type == "Q8_0") return 127;
  if (type == "Q5_0" || type == "Q5_1" || type == "Q5_K") return 31;
  if (type == "Q6_K") return 63;
  return 15;
}

}  // namespace

TEST(packed_blocks_decode_to_their_parameters_including_extremes) {
  std::mt19937 rng(99);
  // Extreme float16 scales: largest normal, smallest subnormal, smallest normal, negative, zero.
  const uint16_t scales[] = {0x7bff, 0x0001, 0x0400, 0xfbff, 0x0000, 0x3c00, 0xb555};
  for (const char* type : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"}) {
    const BlockFormat* f = find_block_format(type);
    int qmax = max_quant(type);
    int wrong = 0;
    for (uint16_t d : scales) {
      for (uint16_t m : scales) {
        for (int pattern = 0; pattern < 4; ++pattern) {
          Chosen c;
          c.d = d;
          c.m = m;
          for (size_t i = 0; i < f->block_values; ++i) {
            int lo = std::string(type) == "Q8_0" ? -128 : 0;
            // all lowest, all highest, alternating extremes, random
            int q = pattern == 0 ? lo : pattern == 1 ? qmax : pattern == 2 ? (i % 2 ? qmax : lo)
                                                                           : lo + static_cast<int>(rng() % (qmax - lo + 1));
            c.q.push_back(q);
          }
          bool q6 = std::string(type) == "Q6_K";
          for (int s = 0; s < (q6 ? 16 : 8); ++s) {
            int extreme = pattern % 2 == 0 ? 63 : 0;
            c.sc.push_back(q6 ? (pattern == 0 ? -128 : pattern == 1 ? 127 : static_cast<int>(rng() % 256) - 128)
                              : (pattern >= 2 ? static_cast<int>(rng() % 64) : extreme));
            c.mn.push_back(pattern >= 2 ? static_cast<int>(rng() % 64) : 63 - extreme);
          }
          std::vector<double> want;
          auto block = pack(type, c, &want);
          std::vector<float> got(f->block_values);
          quip::gguf::dequantize_to_f32(*f, block.data(), f->block_values, got.data());
          double mag = term_magnitude(type, block.data());
          for (size_t i = 0; i < want.size(); ++i)
            if (!close_to(got[i], want[i], mag) && wrong++ < 3)
              std::fprintf(stderr, "  %s d=%04x m=%04x pattern %d value %zu: got %.9g want %.9g\n", type, d, m, pattern, i,
                           static_cast<double>(got[i]), want[i]);
        }
      }
    }
    CHECK(wrong == 0);
  }
}

TEST(float16_output_equals_rounded_float32_output) {
  std::mt19937 rng(7);
  quip::set_threads(2);
  for (const char* type : kTypes) {
    const BlockFormat* f = find_block_format(type);
    size_t nblocks = f->block_values == 1 ? 70000 : 70000 / f->block_values + 3;
    auto data = random_blocks(*f, nblocks, rng);
    size_t numel = nblocks * f->block_values;
    std::vector<float> out32(numel);
    std::vector<uint16_t> out16(numel);
    size_t bad32 = quip::gguf::dequantize_to_f32(*f, data.data(), numel, out32.data());
    size_t bad16 = quip::gguf::dequantize_to_f16(*f, data.data(), numel, out16.data());
    size_t mismatches = 0, overflow = 0;
    for (size_t i = 0; i < numel; ++i) {
      mismatches += out16[i] != quip::f32_to_f16(out32[i]);
      overflow += !(std::fabs(out32[i]) < 65520.0f);
    }
    CHECK(mismatches == 0);
    CHECK(bad32 == 0);
    CHECK(bad16 == overflow);
  }
}

TEST(float16_overflow_is_counted) {
  const BlockFormat* f = find_block_format("Q8_0");
  Chosen c;
  c.d = 0x7bff;  // 65504
  for (int i = 0; i < 32; ++i) c.q.push_back(i < 3 ? 127 : 0);
  std::vector<double> want;
  auto block = pack("Q8_0", c, &want);
  std::vector<uint16_t> h(32);
  std::vector<float> x(32);
  CHECK(quip::gguf::dequantize_to_f16(*f, block.data(), 32, h.data()) == 3);
  CHECK(quip::gguf::dequantize_to_f32(*f, block.data(), 32, x.data()) == 0);
  CHECK(h[0] == 0x7c00);
}

TEST(simd_float16_conversion_matches_scalar) {
  const quip::CpuFeatures& cpu = quip::cpu_features();
  if (!cpu.avx2 && !cpu.neon) {
    std::printf("     (no SIMD path on this build/CPU: fast path not exercised)\n");
    return;
  }
  std::printf("     (%s fast path)\n", cpu.simd());
  std::mt19937 rng(5);
  std::vector<float> x;
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = static_cast<uint32_t>(rng());
    float v;
    std::memcpy(&v, &u, 4);
    if (std::isnan(v)) continue;
    // Bring most values near the float16 range so subnormals, ties and overflow all appear.
    if (i % 2) v = std::ldexp(std::fmod(v, 2.0f), static_cast<int>(rng() % 50) - 30);
    x.push_back(v);
  }
  for (float v : {65504.f, 65519.99f, 65520.f, -65520.f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 0.f, -0.f, INFINITY}) x.push_back(v);
  std::vector<uint16_t> a(x.size()), b(x.size());
  quip::gguf::f32_to_f16_run_scalar(x.data(), x.size(), a.data());
  // The kernel itself, then the dispatching entry point (which must have picked it).
#ifdef QUIP_X86
  quip::gguf::f32_to_f16_run_avx2(x.data(), x.size(), b.data());
#else
  quip::gguf::f32_to_f16_run_neon(x.data(), x.size(), b.data());
#endif
  size_t diff = 0;
  for (size_t i = 0; i < x.size(); ++i) diff += a[i] != b[i];
  CHECK(diff == 0);
  std::vector<uint16_t> c(x.size());
  quip::gguf::f32_to_f16_run(x.data(), x.size(), c.data());
  CHECK(c == b);
}

TEST(threads_do_not_change_results) {
  std::mt19937 rng(11);
  const BlockFormat* f = find_block_format("Q4_K");
  auto data = random_blocks(*f, 1000, rng);
  std::vector<float> one(256000), two(256000);
  quip::set_threads(1);
  quip::gguf::dequantize_to_f32(*f, data.data(), one.size(), one.data());
  quip::set_threads(2);
  quip::gguf::dequantize_to_f32(*f, data.data(), two.size(), two.data());
  CHECK(std::memcmp(one.data(), two.data(), one.size() * 4) == 0);
}

TEST(format_table_and_partial_blocks) {
  CHECK(find_block_format("IQ2_XXS") == nullptr);
  CHECK(find_block_format(16u) == nullptr);
  CHECK(find_block_format(3u) == find_block_format("Q4_1"));
  CHECK(find_block_format(30u)->block_bytes == 2);
  CHECK(quip::gguf::supported_type_names() == "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16");
  CHECK(quip::gguf::tensor_bytes(*find_block_format("Q6_K"), 512) == 420);
  bool threw = false;
  try {
    quip::gguf::tensor_bytes(*find_block_format("Q4_0"), 48);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(cancellation_stops_dequantization) {
  const BlockFormat* f = find_block_format("F16");
  std::vector<uint8_t> data(2 * 100000, 0);
  std::vector<float> out(100000);
  quip::JobHooks hooks;
  hooks.cancelled = [] { return true; };
  bool cancelled = false;
  try {
    quip::gguf::dequantize_to_f32(*f, data.data(), out.size(), out.data(), hooks);
  } catch (const quip::Cancelled&) {
    cancelled = true;
  }
  CHECK(cancelled);
}

QUIP_TEST_MAIN()
