// torch.amp.GradScaler for C++: float16 gradients underflow, so the loss is multiplied by
// a scale before backward and the gradients divided by it before the step; a step whose
// gradients hold an inf or a NaN is skipped and the scale backed off, and after
// growth_interval steps in a row without one the scale grows. The same arithmetic as
// Python's (ATen's _amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_,
// the reciprocal taken in float64), the same state_dict, step for step the same scale,
// growth tracker and skipped steps (tests/policies/grad_scaler_test.cpp runs Python's
// beside it). LibTorch before 2.3 has these kernels on CUDA only; on its CPU the same
// arithmetic runs as tensor operations.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/torch_version.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace lightning {

// Python's defaults (torch.amp.GradScaler(init_scale=2.**16, growth_factor=2.0,
// backoff_factor=0.5, growth_interval=2000)).
struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
};

namespace detail {
// Whether ATen has the scaler's kernels for this device (CPU ones arrived in 2.3).
inline bool amp_kernels_on(c10::Device device) {
  return device.is_cuda() || LIGHTNING_TORCH_AT_LEAST(2, 3);
}

// _amp_foreach_non_finite_check_and_unscale_ as tensor operations: found_inf is set to 1
// when a gradient holds a non-finite value; every gradient is multiplied by inv_scale.
inline void unscale_with_tensor_ops(const std::vector<torch::Tensor>& grads,
                                    torch::Tensor& found_inf, const torch::Tensor& inv_scale) {
  torch::NoGradGuard no_grad;
  for (const auto& g : grads) {
    if (!torch::isfinite(g).all().item<bool>()) found_inf.fill_(1.0);
    g.mul_(inv_scale);  // a 0-d float32 operand: read in the kernel's opmath, as ATen's is
  }
}

// _amp_update_scale_ as host arithmetic: the kernel's float scale times a double factor,
// rounded to float.
inline void update_scale_with_tensor_ops(torch::Tensor& scale, torch::Tensor& growth_tracker,
                                         const torch::Tensor& found_inf, double growth_factor,
                                         double backoff_factor, std::int64_t growth_interval) {
  const float current = scale.item<float>();
  if (found_inf.item<float>() != 0.0f) {
    scale.fill_(static_cast<float>(static_cast<double>(current) * backoff_factor));
    growth_tracker.fill_(0);
    return;
  }
  const auto successful = growth_tracker.item<std::int32_t>() + 1;
  if (successful == growth_interval) {
    const auto grown = static_cast<float>(static_cast<double>(current) * growth_factor);
    if (std::isfinite(grown)) scale.fill_(grown);
    growth_tracker.fill_(0);
  } else {
    growth_tracker.fill_(successful);
  }
}
}  // namespace detail

class GradScaler {
 public:
  // Where each optimizer is between two update() calls (Python's OptState).
  enum class Stage { ready, unscaled, stepped };

  explicit GradScaler(GradScalerOptions options = {}) : o_(options) {
    if (!(o_.init_scale > 0.0) || !std::isfinite(o_.init_scale))
      throw_bad_option("GradScalerOptions", "init_scale", std::to_string(o_.init_scale),
                       "must be a finite number > 0");
    if (!(o_.growth_factor > 1.0))
      throw_bad_option("GradScalerOptions", "growth_factor", std::to_string(o_.growth_factor),
                       "must be > 1 (torch.amp.GradScaler's rule)");
    if (!(o_.backoff_factor < 1.0) || !(o_.backoff_factor > 0.0))
      throw_bad_option("GradScalerOptions", "backoff_factor", std::to_string(o_.backoff_factor),
                       "must be in (0, 1) (torch.amp.GradScaler's rule)");
    if (o_.growth_interval <= 0)
      throw_bad_option("GradScalerOptions", "growth_interval", std::to_string(o_.growth_interval),
                       "must be > 0");
  }

  // The loss times the scale (backward of it gives scaled gradients). The scale lives on
  // the loss's device from the first call on.
  [[nodiscard]] torch::Tensor scale(const torch::Tensor& loss) {
    if (!scale_.defined()) init(loss.device());
    return loss * (loss.device() == scale_.device() ? scale_ : scale_.to(loss.device()));
  }

  // Divides the gradients of the optimizer's parameters by the scale, in place, and
  // records whether any was non-finite. Once per optimizer between update() calls, and
  // not after step(), as in Python.
  void unscale_(torch::optim::Optimizer& optimizer) {
    auto& state = state_of(optimizer);
    if (state.stage == Stage::unscaled)
      throw std::runtime_error(
          "lightning: GradScaler::unscale_ has already been called on this optimizer since the "
          "last update()");
    if (state.stage == Stage::stepped)
      throw std::runtime_error("lightning: GradScaler::unscale_ is called after step()");
    require_scale("unscale_");
    // 1 / scale in float64, then float32: Python's `_scale.double().reciprocal().float()`.
    inv64_.copy_(scale_);
    inv64_.reciprocal_();
    inv_scale_.copy_(inv64_);
    state.checked = unscale_grads(optimizer, inv_scale_, state.found_inf, /*allow_fp16=*/false);
    state.stage = Stage::unscaled;
  }

