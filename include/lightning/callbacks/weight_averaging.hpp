// WeightAveraging and EMAWeightAveraging (Lightning 2.6's callbacks.WeightAveraging):
// an average of the module's weights updated after optimizer steps (or epochs), used in
// place of the module's own weights while validating and copied into the module when
// training ends. SWA is the default average; EMA decays. Checkpoints hold the average as
// "state_dict" and the module's own weights as "current_model_state", as Lightning's do,
// so either side resumes the other's files.
#pragma once

#include <lightning/core/averaged_model.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/fabric/checkpoint_state.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstdint>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace lightning::callbacks {

// When the average is updated (Lightning's WeightAveraging.should_update): called after
// every optimizer step with its zero-based index, and after every training epoch with the
// epoch's index; the other argument is unset.
template <class F>
concept UpdateSchedule = std::copy_constructible<F> &&
    requires(const F& f, std::optional<std::int64_t> i) {
  { f(i, i) } -> std::convertible_to<bool>;
};

// After every optimizer step (Lightning's default).
struct EveryOptimizerStep {
  bool operator()(std::optional<std::int64_t> step_idx, std::optional<std::int64_t>) const {
    return step_idx.has_value();
  }
};

struct WeightAveragingOptions {
  // Where the average lives; unset: the device the Trainer trains on.
  std::optional<torch::Device> device = std::nullopt;
  // Average BatchNorm's running statistics too (Lightning's default); false keeps them
  // as the module's and leaves lightning::update_bn to the user.
  bool use_buffers = true;
};

template <AveragingFunction Average = SwaAverage, UpdateSchedule When = EveryOptimizerStep>
class WeightAveraging {
 public:
  explicit WeightAveraging(WeightAveragingOptions options = {}, Average average = {},
                           When when = {})
      : o_(options), average_fn_(std::move(average)), when_(std::move(when)) {}

  // Lightning's state key (its class name); EMAWeightAveraging has its own.
  [[nodiscard]] std::string state_key() const { return "WeightAveraging"; }

  // The average (set while fit runs and after it), e.g. to evaluate or save it apart.
  [[nodiscard]] const std::optional<AveragedModel<Average>>& average() const noexcept {
    return average_;
  }

  template <class T, class M>
  void setup(T& trainer, M& module, Stage stage) {
    if (stage != Stage::fit) return;
    if constexpr (hooks::configure_model::declared<M>) {
      if (trainer.is_global_zero())
        std::cerr << "lightning: warning: WeightAveraging calls the module's configure_model "
                     "before copying its weights; it does not shard layers, so a large model "
                     "may run out of memory\n";
      hooks::call_module<hooks::configure_model>(module);
    }
    average_.emplace(module,
                     AveragedModelOptions{.device = o_.device.value_or(trainer.fabric().device()),
                                          .use_buffers = o_.use_buffers},
                     average_fn_);
  }

