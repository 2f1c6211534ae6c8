// TrainerOptions: Lightning's Trainer(...) flags, set with designated initializers in
// declaration order, e.g. `Trainer trainer({.max_epochs = 3, .limit_train_batches = 0.5});`
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/duration.hpp>
#include <lightning/core/optimizers.hpp>
#include <lightning/core/python_format.hpp>

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

namespace lightning {

// A batch count or a fraction of the loader, as Lightning's limit_*_batches and
// val_check_interval take: an integer is a count, a floating value a fraction.
class BatchLimit {
 public:
  constexpr BatchLimit() = default;
  template <std::integral T>
  constexpr BatchLimit(T count) : value_(static_cast<std::int64_t>(count)) {}  // NOLINT
  template <std::floating_point T>
  constexpr BatchLimit(T fraction) : value_(static_cast<double>(fraction)) {}  // NOLINT

  [[nodiscard]] constexpr bool is_count() const noexcept {
    return std::holds_alternative<std::int64_t>(value_);
  }
  [[nodiscard]] constexpr std::int64_t count() const { return std::get<std::int64_t>(value_); }
  [[nodiscard]] constexpr double fraction() const { return std::get<double>(value_); }
  [[nodiscard]] constexpr bool is_all() const noexcept { return !is_count() && fraction() == 1.0; }

  // Applies the limit to a loader of `total` batches (unknown length: nullopt).
  [[nodiscard]] std::optional<std::int64_t> apply(std::optional<std::int64_t> total) const {
    if (is_count()) return total ? std::min(*total, count()) : count();
    if (!total) return std::nullopt;  // a fraction of an unknown length: all of it (checked)
    const auto n = static_cast<std::int64_t>(static_cast<double>(*total) * fraction());
    return n;
  }

  [[nodiscard]] std::string str() const {
    std::ostringstream os;
    if (is_count())
      os << count();
    else
      os << fraction();
    return os.str();
  }

 private:
  std::variant<std::int64_t, double> value_{1.0};
};

struct TrainerOptions {
  // Stopping: max_epochs unset means 1000 when max_steps is -1, else no epoch limit.
  std::optional<std::int64_t> max_epochs = std::nullopt;
  std::int64_t min_epochs = 0;
  std::int64_t max_steps = -1;  // optimizer steps; -1: no limit
  std::int64_t min_steps = 0;
  // Stop fit once this much training time has passed (Lightning's max_time: a Timer,
  // checked after every batch); L::duration_from_string("DD:HH:MM:SS") or a std::chrono duration.
  // With it, an unset max_epochs means no epoch limit.
  std::optional<std::chrono::duration<double>> max_time = std::nullopt;

  // Portions of the data per epoch / validation run.
  BatchLimit limit_train_batches = 1.0;
  BatchLimit limit_val_batches = 1.0;
  BatchLimit limit_test_batches = 1.0;
  BatchLimit limit_predict_batches = 1.0;

  // Validation schedule: every check_val_every_n_epoch epochs (unset: count batches
  // across epochs), at val_check_interval within the epoch (fraction or batch count).
  BatchLimit val_check_interval = 1.0;
  std::optional<std::int64_t> check_val_every_n_epoch = 1;
  // Validation batches run before training (unset: 2, or 0 with barebones; -1: the whole
  // validation loader).
  std::optional<std::int64_t> num_sanity_val_steps = std::nullopt;
  // Evaluation and prediction under torch.inference_mode (true) or torch.no_grad (false:
  // their tensors may enter autograd afterwards).
  bool inference_mode = true;

  // Optimization.
  std::int64_t accumulate_grad_batches = 1;
  std::optional<double> gradient_clip_val = std::nullopt;
  GradClipAlgorithm gradient_clip_algorithm = GradClipAlgorithm::norm;

  // Processes: devices per node (unset: "auto", what a launcher around the program
  // started, else 1) and nodes. More than one needs a strategy that runs several
  // (strategies::DDP), which then starts the local ranks itself.
  std::optional<std::int64_t> devices = std::nullopt;
  std::int64_t num_nodes = 1;

