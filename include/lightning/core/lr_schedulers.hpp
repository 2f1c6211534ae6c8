// Learning-rate schedules with PyTorch's formulas, for LibTorch 1.13 and 2.x alike.
//
// LibTorch ships only StepLR (which decays one step later than PyTorch's) and, from 2.1,
// ReduceLROnPlateau. Here a schedule is split in two:
//   - a formula: an aggregate with designated-initializer options and
//     `double lr_at(int64_t step, double base_lr) const` (PyTorch's closed form);
//   - `Scheduler<Formula>`: binds a formula to an optimizer's param groups, remembers the
//     base learning rates and the step count, and writes each group's lr on step().
// ReduceLROnPlateau reacts to a metric instead and is a scheduler of its own.
// All state is a few numbers: checkpointing a scheduler is saving its step and base lrs.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace lightning::lr {

// The learning rate of every param group of an optimizer.
inline std::vector<double> group_lrs(const torch::optim::Optimizer& optimizer) {
  std::vector<double> out;
  for (const auto& g : optimizer.param_groups()) out.push_back(g.options().get_lr());
  return out;
}

// A formula: the lr at a step, given the group's base lr.
template <class F>
concept Formula = requires(const F& f, std::int64_t step, double base) {
  { f.lr_at(step, base) } -> std::convertible_to<double>;
};

// Decays by gamma every step_size steps (torch.optim.lr_scheduler.StepLR).
struct StepLR {
  std::int64_t step_size = 1;
  double gamma = 0.1;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    return base * std::pow(gamma, static_cast<double>(step / step_size));
  }
};

// Decays by gamma at each milestone (MultiStepLR).
struct MultiStepLR {
  std::vector<std::int64_t> milestones;
  double gamma = 0.1;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    const auto passed =
        std::upper_bound(milestones.begin(), milestones.end(), step) - milestones.begin();
    return base * std::pow(gamma, static_cast<double>(passed));
  }
};

// Decays by gamma every step (ExponentialLR).
struct ExponentialLR {
  double gamma = 0.1;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    return base * std::pow(gamma, static_cast<double>(step));
  }
};

// Half a cosine from the base lr down to eta_min over t_max steps (CosineAnnealingLR).
struct CosineAnnealingLR {
  std::int64_t t_max = 1;
  double eta_min = 0.0;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    return eta_min + (base - eta_min) *
                         (1.0 + std::cos(std::numbers::pi * static_cast<double>(step) /
                                         static_cast<double>(t_max))) /
                         2.0;
  }
};

// Scales the lr linearly from start_factor to end_factor over total_iters steps (LinearLR).
struct LinearLR {
  double start_factor = 1.0 / 3.0;
  double end_factor = 1.0;
  std::int64_t total_iters = 5;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    const double t =
        static_cast<double>(std::min(step, total_iters)) / static_cast<double>(total_iters);
    return base * (start_factor + (end_factor - start_factor) * t);
  }
};

// The 1cycle policy (OneCycleLR): from max_lr/div_factor up to max_lr over pct_start of
// total_steps, then down to max_lr/(div_factor*final_div_factor); three_phase comes back
// to the initial lr first. The lr does not depend on the optimizer's base lr. Momentum is
// not cycled (PyTorch's cycle_momentum=False).
struct OneCycleLR {
  enum class Anneal { cos, linear };
  double max_lr = 0.1;
  std::int64_t total_steps = 100;
  double pct_start = 0.3;
  Anneal anneal_strategy = Anneal::cos;
  double div_factor = 25.0;
  double final_div_factor = 1e4;
  bool three_phase = false;

  [[nodiscard]] double lr_at(std::int64_t step, double /*base*/) const {
    const double initial = max_lr / div_factor, min_lr = initial / final_div_factor;
    const double total = static_cast<double>(total_steps);
    struct Phase {
      double end_step, start_lr, end_lr;
    };
    std::vector<Phase> phases;
    if (three_phase) {
      phases = {{pct_start * total - 1, initial, max_lr},
                {2 * pct_start * total - 2, max_lr, initial},
                {total - 1, initial, min_lr}};
    } else {
      phases = {{pct_start * total - 1, initial, max_lr}, {total - 1, max_lr, min_lr}};
    }
    double start_step = 0;
    const double s = static_cast<double>(step);
    for (std::size_t i = 0; i < phases.size(); ++i) {
      const auto& p = phases[i];
      if (s <= p.end_step || i + 1 == phases.size()) {
        const double pct = (s - start_step) / (p.end_step - start_step);
        return anneal_strategy == Anneal::cos
                   ? p.end_lr +
                         (p.start_lr - p.end_lr) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0)
                   : (p.end_lr - p.start_lr) * pct + p.start_lr;
      }
      start_step = p.end_step;
    }
    return min_lr;
  }
};

