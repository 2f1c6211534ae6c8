// TensorBoardLogger: Lightning's TensorBoard logger, without TensorFlow, tensorboard or
// libprotobuf. Writes save_dir/name/version_N[/sub_dir]/events.out.tfevents.* (read by
// `tensorboard --logdir save_dir/name`) and hparams.yaml. Torch-free.
//
// Each metric of a logging step is one scalar Event (SummaryWriter.add_scalar), written
// and flushed to the OS at once, so a crash loses nothing already logged.
// log_hyperparams writes what Lightning writes: the given metrics or, with
// default_hp_metric, an "hp_metric" scalar of -1 at step 0 and the hparams plugin's experiment /
// session_start_info / session_end_info summaries, which fill TensorBoard's HPARAMS tab.
// hparams.yaml is written when the run ends successfully, as in Lightning.
#pragma once

#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/loggers/experiment_dir.hpp>
#include <lightning/loggers/hparams_yaml.hpp>
#include <lightning/loggers/tfevents.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace lightning::loggers {

struct TensorBoardLoggerOptions {
  std::filesystem::path save_dir = ".";
  std::string name = "lightning_logs";                 // empty: runs go straight into save_dir
  std::optional<std::int64_t> version = std::nullopt;  // default: the next free version_N
  bool default_hp_metric = true;                       // log_hyperparams also logs "hp_metric" = -1
  std::string prefix = "";                             // metric names become "<prefix>-<name>"
  std::optional<std::filesystem::path> sub_dir = std::nullopt;  // log_dir = .../version_N/sub_dir
};

namespace detail {

// One run's state, shared by the copies of a TensorBoardLogger.
class TensorBoardRun {
 public:
  static constexpr std::string_view hparams_file_name = "hparams.yaml";

  explicit TensorBoardRun(TensorBoardLoggerOptions options)
      : dir_("TensorBoardLoggerOptions", std::move(options.save_dir), std::move(options.name),
             options.version),
        default_hp_metric_(options.default_hp_metric),
        prefix_(std::move(options.prefix)),
        sub_dir_(std::move(options.sub_dir)) {
    if (sub_dir_ && (sub_dir_->empty() || sub_dir_->is_absolute())) {
      std::string value = "\"";
      value += sub_dir_->string();
      value += '"';
      throw_bad_option("TensorBoardLoggerOptions", "sub_dir", value,
                       "must be a non-empty path relative to the version directory");
    }
  }
  TensorBoardRun(const TensorBoardRun&) = delete;
  TensorBoardRun& operator=(const TensorBoardRun&) = delete;
  ~TensorBoardRun() = default;  // closing the file writes what the C stream still holds

  [[nodiscard]] const ExperimentDir& dir() const noexcept { return dir_; }
  [[nodiscard]] std::filesystem::path log_dir() const {
    auto dir = dir_.log_dir();
    if (sub_dir_) dir /= *sub_dir_;
    return dir;
  }
  [[nodiscard]] const std::optional<std::filesystem::path>& sub_dir() const noexcept {
    return sub_dir_;
  }
  [[nodiscard]] const HParams& hparams() const noexcept { return hparams_; }
  [[nodiscard]] std::optional<std::filesystem::path> event_file() const {
    return events_ ? std::optional(events_->path()) : std::nullopt;
  }

  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    if (metrics.empty()) return;
    auto& events = open();
    const double now = wall_time_now();
    for (const auto& [name, value] : metrics)
      events.write(scalar_event(now, step, prefixed(prefix_, name), static_cast<float>(value)));
    events.flush();
  }