  // Unscales (unless unscale_ did), then steps the optimizer unless a gradient was
  // non-finite. Returns whether it stepped. Reads one number from the device, as
  // Python's does.
  bool step(torch::optim::Optimizer& optimizer) {
    auto& state = state_of(optimizer);
    if (state.stage == Stage::stepped)
      throw std::runtime_error(
          "lightning: GradScaler::step has already been called on this optimizer since the last "
          "update()");
    if (state.stage == Stage::ready) unscale_(optimizer);
    if (!state.checked)
      throw std::runtime_error(
          "lightning: GradScaler::step found no inf checks for this optimizer: none of its "
          "parameters has a gradient (was backward called on a loss that reaches them?)");
    const bool finite = state.found_inf.item<float>() == 0.0f;
    if (finite) optimizer.step();
    state.stage = Stage::stepped;
    return finite;
  }

  // Backs the scale off if any optimizer stepped since the last update saw a non-finite
  // gradient, else counts a good step (and grows the scale every growth_interval of
  // them). Then every optimizer is ready again.
  void update() {
    require_scale("update");
    bool any = false;
    for (auto& s : states_) {
      if (s.stage == Stage::ready) continue;
      if (!any)
        found_inf_total_.copy_(s.found_inf);
      else
        found_inf_total_.add_(s.found_inf);
      any = true;
    }
    if (!any)
      throw std::runtime_error(
          "lightning: GradScaler::update found no inf checks: call step() (or unscale_()) on an "
          "optimizer first");
    if (detail::amp_kernels_on(scale_.device()))
      at::_amp_update_scale_(scale_, growth_tracker_, found_inf_total_, o_.growth_factor,
                             o_.backoff_factor, o_.growth_interval);
    else
      detail::update_scale_with_tensor_ops(scale_, growth_tracker_, found_inf_total_,
                                           o_.growth_factor, o_.backoff_factor, o_.growth_interval);
    for (auto& s : states_) s.stage = Stage::ready;
  }

  // The current scale (a device read) and growth tracker; before the first scale()
  // call, the initial values.
  [[nodiscard]] double get_scale() const {
    return scale_.defined() ? static_cast<double>(scale_.item<float>()) : o_.init_scale;
  }
  [[nodiscard]] std::int64_t growth_tracker() const {
    return growth_tracker_.defined() ? growth_tracker_.item<std::int32_t>() : init_tracker_;
  }
  [[nodiscard]] const GradScalerOptions& options() const noexcept { return o_; }
  // Whether some optimizer's gradients were unscaled and it has not stepped yet.
  [[nodiscard]] bool any_unscaled() const noexcept {
    return std::any_of(states_.begin(), states_.end(),
                       [](const OptimizerState& s) { return s.stage == Stage::unscaled; });
  }
  [[nodiscard]] Stage stage(const torch::optim::Optimizer& optimizer) const noexcept {
    for (const auto& s : states_)
      if (s.optimizer == &optimizer) return s.stage;
    return Stage::ready;
  }