// Linear warm-up from 0 to the base lr over warmup_steps, then half a cosine down to
// 0 at total_steps (the schedule of transformers' get_cosine_schedule_with_warmup).
struct WarmupCosine {
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    if (step < warmup_steps)
      return base * static_cast<double>(step) /
             static_cast<double>(std::max<std::int64_t>(1, warmup_steps));
    const double progress =
        static_cast<double>(step - warmup_steps) /
        static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup_steps));
    return base * std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  }
};

// base lr times a user function of the step (LambdaLR). F: double(int64_t).
template <class F>
struct LambdaLR {
  F lr_lambda;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    return base * static_cast<double>(lr_lambda(step));
  }
};
template <class F>
LambdaLR(F) -> LambdaLR<F>;

// Several multiplicative schedules applied together (ChainedScheduler): the lr is the
// base lr times each formula's factor at the same step.
template <Formula... Fs>
struct Chained {
  std::tuple<Fs...> formulas;
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    return std::apply([&](const auto&... f) { return (base * ... * f.lr_at(step, 1.0)); },
                      formulas);
  }
};
template <Formula... Fs>
Chained(std::tuple<Fs...>) -> Chained<Fs...>;

// One schedule after another (SequentialLR): formula i runs from milestone i-1, with its
// step counted from that milestone.
template <Formula... Fs>
struct Sequential {
  std::tuple<Fs...> formulas;
  std::vector<std::int64_t> milestones;  // sizeof...(Fs) - 1 ascending steps
  [[nodiscard]] double lr_at(std::int64_t step, double base) const {
    if (milestones.size() + 1 != sizeof...(Fs))
      throw std::invalid_argument(
          "lightning: lr::Sequential needs one milestone fewer than formulas");
    const auto idx = static_cast<std::size_t>(
        std::upper_bound(milestones.begin(), milestones.end(), step) - milestones.begin());
    const std::int64_t offset = idx == 0 ? 0 : milestones[idx - 1];
    double lr = base;
    std::size_t i = 0;
    std::apply(
        [&](const auto&... f) { ((i++ == idx ? (lr = f.lr_at(step - offset, base)) : 0.0), ...); },
        formulas);
    return lr;
  }
};
template <Formula... Fs>
Sequential(std::tuple<Fs...>, std::vector<std::int64_t>) -> Sequential<Fs...>;

// Binds a formula to an optimizer: attach() records the base lrs and sets step 0's lr;
// each step() advances one step and sets the lr of every param group.
template <Formula F>
class Scheduler {
 public:
  using formula_type = F;

  explicit Scheduler(F formula) : formula_(std::move(formula)) {}

  void attach(torch::optim::Optimizer& optimizer) {
    base_lrs_ = group_lrs(optimizer);
    step_ = 0;
    apply(optimizer);
  }
  void step(torch::optim::Optimizer& optimizer) {
    ++step_;
    apply(optimizer);
  }
  [[nodiscard]] std::int64_t last_step() const noexcept { return step_; }
  [[nodiscard]] const std::vector<double>& base_lrs() const noexcept { return base_lrs_; }
  [[nodiscard]] const F& formula() const noexcept { return formula_; }
  // Restores a position (checkpoints): the lr of `step` is applied at once.
  void restore(torch::optim::Optimizer& optimizer, std::vector<double> base_lrs,
               std::int64_t step) {
    base_lrs_ = std::move(base_lrs);
    step_ = step;
    apply(optimizer);
  }