  // Lightning's step index: optimizer steps taken minus one; a batch that only
  // accumulated gradients took none and updates nothing.
  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M& module, const O&, const B&, std::int64_t) {
    const std::int64_t step = trainer.global_step;
    if (step > latest_update_step_ && when_(step - 1, std::nullopt)) {
      require_average().update_parameters(module);
      latest_update_step_ = step;
    }
  }
  template <class T, class M>
  void on_train_epoch_end(T& trainer, M& module) {
    const std::int64_t epoch = trainer.current_epoch;
    if (epoch > latest_update_epoch_ && when_(std::nullopt, epoch)) {
      require_average().update_parameters(module);
      latest_update_epoch_ = epoch;
    }
  }
  template <class T, class M>
  void on_train_end(T&, M& module) {
    require_average().copy_to(module);
  }

  // Validation sees the average; the module's own weights come back after it.
  template <class T, class M>
  void on_validation_epoch_start(T&, M& module) {
    if (average_) average_->swap_with(module);
  }
  template <class T, class M>
  void on_validation_epoch_end(T&, M& module) {
    if (average_) average_->swap_with(module);
  }

  [[nodiscard]] CheckpointDict state_dict() const {
    auto s = make_checkpoint();
    s.insert("latest_update_step", latest_update_step_);
    return s;
  }
  void load_state_dict(const CheckpointDict& s) {
    latest_update_step_ = s.at("latest_update_step").toInt();
  }

  // The average becomes the checkpoint's "state_dict" (what validate/test/predict load)
  // and the module's own weights "current_model_state" (what a resumed fit trains on).
  template <class T, class M>
  void on_save_checkpoint(T& trainer, M&, CheckpointDict& checkpoint) {
    if (!average_) {
      if (trainer.is_global_zero())
        std::cerr << "lightning: WeightAveraging: a checkpoint saved outside fit holds no "
                     "average; after training the module's weights are the average\n";
      return;
    }
    auto state = average_->state_dict();
    auto weights = c10::Dict<std::string, torch::Tensor>();
    auto averaging = c10::Dict<std::string, torch::Tensor>();
    for (const auto& kv : state) {
      const std::string& name = kv.key();
      if (name.starts_with("module."))
        weights.insert(name.substr(7), kv.value());
      else
        averaging.insert(name, kv.value());
    }
    checkpoint.insert_or_assign("current_model_state", checkpoint.at("state_dict"));
    checkpoint.insert_or_assign("state_dict", weights);
    checkpoint.insert_or_assign("averaging_state", averaging);
  }

  // Runs after the Trainer loaded "state_dict" (the average) into the module: the
  // average is restored and the module gets its own weights back.
  template <class T, class M>
  void on_load_checkpoint(T& trainer, M& module, const CheckpointDict& checkpoint) {
    if (!average_) {
      if (trainer.is_global_zero())
        std::cerr << "lightning: warning: WeightAveraging: a checkpoint loaded outside fit "
                     "restores no average (the module gets the averaged weights); remove the "
                     "callback to silence this\n";
      return;
    }
    const auto weights = checkpoint_dict<at::Tensor>(checkpoint.at("state_dict"));
    if (checkpoint.contains("current_model_state") && checkpoint.contains("averaging_state")) {
      auto state = checkpoint_dict<at::Tensor>(checkpoint.at("averaging_state"));
      for (const auto& kv : weights) state.insert("module." + kv.key(), kv.value());
      average_->load_state_dict(state, "the checkpoint's WeightAveraging state");
      load_module_state_dict(module,
                             checkpoint_dict<at::Tensor>(checkpoint.at("current_model_state")),
                             "the checkpoint's \"current_model_state\"");
    } else {
      if (trainer.is_global_zero())
        std::cerr << "lightning: warning: the checkpoint was not saved with WeightAveraging: "
                     "the module and the average both start from its \"state_dict\"\n";
      average_->load_module_values(weights);
    }
  }

 private:
  AveragedModel<Average>& require_average() {
    if (!average_)
      throw std::logic_error(
          "lightning: WeightAveraging has no average: its setup hook did not run for fit (the "
          "callback must be among the Trainer's callbacks when fit starts)");
    return *average_;
  }

  WeightAveragingOptions o_;
  Average average_fn_;
  When when_;
  std::optional<AveragedModel<Average>> average_;
  // Optimizer steps taken at the last update: the first update comes after a step.
  std::int64_t latest_update_step_ = 0;
  // Not saved in checkpoints, as in Lightning.
  std::int64_t latest_update_epoch_ = -1;
};

// EMAWeightAveraging's schedule: every n optimizer steps from a step on, and (if set)
// after every epoch from an epoch on.
struct EmaUpdateSchedule {
  std::int64_t update_every_n_steps = 1;
  std::optional<std::int64_t> update_starting_at_step = std::nullopt;
  std::optional<std::int64_t> update_starting_at_epoch = std::nullopt;

  bool operator()(std::optional<std::int64_t> step_idx,
                  std::optional<std::int64_t> epoch_idx) const {
    if (step_idx && (!update_starting_at_step || *step_idx >= *update_starting_at_step) &&
        update_every_n_steps > 0 && *step_idx % update_every_n_steps == 0)
      return true;
    return epoch_idx && update_starting_at_epoch && *epoch_idx >= *update_starting_at_epoch;
  }
};

struct EMAWeightAveragingOptions {
  std::optional<torch::Device> device = std::nullopt;  // as WeightAveragingOptions
  bool use_buffers = true;
  double decay = 0.999;                   // the average keeps this share of itself at every update
  std::int64_t update_every_n_steps = 1;  // 0: no updates after steps
  std::optional<std::int64_t> update_starting_at_step = std::nullopt;
  std::optional<std::int64_t> update_starting_at_epoch = std::nullopt;  // unset: not per epoch
};

// An exponential moving average of the weights (Lightning's EMAWeightAveraging).
class EMAWeightAveraging : public WeightAveraging<EmaAverage, EmaUpdateSchedule> {
 public:
  explicit EMAWeightAveraging(EMAWeightAveragingOptions options = {})
      : WeightAveraging(
            {.device = options.device, .use_buffers = options.use_buffers},
            EmaAverage{checked_decay(options.decay)},
            EmaUpdateSchedule{checked_every(options.update_every_n_steps),
                              options.update_starting_at_step, options.update_starting_at_epoch}) {}

  [[nodiscard]] std::string state_key() const { return "EMAWeightAveraging"; }

 private:
  static double checked_decay(double decay) {
    if (!(decay >= 0.0 && decay <= 1.0))
      throw std::invalid_argument(
          "lightning: EMAWeightAveragingOptions.decay = " + std::to_string(decay) +
          " must be in [0, 1] (the share of the average kept at each "
          "update, e.g. 0.999)");
    return decay;
  }
  static std::int64_t checked_every(std::int64_t n) {
    if (n < 0)
      throw std::invalid_argument(
          "lightning: EMAWeightAveragingOptions.update_every_n_steps = " + std::to_string(n) +
          " must be >= 0 (0 updates only after epochs, with "
          "update_starting_at_epoch)");
    return n;
  }
};

}  // namespace lightning::callbacks
