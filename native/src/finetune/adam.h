// Adam (Kingma & Ba) with bias correction, betas 0.9 / 0.999, eps 1e-8, and two learning rates:
// one for sign vectors (SU/SV as real numbers move faster in QuIP#'s recipe) and one for the rest.
#pragma once
#include <cstddef>
#include <vector>

namespace quip::finetune {

struct AdamSettings {
  double lr = 5e-5;
  double lr_sign = 5e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

class Adam {
 public:
  explicit Adam(AdamSettings s) : s_(s) {}
  // Registers a parameter of n floats and its gradient buffer (both owned by the caller, alive and
  // not reallocated while this optimiser is used).
  void add(float* param, const float* grad, size_t n, bool sign_vector);
  // One update of every parameter from its current gradient.
  void step();
  int steps() const { return t_; }

 private:
  struct Slot {
    float* p;
    const float* g;
    size_t n;
    bool sign;
    std::vector<float> m, v;
  };
  AdamSettings s_;
  std::vector<Slot> slots_;
  int t_ = 0;
};

}  // namespace quip::finetune