 private:
  void apply(torch::optim::Optimizer& optimizer) {
    auto& groups = optimizer.param_groups();
    if (groups.size() != base_lrs_.size())
      throw std::logic_error(
          "lightning: the optimizer's param groups changed after its scheduler was attached");
    for (std::size_t i = 0; i < groups.size(); ++i)
      groups[i].options().set_lr(formula_.lr_at(step_, base_lrs_[i]));
  }

  F formula_;
  std::vector<double> base_lrs_;
  std::int64_t step_ = 0;
};

// Lowers the lr by `factor` when a monitored metric stops improving (ReduceLROnPlateau),
// with PyTorch's rules for mode, threshold (relative or absolute), patience, cooldown,
// min_lr and eps.
struct PlateauOptions {
  enum class Mode { min, max };
  enum class ThresholdMode { rel, abs };
  Mode mode = Mode::min;
  double factor = 0.1;
  std::int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::rel;
  std::int64_t cooldown = 0;
  double min_lr = 0.0;
  double eps = 1e-8;
};

class ReduceLROnPlateau {
 public:
  using Options = PlateauOptions;
  using Mode = PlateauOptions::Mode;
  using ThresholdMode = PlateauOptions::ThresholdMode;

  explicit ReduceLROnPlateau(Options options = {}) : o_(options) {
    if (!(o_.factor < 1.0))
      throw std::invalid_argument("lightning: ReduceLROnPlateau factor = " +
                                  std::to_string(o_.factor) + " is invalid: it must be < 1.0");
    reset();
  }

  void attach(torch::optim::Optimizer&) { reset(); }

  // One observation of the metric (PyTorch's scheduler.step(metric)).
  void step(torch::optim::Optimizer& optimizer, double metric) {
    ++last_step_;
    if (better(metric)) {
      best_ = metric;
      bad_ = 0;
    } else {
      ++bad_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      bad_ = 0;
    }
    if (bad_ > o_.patience) {
      for (auto& g : optimizer.param_groups()) {
        const double old_lr = g.options().get_lr();
        const double new_lr = std::max(old_lr * o_.factor, o_.min_lr);
        if (old_lr - new_lr > o_.eps) g.options().set_lr(new_lr);
      }
      cooldown_counter_ = o_.cooldown;
      bad_ = 0;
    }
  }

  [[nodiscard]] double best() const noexcept { return best_; }
  [[nodiscard]] std::int64_t num_bad_epochs() const noexcept { return bad_; }
  [[nodiscard]] const Options& options() const noexcept { return o_; }

  // What a checkpoint saves: everything step() depends on besides the optimizer's lrs.
  struct State {
    double best;
    std::int64_t num_bad_epochs, cooldown_counter, last_step;
  };
  [[nodiscard]] State state() const noexcept {
    return {best_, bad_, cooldown_counter_, last_step_};
  }
  void restore(const State& s) noexcept {
    best_ = s.best;
    bad_ = s.num_bad_epochs;
    cooldown_counter_ = s.cooldown_counter;
    last_step_ = s.last_step;
  }

 private:
  void reset() {
    best_ = o_.mode == Mode::min ? std::numeric_limits<double>::infinity()
                                 : -std::numeric_limits<double>::infinity();
    bad_ = 0;
    cooldown_counter_ = 0;
    last_step_ = 0;
  }
  [[nodiscard]] bool better(double a) const {
    if (o_.mode == Mode::min)
      return o_.threshold_mode == ThresholdMode::rel ? a < best_ * (1.0 - o_.threshold)
                                                     : a < best_ - o_.threshold;
    return o_.threshold_mode == ThresholdMode::rel ? a > best_ * (o_.threshold + 1.0)
                                                   : a > best_ + o_.threshold;
  }

  Options o_;
  double best_ = 0;
  std::int64_t bad_ = 0, cooldown_counter_ = 0, last_step_ = 0;
};

// Anneals each param group from its lr to a constant swa_lr over anneal_epochs steps, then
// holds it (PyTorch's torch.optim.swa_utils.SWALR, which StochasticWeightAveraging puts
// in place of the module's schedulers). As PyTorch's, every step recovers the lr it
// started from out of the group's current lr, so it continues from a restored optimizer.
struct SWALROptions {
  enum class Anneal { cos, linear };
  std::vector<double> swa_lrs = {};  // one for every param group, or one per group
  std::int64_t anneal_epochs = 10;   // 0: swa_lr from the first step
  Anneal anneal_strategy = Anneal::cos;
  std::int64_t last_epoch = -1;  // PyTorch's: only where the state records it (checkpoints)
};