  // Logging and debugging.
  std::optional<std::int64_t> log_every_n_steps = std::nullopt;  // unset: 50 (barebones: none)
  std::int64_t fast_dev_run = 0;  // n > 0: n batches of train and val, one epoch, no sanity run
  // Train and validate on the same first batches every epoch, to check that the model can
  // overfit them: a count or a fraction of each loader (0: off). Shuffling train and
  // validation loaders are iterated in order instead, with a warning (as Lightning).
  BatchLimit overfit_batches = 0.0;
  // Autograd's anomaly detection for the fit: a backward that makes NaN fails at once, the
  // error naming the operation, the epoch, batch and step. Slow: for debugging only.
  bool detect_anomaly = false;
  // The defaults turn on unless set to false (or barebones): unset is Lightning's None, so
  // that barebones can refuse an explicit true.
  std::optional<bool> enable_progress_bar = std::nullopt;
  // A default ModelCheckpoint (last epoch) unless one is given.
  std::optional<bool> enable_checkpointing = std::nullopt;
  // A default ModelSummary at fit start unless one is given.
  std::optional<bool> enable_model_summary = std::nullopt;
  // Lightning's logger=True: a TensorBoardLogger under default_root_dir/lightning_logs
  // unless a logger is among the callbacks; false: no default logger.
  std::optional<bool> logger = std::nullopt;
  // Measure the Trainer's own overhead: checkpointing, logging (and self.log), the progress
  // bar, model summary and sanity check off; an option or callback that would turn one of
  // them on, fast_dev_run, detect_anomaly or a profiler is an error naming it.
  bool barebones = false;

  // Reproducibility.
  std::optional<std::uint64_t> seed = std::nullopt;  // seed_everything(seed) at fit start
  bool deterministic = false;
  // cuDNN's autotuner (torch.backends.cudnn.benchmark): unset leaves the process's setting
  // as it is, or turns it off with `deterministic`; true with `deterministic` is allowed
  // (it wins over cuDNN's determinism) and warned about, as Lightning does.
  std::optional<bool> benchmark = std::nullopt;

  // Data: each rank iterates its DistributedSampler shard of every loader (false: the
  // loaders as given, to be sharded by the user); the DataModule's loaders are asked for
  // again every n epochs (0: once per fit).
  bool use_distributed_sampler = true;
  std::int64_t reload_dataloaders_every_n_epochs = 0;

