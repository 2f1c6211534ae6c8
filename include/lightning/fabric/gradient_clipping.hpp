// Gradient clipping without a host read: LibTorch's clip_grad_norm_ returns the norm
// as a double (an `item()`, a device sync on every step); these keep it a tensor.
#pragma once

#include <lightning/core/optimizers.hpp>

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

namespace lightning {

namespace detail {
// Collects the defined gradients of an optimizer's parameters into `out` (reused storage).
inline void collect_gradients(torch::optim::Optimizer& optimizer, std::vector<torch::Tensor>& out) {
  out.clear();
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) out.push_back(p.grad());
}
}  // namespace detail

// Scales gradients so their total `norm_type`-norm is at most max_norm (as PyTorch's
// clip_grad_norm_, including its 1e-6 guard); returns the total norm before clipping.
inline torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& grads, double max_norm,
                                    double norm_type = 2.0) {
  torch::NoGradGuard no_grad;
  if (grads.empty()) return torch::zeros({});
  torch::Tensor total;
  if (std::isinf(norm_type)) {
    std::vector<torch::Tensor> maxes;
    maxes.reserve(grads.size());
    for (const auto& g : grads) maxes.push_back(g.abs().max());
    total = torch::stack(maxes).max();
  } else {
    total =
        torch::linalg_vector_norm(torch::stack(torch::_foreach_norm(grads, norm_type)), norm_type);
  }
  const auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (const auto& g : grads) g.mul_(coef.to(g.dtype()));
  return total;
}

// Clamps every gradient element to [-clip_value, clip_value] (PyTorch's clip_grad_value_).
inline void clip_grad_value(const std::vector<torch::Tensor>& grads, double clip_value) {
  torch::NoGradGuard no_grad;
  for (const auto& g : grads) g.clamp_(-clip_value, clip_value);
}

}  // namespace lightning
