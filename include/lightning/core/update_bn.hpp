// PyTorch's torch.optim.swa_utils.update_bn: BatchNorm running statistics recomputed with
// one pass over a loader. Averaged weights (core/averaged_model.hpp) with buffers left
// out need it: the statistics of the models that were averaged do not fit their average.
#pragma once

#include <lightning/core/hooks.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning {

namespace detail {

// The input a batch holds: the batch itself, or the first element of a tuple or pair
// (PyTorch: `input[0]` of a list or tuple).
template <class B>
decltype(auto) batch_input(B&& batch) {
  if constexpr (requires { std::tuple_size<std::remove_cvref_t<B>>::value; })
    return std::get<0>(std::forward<B>(batch));
  else
    return std::forward<B>(batch);
}

// The module behind a module or a ModuleHolder (torch::nn::Sequential, Linear, ...).
template <class M>
torch::nn::Module& module_of(M& model) {
  if constexpr (std::derived_from<M, torch::nn::Module>)
    return model;
  else
    return *model.ptr();
}

// BatchNorm1d/2d/3d with their momentum set to None (a cumulative average) and the
// running statistics reset (unless a pass resumes with the statistics it had), restored
// as they were (momentum and train/eval mode) when it goes out of scope, also when the
// pass fails.
class BatchNormPass {
 public:
  explicit BatchNormPass(torch::nn::Module& model, bool reset_statistics = true)
      : model_(model), was_training_(model.is_training()), reset_(reset_statistics) {
    // The model itself need not be held by a shared_ptr (include_self would require it).
    const auto each = [&](torch::nn::Module* m) {
      take<torch::nn::BatchNorm1dImpl>(m);
      take<torch::nn::BatchNorm2dImpl>(m);
      take<torch::nn::BatchNorm3dImpl>(m);
    };
    each(&model);
    for (const auto& m : model.modules(/*include_self=*/false)) each(m.get());
    if (!restorers_.empty()) model.train();
  }
  BatchNormPass(const BatchNormPass&) = delete;
  BatchNormPass& operator=(const BatchNormPass&) = delete;
  ~BatchNormPass() {
    for (auto& restore : restorers_) restore();
    if (!restorers_.empty()) model_.train(was_training_);
  }
  [[nodiscard]] bool empty() const noexcept { return restorers_.empty(); }

 private:
  template <class BN>
  void take(torch::nn::Module* m) {
    auto* bn = dynamic_cast<BN*>(m);
    if (bn == nullptr) return;
    if (reset_) bn->reset_running_stats();
    // c10::optional on LibTorch 1.13, std::optional on 2.x: the options' own type.
    using Momentum = std::remove_cvref_t<decltype(bn->options.momentum())>;
    const Momentum momentum = bn->options.momentum();
    bn->options.momentum(Momentum{});  // None: a cumulative average
    restorers_.emplace_back([bn, momentum] { bn->options.momentum(momentum); });
  }

  torch::nn::Module& model_;
  bool was_training_;
  bool reset_;
  std::vector<std::function<void()>> restorers_;
};

// Whether a model holds a BatchNorm1d/2d/3d (Lightning's pl_module_contains_batch_norm).
inline bool contains_batch_norm(torch::nn::Module& model) {
  const auto is_bn = [](torch::nn::Module* m) {
    return dynamic_cast<torch::nn::BatchNorm1dImpl*>(m) != nullptr ||
           dynamic_cast<torch::nn::BatchNorm2dImpl*>(m) != nullptr ||
           dynamic_cast<torch::nn::BatchNorm3dImpl*>(m) != nullptr;
  };
  if (is_bn(&model)) return true;
  for (const auto& m : model.modules(/*include_self=*/false))
    if (is_bn(m.get())) return true;
  return false;
}

}  // namespace detail

// One pass over `loader` in training mode with every BatchNorm's statistics reset and
// accumulated as a plain average, calling `forward(input)` per batch (input moved to
// `device` when given). A model without BatchNorm is left alone, as in PyTorch.
template <class Loader, class Model, class Forward>
void update_bn(Loader&& loader, Model& model, Forward&& forward,
               std::optional<torch::Device> device = std::nullopt) {
  torch::NoGradGuard no_grad;
  detail::BatchNormPass pass(detail::module_of(model));
  if (pass.empty()) return;
  for (auto&& batch : loader) {
    torch::Tensor input = detail::batch_input(batch);
    if (device) input = input.to(*device);
    (void)forward(input);
  }
}

// The same with the model's own forward(input).
template <class Loader, class Model>
void update_bn(Loader&& loader, Model& model, std::optional<torch::Device> device = std::nullopt) {
  if constexpr (requires(torch::Tensor x) { model.forward(x); })
    update_bn(
        std::forward<Loader>(loader), model,
        [&](const torch::Tensor& x) { return model.forward(x); }, device);
  else if constexpr (requires(torch::Tensor x) { model->forward(x); })
    update_bn(
        std::forward<Loader>(loader), model,
        [&](const torch::Tensor& x) { return model->forward(x); }, device);
  else
    static_assert(detail::always_false<Model>,
                  "lightning: update_bn(loader, model) calls model.forward(input); this model "
                  "has no forward that takes a tensor: pass the call as a third argument, "
                  "update_bn(loader, model, [&](const torch::Tensor& x) { return ...; })");
}

}  // namespace lightning
