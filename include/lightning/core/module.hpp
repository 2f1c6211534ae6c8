// The base of a user's module: a torch::nn::Module with Lightning's `log` and access to
// the running trainer. It deliberately declares no hooks: every hook a module has is
// one it wrote, detected at compile time (see core/hooks.hpp).
#pragma once

#include <lightning/core/hyperparameter_struct.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/manual_optimization.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/core/trainer_state.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace lightning {

class LightningModule : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;

  // Records a scalar metric (Lightning's self.log). The tensor stays on its device;
  // see LogOptions for on_step/on_epoch/prog_bar/logger/reduce/batch_size.
  // Outside a Trainer (plain forward/inference use) and under barebones it does nothing.
  void log(std::string_view name, const torch::Tensor& value, const LogOptions& options = {}) {
    if (trainer_ != nullptr && trainer_->accepts_logs())
      trainer_->metrics.log(name, value, options);
  }
  template <class T>
  requires std::is_arithmetic_v<T>
  void log(std::string_view name, T value, const LogOptions& options = {}) {
    if (trainer_ != nullptr && trainer_->accepts_logs())
      trainer_->metrics.log(name, static_cast<double>(value), options);
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

  // Lightning's save_hyperparameters: declared once (usually in the constructor), they
  // go to every logger (hparams.yaml, TensorBoard's hparams tab) and into checkpoints,
  // and a checkpoint loaded by the Trainer restores them.
  void save_hyperparameters(HParams hparams) { hparams_ = std::move(hparams); }
  // The same from a struct of them (core/hyperparameter_struct.hpp): the struct a
  // LightningCLI fills from --model.* is then what loggers and checkpoints hold.
  template <HyperparameterStruct S>
  void save_hyperparameters(const S& hparams) {
    hparams_ = to_hparams(hparams);
  }
  [[nodiscard]] const HParams& hparams() const noexcept { return hparams_; }

  // ---- Manual optimization (the module declares automatic_optimization = false) ----
  // Available while trainer.fit() runs; see core/manual_optimization.hpp.

  // The optimizers configure_optimizers returned, in order:
  //   auto [g_opt, d_opt] = optimizers<2>();   (Python: g_opt, d_opt = self.optimizers())
  template <std::size_t N>
  [[nodiscard]] std::array<LightningOptimizer, N> optimizers() const {
    return take<N>(manual("optimizers").optimizers, "optimizers", "optimizer");
  }
  // One optimizer (Python: opt = self.optimizers()).
  [[nodiscard]] LightningOptimizer optimizer(std::size_t index = 0) const {
    return at(manual("optimizer").optimizers, index, "optimizer");
  }

  // The LR schedulers, in the order configure_optimizers listed them (over all optimizers).
  template <std::size_t N>
  [[nodiscard]] std::array<LightningScheduler, N> lr_schedulers() const {
    return take<N>(manual("lr_schedulers").schedulers, "lr_schedulers", "scheduler");
  }
  [[nodiscard]] LightningScheduler lr_scheduler(std::size_t index = 0) const {
    return at(manual("lr_scheduler").schedulers, index, "lr_scheduler");
  }

  // loss.backward() through the precision policy, with on_before_backward and
  // on_after_backward of the module and the callbacks around it.
  void manual_backward(const torch::Tensor& loss) {
    auto& m = manual("manual_backward");
    m.backward(m.trainer, loss);
  }

  // Lightning's self.clip_gradients: clips the gradients of `opt`'s parameters (after
  // unscaling, in mixed precision). Returns the total norm (a tensor) for norm clipping.
  torch::Tensor clip_gradients(const LightningOptimizer& opt, double gradient_clip_val,
                               GradClipAlgorithm algorithm = GradClipAlgorithm::norm) {
    auto& m = manual("clip_gradients");
    if (!(gradient_clip_val >= 0.0))
      throw std::invalid_argument("lightning: clip_gradients(gradient_clip_val = " +
                                  std::to_string(gradient_clip_val) + ") must be >= 0");
    if (gradient_clip_val == 0.0) return {};
    return m.clip(m.trainer, opt.optimizer(), gradient_clip_val, algorithm);
  }

  // Lightning's toggle_optimizer: only `opt`'s parameters require gradients until
  // untoggle_optimizer() (a GAN's generator step then computes no discriminator grads).
  void toggle_optimizer(const LightningOptimizer& opt) {
    auto& m = manual("toggle_optimizer");
    untoggle(m);
    // Record every state before changing any, so a parameter shared by two optimizers
    // keeps its original state; then restore the recorded states of `opt`'s range.
    std::size_t begin = 0, end = 0;
    for (auto& o : m.optimizers) {
      const bool target = &o.optimizer() == &opt.optimizer();
      if (target) begin = m.toggled.size();
      for (auto& group : o.optimizer().param_groups())
        for (auto& p : group.params()) m.toggled.emplace_back(p, p.requires_grad());
      if (target) end = m.toggled.size();
    }
    for (auto& [p, requires_grad] : m.toggled) p.set_requires_grad(false);
    if (begin == end && !opt.optimizer().param_groups().empty() &&
        std::none_of(m.optimizers.begin(), m.optimizers.end(), [&](const LightningOptimizer& o) {
          return &o.optimizer() == &opt.optimizer();
        })) {
      untoggle(m);
      throw std::invalid_argument(
          "lightning: toggle_optimizer() got an optimizer that configure_optimizers did not "
          "return; pass one of optimizers<N>()");
    }
    for (std::size_t i = begin; i < end; ++i)
      m.toggled[i].first.set_requires_grad(m.toggled[i].second);
  }
  void untoggle_optimizer() { untoggle(manual("untoggle_optimizer")); }

  // Used by the Trainer (and Fabric) to connect and disconnect; not for user code.
  void attach_trainer(TrainerState* state) noexcept { trainer_ = state; }
  void attach_manual_optimization(detail::ManualOptimization* context) noexcept {
    manual_ = context;
  }

 private:
  detail::ManualOptimization& manual(const char* what) const {
    if (manual_ == nullptr)
      throw std::logic_error(
          std::string("lightning: ") + what +
          "() is for manual optimization, while trainer.fit() runs: declare "
          "`static constexpr bool automatic_optimization = false;` in the module");
    return *manual_;
  }
  // All N handles of a list (optimizers or schedulers), or an error naming the count.
  template <std::size_t N, class T>
  static std::array<T, N> take(std::span<T> all, const char* call, const char* noun) {
    if (all.size() != N)
      throw std::invalid_argument("lightning: " + std::string(call) + "<" + std::to_string(N) +
                                  ">() asked for " + std::to_string(N) + " " + noun +
                                  "s, but configure_optimizers returned " +
                                  std::to_string(all.size()));
    std::array<T, N> out;
    std::copy(all.begin(), all.end(), out.begin());
    return out;
  }
  template <class T>
  static T at(std::span<T> all, std::size_t index, const char* call) {
    if (index >= all.size())
      throw std::out_of_range("lightning: " + std::string(call) + "(" + std::to_string(index) +
                              "): configure_optimizers returned " + std::to_string(all.size()));
    return all[index];
  }
  static void untoggle(detail::ManualOptimization& m) {
    // Reverse order: a parameter shared by two optimizers gets its first recorded state.
    for (auto it = m.toggled.rbegin(); it != m.toggled.rend(); ++it)
      it->first.set_requires_grad(it->second);
    m.toggled.clear();
  }

  TrainerState* trainer_ = nullptr;
  detail::ManualOptimization* manual_ = nullptr;
  HParams hparams_;
};

}  // namespace lightning
