// Manual optimization (Lightning's loops/optimization/manual.py): the module zeroes,
// back-propagates and steps itself through handles (core/manual_optimization.hpp); this
// is the Trainer's side of those handles, so that manual_backward and opt.step() go
// through the same policy points as automatic optimization.
#pragma once

#include <lightning/core/hooks.hpp>
#include <lightning/core/manual_optimization.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/loops/optimization/anomaly.hpp>
#include <lightning/trainer/options.hpp>

#include <torch/torch.h>

#include <string>
#include <tuple>
#include <vector>

namespace lightning::loops {

// Lightning refuses the Trainer's automatic accumulation and clipping in manual
// optimization: the module would silently not get them.
inline void check_manual_options(const TrainerOptions& run) {
  if (run.accumulate_grad_batches != 1)
    detail::bad_option("accumulate_grad_batches", std::to_string(run.accumulate_grad_batches),
                       "manual optimization (automatic_optimization = false) does not accumulate: "
                       "step every N batches in training_step, or use automatic optimization");
  if (run.gradient_clip_val)
    detail::bad_option("gradient_clip_val", python_float_repr(*run.gradient_clip_val),
                       "manual optimization (automatic_optimization = false) does not clip: call "
                       "clip_gradients(opt, value) in training_step before opt.step()");
}

// Stands in for ManualRun when the module uses automatic optimization.
struct NoManualRun {
  template <class... A>
  explicit NoManualRun(A&&...) noexcept {}
};

// The Trainer's side of manual optimization for one fit(): handles on the configured
// optimizers and schedulers, and what manual_backward / opt.step() run. Attached to the
// module for its lifetime; undoes toggle_optimizer on the way out.
template <class T, class M>
struct ManualRun {
  T& trainer;
  M& model;
  detail::ManualOptimization table;
  std::vector<LightningOptimizer> optimizers;
  std::vector<LightningScheduler> schedulers;

  template <class Configs>
  ManualRun(T& t, M& m, Configs& configs) : trainer(t), model(m) {
    table.trainer = this;
    table.backward = &backward;
    table.zero_grad = &zero_grad;
    table.step = &step;
    table.step_closure = &step_closure;
    table.clip = &clip;
    std::apply([&](auto&... config) { (add(config), ...); }, configs);
    table.optimizers = optimizers;
    table.schedulers = schedulers;
    model.attach_manual_optimization(&table);
  }
  ~ManualRun() {
    model.untoggle_optimizer();  // a toggle left active by an exception
    model.attach_manual_optimization(nullptr);
  }
  ManualRun(const ManualRun&) = delete;
  ManualRun& operator=(const ManualRun&) = delete;

  template <class Opt, class... Scheds>
  void add(OptimizerConfig<Opt, Scheds...>& config) {
    auto& optimizer = detail::optimizer_of(config.optimizer);
    optimizers.emplace_back(optimizer, table);
    std::apply(
        [&](auto&... sc) {
          (schedulers.emplace_back(static_cast<void*>(&sc), optimizer,
                                   &LightningScheduler::step_config<Scheds>),
           ...);
        },
        config.lr_schedulers);
  }

  static ManualRun& self(void* p) { return *static_cast<ManualRun*>(p); }
  // manual_backward synchronises every time: the module decides when it steps.
  static void backward(void* p, const torch::Tensor& loss) {
    auto& r = self(p);
    connectors::call_hooks<hooks::on_before_backward>(r.trainer, r.model, loss);
    try {
      connectors::profiled_strategy(r.trainer, "backward",
                                    [&] { r.trainer.fabric().backward(loss, /*sync=*/true); });
    } catch (const std::exception& e) {
      detail::rethrow_with_place(e, "manual_backward in training_step", r.trainer.current_epoch, -1,
                                 r.trainer.global_step);
    }
    connectors::call_hooks<hooks::on_after_backward>(r.trainer, r.model);
  }
  static void zero_grad(void* p, torch::optim::Optimizer& optimizer) {
    self(p).trainer.fabric().zero_grad(optimizer);
  }
  // A step the precision skipped is not counted (as in automatic optimization).
  static bool step(void* p, torch::optim::Optimizer& optimizer) {
    auto& r = self(p);
    // Lightning's manual optimization times each step as "optimizer_step".
    const bool stepped = connectors::profiled(r.trainer, "optimizer_step", [&] {
      r.trainer.fabric().unscale_gradients(optimizer);  // unless clip_gradients already did
      connectors::call_hooks<hooks::on_before_optimizer_step>(r.trainer, r.model, optimizer);
      return r.trainer.fabric().step(optimizer);
    });
    if (stepped) ++r.trainer.global_step;
    return stepped;
  }
  // As Lightning: the hooks run after each evaluation of the closure, before the update.
  static torch::Tensor step_closure(void* p, torch::optim::Optimizer& optimizer,
                                    const torch::optim::Optimizer::LossClosure& closure) {
    auto& r = self(p);
    auto loss = connectors::profiled(r.trainer, "optimizer_step", [&] {
      return r.trainer.fabric().step(optimizer, [&] {
        auto value = closure();
        connectors::call_hooks<hooks::on_before_optimizer_step>(r.trainer, r.model, optimizer);
        return value;
      });
    });
    ++r.trainer.global_step;
    return loss;
  }
  static torch::Tensor clip(void* p, torch::optim::Optimizer& optimizer, double value,
                            GradClipAlgorithm algorithm) {
    auto& fabric = self(p).trainer.fabric();
    if (algorithm == GradClipAlgorithm::norm)
      return fabric.clip_gradients_by_norm(optimizer, value);
    fabric.clip_gradients_by_value(optimizer, value);
    return {};
  }
};

}  // namespace lightning::loops
