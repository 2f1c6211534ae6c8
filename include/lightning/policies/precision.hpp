// Precision policies: the numeric format of parameters and inputs, autocast, backward
// and the optimizer step. Full-precision policies share FullPrecision and differ only
// in their dtype; mixed-precision policies (a later release) refine the same contract
// with an autocast dtype and a gradient scaler.
#pragma once

#include <lightning/core/batch.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>

#include <torch/torch.h>

#include <string_view>

namespace lightning::precision {

// Parameters and floating inputs in one dtype; no autocast, no scaling, every step taken.
template <c10::ScalarType DType>
struct FullPrecision {
  static constexpr c10::ScalarType param_dtype = DType;

  void convert_module(torch::nn::Module& module) {
    if constexpr (DType != c10::kFloat) module.to(DType);
  }
  // Floating tensors of a batch take the parameter dtype; integer tensors (labels) do not.
  [[nodiscard]] torch::Tensor convert_input(const torch::Tensor& t) const {
    if constexpr (DType == c10::kFloat) {
      return t;  // LibTorch's default: inputs already match, nothing to check per step
    } else {
      return t.defined() && t.is_floating_point() && t.scalar_type() != DType ? t.to(DType) : t;
    }
  }
  // Takes the batch by value: a batch fresh from the transfer is moved through, not copied.
  template <class B>
  [[nodiscard]] B convert_batch(B batch) const {
    if constexpr (DType == c10::kFloat)
      return batch;
    else
      return map_tensors(batch, [this](const torch::Tensor& t) { return convert_input(t); });
  }
  [[nodiscard]] NoScope autocast(c10::Device) const noexcept { return {}; }
  void backward(const torch::Tensor& loss) { loss.backward(); }
  void unscale_gradients(torch::optim::Optimizer&) noexcept {}
  bool optimizer_step(torch::optim::Optimizer& optimizer) {
    optimizer.step();
    return true;
  }
  torch::Tensor optimizer_step(torch::optim::Optimizer& optimizer,
                               const torch::optim::Optimizer::LossClosure& closure) {
    return optimizer.step(closure);
  }
  // Nothing to save: the dtype is the type's.
  [[nodiscard]] CheckpointDict state_dict() const { return make_checkpoint(); }
  void load_state_dict(const CheckpointDict&) noexcept {}
};

// 32-bit floating point (Lightning's precision="32-true"), the default.
struct F32 : FullPrecision<c10::kFloat> {
  static constexpr std::string_view name = "32-true";
};

// 64-bit floating point (Lightning's precision="64-true"): module and inputs in double.
struct F64 : FullPrecision<c10::kDouble> {
  static constexpr std::string_view name = "64-true";
};

static_assert(Precision<F32> && Precision<F64>);

}  // namespace lightning::precision
