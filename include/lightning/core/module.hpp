// The base of a user's module: a torch::nn::Module with Lightning's `log` and access to
// the running trainer. It deliberately declares no hooks: every hook a module has is
// one it wrote, detected at compile time (see core/hooks.hpp).
#pragma once

#include <lightning/core/metrics.hpp>
#include <lightning/core/trainer_state.hpp>

#include <torch/torch.h>

#include <concepts>
#include <stdexcept>
#include <string_view>

namespace lightning {

class LightningModule : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;

  // Records a scalar metric (Lightning's self.log). The tensor stays on its device;
  // see LogOptions for on_step/on_epoch/prog_bar/logger/reduce/batch_size.
  // Outside a Trainer (plain forward/inference use) it does nothing.
  void log(std::string_view name, const torch::Tensor& value, const LogOptions& options = {}) {
    if (trainer_ != nullptr) trainer_->metrics.log(name, value, options);
  }
  template <class T>
  requires std::is_arithmetic_v<T>
  void log(std::string_view name, T value, const LogOptions& options = {}) {
    if (trainer_ != nullptr) trainer_->metrics.log(name, static_cast<double>(value), options);
  }

  // The running trainer (Lightning's self.trainer): epoch, step, should_stop, metrics.
  [[nodiscard]] TrainerState& trainer() const {
    if (trainer_ == nullptr)
      throw std::logic_error(
          "lightning: this module is not attached to a Trainer; trainer() is only available "
          "while trainer.fit/validate runs");
    return *trainer_;
  }
  [[nodiscard]] bool has_trainer() const noexcept { return trainer_ != nullptr; }
  [[nodiscard]] std::int64_t current_epoch() const noexcept {
    return trainer_ ? trainer_->current_epoch : 0;
  }
  [[nodiscard]] std::int64_t global_step() const noexcept {
    return trainer_ ? trainer_->global_step : 0;
  }

  // Used by the Trainer (and Fabric) to connect and disconnect; not for user code.
  void attach_trainer(TrainerState* state) noexcept { trainer_ = state; }

 private:
  TrainerState* trainer_ = nullptr;
};

}  // namespace lightning
