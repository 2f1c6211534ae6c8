// Fabric: the three policies put together for a hand-written loop (Lightning Fabric).
// The Trainer's loops are written against this class; a custom loop written with it
// gets the same device placement, precision handling and clipping, at the same cost.
#pragma once

#include <lightning/core/batch.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/seed.hpp>
#include <lightning/fabric/gradient_clipping.hpp>
#include <lightning/fabric/host_memory.hpp>
#include <lightning/policies/accelerators.hpp>
#include <lightning/policies/precision.hpp>
#include <lightning/policies/strategies.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lightning {

// Options of Fabric::clip_gradients (Lightning's clip_val / max_norm / norm_type).
struct ClipOptions {
  std::optional<double> clip_val = std::nullopt;  // clamp each element to [-v, v]
  std::optional<double> max_norm = std::nullopt;  // scale so the total norm is <= max_norm
  double norm_type = 2.0;
};

template <Accelerator A = accelerators::Auto, Strategy S = strategies::SingleDevice,
          Precision P = precision::F32>
class Fabric {
 public:
  using accelerator_type = A;
  using strategy_type = S;
  using precision_type = P;

  Fabric() = default;
  Fabric(A accelerator, S strategy, P precision)
      : accelerator_(std::move(accelerator)),
        strategy_(std::move(strategy)),
        precision_(std::move(precision)) {}

  // Resolves the device (accelerator "auto" picks here) and keeps the host memory a
  // step frees for the next one (fabric/host_memory.hpp). Idempotent.
  void launch() {
    if (!launched_) {
      accelerator_.setup();
      retain_freed_host_memory();
    }
    launched_ = true;
  }

  [[nodiscard]] c10::Device device() const noexcept { return accelerator_.device(); }

  // Moves the module to the device and converts it to the precision's dtype. Call it
  // before creating the optimizer, so the optimizer sees the final parameters.
  template <class M>
  M& setup_module(M& module) {
    launch();
    strategy_.setup_module(module, device());
    precision_.convert_module(module);
    return module;
  }

  // Prepares an optimizer for the strategy (single device: nothing to do). Module::to
  // keeps parameter identities, so optimizers made before setup_module stay valid.
  template <class O>
  O& setup_optimizer(O& optimizer) {
    return optimizer;
  }

  // Lightning Fabric's fabric.setup(model, optimizer).
  template <class M, class O>
  void setup(M& module, O& optimizer) {
    setup_module(module);
    setup_optimizer(optimizer);
  }

  // Moves every tensor of a batch to the device and casts floating inputs to the precision.
  template <class B>
  [[nodiscard]] B to_device(const B& batch) const {
    if constexpr (requires { precision_.convert_batch(batch); })
      return precision_.convert_batch(transfer_batch(batch, device()));
    else
      return map_tensors(transfer_batch(batch, device()),
                         [this](const torch::Tensor& t) { return precision_.convert_input(t); });
  }

  // The forward-pass scope of the precision (autocast for mixed precision; else nothing).
  [[nodiscard]] auto autocast() const { return precision_.autocast(device()); }

  void backward(const torch::Tensor& loss) { precision_.backward(loss); }

  // Clips the gradients of the optimizer's parameters: by value if clip_val is set,
  // else by norm. Unscales first (mixed precision). Returns the total norm when
  // clipping by norm, without reading it to the host.
  torch::Tensor clip_gradients(torch::optim::Optimizer& optimizer, const ClipOptions& options) {
    if (options.clip_val.has_value() == options.max_norm.has_value())
      throw std::invalid_argument(
          "lightning: Fabric::clip_gradients needs exactly one of clip_val and max_norm");
    if (options.clip_val) {
      clip_gradients_by_value(optimizer, *options.clip_val);
      return {};
    }
    return clip_gradients_by_norm(optimizer, *options.max_norm, options.norm_type);
  }
  torch::Tensor clip_gradients_by_norm(torch::optim::Optimizer& optimizer, double max_norm,
                                       double norm_type = 2.0) {
    precision_.unscale_gradients(optimizer);
    detail::collect_gradients(optimizer, grads_);
    return clip_grad_norm(grads_, max_norm, norm_type);
  }
  void clip_gradients_by_value(torch::optim::Optimizer& optimizer, double clip_val) {
    precision_.unscale_gradients(optimizer);
    detail::collect_gradients(optimizer, grads_);
    clip_grad_value(grads_, clip_val);
  }

  // Steps the optimizer through the precision; false when the step was skipped.
  bool step(torch::optim::Optimizer& optimizer) { return precision_.optimizer_step(optimizer); }
  // Steps with a closure that recomputes the loss (LBFGS); returns the closure's loss.
  torch::Tensor step(torch::optim::Optimizer& optimizer,
                     const torch::optim::Optimizer::LossClosure& closure) {
    return precision_.optimizer_step(optimizer, closure);
  }

  [[nodiscard]] torch::Tensor all_reduce(const torch::Tensor& t, Reduce op = Reduce::mean) const {
    return strategy_.reduce(t, op);
  }
  void barrier() const { strategy_.barrier(); }
  [[nodiscard]] bool broadcast(bool decision) const { return strategy_.broadcast(decision); }
  [[nodiscard]] std::int64_t global_rank() const { return strategy_.rank(); }
  [[nodiscard]] std::int64_t world_size() const { return strategy_.world_size(); }
  [[nodiscard]] bool is_global_zero() const { return strategy_.is_global_zero(); }

  // Suspends gradient synchronisation across ranks (gradient accumulation).
  [[nodiscard]] auto no_backward_sync() { return strategy_.no_backward_sync(); }

  void seed_everything(std::uint64_t seed) const { lightning::seed_everything(seed); }

  [[nodiscard]] A& accelerator() noexcept { return accelerator_; }
  [[nodiscard]] S& strategy() noexcept { return strategy_; }
  [[nodiscard]] P& precision() noexcept { return precision_; }

 private:
  A accelerator_{};
  S strategy_{};
  P precision_{};
  bool launched_ = false;
  std::vector<torch::Tensor> grads_;  // reused by clip_gradients: no allocation per step
};

}  // namespace lightning
