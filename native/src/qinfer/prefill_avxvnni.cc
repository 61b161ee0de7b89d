// AVX2 int8 prefill microkernel with AVX-VNNI (VEX vpdpbusd on ymm; compiled with -mavx2 -mfma -mf16c
// -mavxvnni; called only when cpu_features().avx2 && cpu_features().avxvnni). The kernel body is
// prefill_avx2.inc.
#include <immintrin.h>

#ifdef QUIP_NO_AVXVNNI_COMPILER  // a compiler without -mavxvnni: the AVX2 kernel stands in
#include "qinfer/prefill.h"
namespace quip::qinfer {
const PrefillKernels& prefill_kernels_avx2_vnni() { return prefill_kernels_avx2(); }
}  // namespace quip::qinfer
#else
#define QUIP_PREFILL_DPBUSD(acc, x, w) _mm256_dpbusd_avx_epi32(acc, x, w)
#include "qinfer/prefill_avx2.inc"

namespace quip::qinfer {
const PrefillKernels& prefill_kernels_avx2_vnni() {
  static const PrefillKernels k{tile_impl, "avx2-avxvnni"};
  return k;
}
}  // namespace quip::qinfer
#endif