class SWALR {
 public:
  using Options = SWALROptions;
  using Anneal = SWALROptions::Anneal;

  explicit SWALR(Options options) : o_(std::move(options)) {
    if (o_.swa_lrs.empty())
      throw std::invalid_argument(
          "lightning: SWALROptions.swa_lrs is empty: give one learning rate for every param "
          "group, or one per group");
    if (o_.anneal_epochs < 0)
      throw std::invalid_argument(
          "lightning: SWALROptions.anneal_epochs = " + std::to_string(o_.anneal_epochs) +
          " must be >= 0 (the epochs over which the lr anneals)");
  }

  // PyTorch's constructor: the groups' base lrs ("initial_lr", which a caller may have
  // set beforehand when last_epoch is given), then the first step.
  void attach(torch::optim::Optimizer& optimizer) { attach(optimizer, {}); }
  void attach(torch::optim::Optimizer& optimizer, std::vector<double> initial_lrs) {
    const auto groups = optimizer.param_groups().size();
    if (o_.swa_lrs.size() == 1) o_.swa_lrs.assign(groups, o_.swa_lrs.front());
    if (o_.swa_lrs.size() != groups)
      throw std::invalid_argument("lightning: SWALR has " + std::to_string(o_.swa_lrs.size()) +
                                  " swa_lrs for an optimizer with " + std::to_string(groups) +
                                  " param groups; give one value, or one per group");
    base_lrs_ = initial_lrs.empty() ? group_lrs(optimizer) : std::move(initial_lrs);
    step_count_ = 0;
    last_epoch_ = o_.last_epoch;
    step(optimizer);
  }

  void step(torch::optim::Optimizer& optimizer) {
    ++step_count_;
    ++last_epoch_;
    std::int64_t step = step_count_ - 1;
    if (o_.anneal_epochs == 0) step = std::max<std::int64_t>(1, step);
    const auto anneal = [&](std::int64_t at) {
      const double t =
          std::clamp(static_cast<double>(at) /
                         static_cast<double>(std::max<std::int64_t>(1, o_.anneal_epochs)),
                     0.0, 1.0);
      return o_.anneal_strategy == Anneal::cos ? (1 - std::cos(std::numbers::pi * t)) / 2 : t;
    };
    const double prev_alpha = anneal(step - 1), alpha = anneal(step);
    auto& groups = optimizer.param_groups();
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const double swa = o_.swa_lrs[i], lr = groups[i].options().get_lr();
      const double start = prev_alpha == 1 ? swa : (lr - prev_alpha * swa) / (1 - prev_alpha);
      groups[i].options().set_lr(swa * alpha + start * (1 - alpha));
    }
  }

  [[nodiscard]] const Options& options() const noexcept { return o_; }
  [[nodiscard]] const std::vector<double>& swa_lrs() const noexcept { return o_.swa_lrs; }

  // What a checkpoint saves (PyTorch's state_dict without the optimizer): the base lrs,
  // _step_count (the steps taken, the first included), last_epoch, and the annealing,
  // which a restored state sets as PyTorch's load_state_dict does.
  struct State {
    std::vector<double> base_lrs;
    std::int64_t step_count = 0, last_epoch = -1, anneal_epochs = 10;
    Anneal anneal_strategy = Anneal::cos;
  };
  [[nodiscard]] State state() const {
    return {base_lrs_, step_count_, last_epoch_, o_.anneal_epochs, o_.anneal_strategy};
  }
  // The optimizer's lrs are restored apart from it, after it.
  void restore(State s) {
    base_lrs_ = std::move(s.base_lrs);
    step_count_ = s.step_count;
    last_epoch_ = s.last_epoch;
    o_.anneal_epochs = s.anneal_epochs;
    o_.anneal_strategy = s.anneal_strategy;
  }

 private:
  Options o_;
  std::vector<double> base_lrs_;
  std::int64_t step_count_ = 0, last_epoch_ = -1;
};

}  // namespace lightning::lr
