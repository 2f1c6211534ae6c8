// An average of a module's weights over training (PyTorch's
// torch.optim.swa_utils.AveragedModel): equal weights (SWA) or exponential decay (EMA).
// It keeps only tensors, not a second module: a LibTorch module cannot be deep-copied
// unless it is Cloneable, and the average is copied into the module it follows when it
// is used (the WeightAveraging callback swaps them around validation).
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/errors.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lightning {

// An averaging rule: the new average from the average so far, the module's current
// value and how many values the average holds (a 0-d int64 tensor), as PyTorch's
// `avg_fn(averaged_param, current_param, num_averaged)`.
template <class F>
concept AveragingFunction = std::copy_constructible<F> &&
    requires(const F& f, const torch::Tensor& averaged, const torch::Tensor& current,
             const torch::Tensor& n_averaged) {
  { f(averaged, current, n_averaged) } -> std::convertible_to<torch::Tensor>;
};

// Every value seen weighs the same (SWA; get_swa_avg_fn). Integer buffers such as
// BatchNorm's num_batches_tracked are averaged and truncated, as PyTorch does.
struct SwaAverage {
  torch::Tensor operator()(const torch::Tensor& averaged, const torch::Tensor& current,
                           const torch::Tensor& n_averaged) const {
    return averaged + (current - averaged) / (n_averaged + 1);
  }
};

// Exponential moving average (get_ema_avg_fn): decay * average + (1 - decay) * current.
struct EmaAverage {
  double decay = 0.999;
  torch::Tensor operator()(const torch::Tensor& averaged, const torch::Tensor& current,
                           const torch::Tensor&) const {
    return decay * averaged + (1.0 - decay) * current;
  }
};

struct AveragedModelOptions {
  // Where the average lives; unset: the device of the module's first parameter.
  std::optional<torch::Device> device = std::nullopt;
  // Average the buffers (BatchNorm's running statistics) too; false copies them from the
  // module at every update, and update_bn (core/update_bn.hpp) recomputes them.
  bool use_buffers = false;
};

template <AveragingFunction Average = SwaAverage>
class AveragedModel {
 public:
  // Starts from a copy of the module's parameters and buffers; the first update replaces
  // them (n_averaged is 0 until then).
  explicit AveragedModel(const torch::nn::Module& module, AveragedModelOptions options = {},
                         Average average = {})
      : average_(std::move(average)), use_buffers_(options.use_buffers) {
    torch::NoGradGuard no_grad;
    const auto params = module.named_parameters(/*recurse=*/true);
    const auto device = options.device      ? *options.device
                        : params.is_empty() ? torch::Device(torch::kCPU)
                                            : params[0].value().device();
    for (const auto& p : params)
      parameters_.emplace_back(p.key(), p.value().detach().to(device).clone());
    for (const auto& b : module.named_buffers(/*recurse=*/true))
      if (b.value().defined())
        buffers_.emplace_back(b.key(), b.value().detach().to(device).clone());
    n_averaged_ = torch::zeros({}, torch::dtype(torch::kLong).device(device));
  }

  // Folds the module's current values into the average (PyTorch's update_parameters).
  void update_parameters(const torch::nn::Module& module) {
    torch::NoGradGuard no_grad;
    auto params = tensors_of(module, /*buffers=*/false);
    auto buffers = tensors_of(module, /*buffers=*/true);
    const bool first = count_ == 0;  // counted on the host: no device sync per update
    const auto fold = [&](std::vector<Named>& averaged, std::vector<torch::Tensor>& current) {
      for (std::size_t i = 0; i < averaged.size(); ++i) {
        auto& a = averaged[i].second;
        const auto c = current[i].to(a.device());
        if (first)
          a.copy_(c);
        else
          a.copy_(average_(a, c, n_averaged_));
      }
    };
    fold(parameters_, params);
    if (use_buffers_) {
      fold(buffers_, buffers);
    } else {
      for (std::size_t i = 0; i < buffers_.size(); ++i)
        buffers_[i].second.copy_(buffers[i].to(buffers_[i].second.device()));
    }
    n_averaged_ += 1;
    ++count_;
  }

  // How many updates the average holds.
  [[nodiscard]] std::int64_t n_averaged() const noexcept { return count_; }

  // The averaged values under the module's names, parameters then buffers.
  using Named = std::pair<std::string, torch::Tensor>;
  [[nodiscard]] const std::vector<Named>& parameters() const noexcept { return parameters_; }
  [[nodiscard]] const std::vector<Named>& buffers() const noexcept { return buffers_; }

  // Writes the average into the module (parameters and buffers).
  void copy_to(torch::nn::Module& module) const {
    torch::NoGradGuard no_grad;
    each_pair(*this, module, [](const torch::Tensor& averaged, torch::Tensor& current) {
      current.copy_(averaged);
    });
  }
  // Writes the averaged parameters alone into the module (its buffers stay its own).
  void copy_parameters_to(torch::nn::Module& module) const {
    torch::NoGradGuard no_grad;
    auto params = tensors_of(module, /*buffers=*/false);
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(parameters_[i].second);
  }
  // Exchanges the module's values with the average: the module then holds the average,
  // and a second swap brings its own values back.
  void swap_with(torch::nn::Module& module) {
    torch::NoGradGuard no_grad;
    each_pair(*this, module, [](torch::Tensor& averaged, torch::Tensor& current) {
      auto held = averaged.clone();
      averaged.copy_(current);
      current.copy_(held);
    });
  }

  // PyTorch's AveragedModel.state_dict(): "n_averaged" and "module.<name>" for every
  // parameter and buffer, on the CPU.
  [[nodiscard]] c10::Dict<std::string, torch::Tensor> state_dict() const {
    c10::Dict<std::string, torch::Tensor> out;
    out.insert("n_averaged", n_averaged_.detach().to(torch::kCPU).clone());
    for (const auto* list : {&parameters_, &buffers_})
      for (const auto& [name, t] : *list)
        out.insert("module." + name, t.detach().to(torch::kCPU).clone());
    return out;
  }
  // Loads a state_dict() (every entry must be there, with its shape).
  void load_state_dict(const c10::Dict<std::string, torch::Tensor>& state,
                       const std::string& source) {
    torch::NoGradGuard no_grad;
    const auto entry = [&](const std::string& key, torch::Tensor& target) {
      if (!state.contains(key))
        throw CheckpointError("lightning: " + source + " has no entry \"" + key +
                              "\" of the averaged model");
      const auto& value = state.at(key);
      if (value.sizes() != target.sizes())
        throw CheckpointError("lightning: " + source + ": \"" + key + "\" has shape " +
                              c10::str(value.sizes()) + ", the averaged model's has " +
                              c10::str(target.sizes()));
      target.copy_(value);
    };
    entry("n_averaged", n_averaged_);
    for (auto* list : {&parameters_, &buffers_})
      for (auto& [name, t] : *list) entry("module." + name, t);
    count_ = n_averaged_.item<std::int64_t>();
  }
  // Loads the entries of a module's state_dict whose names the module has (PyTorch's
  // load_state_dict(strict=False)); n_averaged is left as it is.
  void load_module_values(const c10::Dict<std::string, torch::Tensor>& state) {
    torch::NoGradGuard no_grad;
    for (auto* list : {&parameters_, &buffers_})
      for (auto& [name, t] : *list)
        if (state.contains(name) && state.at(name).sizes() == t.sizes()) t.copy_(state.at(name));
  }

 private:
  std::vector<torch::Tensor> tensors_of(const torch::nn::Module& module, bool buffers) const {
    std::vector<torch::Tensor> out;
    const auto& mine = buffers ? buffers_ : parameters_;
    if (buffers) {
      for (const auto& b : module.buffers(true))
        if (b.defined()) out.push_back(b.detach());
    } else {
      for (const auto& p : module.parameters(true)) out.push_back(p.detach());
    }
    if (out.size() != mine.size())
      throw std::invalid_argument(
          "lightning: AveragedModel follows a module with " + std::to_string(mine.size()) + " " +
          (buffers ? "buffers" : "parameters") + ", this one has " + std::to_string(out.size()) +
          ": update and copy the average with the module it was made from");
    return out;
  }
  // f(averaged, current) for every parameter, then every buffer; Self is const where
  // only the module changes.
  template <class Self, class F>
  static void each_pair(Self& self, torch::nn::Module& module, F&& f) {
    auto params = self.tensors_of(module, false);
    auto buffers = self.tensors_of(module, true);
    for (std::size_t i = 0; i < params.size(); ++i) f(self.parameters_[i].second, params[i]);
    for (std::size_t i = 0; i < buffers.size(); ++i) f(self.buffers_[i].second, buffers[i]);
  }

  Average average_;
  bool use_buffers_;
  std::vector<Named> parameters_;
  std::vector<Named> buffers_;
  torch::Tensor n_averaged_;  // on the average's device, for the averaging function
  std::int64_t count_ = 0;    // the same count on the host
};

}  // namespace lightning