  // Python's state_dict: {"scale", "growth_factor", "backoff_factor", "growth_interval",
  // "_growth_tracker"}; torch.amp.GradScaler.load_state_dict reads it as it is.
  [[nodiscard]] CheckpointDict state_dict() const {
    auto d = make_checkpoint();
    d.insert("scale", get_scale());
    d.insert("growth_factor", o_.growth_factor);
    d.insert("backoff_factor", o_.backoff_factor);
    d.insert("growth_interval", o_.growth_interval);
    d.insert("_growth_tracker", growth_tracker());
    return d;
  }
  void load_state_dict(const CheckpointDict& d) {
    if (d.empty())
      throw std::runtime_error(
          "lightning: GradScaler::load_state_dict was given an empty state (one saved from a "
          "disabled scaler?)");
    for (const char* key :
         {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"})
      if (!d.contains(key))
        throw std::runtime_error(std::string("lightning: a GradScaler state has no \"") + key +
                                 "\" entry");
    o_.init_scale = d.at("scale").toDouble();
    o_.growth_factor = d.at("growth_factor").toDouble();
    o_.backoff_factor = d.at("backoff_factor").toDouble();
    o_.growth_interval = d.at("growth_interval").toInt();
    init_tracker_ = d.at("_growth_tracker").toInt();
    if (scale_.defined()) {
      scale_.fill_(o_.init_scale);
      growth_tracker_.fill_(init_tracker_);
    }
  }

 private:
  struct OptimizerState {
    const torch::optim::Optimizer* optimizer;
    Stage stage = Stage::ready;
    torch::Tensor found_inf;  // on the scale's device; reused, zeroed at each unscale
    bool checked = false;     // whether the last unscale saw any gradient
  };

  void init(c10::Device device) {
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(device);
    scale_ = torch::full({}, o_.init_scale, f32);
    growth_tracker_ = torch::full({}, init_tracker_, f32.dtype(torch::kInt));
    inv_scale_ = torch::empty({}, f32);
    inv64_ = torch::empty({}, f32.dtype(torch::kDouble));
    found_inf_total_ = torch::zeros({}, f32);
    for (auto& s : states_) s.found_inf = torch::zeros({}, f32);
  }
  void require_scale(const char* call) const {
    if (!scale_.defined())
      throw std::runtime_error(std::string("lightning: GradScaler::") + call +
                               " before any scale(loss): the scaler has scaled nothing yet");
  }
  OptimizerState& state_of(const torch::optim::Optimizer& optimizer) {
    for (auto& s : states_)
      if (s.optimizer == &optimizer) return s;
    auto& s = states_.emplace_back(OptimizerState{&optimizer, Stage::ready, {}, false});
    if (scale_.defined()) s.found_inf = torch::zeros({}, scale_.options());
    return s;
  }

  // Python's _unscale_grads_: gradients grouped by device and dtype, one kernel call per
  // group, each group with its own copies of inv_scale and found_inf on its device.
  // Returns whether there was any gradient.
  bool unscale_grads(torch::optim::Optimizer& optimizer, const torch::Tensor& inv_scale,
                     torch::Tensor& found_inf, bool allow_fp16) {
    torch::NoGradGuard no_grad;
    found_inf.zero_();
    grads_.clear();
    for (auto& group : optimizer.param_groups())
      for (auto& p : group.params()) {
        const auto& g = p.grad();
        if (!g.defined()) continue;
        if (!allow_fp16 && g.scalar_type() == torch::kHalf)
          throw std::invalid_argument(
              "lightning: GradScaler cannot unscale float16 gradients: keep the parameters in "
              "float32 (F16Mixed does), not float16 (F16True takes no scaler)");
        if (g.is_sparse())
          throw std::invalid_argument("lightning: GradScaler does not unscale sparse gradients");
        grads_.push_back(g);
      }
    const auto same_kind = [](const torch::Tensor& a, const torch::Tensor& b) {
      return a.device() == b.device() && a.scalar_type() == b.scalar_type();
    };
    // Most optimizers hold one kind of gradient: one call, no sorting.
    const bool one_kind = std::all_of(grads_.begin(), grads_.end(), [&](const torch::Tensor& g) {
      return same_kind(g, grads_.front());
    });
    if (!one_kind)
      std::stable_sort(grads_.begin(), grads_.end(), [](const auto& a, const auto& b) {
        return std::tuple(a.device().type(), a.device().index(), a.scalar_type()) <
               std::tuple(b.device().type(), b.device().index(), b.scalar_type());
      });
    for (auto first = grads_.begin(); first != grads_.end();) {
      auto last = std::find_if_not(first, grads_.end(),
                                   [&](const torch::Tensor& g) { return same_kind(g, *first); });
      group_.assign(first, last);
      const auto device = first->device();
      if (device == found_inf.device()) {
        unscale_group(group_, found_inf, inv_scale);
      } else {
        auto local_found = torch::zeros({}, found_inf.options().device(device));
        unscale_group(group_, local_found, inv_scale.to(device));
        found_inf.add_(local_found.to(found_inf.device()));
      }
      first = last;
    }
    const bool any = !grads_.empty();
    grads_.clear();  // no reference outlives the call: the next zero_grad frees them
    group_.clear();
    return any;
  }
  static void unscale_group(const std::vector<torch::Tensor>& grads, torch::Tensor& found_inf,
                            const torch::Tensor& inv_scale) {
    if (detail::amp_kernels_on(found_inf.device()))
      at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
    else
      detail::unscale_with_tensor_ops(grads, found_inf, inv_scale);
  }

  GradScalerOptions o_;
  std::int64_t init_tracker_ = 0;
  torch::Tensor scale_, growth_tracker_;      // 0-d float32, int32 on the device
  torch::Tensor inv_scale_, inv64_;           // reused at every unscale: no allocation
  torch::Tensor found_inf_total_;             // the sum update() reads
  std::vector<OptimizerState> states_;        // one per optimizer seen, by address
  std::vector<torch::Tensor> grads_, group_;  // reused buffers
};

}  // namespace lightning