  // Where checkpoints (and loggers without a save_dir) go; empty: the current directory.
  std::filesystem::path default_root_dir = {};
};

namespace detail {
[[noreturn]] inline void bad_option(const char* name, const std::string& value,
                                    std::string_view rule) {
  throw_bad_option("TrainerOptions", name, value, rule);
}

inline void check_limit(const char* name, const BatchLimit& l) {
  if (l.is_count() ? l.count() < 0 : !(l.fraction() >= 0.0 && l.fraction() <= 1.0))
    bad_option(name, l.str(), "a count must be >= 0 and a fraction in [0.0, 1.0]");
}

// Lightning's barebones checks: what would turn on a feature barebones turns off, or an
// opt-in that costs speed, is refused with the reason.
inline void check_barebones(const TrainerOptions& o) {
  const auto refuse = [](const char* name, const std::string& value, const char* why) {
    bad_option(name, value,
               (std::string(why) + " can impact raw speed, so it is disabled with barebones = "
                                   "true; leave it unset or set barebones = false")
                   .c_str());
  };
  if (o.enable_checkpointing.value_or(false))
    refuse("enable_checkpointing", "true", "Checkpointing");
  if (o.logger.value_or(false)) refuse("logger", "true", "Logging");
  if (o.enable_progress_bar.value_or(false))
    refuse("enable_progress_bar", "true", "The progress bar");
  if (o.log_every_n_steps.value_or(0) != 0)
    refuse("log_every_n_steps", std::to_string(*o.log_every_n_steps), "Logging");
  if (o.enable_model_summary.value_or(false))
    refuse("enable_model_summary", "true", "The model summary");
  if (o.num_sanity_val_steps.value_or(0) != 0)
    refuse("num_sanity_val_steps", std::to_string(*o.num_sanity_val_steps), "Sanity checking");
  if (o.fast_dev_run != 0)
    refuse("fast_dev_run", std::to_string(o.fast_dev_run), "A development run");
  if (o.detect_anomaly) refuse("detect_anomaly", "true", "Anomaly detection");
}

[[nodiscard]] constexpr bool enabled(const BatchLimit& l) noexcept {
  return l.is_count() ? l.count() > 0 : l.fraction() > 0.0;
}
}  // namespace detail

// Throws std::invalid_argument naming the first invalid option, its value and the rule.
inline void validate(const TrainerOptions& o) {
  using detail::bad_option;
  if (o.max_epochs && *o.max_epochs < -1)
    bad_option("max_epochs", std::to_string(*o.max_epochs), "must be >= -1 (-1: no limit)");
  if (o.min_epochs < 0) bad_option("min_epochs", std::to_string(o.min_epochs), "must be >= 0");
  if (o.max_steps < -1)
    bad_option("max_steps", std::to_string(o.max_steps), "must be >= -1 (-1: no limit)");
  if (o.min_steps < 0) bad_option("min_steps", std::to_string(o.min_steps), "must be >= 0");
  if (o.max_time && !(o.max_time->count() >= 0.0))
    bad_option("max_time", python_float_repr(o.max_time->count()) + " s",
               "must be >= 0 (unset: no time limit)");
  detail::check_limit("limit_train_batches", o.limit_train_batches);
  detail::check_limit("limit_val_batches", o.limit_val_batches);
  detail::check_limit("limit_test_batches", o.limit_test_batches);
  detail::check_limit("limit_predict_batches", o.limit_predict_batches);
  if (o.val_check_interval.is_count()
          ? o.val_check_interval.count() < 1
          : !(o.val_check_interval.fraction() > 0.0 && o.val_check_interval.fraction() <= 1.0))
    bad_option("val_check_interval", o.val_check_interval.str(),
               "a batch count must be >= 1 and a fraction in (0.0, 1.0]");
  if (o.check_val_every_n_epoch && *o.check_val_every_n_epoch < 1)
    bad_option("check_val_every_n_epoch", std::to_string(*o.check_val_every_n_epoch),
               "must be >= 1, or unset to validate every val_check_interval batches across epochs");
  if (!o.check_val_every_n_epoch && !o.val_check_interval.is_count())
    bad_option("val_check_interval", o.val_check_interval.str(),
               "must be a batch count when check_val_every_n_epoch is unset");
  if (o.num_sanity_val_steps && *o.num_sanity_val_steps < -1)
    bad_option("num_sanity_val_steps", std::to_string(*o.num_sanity_val_steps),
               "must be >= -1 (-1: the whole validation loader)");
  if (o.accumulate_grad_batches < 1)
    bad_option("accumulate_grad_batches", std::to_string(o.accumulate_grad_batches),
               "must be >= 1");
  if (o.gradient_clip_val && !(*o.gradient_clip_val >= 0.0 && std::isfinite(*o.gradient_clip_val)))
    bad_option("gradient_clip_val", python_float_repr(*o.gradient_clip_val),
               "must be a finite value >= 0");
  if (o.devices && *o.devices < 1)
    bad_option("devices", std::to_string(*o.devices), "must be >= 1 (unset: auto)");
  if (o.num_nodes < 1) bad_option("num_nodes", std::to_string(o.num_nodes), "must be >= 1");
  if (o.log_every_n_steps && *o.log_every_n_steps < (o.barebones ? 0 : 1))
    bad_option("log_every_n_steps", std::to_string(*o.log_every_n_steps), "must be >= 1");
  if (o.fast_dev_run < 0)
    bad_option("fast_dev_run", std::to_string(o.fast_dev_run), "must be >= 0 (0: off)");
  detail::check_limit("overfit_batches", o.overfit_batches);
  if (o.reload_dataloaders_every_n_epochs < 0)
    bad_option("reload_dataloaders_every_n_epochs",
               std::to_string(o.reload_dataloaders_every_n_epochs), "must be >= 0 (0: never)");
  if (o.barebones) detail::check_barebones(o);
}

// Whether the run trains and validates on the same first batches (overfit_batches > 0).
[[nodiscard]] inline bool overfitting(const TrainerOptions& o) noexcept {
  return detail::enabled(o.overfit_batches);
}

// The options as a run uses them: Lightning's defaults filled in (every optional but
// max_time, gradient_clip_val, devices, seed and benchmark is set), fast_dev_run,
// overfit_batches and barebones applied.
inline TrainerOptions resolve(TrainerOptions o) {
  validate(o);
  const bool on = !o.barebones;
  o.enable_progress_bar = o.enable_progress_bar.value_or(on);
  o.enable_checkpointing = o.enable_checkpointing.value_or(on);
  o.enable_model_summary = o.enable_model_summary.value_or(on);
  o.logger = o.logger.value_or(on);
  o.log_every_n_steps = o.log_every_n_steps.value_or(on ? 50 : 0);
  o.num_sanity_val_steps = o.num_sanity_val_steps.value_or(on ? 2 : 0);
  if (o.fast_dev_run > 0) {
    o.max_epochs = 1;
    o.max_steps = o.fast_dev_run;
    o.limit_train_batches = o.fast_dev_run;
    o.limit_val_batches = o.fast_dev_run;
    o.limit_test_batches = o.fast_dev_run;
    o.limit_predict_batches = o.fast_dev_run;
    o.num_sanity_val_steps = 0;
    o.val_check_interval = 1.0;
    o.check_val_every_n_epoch = 1;
  }
  if (overfitting(o)) o.limit_train_batches = o.limit_val_batches = o.overfit_batches;
  if (!o.max_epochs) o.max_epochs = o.max_steps == -1 && !o.max_time ? 1000 : -1;
  if (o.deterministic && !o.benchmark) o.benchmark = false;
  return o;
}

}  // namespace lightning
