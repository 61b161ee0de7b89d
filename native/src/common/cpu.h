// Run-time CPU feature detection. Shipped builds target the baseline ISA; fast paths compiled with
// wider instruction sets (files *_avx2.cc) are called only when these report support.
#pragma once
#include <string>

namespace quip {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C together (what *_avx2.cc files are compiled for)
  bool avx512 = false;  // AVX-512 F/BW/VL
  bool neon = false;    // Advanced SIMD on arm64 (always present there)
};

// Detected once. QUIP_FORCE_SCALAR=1 in the environment disables every fast path (for tests and
// for comparing against the scalar references).
const CpuFeatures& cpu_features();

// Human-readable summary, e.g. "x86-64 avx2" or "arm64 neon" or "x86-64 scalar (forced)".
std::string cpu_summary();

}  // namespace quip
