// Thread pool and memory map: behaviour against plain sequential code; the CPU features say which
// SIMD path this build takes.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cpu.h"
#include "common/mapped_file.h"
#include "common/thread_pool.h"
#include "harness.h"

// arm64 builds always take the NEON paths (Advanced SIMD is baseline there), x86-64 builds never;
// QUIP_FORCE_SCALAR=1 turns every fast path off.
TEST(cpu_features_name_the_simd_path_of_this_build) {
  const quip::CpuFeatures& f = quip::cpu_features();
  const char* force = std::getenv("QUIP_FORCE_SCALAR");
  const bool forced = force && force[0] != '\0' && std::strcmp(force, "0") != 0;
  std::printf("     (%s; SIMD path: %s)\n", quip::cpu_summary().c_str(), f.simd());
#if defined(__aarch64__)
  CHECK(f.neon == !forced);
  CHECK(!f.avx2 && !f.avx512);
  CHECK(quip::cpu_summary() == (forced ? "arm64 scalar" : "arm64 neon"));
  CHECK(std::string(f.simd()) == (forced ? "scalar" : "neon"));
#else
  CHECK(!f.neon);
  CHECK(std::string(f.simd()) == (f.avx512 ? "avx512" : f.avx2 ? "avx2" : "scalar"));
  if (f.avx512) CHECK(f.avx2);  // the AVX-512 kernels lean on the AVX2 ones (prefill, RTN codes)
#endif
  if (forced) CHECK(!f.avx2 && !f.avx512 && !f.neon);
}

TEST(parallel_for_covers_every_index_once) {
  for (int threads : {1, 2, 4}) {
    quip::set_threads(threads);
    std::vector<std::atomic<int>> hits(10007);
    quip::parallel_for(hits.size(), 13, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (auto& h : hits) CHECK(h.load() == 1);
  }
}

TEST(parallel_for_rethrows_worker_exceptions) {
  quip::set_threads(2);
  bool caught = false;
  try {
    quip::parallel_for(1000, 1, [](size_t b, size_t) {
      if (b == 777) throw std::runtime_error("boom");
    });
  } catch (const std::runtime_error&) {
    caught = true;
  }
  CHECK(caught);
  // The pool still works afterwards.
  std::atomic<long> sum{0};
  quip::parallel_for(100, 7, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) sum += static_cast<long>(i);
  });
  CHECK(sum.load() == 4950);
}

TEST(nested_parallel_for_runs_inline) {
  quip::set_threads(2);
  std::atomic<int> count{0};
  quip::parallel_for(8, 1, [&](size_t, size_t) {
    quip::parallel_for(8, 1, [&](size_t, size_t) { count++; });
  });
  CHECK(count.load() == 64);
}

TEST(mapped_file_reads_bytes_and_reports_missing_files) {
  const char* path = "build-test-mapped.bin";
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 256; ++i) f.put(static_cast<char>(i));
  }
  {
    quip::MappedFile m(path);
    CHECK(m.size() == 256);
    CHECK(m.data()[200] == 200);
  }
  std::remove(path);
  bool threw = false;
  try {
    quip::MappedFile m("does/not/exist.bin");
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find("does/not/exist.bin") != std::string::npos;
  }
  CHECK(threw);
}

QUIP_TEST_MAIN()
