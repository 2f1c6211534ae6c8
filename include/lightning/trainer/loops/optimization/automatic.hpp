// One batch of automatic optimization (Lightning's loops/optimization/automatic.py), and
// the stepping of learning-rate schedulers. Every policy point of a training step is
// called here, in this order:
//   zero_grad (first micro-batch of an accumulation window, through the strategy)
//   -> pre_backward(sync) / precision backward / post_backward(sync), where sync is true
//      only on the micro-batch that steps
//   -> on the stepping micro-batch: unscale (before on_before_optimizer_step), clip, the
//      precision's optimizer step; a skipped step (non-finite gradients under a scaler)
//      is not a step: no global_step, no step-interval scheduler.
// An epoch that skips optimization (trainer.skip_optimization(true), StochasticWeightAveraging's
// BatchNorm epoch) runs none of these.
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/errors.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/loops/optimization/anomaly.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>

namespace lightning::detail {
// Out of line and cold: the step pays two reads of tensor metadata, no sync.
[[noreturn, gnu::cold, gnu::noinline]] inline void bad_training_step_loss(const torch::Tensor& loss,
                                                                          std::int64_t epoch,
                                                                          std::int64_t idx) {
  const std::string where =
      " (epoch " + std::to_string(epoch) + ", batch " + std::to_string(idx) + ")";
  if (!loss.defined())
    throw MisconfigurationError(
        "lightning: training_step returned an undefined tensor as the loss" + where +
        "; return the loss computed from the batch");
  if (loss.numel() != 1) {
    std::string shape;
    for (const auto d : loss.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    throw MisconfigurationError(
        "lightning: training_step returned a loss of shape [" + shape + "]" + where +
        "; automatic optimization needs a scalar: reduce it, e.g. loss.mean() or loss.sum()");
  }
  throw MisconfigurationError(
      "lightning: training_step returned a loss that does not require grad" + where +
      ": it was detached (.detach(), .item(), a new tensor), computed under torch::NoGradGuard "
      "or InferenceMode, or every parameter it depends on is frozen. Return the loss as autograd "
      "computed it from the module's trainable parameters");
}
}  // namespace lightning::detail

namespace lightning::loops {

// Binds each scheduler of an optimizer to it (records the base learning rates).
template <class Config>
void attach_schedulers(Config& config) {
  auto& optimizer = detail::optimizer_of(config.optimizer);
  std::apply([&](auto&... sc) { (sc.scheduler.attach(optimizer), ...); }, config.lr_schedulers);
}

// Steps the schedulers of `config` that run at this interval (plateau ones separately, as
// Lightning does: after on_train_epoch_end, reading their monitored metric, and only it).
// A callback's replacement (StochasticWeightAveraging's SWALR) steps at every epoch's end
// instead of all of them.
template <class T, class Config>
void step_schedulers(T& trainer, Config& config, Interval interval, bool plateau) {
  if (auto* replacement = trainer.replacement_lr_scheduler()) [[unlikely]] {
    if (interval == Interval::epoch && !plateau)
      replacement->step(detail::optimizer_of(config.optimizer));
    return;
  }
  const auto one = [&]<class Sched>(SchedulerConfig<Sched>& s) {
    if (s.options.interval != interval || SchedulerConfig<Sched>::reduce_on_plateau != plateau)
      return;
    const std::int64_t idx =
        interval == Interval::step ? trainer.global_step : trainer.current_epoch + 1;
    if (s.options.frequency <= 0 || idx % s.options.frequency != 0) return;
    if constexpr (SchedulerConfig<Sched>::reduce_on_plateau) {
      const auto value = trainer.metrics.callback_metric(s.options.monitor);
      if (!value) {
        if (!s.options.strict) return;
        std::string names;
        for (const auto& kv : trainer.metrics.callback_metrics())
          names += (names.empty() ? "" : ", ") + kv.first;
        throw std::runtime_error("lightning: ReduceLROnPlateau monitors \"" + s.options.monitor +
                                 "\", which was never logged. Logged metrics: [" + names +
                                 "]. Log it (e.g. log(\"" + s.options.monitor +
                                 "\", loss) in validation_step) or set SchedulerOptions.monitor");
      }
      s.scheduler.step(detail::optimizer_of(config.optimizer), *value);
    } else {
      s.scheduler.step(detail::optimizer_of(config.optimizer));
    }
  };
  std::apply([&](auto&... s) { (one(s), ...); }, config.lr_schedulers);
}

// The settings of automatic optimization for one epoch (read once, not per step).
struct AutomaticSettings {
  std::int64_t accumulate = 1;
  double clip_value = 0.0;  // 0: no clipping
  bool clip_by_norm = true;
};

// The optimizer part of one training batch; `loss` is what training_step returned.
template <class T, class M, class Config>
void automatic_optimization_step(T& trainer, M& model, Config& config, const torch::Tensor& loss,
                                 std::int64_t idx, bool is_last, const AutomaticSettings& s) {
  // As Lightning, before any hook sees it: a loss autograd cannot differentiate is the
  // module's error, named as such, not autograd's "element 0 of tensors does not require grad".
  if (!loss.defined() || !loss.requires_grad() || loss.numel() != 1) [[unlikely]]
    detail::bad_training_step_loss(loss, trainer.current_epoch, idx);
  if (trainer.skips_optimization()) [[unlikely]] {
    if (is_last) trainer.count_epoch_without_optimization();
    return;
  }
  auto& fabric = trainer.fabric();
  auto& optimizer = detail::optimizer_of(config.optimizer);
  const bool step_now = (idx + 1) % s.accumulate == 0 || is_last;
  if (idx % s.accumulate == 0) {
    connectors::call_hooks<hooks::on_before_zero_grad>(trainer, model, optimizer);
    connectors::profiled_module<connectors::actions::optimizer_zero_grad, T, M>(
        trainer, [&] { fabric.zero_grad(optimizer); });
  }
  connectors::call_hooks<hooks::on_before_backward>(trainer, model, loss);
  try {
    connectors::profiled_strategy(trainer, "backward", [&] {
      fabric.backward(s.accumulate == 1 ? loss : loss / static_cast<double>(s.accumulate),
                      step_now);
    });
  } catch (const std::exception& e) {
    detail::rethrow_with_place(e, "the backward of training_step's loss", trainer.current_epoch,
                               idx, trainer.global_step);
  }
  connectors::call_hooks<hooks::on_after_backward>(trainer, model);
  if (!step_now) return;
  // Lightning's [LightningModule]...optimizer_step also holds the closure (training_step and
  // backward); here they ran before it and are timed apart.
  const bool stepped =
      connectors::profiled_module<connectors::actions::optimizer_step, T, M>(trainer, [&] {
        fabric.unscale_gradients(optimizer);  // hooks and clipping see true gradients
        connectors::call_hooks<hooks::on_before_optimizer_step>(trainer, model, optimizer);
        if (s.clip_value > 0.0) {
          if (s.clip_by_norm)
            fabric.clip_gradients_by_norm(optimizer, s.clip_value);
          else
            fabric.clip_gradients_by_value(optimizer, s.clip_value);
        }
        return fabric.step(optimizer);
      });
  if (stepped) {
    ++trainer.global_step;
    step_schedulers(trainer, config, Interval::step, /*plateau=*/false);
    step_schedulers(trainer, config, Interval::step, /*plateau=*/true);
  }
}

}  // namespace lightning::loops
