// Minimal test harness for the native test programs (no third-party framework to install).
//   TEST(name) { CHECK(cond); CHECK_NEAR(a, b, tol); }
// Each program's main() is QUIP_TEST_MAIN(); it runs every TEST, prints one line per test and a
// closing "N passed, N failed" line, and exits non-zero on any failure.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace quip_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};
inline int& failures() {
  static int f = 0;
  return f;
}
inline void fail(const char* file, int line, const std::string& msg) {
  ++failures();
  std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, msg.c_str());
}

inline int run_all() {
  int passed = 0, failed = 0;
  for (auto& c : registry()) {
    int before = failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("exception: ") + e.what());
    }
    bool ok = failures() == before;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", c.name);
    std::fflush(stdout);
    (ok ? passed : failed)++;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace quip_test

#define QUIP_CAT2(a, b) a##b
#define QUIP_CAT(a, b) QUIP_CAT2(a, b)
#define TEST(name)                                                                  \
  static void QUIP_CAT(test_, name)();                                              \
  static quip_test::Registrar QUIP_CAT(reg_, name)(#name, QUIP_CAT(test_, name)); \
  static void QUIP_CAT(test_, name)()
#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) quip_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                                     \
  do {                                                                                            \
    double _a = (a), _b = (b), _t = (tol);                                                        \
    if (!(std::fabs(_a - _b) <= _t))                                                              \
      quip_test::fail(__FILE__, __LINE__,                                                         \
                      std::string(#a " = ") + std::to_string(_a) + ", " #b " = " + std::to_string(_b) + \
                          ", tol " + std::to_string(_t));                                         \
  } while (0)
#define QUIP_TEST_MAIN() \
  int main() { return quip_test::run_all(); }
