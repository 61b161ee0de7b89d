// Offline search for Williamson matrices of odd order t (not part of the build): symmetric circulant
// +-1 matrices A, B, C, D with A^2 + B^2 + C^2 + D^2 = 4t I. Used once to produce
// ../williamson_table.inc; test_quip_hadamard verifies every stored entry.
//   g++ -O2 -o ws williamson_search.cc && ./ws <t> <seed> <seconds>
// Method: tabu local search over the first halves of A, B, C (a_0 = b_0 = c_0 = d_0 = 1 and
// d_j = -a_j b_j c_j, Williamson's necessary condition), minimising
// sum_k (sum_X f_X(k)^2 - 4t)^2 over the real spectra f_X(k) = x_0 + 2 sum_j x_j cos(2 pi j k / t).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  int t = std::atoi(argv[1]);
  unsigned seed = argc > 2 ? std::atoi(argv[2]) : 1;
  double seconds = argc > 3 ? std::atof(argv[3]) : 60;
  int h = (t - 1) / 2;
  std::vector<double> c((h + 1) * (h + 1));
  for (int j = 0; j <= h; ++j)
    for (int k = 0; k <= h; ++k) c[j * (h + 1) + k] = 2 * std::cos(2 * M_PI * j * k / t);
  std::mt19937 rng(seed);
  auto start = std::chrono::steady_clock::now();
  std::vector<int> x(4 * (h + 1));
  std::vector<double> f(4 * (h + 1));
  std::vector<int> tabu(3 * (h + 1), 0);
  long iter = 0;
  for (;;) {
    for (int X = 0; X < 3; ++X) {
      x[X * (h + 1)] = 1;
      for (int j = 1; j <= h; ++j) x[X * (h + 1) + j] = (rng() & 1) ? 1 : -1;
    }
    x[3 * (h + 1)] = 1;
    for (int j = 1; j <= h; ++j) x[3 * (h + 1) + j] = -x[j] * x[(h + 1) + j] * x[2 * (h + 1) + j];
    for (int X = 0; X < 4; ++X)
      for (int k = 0; k <= h; ++k) {
        double s = 1;
        for (int j = 1; j <= h; ++j) s += x[X * (h + 1) + j] * c[j * (h + 1) + k];
        f[X * (h + 1) + k] = s;
      }
    auto energy_with = [&](int X, int j) {  // energy after flipping x_Xj (and d_j)
      double e = 0;
      for (int k = 0; k <= h; ++k) {
        double S = 0;
        for (int Y = 0; Y < 4; ++Y) {
          double v = f[Y * (h + 1) + k];
          if (Y == X) v -= 2 * x[Y * (h + 1) + j] * c[j * (h + 1) + k];
          if (Y == 3) v -= 2 * x[3 * (h + 1) + j] * c[j * (h + 1) + k];
          S += v * v;
        }
        double d = S - 4 * t;
        e += d * d;
      }
      return e;
    };
    for (int step = 0; step < 20000; ++step, ++iter) {
      double best = 1e300;
      int bx = -1, bj = -1;
      for (int X = 0; X < 3; ++X)
        for (int j = 1; j <= h; ++j) {
          if (tabu[X * (h + 1) + j] > step) continue;
          double e = energy_with(X, j) + 1e-9 * (rng() & 1023);
          if (e < best) best = e, bx = X, bj = j;
        }
      if (bx < 0) continue;
      for (int k = 0; k <= h; ++k) {
        f[bx * (h + 1) + k] -= 2 * x[bx * (h + 1) + bj] * c[bj * (h + 1) + k];
        f[3 * (h + 1) + k] -= 2 * x[3 * (h + 1) + bj] * c[bj * (h + 1) + k];
      }
      x[bx * (h + 1) + bj] *= -1;
      x[3 * (h + 1) + bj] *= -1;
      tabu[bx * (h + 1) + bj] = step + 3 + (int)(rng() % (h / 2 + 1));
      if (best < 1e-3) {
        std::printf("    {%d, {", t);
        for (int X = 0; X < 4; ++X) {
          std::printf("\"");
          for (int j = 0; j <= h; ++j) std::printf("%c", x[X * (h + 1) + j] > 0 ? '+' : '-');
          std::printf("\"%s", X < 3 ? ", " : "");
        }
        std::printf("}},  // found after %ld steps\n", iter);
        return 0;
      }
    }
    std::fill(tabu.begin(), tabu.end(), 0);
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (el > seconds) { std::fprintf(stderr, "t=%d: none found in %.0f s\n", t, el); return 1; }
  }
}
