// The learning-rate range test (Lightning's tuner/lr_finder.py): a short fit whose
// learning rate grows every optimizer step from min_lr to max_lr, recording the smoothed
// loss, stopped when the loss diverges; the suggestion is the rate where the loss falls
// fastest. The module's weights are restored afterwards.
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/module.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lightning {

// How the rate grows from min_lr to max_lr over num_training steps.
enum class LRFinderMode { exponential, linear };

struct LRFinderOptions {
  double min_lr = 1e-8;
  double max_lr = 1.0;
  std::int64_t num_training = 100;  // optimizer steps (fewer if max_epochs ends the fit first)
  LRFinderMode mode = LRFinderMode::exponential;
  // Stop when the smoothed loss exceeds this many times the best one; unset: never.
  std::optional<double> early_stop_threshold = 4.0;
  // Write the suggestion into the module: its `lr` or `learning_rate` member, or the
  // hyperparameter named attr_name ("lr"/"learning_rate" when empty).
  bool update_attr = true;
  std::string attr_name = {};
};

// What a range test recorded: the rate of every optimizer step and the smoothed loss
// after it (NaN where training_step returned no loss).
class LRFinder {
 public:
  LRFinder(LRFinderOptions options, std::vector<double> lrs, std::vector<double> losses)
      : options_(std::move(options)), lrs_(std::move(lrs)), losses_(std::move(losses)) {}

  [[nodiscard]] const std::vector<double>& lrs() const noexcept { return lrs_; }
  [[nodiscard]] const std::vector<double>& losses() const noexcept { return losses_; }
  [[nodiscard]] const LRFinderOptions& options() const noexcept { return options_; }

  // Lightning's suggestion: the rate at the steepest descent of the loss (the gradient of
  // the finite losses with respect to the rates, torch.gradient on float32 as Lightning
  // computes it), skipping the first skip_begin and last skip_end points. Unset when
  // fewer than two points remain.
  [[nodiscard]] std::optional<double> suggestion(std::int64_t skip_begin = 10,
                                                 std::int64_t skip_end = 1) const {
    const auto index = optimal_index(skip_begin, skip_end);
    if (!index) return std::nullopt;
    return lrs_[*index];
  }
  [[nodiscard]] std::optional<std::size_t> optimal_index(std::int64_t skip_begin = 10,
                                                         std::int64_t skip_end = 1) const {
    // Python's slice [skip_begin:-skip_end] (skip_end 0 is an empty slice there too).
    const auto n = static_cast<std::int64_t>(losses_.size());
    const std::int64_t begin = std::min(std::max<std::int64_t>(skip_begin, 0), n);
    const std::int64_t end = skip_end > 0 ? std::max<std::int64_t>(n - skip_end, 0) : 0;
    std::vector<float> losses, lrs;
    std::vector<std::size_t> index;
    for (std::int64_t i = begin; i < end; ++i) {
      const auto loss = static_cast<float>(losses_[static_cast<std::size_t>(i)]);
      if (!std::isfinite(loss)) continue;
      losses.push_back(loss);
      lrs.push_back(static_cast<float>(lrs_[static_cast<std::size_t>(i)]));
      index.push_back(static_cast<std::size_t>(i));
    }
    if (losses.size() < 2) return std::nullopt;
    const auto l = torch::tensor(losses, torch::kFloat);
    const auto x = torch::tensor(lrs, torch::kFloat);
    const auto gradients = torch::gradient(l, torch::TensorList{x})[0];
    return index[static_cast<std::size_t>(gradients.argmin().item<std::int64_t>())];
  }

 private:
  LRFinderOptions options_;
  std::vector<double> lrs_;
  std::vector<double> losses_;
};

namespace detail {

// The rate of optimizer step k of the sweep, as Lightning's _ExponentialLR/_LinearLR
// give it: min_lr for the first step, then r = (k + 1) / num_training of the way.
inline double sweep_lr(const LRFinderOptions& o, std::int64_t k) {
  if (k == 0) return o.min_lr;
  const double r = static_cast<double>(k + 1) / static_cast<double>(o.num_training);
  return o.mode == LRFinderMode::exponential ? o.min_lr * std::pow(o.max_lr / o.min_lr, r)
                                             : o.min_lr + r * (o.max_lr - o.min_lr);
}

inline void check_lr_finder_options(const LRFinderOptions& o) {
  const auto bad = [](const std::string& what, const std::string& why) {
    throw std::invalid_argument("lightning: LRFinderOptions." + what + " " + why);
  };
  if (!(o.min_lr > 0.0)) bad("min_lr = " + std::to_string(o.min_lr), "must be > 0 (e.g. 1e-8)");
  if (!(o.max_lr > o.min_lr))
    bad("max_lr = " + std::to_string(o.max_lr), "must be > min_lr = " + std::to_string(o.min_lr));
  if (o.num_training < 1)
    bad("num_training = " + std::to_string(o.num_training), "must be >= 1 (e.g. 100)");
  if (o.early_stop_threshold && !(*o.early_stop_threshold > 0.0))
    bad("early_stop_threshold = " + std::to_string(*o.early_stop_threshold),
        "must be > 0, or unset to never stop early");
}

// Lightning's _LRCallback: before every batch, the optimizer gets the rate of the step
// it is at (the sweep's scheduler steps with every optimizer step); on batches that step
// (every accumulate_grad_batches-th of an epoch, as Lightning counts them) the rate is
// recorded, and after them the bias-corrected running mean of the loss; a diverging
// loss stops the fit.
struct LRSweep {
  explicit LRSweep(LRFinderOptions o) : options(std::move(o)) {}
  LRFinderOptions options;
  std::vector<double> lrs, losses;
  double avg_loss = 0.0, best_loss = 0.0;
  static constexpr double beta = 0.98;

  template <class T, class M, class B>
  void on_train_batch_start(T& trainer, M&, const B&, std::int64_t idx) {
    const auto& infos = trainer.optimizer_infos();
    if (infos.size() != 1)
      throw std::invalid_argument("lightning: configure_optimizers returned " +
                                  std::to_string(infos.size()) +
                                  " optimizers; the learning rate finder works with one");
    const double lr = sweep_lr(options, trainer.global_step);
    for (auto& group : infos.front().optimizer->param_groups()) group.options().set_lr(lr);
    if (steps(trainer, idx)) lrs.push_back(lr);
  }

  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M&, const O& output, const B&, std::int64_t idx) {
    if (!steps(trainer, idx)) return;
    const torch::Tensor& loss = lightning::detail::loss_of(output);
    if (!loss.defined()) {  // no loss: not part of the suggestion
      losses.push_back(std::numeric_limits<double>::quiet_NaN());
      return;
    }
    // Lightning's step output holds the loss divided by the accumulation.
    const double current = loss.detach().template item<double>() /
                           static_cast<double>(trainer.accumulate_grad_batches());
    const auto step = trainer.global_step;
    avg_loss = beta * avg_loss + (1 - beta) * current;
    const double smoothed = avg_loss / (1 - std::pow(beta, static_cast<double>(step + 1)));
    if (options.early_stop_threshold && step > 1 &&
        smoothed > *options.early_stop_threshold * best_loss)
      trainer.should_stop = true;
    if (smoothed < best_loss || step == 1) best_loss = smoothed;
    losses.push_back(smoothed);
  }

 private:
  template <class T>
  static bool steps(const T& trainer, std::int64_t idx) {
    return (idx + 1) % trainer.accumulate_grad_batches() == 0;
  }
};

[[noreturn]] inline void no_learning_rate_attr(const LRFinderOptions& o) {
  throw std::invalid_argument(
      "lightning: lr_find(update_attr = true) found nowhere to put the learning rate" +
      (o.attr_name.empty() ? std::string()
                           : " (attr_name = \"" + o.attr_name + "\" is not a hyperparameter)") +
      ": give the module a `double lr` or `double learning_rate` member that "
      "configure_optimizers reads, or an \"lr\"/\"learning_rate\" hyperparameter "
      "(save_hyperparameters), or set LRFinderOptions.update_attr = false");
}

// The hyperparameter that holds the rate, if any.
template <class M>
std::optional<std::string> learning_rate_hparam(const M& model, const LRFinderOptions& o) {
  if constexpr (std::derived_from<M, LightningModule>) {
    const auto& h = model.hparams();
    if (!o.attr_name.empty())
      return h.contains(o.attr_name) ? std::optional(o.attr_name) : std::nullopt;
    for (const char* name : {"lr", "learning_rate"})
      if (h.contains(name)) return std::string(name);
  }
  return std::nullopt;
}

// Lightning's attribute lookup: the module's `lr`, then `learning_rate`, then the
// hyperparameters; checked before the sweep runs, as Lightning does.
template <class M>
void require_learning_rate_attr(const M& model, const LRFinderOptions& o) {
  if (o.attr_name.empty() && (
                                 requires { model.lr; } || requires { model.learning_rate; }))
    return;
  if (!learning_rate_hparam(model, o)) no_learning_rate_attr(o);
}

template <class M>
void set_learning_rate(M& model, const LRFinderOptions& o, double lr) {
  if (o.attr_name.empty()) {
    if constexpr (requires { model.lr = lr; }) {
      model.lr = lr;
      return;
    } else if constexpr (requires { model.learning_rate = lr; }) {
      model.learning_rate = lr;
      return;
    }
  }
  const auto key = learning_rate_hparam(model, o);
  if (!key) no_learning_rate_attr(o);
  if constexpr (std::derived_from<M, LightningModule>) {
    auto hparams = model.hparams();
    hparams.set(*key, lr);
    model.save_hyperparameters(hparams);
  }
}

}  // namespace detail

}  // namespace lightning
