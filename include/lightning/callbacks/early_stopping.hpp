// EarlyStopping: Lightning's callback that stops fit when a monitored metric stops
// improving, crosses a threshold, or is no longer finite. It reads the metric once per
// check (after validation, or at train epoch end), never per step.
#pragma once

#include <lightning/core/bad_option.hpp>

#include <lightning/callbacks/monitor.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/fabric/checkpoint_io.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace lightning::callbacks {

// Lightning's EarlyStopping(...) arguments, in its order.
struct EarlyStoppingOptions {
  std::string monitor;        // the metric, e.g. "val_loss" (required)
  double min_delta = 0.0;     // smallest change that counts as an improvement
  std::int64_t patience = 3;  // checks without improvement before stopping
  bool verbose = false;       // also report each improvement (the stop is always reported)
  Mode mode = Mode::min;
  bool strict = true;        // a monitor that was never logged is an error (else: skip)
  bool check_finite = true;  // stop when the metric becomes NaN or infinite
  std::optional<double> stopping_threshold = std::nullopt;    // stop once this good
  std::optional<double> divergence_threshold = std::nullopt;  // stop once this bad
  // Unset: at train epoch end when validation runs every epoch, else after validation.
  std::optional<bool> check_on_train_epoch_end = std::nullopt;
  std::ostream* stream = nullptr;  // messages (default std::cerr)
};

class EarlyStopping {
 public:
  // Runs its epoch-end check after the module's on_train_epoch_end (Lightning's order).
  static constexpr bool is_monitoring_callback = true;
  explicit EarlyStopping(EarlyStoppingOptions options) : o_(std::move(options)) {
    if (o_.monitor.empty())
      throw_bad_option("EarlyStoppingOptions", "monitor", "\"\"",
                       "name the metric to watch, e.g. {.monitor = \"val_loss\"}");
    if (o_.patience < 0)
      throw_bad_option("EarlyStoppingOptions", "patience", std::to_string(o_.patience),
                       "must be >= 0");
    if (std::isnan(o_.min_delta))
      throw_bad_option("EarlyStoppingOptions", "min_delta", "nan", "must be a number");
    // An improvement must beat the best by min_delta in the mode's direction.
    min_delta_ = o_.mode == Mode::min ? -std::abs(o_.min_delta) : std::abs(o_.min_delta);
    best_score_ = detail::worst(o_.mode);
  }

  [[nodiscard]] const EarlyStoppingOptions& options() const noexcept { return o_; }
  [[nodiscard]] double best_score() const noexcept { return best_score_; }
  [[nodiscard]] std::int64_t wait_count() const noexcept { return wait_count_; }
  // The epoch in which it signalled the stop (0: it has not).
  [[nodiscard]] std::int64_t stopped_epoch() const noexcept { return stopped_epoch_; }
  // Why it stopped (empty while it has not).
  [[nodiscard]] const std::string& stop_reason() const noexcept { return stop_reason_; }

  [[nodiscard]] std::string state_key() const {
    std::string k = "EarlyStopping{'monitor': ";
    k += detail::py_repr(o_.monitor);
    k += ", 'mode': ";
    k += detail::py_repr(detail::mode_name(o_.mode));
    k += '}';
    return k;
  }

  template <class Trainer, class Module>
  void setup(Trainer& trainer, Module&, Stage) {
    if (o_.check_on_train_epoch_end)
      on_train_epoch_end_ = *o_.check_on_train_epoch_end;
    else
      on_train_epoch_end_ = trainer.run_options().val_check_interval.is_all() &&
                            trainer.run_options().check_val_every_n_epoch == 1;
  }

  template <class Trainer, class Module>
  void on_train_epoch_end(Trainer& trainer, Module&) {
    if (on_train_epoch_end_ && !skip(trainer)) check(trainer);
  }
  template <class Trainer, class Module>
  void on_validation_end(Trainer& trainer, Module&) {
    if (!on_train_epoch_end_ && !skip(trainer)) check(trainer);
  }

  [[nodiscard]] CheckpointDict state_dict() const {
    CheckpointDict s = make_checkpoint();
    s.insert("wait_count", wait_count_);
    s.insert("stopped_epoch", stopped_epoch_);
    s.insert("best_score", score_entry(best_score_));
    s.insert("patience", o_.patience);
    s.insert("stopping_reason", static_cast<std::int64_t>(stopping_reason_));
    s.insert("stopping_reason_message",
             stop_reason_.empty() ? c10::IValue() : c10::IValue(stop_reason_));
    return s;
  }
  void load_state_dict(const CheckpointDict& s) {
    wait_count_ = s.at("wait_count").toInt();
    stopped_epoch_ = s.at("stopped_epoch").toInt();
    best_score_ = score_of(s.at("best_score")).value_or(best_score_);
    o_.patience = s.at("patience").toInt();
    stopping_reason_ = s.contains("stopping_reason")
                           ? static_cast<Reason>(s.at("stopping_reason").toInt())
                           : Reason::not_stopped;
    stop_reason_ =
        s.contains("stopping_reason_message") && s.at("stopping_reason_message").isString()
            ? s.at("stopping_reason_message").toStringRef()
            : std::string();
  }

