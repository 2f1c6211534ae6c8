// What the command line knows of the library's own options structs: their fields for
// Boost.Hana (TrainerOptions, the callbacks' and loggers' options; fields that hold a
// stream are not settable from a config), one line of help per field, the names of the
// library's enums, and each callback's options type and Lightning class path.
#pragma once

#include <lightning/callbacks/early_stopping.hpp>
#include <lightning/callbacks/learning_rate_monitor.hpp>
#include <lightning/callbacks/model_checkpoint.hpp>
#include <lightning/callbacks/model_summary.hpp>
#include <lightning/callbacks/progress_bar.hpp>
#include <lightning/callbacks/timer.hpp>
#include <lightning/cli/fields.hpp>
#include <lightning/loggers/csv_logger.hpp>
#include <lightning/loggers/tensorboard_logger.hpp>
#include <lightning/trainer/options.hpp>

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/length.hpp>

#include <array>
#include <cstddef>
#include <string_view>
#include <utility>

// The settable fields of each struct, in declaration order.
BOOST_HANA_ADAPT_STRUCT(lightning::TrainerOptions, max_epochs, min_epochs, max_steps, min_steps,
                        max_time, limit_train_batches, limit_val_batches, limit_test_batches,
                        limit_predict_batches, val_check_interval, check_val_every_n_epoch,
                        num_sanity_val_steps, inference_mode, accumulate_grad_batches,
                        gradient_clip_val, gradient_clip_algorithm, devices, num_nodes,
                        log_every_n_steps, fast_dev_run, overfit_batches, detect_anomaly,
                        enable_progress_bar, enable_checkpointing, enable_model_summary, logger,
                        barebones, seed, deterministic, benchmark, use_distributed_sampler,
                        reload_dataloaders_every_n_epochs, default_root_dir);
BOOST_HANA_ADAPT_STRUCT(lightning::callbacks::EarlyStoppingOptions, monitor, min_delta, patience,
                        verbose, mode, strict, check_finite, stopping_threshold,
                        divergence_threshold, check_on_train_epoch_end);
BOOST_HANA_ADAPT_STRUCT(lightning::callbacks::ModelCheckpointOptions, dirpath, filename, monitor,
                        verbose, save_last, save_top_k, save_weights_only, mode,
                        auto_insert_metric_name, every_n_train_steps, train_time_interval,
                        every_n_epochs, save_on_train_epoch_end, enable_version_counter);
BOOST_HANA_ADAPT_STRUCT(lightning::callbacks::LearningRateMonitorOptions, logging_interval,
                        log_momentum, log_weight_decay);
BOOST_HANA_ADAPT_STRUCT(lightning::callbacks::ProgressBarOptions, refresh_rate, min_interval,
                        interactive, plain_interval_percent, plain_every_n_batches, leave);
BOOST_HANA_ADAPT_STRUCT(lightning::callbacks::ModelSummaryOptions, max_depth);
BOOST_HANA_ADAPT_STRUCT(lightning::callbacks::TimerOptions, duration, interval, verbose);
BOOST_HANA_ADAPT_STRUCT(lightning::loggers::CSVLoggerOptions, save_dir, name, version, prefix,
                        flush_logs_every_n_steps);
BOOST_HANA_ADAPT_STRUCT(lightning::loggers::TensorBoardLoggerOptions, save_dir, name, version,
                        default_hp_metric, prefix, sub_dir);