  // Lightning's log_hyperparams(params, metrics): without metrics, "hp_metric" = -1 if
  // default_hp_metric, else only the YAML gets the values.
  void log_hyperparams(const HParams& hparams, std::optional<MetricMap> metrics) {
    for (const auto& [name, value] : hparams) hparams_.set(name, value);
    if (!metrics && default_hp_metric_) metrics = MetricMap{{"hp_metric", -1.0}};
    if (!metrics || metrics->empty()) return;
    log_metrics(*metrics, 0);
    auto& events = open();
    const auto summaries = hparams_summaries(wall_time_now(), hparams, *metrics);
    events.write(summaries.experiment);
    events.write(summaries.session_start_info);
    events.write(summaries.session_end_info);
    events.flush();
  }

  void flush() {
    if (events_) events_->flush();
  }

  // Lightning's save(): hparams.yaml, once, if the run wrote anything.
  void save_hparams() {
    const auto file = log_dir() / hparams_file_name;
    std::error_code ec;
    if (std::filesystem::is_directory(log_dir(), ec) && !std::filesystem::exists(file, ec))
      save_hparams_to_yaml(file, hparams_);
  }

  // A later write opens a new event file, as SummaryWriter does after close().
  void close() {
    if (!events_) return;
    auto events = std::move(*events_);
    events_.reset();
    events.close();
  }

 private:
  EventFile& open() {
    if (!events_) {
      const auto dir = log_dir();
      make_directories(dir);
      events_.emplace(dir);
    }
    return *events_;
  }

  ExperimentDir dir_;
  bool default_hp_metric_;
  std::string prefix_;
  std::optional<std::filesystem::path> sub_dir_;
  HParams hparams_;
  std::optional<EventFile> events_;
};

}  // namespace detail

// Copies share one run (as several references to one Python logger do): the copy the
// Trainer holds and the one the caller kept write to, and report, the same files.
class TensorBoardLogger : public detail::FinalizeHooks<TensorBoardLogger> {
 public:
  static constexpr std::string_view kind = "TensorBoardLogger";

  explicit TensorBoardLogger(TensorBoardLoggerOptions options = {})
      : run_(std::make_shared<detail::TensorBoardRun>(std::move(options))) {}

  [[nodiscard]] const std::filesystem::path& save_dir() const noexcept {
    return run_->dir().save_dir();
  }
  [[nodiscard]] const std::string& name() const noexcept { return run_->dir().name(); }
  // Resolved on first use: one more than the largest existing save_dir/name/version_N.
  [[nodiscard]] std::int64_t version() const { return run_->dir().version(); }
  // save_dir/name: the folder to point `tensorboard --logdir` at to compare versions.
  [[nodiscard]] std::filesystem::path root_dir() const { return run_->dir().root_dir(); }
  // save_dir/name/version_N, then sub_dir if given.
  [[nodiscard]] std::filesystem::path log_dir() const { return run_->log_dir(); }
  [[nodiscard]] const std::optional<std::filesystem::path>& sub_dir() const noexcept {
    return run_->sub_dir();
  }
  [[nodiscard]] const HParams& hparams() const noexcept { return run_->hparams(); }
  // The event file being written, if one is open.
  [[nodiscard]] std::optional<std::filesystem::path> event_file() const {
    return run_->event_file();
  }

  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    run_->log_metrics(metrics, step);
  }
  void log_hyperparams(const HParams& hparams) { run_->log_hyperparams(hparams, std::nullopt); }
  // Also logs `metrics` at step 0 and names them in the HPARAMS tab (instead of hp_metric).
  void log_hyperparams(const HParams& hparams, const MetricMap& metrics) {
    run_->log_hyperparams(hparams, metrics);
  }
  // Flushes the event file and, if the run has a directory, writes hparams.yaml unless
  // it exists (Lightning's save).
  void save() {
    run_->flush();
    run_->save_hparams();
  }
  // Flushes and closes the event file; hparams.yaml is written only on "success".
  void finalize(std::string_view status) {
    run_->close();
    if (status == "success") run_->save_hparams();
  }

 private:
  std::shared_ptr<detail::TensorBoardRun> run_;
};

}  // namespace lightning::loggers