 private:
  std::ostream& out() const { return o_.stream ? *o_.stream : std::cerr; }

  template <class Trainer>
  bool skip(Trainer& trainer) const {
    return trainer.stage != Stage::fit || trainer.sanity_checking ||
           trainer.run_options().fast_dev_run > 0;
  }

  template <class Trainer>
  void check(Trainer& trainer) {
    const MetricMap metrics = trainer.callback_metrics();
    const auto it = metrics.find(o_.monitor);
    if (it == metrics.end()) {
      std::string m =
          "lightning: EarlyStopping is conditioned on metric \"" + o_.monitor +
          "\", which is not available. Log it, or monitor one of: " + detail::metric_names(metrics);
      if (o_.strict) throw std::runtime_error(m);
      if (o_.verbose) out() << m << " (strict = false: not checking)\n";
      return;
    }
    auto [stop, reason] = evaluate(it->second);
    // Any rank that would stop stops them all, together (Lightning's reduce_boolean_decision
    // with all=False).
    if constexpr (requires { trainer.reduce_boolean_decision(true, false); })
      stop = trainer.reduce_boolean_decision(stop, /*all=*/false);
    trainer.should_stop = trainer.should_stop || stop;
    if (stop) {
      stopped_epoch_ = trainer.current_epoch;
      stop_reason_ = reason;
    }
    if (!reason.empty() && (stop || o_.verbose) && trainer.is_global_zero())
      out() << "lightning: EarlyStopping: " << reason << '\n';
  }

  static std::string fmt(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
  }

  // Lightning's EarlyStoppingReason, the value its checkpoints hold.
  enum class Reason : std::int64_t {
    not_stopped = 0,
    stopping_threshold = 1,
    divergence_threshold = 2,
    patience_exhausted = 3,
    non_finite_metric = 4
  };

  std::pair<bool, std::string> evaluate(double current) {
    auto [stop, why, code] = judge(current);
    if (stop) stopping_reason_ = code;
    return {stop, std::move(why)};
  }

  std::tuple<bool, std::string, Reason> judge(double current) {
    const char* order = o_.mode == Mode::min ? "<" : ">";
    const std::string value = o_.monitor + " = " + python_float_repr(current);
    if (o_.check_finite && !std::isfinite(current))
      return {true,
              "Monitored metric " + value + " is not finite. Previous best value was " +
                  fmt("%.3f", best_score_) + ". Signaling Trainer to stop.",
              Reason::non_finite_metric};
    if (o_.stopping_threshold && detail::improves(o_.mode, current, *o_.stopping_threshold))
      return {true,
              "Stopping threshold reached: " + value + " " + order + " " +
                  python_float_repr(*o_.stopping_threshold) + ". Signaling Trainer to stop.",
              Reason::stopping_threshold};
    if (o_.divergence_threshold && detail::improves(o_.mode, -current, -*o_.divergence_threshold))
      return {true,
              "Divergence threshold reached: " + value + " " + order + " " +
                  python_float_repr(*o_.divergence_threshold) + ". Signaling Trainer to stop.",
              Reason::divergence_threshold};
    if (detail::improves(o_.mode, current - min_delta_, best_score_)) {
      std::string reason =
          std::isfinite(best_score_)
              ? "Metric " + o_.monitor + " improved by " +
                    fmt("%.3f", std::abs(best_score_ - current)) +
                    " >= min_delta = " + python_float_repr(std::abs(min_delta_)) +
                    ". New best score: " + fmt("%.3f", current)
              : "Metric " + o_.monitor + " improved. New best score: " + fmt("%.3f", current);
      best_score_ = current;
      wait_count_ = 0;
      return {false, std::move(reason), Reason::not_stopped};
    }
    ++wait_count_;
    if (wait_count_ >= o_.patience)
      return {true,
              "Monitored metric " + o_.monitor + " did not improve in the last " +
                  std::to_string(wait_count_) + " records. Best score: " +
                  fmt("%.3f", best_score_) + ". Signaling Trainer to stop.",
              Reason::patience_exhausted};
    return {false, {}, Reason::not_stopped};
  }

  EarlyStoppingOptions o_;
  double min_delta_ = 0.0;
  double best_score_ = 0.0;
  std::int64_t wait_count_ = 0;
  std::int64_t stopped_epoch_ = 0;
  std::string stop_reason_;
  Reason stopping_reason_ = Reason::not_stopped;
  bool on_train_epoch_end_ = false;
};

}  // namespace lightning::callbacks
