// Run-time CPU feature detection. Shipped builds target the baseline ISA; fast paths compiled with
// wider instruction sets (files *_avx2.cc) are called only when these report support. On arm64 the
// *_neon.cc fast paths need nothing beyond the baseline (Advanced SIMD is part of ARMv8-A), so `neon`
// is true on every arm64 build unless forced off.
#pragma once
#include <string>

namespace quip {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C together (what *_avx2.cc files are compiled for)
  bool avx512 = false;  // AVX-512 F/BW/VL/VBMI/VNNI + GFNI + avx2 (what *_avx512.cc files are compiled for)
  bool neon = false;    // Advanced SIMD on arm64 (always present there)
  bool avxvnni = false;     // AVX-VNNI (VEX vpdpbusd on ymm) beside avx2; QUIP_NO_AVXVNNI=1 turns it off

  // The SIMD fast paths this build dispatches to on this CPU: "avx512" (the int8 decode kernels,
  // AVX2 everywhere else), "avx2", "neon" or "scalar".
  const char* simd() const { return avx512 ? "avx512" : avx2 ? "avx2" : neon ? "neon" : "scalar"; }
};

// Detected once. QUIP_FORCE_SCALAR=1 in the environment disables every fast path (for tests and
// for comparing against the scalar references); QUIP_NO_AVX512=1 only the AVX-512 ones;
// QUIP_NO_AVXVNNI=1 only AVX-VNNI (the AVX2 int8 prefill then uses vpmaddubsw + vpmaddwd).
const CpuFeatures& cpu_features();

// Human-readable summary, e.g. "x86-64 avx2" or "arm64 neon" or "x86-64 scalar (forced)".
std::string cpu_summary();

}  // namespace quip
