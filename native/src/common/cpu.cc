#include "common/cpu.h"

#include <cstdlib>
#include <cstring>

namespace quip {

static CpuFeatures detect() {
  CpuFeatures f;
  const char* force = std::getenv("QUIP_FORCE_SCALAR");
  if (force && std::strcmp(force, "0") != 0 && force[0] != '\0') return f;
#if defined(QUIP_X86) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const char* no512 = std::getenv("QUIP_NO_AVX512");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi") &&
             __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("gfni") &&
             !(no512 && std::strcmp(no512, "0") != 0 && no512[0] != '\0');
  const char* novnni = std::getenv("QUIP_NO_AVXVNNI");
  f.avxvnni = f.avx2 && __builtin_cpu_supports("avxvnni") && !(novnni && std::strcmp(novnni, "0") != 0 && novnni[0] != '\0');
#elif defined(__aarch64__) || defined(_M_ARM64)
  f.neon = true;
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_summary() {
#if defined(QUIP_X86)
  std::string s = "x86-64";
#elif defined(__aarch64__) || defined(_M_ARM64)
  std::string s = "arm64";
#else
  std::string s = "generic";
#endif
  const CpuFeatures& f = cpu_features();
  if (f.avx512) s += " avx512";
  if (f.avx2) s += " avx2";
  if (f.avxvnni) s += " avxvnni";
  if (f.neon) s += " neon";
  if (!f.avx2 && !f.neon) s += " scalar";
  return s;
}

}  // namespace quip
