#include "finetune/adam.h"

#include <cmath>

namespace quip::finetune {

void Adam::add(float* param, const float* grad, size_t n, bool sign_vector) {
  slots_.push_back(Slot{param, grad, n, sign_vector, std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)});
}

void Adam::step() {
  ++t_;
  const double c1 = 1.0 - std::pow(s_.beta1, t_), c2 = 1.0 - std::pow(s_.beta2, t_);
  const float b1 = static_cast<float>(s_.beta1), b2 = static_cast<float>(s_.beta2);
  for (Slot& s : slots_) {
    // p -= lr * mhat / (sqrt(vhat) + eps) with mhat = m / c1, vhat = v / c2.
    const float lr = static_cast<float>((s.sign ? s_.lr_sign : s_.lr) / c1);
    const float inv_c2 = static_cast<float>(1.0 / c2), eps = static_cast<float>(s_.eps);
    for (size_t i = 0; i < s.n; ++i) {
      const float g = s.g[i];
      s.m[i] = b1 * s.m[i] + (1.0f - b1) * g;
      s.v[i] = b2 * s.v[i] + (1.0f - b2) * g * g;
      s.p[i] -= lr * s.m[i] / (std::sqrt(s.v[i] * inv_c2) + eps);
    }
  }
}

}  // namespace quip::finetune