namespace lightning {

template <>
struct EnumNames<callbacks::Mode> {
  static constexpr std::array<std::pair<callbacks::Mode, std::string_view>, 2> values{
      {{callbacks::Mode::min, "min"}, {callbacks::Mode::max, "max"}}};
};
template <>
struct EnumNames<GradClipAlgorithm> {
  static constexpr std::array<std::pair<GradClipAlgorithm, std::string_view>, 2> values{
      {{GradClipAlgorithm::norm, "norm"}, {GradClipAlgorithm::value, "value"}}};
};
template <>
struct EnumNames<Interval> {
  static constexpr std::array<std::pair<Interval, std::string_view>, 2> values{
      {{Interval::epoch, "epoch"}, {Interval::step, "step"}}};
};

namespace cli {

namespace detail {
// Counts an aggregate's fields (the most initializers it takes), so that a field added to
// an options struct and not to its adaptation above fails to compile here.
struct any_field {
  template <class T>
  operator T() const;  // NOLINT(google-explicit-constructor)
};
template <class T, std::size_t... I>
constexpr bool takes_initializers(std::index_sequence<I...>) {
  return requires {
    T{(void(I), any_field{})...};
  };
}
template <class T, std::size_t N = 0>
constexpr std::size_t field_count() {
  if constexpr (takes_initializers<T>(std::make_index_sequence<N + 1>{}))
    return field_count<T, N + 1>();
  else
    return N;
}
// Every field adapted, except `unsettable` ones (streams).
template <class T, std::size_t unsettable>
constexpr bool fully_adapted = decltype(boost::hana::length(boost::hana::accessors<T>()))::value +
                                   unsettable ==
                               field_count<T>();
}  // namespace detail

static_assert(detail::fully_adapted<TrainerOptions, 0>,
              "lightning: a TrainerOptions field is missing from cli/library.hpp's adaptation");
static_assert(detail::fully_adapted<callbacks::EarlyStoppingOptions, 1>);
static_assert(detail::fully_adapted<callbacks::ModelCheckpointOptions, 1>);
static_assert(detail::fully_adapted<callbacks::LearningRateMonitorOptions, 0>);
static_assert(detail::fully_adapted<callbacks::ProgressBarOptions, 1>);
static_assert(detail::fully_adapted<callbacks::ModelSummaryOptions, 1>);
static_assert(detail::fully_adapted<callbacks::TimerOptions, 1>);
static_assert(detail::fully_adapted<loggers::CSVLoggerOptions, 0>);
static_assert(detail::fully_adapted<loggers::TensorBoardLoggerOptions, 0>);

using Doc = std::pair<std::string_view, std::string_view>;

template <>
struct FieldDocs<TrainerOptions> {
  static constexpr std::array<Doc, 33> values{{
      {"max_epochs",
       "stop after this many epochs (null: 1000 unless max_steps is set; -1: no limit)"},
      {"min_epochs", "train at least this many epochs, even if a callback asks to stop"},
      {"max_steps", "stop after this many optimizer steps (-1: no limit)"},
      {"min_steps", "train at least this many optimizer steps"},
      {"max_time", "stop training after this long: seconds or DD:HH:MM:SS (null: no limit)"},
      {"limit_train_batches", "batches per training epoch: a count, or a fraction of the loader"},
      {"limit_val_batches", "batches per validation run: a count, or a fraction"},
      {"limit_test_batches", "batches of the test run: a count, or a fraction"},
      {"limit_predict_batches", "batches of the predict run: a count, or a fraction"},
      {"val_check_interval", "validate after this many batches, or this fraction of an epoch"},
      {"check_val_every_n_epoch",
       "validate every n epochs (null: by val_check_interval across epochs)"},
      {"num_sanity_val_steps",
       "validation batches run before training (null: 2; -1: the whole loader)"},
      {"inference_mode",
       "evaluate under inference mode (false: no_grad, tensors may enter autograd)"},
      {"accumulate_grad_batches", "batches whose gradients are summed before a step"},
      {"gradient_clip_val", "clip gradients at this value (null: no clipping)"},
      {"gradient_clip_algorithm", "clip the total norm, or each value"},
      {"devices", "processes (devices) per node; null or auto: what the launcher started, else 1"},
      {"num_nodes", "machines taking part"},
      {"log_every_n_steps", "logged training metrics go to the loggers every n steps (null: 50)"},
      {"fast_dev_run", "n > 0: run n batches of training and validation once, as a check"},
      {"overfit_batches",
       "train and validate on these first batches every epoch, unshuffled (0: off)"},
      {"detect_anomaly", "autograd anomaly detection: a backward making NaN fails at once (slow)"},
      {"enable_progress_bar", "show the progress bar (null: true)"},
      {"enable_checkpointing", "a default ModelCheckpoint unless one is declared (null: true)"},
      {"enable_model_summary", "print the model summary when fit starts (null: true)"},
      {"logger", "a default TensorBoardLogger unless one is declared (false: no logger)"},
      {"barebones", "turn off everything that costs speed, to measure the Trainer's overhead"},
      {"seed", "seed_everything(seed) when fit starts (seed_everything sets it too)"},
      {"deterministic", "deterministic algorithms only"},
      {"benchmark", "cuDNN's autotuner (null: as it is, or off with deterministic)"},
      {"use_distributed_sampler",
       "each rank iterates its shard of every loader (false: the loaders as given)"},
      {"reload_dataloaders_every_n_epochs",
       "ask the DataModule for its loaders again every n epochs (0: once)"},
      {"default_root_dir", "where logs and checkpoints go (empty: the current directory)"},
  }};
};

template <>
struct FieldDocs<callbacks::EarlyStoppingOptions> {
  static constexpr std::array<Doc, 10> values{{
      {"monitor", "the logged metric to watch, e.g. val_loss (required)"},
      {"min_delta", "smallest change that counts as an improvement"},
      {"patience", "checks without improvement before training stops"},
      {"verbose", "report each improvement"},
      {"mode", "whether lower (min) or higher (max) is better"},
      {"strict", "a monitor that was never logged is an error (false: skip the check)"},
      {"check_finite", "stop when the metric becomes NaN or infinite"},
      {"stopping_threshold", "stop as soon as the metric is this good"},
      {"divergence_threshold", "stop as soon as the metric is this bad"},
      {"check_on_train_epoch_end", "check at train epoch end (null: decided by the val schedule)"},
  }};
};

template <>
struct FieldDocs<callbacks::ModelCheckpointOptions> {
  static constexpr std::array<Doc, 14> values{{
      {"dirpath", "folder of the checkpoints (null: <log_dir>/checkpoints)"},
      {"filename", "file name template, e.g. '{epoch}-{val_loss:.2f}'"},
      {"monitor", "metric to rank checkpoints by (empty: the latest)"},
      {"verbose", "report each save"},
      {"save_last", "also keep last.ckpt"},
      {"save_top_k", "best checkpoints kept (-1: all, 0: none)"},
      {"save_weights_only", "only the module's weights"},
      {"mode", "whether lower (min) or higher (max) is better"},
      {"auto_insert_metric_name", "'{epoch}' writes 'epoch=3'"},
      {"every_n_train_steps", "save every n optimizer steps"},
      {"train_time_interval", "save at this training-time interval"},
      {"every_n_epochs", "save every n epochs"},
      {"save_on_train_epoch_end", "save at train epoch end (null: decided by the val schedule)"},
      {"enable_version_counter", "name-v1.ckpt instead of overwriting name.ckpt"},
  }};
};

template <>
struct FieldDocs<callbacks::LearningRateMonitorOptions> {
  static constexpr std::array<Doc, 3> values{{
      {"logging_interval", "log at each step or epoch (null: each scheduler's interval)"},
      {"log_momentum", "also log SGD's momentum / Adam's beta1"},
      {"log_weight_decay", "also log the weight decay"},
  }};
};

template <>
struct FieldDocs<callbacks::ProgressBarOptions> {
  static constexpr std::array<Doc, 6> values{{
      {"refresh_rate", "batches between redraws (0: no output)"},
      {"min_interval", "least time between two redraws on a terminal"},
      {"interactive", "redraw in place (null: when stdout is a terminal)"},
      {"plain_interval_percent", "off a terminal: a line per this much progress"},
      {"plain_every_n_batches", "off a terminal, length unknown: a line per this many batches"},
      {"leave", "keep each epoch's finished line"},
  }};
};

template <>
struct FieldDocs<callbacks::ModelSummaryOptions> {
  static constexpr std::array<Doc, 1> values{
      {{"max_depth", "levels of submodules shown (-1: all)"}}};
};

template <>
struct FieldDocs<callbacks::TimerOptions> {
  static constexpr std::array<Doc, 3> values{{
      {"duration", "training time after which fit stops (null: only measure)"},
      {"interval", "check the time after each step or epoch"},
      {"verbose", "say so when the time limit stops fit"},
  }};
};

template <>
struct FieldDocs<loggers::CSVLoggerOptions> {
  static constexpr std::array<Doc, 5> values{{
      {"save_dir", "folder of the runs"},
      {"name", "experiment name: runs go to save_dir/name/version_N"},
      {"version", "run version (null: the next free one)"},
      {"prefix", "metric names become '<prefix>-<name>'"},
      {"flush_logs_every_n_steps", "rows are written every n steps"},
  }};
};

template <>
struct FieldDocs<loggers::TensorBoardLoggerOptions> {
  static constexpr std::array<Doc, 6> values{{
      {"save_dir", "folder of the runs"},
      {"name", "experiment name: runs go to save_dir/name/version_N"},
      {"version", "run version (null: the next free one)"},
      {"default_hp_metric", "log hp_metric = -1 with the hyperparameters"},
      {"prefix", "metric names become '<prefix>-<name>'"},
      {"sub_dir", "a sub-folder of the run for the event files"},
  }};
};

// A callback (or logger) the command line can configure: its options struct, its name
// and the class path Lightning's configs use for it. A user's callback provides
// `using Options = ...;`, a constructor from it and `static constexpr std::string_view
// cli_name = "MyCallback";` (class_path: the same name).
template <class C>
struct CallbackTraits {
  using options = typename C::Options;
  static constexpr std::string_view name = C::cli_name;
  static constexpr std::string_view class_path = C::cli_name;
  static constexpr bool is_logger = false;
};

#define LIGHTNING_DETAIL_CLI_CALLBACK(TYPE, OPTIONS, NAME, PATH, LOGGER) \
  template <>                                                            \
  struct CallbackTraits<TYPE> {                                          \
    using options = OPTIONS;                                             \
    static constexpr std::string_view name = NAME;                       \
    static constexpr std::string_view class_path = PATH;                 \
    static constexpr bool is_logger = LOGGER;                            \
  };
LIGHTNING_DETAIL_CLI_CALLBACK(callbacks::EarlyStopping, callbacks::EarlyStoppingOptions,
                              "EarlyStopping", "lightning.pytorch.callbacks.EarlyStopping", false)
LIGHTNING_DETAIL_CLI_CALLBACK(callbacks::ModelCheckpoint, callbacks::ModelCheckpointOptions,
                              "ModelCheckpoint", "lightning.pytorch.callbacks.ModelCheckpoint",
                              false)
LIGHTNING_DETAIL_CLI_CALLBACK(callbacks::LearningRateMonitor, callbacks::LearningRateMonitorOptions,
                              "LearningRateMonitor",
                              "lightning.pytorch.callbacks.LearningRateMonitor", false)
LIGHTNING_DETAIL_CLI_CALLBACK(callbacks::ProgressBar, callbacks::ProgressBarOptions,
                              "TQDMProgressBar", "lightning.pytorch.callbacks.TQDMProgressBar",
                              false)
LIGHTNING_DETAIL_CLI_CALLBACK(callbacks::ModelSummary, callbacks::ModelSummaryOptions,
                              "ModelSummary", "lightning.pytorch.callbacks.ModelSummary", false)
LIGHTNING_DETAIL_CLI_CALLBACK(callbacks::Timer, callbacks::TimerOptions, "Timer",
                              "lightning.pytorch.callbacks.Timer", false)
LIGHTNING_DETAIL_CLI_CALLBACK(loggers::CSVLogger, loggers::CSVLoggerOptions, "CSVLogger",
                              "lightning.pytorch.loggers.CSVLogger", true)
LIGHTNING_DETAIL_CLI_CALLBACK(loggers::TensorBoardLogger, loggers::TensorBoardLoggerOptions,
                              "TensorBoardLogger", "lightning.pytorch.loggers.TensorBoardLogger",
                              true)
#undef LIGHTNING_DETAIL_CLI_CALLBACK

}  // namespace cli
}  // namespace lightning
