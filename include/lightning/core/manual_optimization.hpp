// Manual optimization (Lightning's `automatic_optimization = False`), the module's side.
//
// A module opts in at compile time:
//
//   struct GAN : lightning::LightningModule {
//     static constexpr bool automatic_optimization = false;
//     void training_step(const Batch& batch, int64_t) {
//       auto [g_opt, d_opt] = optimizers<2>();
//       d_opt.zero_grad();
//       manual_backward(d_loss);
//       d_opt.step();
//       ...
//     }
//   };
//
// The Trainer then never calls backward, step or zero_grad itself. The handles below
// reach back into the running Trainer through one small table of function pointers
// (detail::ManualOptimization): the module is compiled without knowing the Trainer's
// type, as in Lightning, and the Trainer fills the table with functions that run the
// precision policy and the statically dispatched hooks of the module and callbacks.
#pragma once

#include <lightning/core/optimizers.hpp>

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace lightning {

class LightningOptimizer;
class LightningScheduler;

namespace detail {

// What the Trainer provides to a module in manual optimization for the length of fit().
struct ManualOptimization {
  void* trainer = nullptr;
  // Precision-aware backward with on_before_backward / on_after_backward around it.
  void (*backward)(void* trainer, const torch::Tensor& loss) = nullptr;
  // Clears gradients through the strategy (DDP's bucket views forbid Optimizer::zero_grad).
  void (*zero_grad)(void* trainer, torch::optim::Optimizer& optimizer) = nullptr;
  // on_before_optimizer_step, the precision's step, then global_step += 1 unless skipped.
  bool (*step)(void* trainer, torch::optim::Optimizer& optimizer) = nullptr;
  torch::Tensor (*step_closure)(void* trainer, torch::optim::Optimizer& optimizer,
                                const torch::optim::Optimizer::LossClosure& closure) = nullptr;
  // Clipping through the precision (unscales first); returns the total norm for norm.
  torch::Tensor (*clip)(void* trainer, torch::optim::Optimizer& optimizer, double value,
                        GradClipAlgorithm algorithm) = nullptr;
  std::span<LightningOptimizer> optimizers;
  std::span<LightningScheduler> schedulers;
  // requires_grad of every parameter before toggle_optimizer (restored by untoggle).
  std::vector<std::pair<torch::Tensor, bool>> toggled;
};

// M declares `automatic_optimization` as a compile-time bool. A member of that name that
// is not one is refused by check_training_module (concepts.hpp), not silently taken as
// automatic: a Python habit (`bool automatic_optimization = false;`) must not be ignored.
template <class M>
concept constant_automatic_optimization = requires {
  std::bool_constant<M::automatic_optimization>{};
};

template <class M>
consteval bool manual_optimization() {
  if constexpr (constant_automatic_optimization<M>)
    return !M::automatic_optimization;
  else
    return false;
}

}  // namespace detail

// Lightning's self.automatic_optimization, read at compile time.
template <class M>
inline constexpr bool uses_manual_optimization = detail::manual_optimization<M>();

// A handle on one of the module's optimizers (Lightning's LightningOptimizer): step()
// goes through the precision policy and the hooks and counts global_step. Cheap to
// copy; valid while trainer.fit() runs.
class LightningOptimizer {
 public:
  LightningOptimizer() = default;
  LightningOptimizer(torch::optim::Optimizer& optimizer, detail::ManualOptimization& context)
      : optimizer_(&optimizer), context_(&context) {}

  // Clears the gradients of this optimizer's parameters (through the strategy).
  void zero_grad() { context_->zero_grad(context_->trainer, *optimizer_); }

  // Runs on_before_optimizer_step (module, callbacks), then the precision's step.
  // Returns false when the precision skipped the step (non-finite gradients).
  bool step() { return context_->step(context_->trainer, *optimizer_); }

  // Steps with a closure that recomputes the loss (LBFGS calls it several times): the
  // closure does forward, zero_grad and manual_backward and returns the loss.
  template <class Closure>
  requires std::is_invocable_r_v<torch::Tensor, Closure&> torch::Tensor step(Closure&& closure) {
    return context_->step_closure(
        context_->trainer, *optimizer_,
        torch::optim::Optimizer::LossClosure(std::forward<Closure>(closure)));
  }

  // The wrapped optimizer (Lightning's `opt.optimizer`); as<O>() is the concrete type.
  [[nodiscard]] torch::optim::Optimizer& optimizer() const noexcept { return *optimizer_; }
  template <class O>
  [[nodiscard]] O& as() const {
    auto* concrete = dynamic_cast<O*>(optimizer_);
    if (concrete == nullptr)
      throw std::invalid_argument(std::string("lightning: LightningOptimizer::as<") +
                                  typeid(O).name() + ">(): the optimizer is a " +
                                  typeid(*optimizer_).name());
    return *concrete;
  }

  // The learning rate of each param group.
  [[nodiscard]] std::vector<double> lrs() const { return lr::group_lrs(*optimizer_); }

 private:
  friend class LightningModule;
  torch::optim::Optimizer* optimizer_ = nullptr;
  detail::ManualOptimization* context_ = nullptr;
};

// A handle on one LR scheduler (Lightning's self.lr_schedulers() entries). In manual
// optimization the Trainer does not step schedulers: the module calls step(), or
// step(metric) for ReduceLROnPlateau.
class LightningScheduler {
 public:
  using StepFn = void (*)(void* scheduler, torch::optim::Optimizer& optimizer,
                          std::optional<double> metric);

  LightningScheduler() = default;
  LightningScheduler(void* scheduler, torch::optim::Optimizer& optimizer, StepFn step)
      : scheduler_(scheduler), optimizer_(&optimizer), step_(step) {}

  void step() { step_(scheduler_, *optimizer_, std::nullopt); }
  void step(double metric) { step_(scheduler_, *optimizer_, metric); }

  // The optimizer whose learning rates this scheduler sets.
  [[nodiscard]] torch::optim::Optimizer& optimizer() const noexcept { return *optimizer_; }

  // The step function for a scheduler configuration of type SchedulerConfig<S>.
  template <class S>
  static void step_config(void* config, torch::optim::Optimizer& optimizer,
                          std::optional<double> metric) {
    auto& c = *static_cast<SchedulerConfig<S>*>(config);
    if constexpr (SchedulerConfig<S>::reduce_on_plateau) {
      if (!metric)
        throw std::invalid_argument(
            "lightning: ReduceLROnPlateau needs the monitored value: call step(value), e.g. "
            "step(trainer().callback_metrics().at(\"val_loss\"))");
      c.scheduler.step(optimizer, *metric);
    } else {
      if (metric)
        throw std::invalid_argument(
            "lightning: step(metric) is for ReduceLROnPlateau; this scheduler follows a "
            "formula: call step()");
      c.scheduler.step(optimizer);
    }
  }

 private:
  void* scheduler_ = nullptr;
  torch::optim::Optimizer* optimizer_ = nullptr;
  StepFn step_ = nullptr;
};

}  // namespace lightning
