// Offline exhaustive search for Williamson matrices of odd order t whose first rows are constant on
// the orbits of a multiplier group M = <-1, g> acting on Z_t \ {0} (not part of the build; results
// go to ../williamson_table.inc, re-verified by test_quip_hadamard).
//   g++ -O2 -o wo williamson_orbits.cc && ./wo <t>
// With a_0 = b_0 = c_0 = d_0 = 1 and Williamson's condition d_j = -a_j b_j c_j, only A, B, C are free:
// 2^(3 * orbits) candidates, pruned by the spectra f_X(k)^2 summing to at most 4t at every k.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int t, h, K;
std::vector<std::vector<int>> orbits;
std::vector<double> fo;  // fo[o * (h + 1) + k] = sum over j in orbit o of cos(2 pi j k / t)

void spectrum(unsigned mask, std::vector<double>& f) {
  f.assign(h + 1, 1.0);
  for (int o = 0; o < K; ++o) {
    double s = (mask >> o) & 1 ? -1.0 : 1.0;
    for (int k = 0; k <= h; ++k) f[k] += s * fo[o * (h + 1) + k];
  }
}

int main(int argc, char** argv) {
  t = std::atoi(argv[1]);
  h = (t - 1) / 2;
  for (int g = 2; g < t; ++g) {
    // Orbits of <-1, g> on 1..t-1.
    std::vector<int> seen(t, 0);
    orbits.clear();
    for (int x = 1; x < t; ++x) {
      if (seen[x]) continue;
      std::vector<int> orb, stack = {x};
      seen[x] = 1;
      while (!stack.empty()) {
        int y = stack.back();
        stack.pop_back();
        orb.push_back(y);
        for (int z : {(t - y) % t, (y * g) % t})
          if (z && !seen[z]) seen[z] = 1, stack.push_back(z);
      }
      orbits.push_back(orb);
    }
    K = orbits.size();
    if (K > 14 || K < 3) continue;
    fo.assign(K * (h + 1), 0.0);
    for (int o = 0; o < K; ++o)
      for (int j : orbits[o])
        for (int k = 0; k <= h; ++k) fo[o * (h + 1) + k] += std::cos(2 * M_PI * j * k / t);
    std::vector<std::vector<double>> spec(1u << K);
    std::vector<unsigned> ok;
    for (unsigned m = 0; m < (1u << K); ++m) {
      spectrum(m, spec[m]);
      bool fine = true;
      for (double v : spec[m]) fine &= v * v <= 4 * t + 1e-6;
      if (fine) ok.push_back(m);
    }
    std::fprintf(stderr, "t=%d g=%d: %d orbits, %zu admissible rows\n", t, g, K, ok.size());
    for (unsigned a : ok)
      for (unsigned b : ok) {
        bool fine = true;
        for (int k = 0; k <= h && fine; ++k) fine = spec[a][k] * spec[a][k] + spec[b][k] * spec[b][k] <= 4 * t + 1e-6;
        if (!fine) continue;
        for (unsigned c : ok) {
          unsigned d = a ^ b ^ c ^ ((1u << K) - 1);  // d_j = -a_j b_j c_j on every orbit
          double worst = 0;
          for (int k = 0; k <= h; ++k) {
            double S = spec[a][k] * spec[a][k] + spec[b][k] * spec[b][k] + spec[c][k] * spec[c][k] + spec[d][k] * spec[d][k];
            worst = std::max(worst, std::fabs(S - 4 * t));
          }
          if (worst > 1e-6) continue;
          std::printf("    {%d, {", t);
          for (int X = 0; X < 4; ++X) {
            unsigned m = X == 0 ? a : X == 1 ? b : X == 2 ? c : d;
            std::vector<char> row(h + 1, '+');
            for (int o = 0; o < K; ++o)
              if ((m >> o) & 1)
                for (int j : orbits[o]) if (j <= h) row[j] = '-';
            std::printf("\"%s\"%s", std::string(row.begin(), row.end()).c_str(), X < 3 ? ", " : "");
          }
          std::printf("}},  // order %d (rows constant on the orbits of <-1, %d> mod %d)\n", 4 * t, g, t);
          return 0;
        }
      }
  }
  std::fprintf(stderr, "t=%d: none with orbit structure\n", t);
  return 1;
}
