// Precision policies: the numeric format of parameters and inputs, autocast, backward
// and the optimizer step (the Precision concept, core/concepts.hpp). FullPrecision holds
// the module and the inputs in one dtype (F32, F64, and the true-half BF16True and
// F16True); MixedPrecision keeps float32 parameters and runs the forward under autocast
// (BF16Mixed; F16Mixed adds a gradient scaler). Lightning's precision flag in brackets.
#pragma once

#include <lightning/core/batch.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/policies/autocast.hpp>
#include <lightning/policies/grad_scaler.hpp>

#include <torch/torch.h>

#include <stdexcept>
#include <string_view>
#include <type_traits>

namespace lightning::precision {

// Whether a precision can run on a device of this type. A precision that runs
// everywhere need not say; one that cannot (F16Mixed off CUDA) declares
// `static constexpr bool supports(c10::DeviceType)`, which the Trainer and Fabric check at
// compile time where the accelerator's device type is known, else at launch.
template <class P>
constexpr bool supports_device(c10::DeviceType type) {
  if constexpr (requires { P::supports(type); })
    return P::supports(type);
  else
    return true;
}

// Parameters and floating inputs in one dtype; no autocast, no scaling, every step taken.
// Outside float32, tensors a forward creates take the dtype too (the default dtype is
// set around each forward, as Lightning's HalfPrecision and DoublePrecision do).
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
  [[nodiscard]] auto autocast(c10::Device) const {
    if constexpr (DType == c10::kFloat)
      return NoScope{};
    else
      return DefaultDtypeScope(DType);
  }
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

// bfloat16 parameters and inputs, no float32 copy, no scaler (Lightning's "bf16-true").
struct BF16True : FullPrecision<c10::kBFloat16> {
  static constexpr std::string_view name = "bf16-true";
};

// float16 parameters and inputs, no float32 copy, no scaler (Lightning's "16-true").
struct F16True : FullPrecision<c10::kHalf> {
  static constexpr std::string_view name = "16-true";
};

// Float32 parameters and optimizer; the forward (training, evaluation and prediction
// steps) under autocast to AutocastDType. With a scaler, the loss is scaled before
// backward, gradients are unscaled once per optimizer step (before clipping: the loop
// calls unscale_gradients first), and a step with non-finite gradients is skipped
// (optimizer_step returns false) with the scale updated after every optimizer step, as
// Lightning's MixedPrecision plugin does.
template <c10::ScalarType AutocastDType, bool Scaled>
class MixedPrecision {
 public:
  static constexpr c10::ScalarType param_dtype = c10::kFloat;
  static constexpr c10::ScalarType autocast_dtype = AutocastDType;
  static constexpr bool scaled = Scaled;

  MixedPrecision() = default;
  explicit MixedPrecision(GradScalerOptions options) requires Scaled : scaler_(options) {}

  void convert_module(torch::nn::Module&) noexcept {}
  [[nodiscard]] torch::Tensor convert_input(const torch::Tensor& t) const { return t; }
  template <class B>
  [[nodiscard]] B convert_batch(B batch) const {
    return batch;
  }
  [[nodiscard]] AutocastScope autocast(c10::Device device) const {
    return AutocastScope(device.type(), AutocastDType);
  }
  // A backward between an unscale (clipping) and that optimizer's step would add scaled
  // gradients to unscaled ones: refused, where Python's scaler would step on the mixture
  // or raise at the next unscale_.
  void backward(const torch::Tensor& loss) {
    if constexpr (Scaled) {
      if (scaler_.any_unscaled())
        throw std::logic_error(
            "lightning: backward was called after the gradients were unscaled (clip_gradients) "
            "and before the optimizer stepped: under a gradient scaler, clip only right before "
            "opt.step(), once the last backward of the step is done");
      scaler_.scale(loss).backward();
    } else {
      loss.backward();
    }
  }
  // Idempotent within a step: clipping and the step both ask, gradients are divided once.
  void unscale_gradients(torch::optim::Optimizer& optimizer) {
    if constexpr (Scaled)
      if (scaler_.stage(optimizer) == GradScaler::Stage::ready) scaler_.unscale_(optimizer);
  }
  bool optimizer_step(torch::optim::Optimizer& optimizer) {
    if constexpr (Scaled) {
      const bool stepped = scaler_.step(optimizer);
      scaler_.update();
      return stepped;
    } else {
      optimizer.step();
      return true;
    }
  }
  torch::Tensor optimizer_step(torch::optim::Optimizer& optimizer,
                               const torch::optim::Optimizer::LossClosure& closure) {
    if constexpr (Scaled)
      throw std::invalid_argument(
          "lightning: an optimizer that steps with a closure (LBFGS) cannot run under a gradient "
          "scaler (F16Mixed), as in Lightning: use BF16Mixed or full precision");
    else
      return optimizer.step(closure);
  }
  // The scaler's state in torch.amp.GradScaler's form; nothing without a scaler.
  [[nodiscard]] CheckpointDict state_dict() const {
    if constexpr (Scaled)
      return scaler_.state_dict();
    else
      return make_checkpoint();
  }
  void load_state_dict(const CheckpointDict& state) {
    if constexpr (Scaled)
      if (!state.empty()) scaler_.load_state_dict(state);
  }
  [[nodiscard]] GradScaler& scaler() noexcept requires Scaled { return scaler_; }

 private:
  struct NoScaler {};
  [[no_unique_address]] std::conditional_t<Scaled, GradScaler, NoScaler> scaler_{};
};

// Autocast to bfloat16 on the CPU or CUDA, float32 parameters, no scaler (Lightning's
// "bf16-mixed").
struct BF16Mixed : MixedPrecision<c10::kBFloat16, false> {
  static constexpr std::string_view name = "bf16-mixed";
};

// Autocast to float16 with a gradient scaler, on CUDA only (Lightning's "16-mixed";
// Lightning turns it into bf16-mixed on the CPU with a warning, here it does not compile).
struct F16Mixed : MixedPrecision<c10::kHalf, true> {
  static constexpr std::string_view name = "16-mixed";
  using MixedPrecision::MixedPrecision;
  static constexpr bool supports(c10::DeviceType type) { return type == c10::kCUDA; }
};

static_assert(Precision<F32> && Precision<F64> && Precision<BF16True> && Precision<F16True>);
static_assert(Precision<BF16Mixed> && Precision<F16Mixed>);

}  // namespace lightning::precision
