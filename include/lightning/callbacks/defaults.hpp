// What a Trainer adds to the user's callbacks, as Lightning's Trainer() does: a progress
// bar, a model summary, a ModelCheckpoint, and a TensorBoardLogger (Lightning's
// logger=True), each unless the user passed one, each turned off by its option
// (enable_progress_bar, enable_model_summary, enable_checkpointing, logger). Defines the
// DefaultCallbacks template the trainer layer declares (trainer/connectors/
// callback_connector.hpp), so that the trainer layer includes no callback.
#pragma once

#include <lightning/callbacks/model_checkpoint.hpp>
#include <lightning/callbacks/model_summary.hpp>
#include <lightning/callbacks/progress_bar.hpp>
#include <lightning/callbacks/timer.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/loggers/tensorboard_logger.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/options.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string_view>
#include <tuple>
#include <type_traits>

namespace lightning {
namespace callbacks {

// Lightning's default logger: TensorBoardLogger(save_dir=default_root_dir,
// name="lightning_logs"), created when the first entry point starts with
// TrainerOptions.logger = true and kept for the Trainer's life (one version_N per
// Trainer, as in Lightning). Disabled, it logs nothing and has no log_dir.
class DefaultLogger {
 public:
  static constexpr std::string_view kind = "TensorBoardLogger";

  void configure(const TrainerOptions& options) {
    enabled_ = options.logger.value_or(true);  // resolved: always set
    if (enabled_ && !logger_) {
      loggers::TensorBoardLoggerOptions o;
      if (!options.default_root_dir.empty()) o.save_dir = options.default_root_dir;
      logger_.emplace(std::move(o));
    }
  }
  [[nodiscard]] bool enabled() const noexcept { return enabled_ && logger_.has_value(); }
  // The TensorBoardLogger itself (to read its version or event file); null when off.
  [[nodiscard]] const loggers::TensorBoardLogger* logger() const noexcept {
    return enabled() ? &*logger_ : nullptr;
  }
  [[nodiscard]] std::filesystem::path log_dir() const {
    return enabled() ? logger_->log_dir() : std::filesystem::path();
  }

  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    if (enabled()) logger_->log_metrics(metrics, step);
  }
  void log_hyperparams(const HParams& hparams) {
    if (enabled()) logger_->log_hyperparams(hparams);
  }
  template <class T, class M>
  void teardown(T& trainer, M& model, Stage stage) {
    if (enabled()) logger_->teardown(trainer, model, stage);
  }
  template <class T, class M>
  void on_exception(T& trainer, M& model, const std::exception& error) noexcept {
    if (enabled()) logger_->on_exception(trainer, model, error);
  }

 private:
  bool enabled_ = false;
  std::optional<loggers::TensorBoardLogger> logger_;
};

}  // namespace callbacks

template <class... C>
struct DefaultCallbacks {
  static constexpr bool user_progress_bar = (detail::is_progress_bar<C> || ...);
  static constexpr bool user_summary = (detail::is_model_summary<C> || ...);
  static constexpr bool user_checkpoint = (detail::is_model_checkpoint<C> || ...);
  static constexpr bool user_logger = (detail::is_logger<C> || ...);
  static constexpr bool user_timer = (detail::is_timer<C> || ...);

  // Lightning appends its max_time Timer after the other callbacks (before the checkpoints).
  using leading = decltype(std::tuple_cat(
      std::declval<detail::keep_if_t<!user_progress_bar, callbacks::ProgressBar>>(),
      std::declval<detail::keep_if_t<!user_summary, callbacks::ModelSummary>>(),
      std::declval<detail::keep_if_t<!user_logger, callbacks::DefaultLogger>>(),
      std::declval<detail::keep_if_t<!user_timer, callbacks::Timer>>()));
  using trailing = detail::keep_if_t<!user_checkpoint, callbacks::ModelCheckpoint>;

  template <class Tuple>
  static void configure(Tuple& callbacks, const TrainerOptions& o) {
    const auto set = [](auto& c, bool on) { on ? c.enable() : c.disable(); };
    if constexpr (!user_progress_bar)
      set(std::get<callbacks::ProgressBar>(callbacks), *o.enable_progress_bar);
    if constexpr (!user_summary)
      set(std::get<callbacks::ModelSummary>(callbacks), *o.enable_model_summary);
    if constexpr (!user_checkpoint)
      set(std::get<callbacks::ModelCheckpoint>(callbacks), *o.enable_checkpointing);
    if constexpr (!user_logger) std::get<callbacks::DefaultLogger>(callbacks).configure(o);
    if constexpr (!user_timer)
      std::get<callbacks::Timer>(callbacks).configure_max_time(o.max_time);
    else if (o.max_time)
      std::cerr << "lightning: ignoring TrainerOptions.max_time: the callbacks already contain a "
                   "Timer, whose duration applies\n";
  }
};

}  // namespace lightning
