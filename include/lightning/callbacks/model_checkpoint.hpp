// ModelCheckpoint: Lightning's checkpointing callback. Saves through
// trainer.save_checkpoint (atomic, verified files), keeps the top k by a monitored
// metric, and removes a file that falls out of the top k only after the new one is
// committed, so a crash never leaves fewer good checkpoints than asked for.
#pragma once

#include <lightning/callbacks/checkpoint_name.hpp>
#include <lightning/callbacks/monitor.hpp>
#include <lightning/core/bad_option.hpp>
#include <lightning/core/directories.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/fabric/checkpoint_io.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lightning::callbacks {

// Lightning's ModelCheckpoint(...) arguments, in its order.
struct ModelCheckpointOptions {
  // Where files go; unset: <first logger's log_dir>/checkpoints, else
  // <default_root_dir>/checkpoints (resolved when fit starts).
  std::optional<std::filesystem::path> dirpath = std::nullopt;
  std::string filename = {};  // template, e.g. "{epoch}-{val_loss:.2f}"; "" = "{epoch}-{step}"
  std::string monitor = {};   // metric to rank by; "": keep the latest (save_top_k 1) or all (-1)
  bool verbose = false;
  bool save_last = false;       // also keep "last.ckpt", a copy of the latest state
  std::int64_t save_top_k = 1;  // -1: every checkpoint; 0: none (only save_last)
  bool save_weights_only = false;
  Mode mode = Mode::min;
  bool auto_insert_metric_name = true;  // "{epoch}" writes "epoch=3"
  // Triggers, at most one of them (unset all: every epoch).
  std::optional<std::int64_t> every_n_train_steps = std::nullopt;
  std::optional<std::chrono::duration<double>> train_time_interval = std::nullopt;
  std::optional<std::int64_t> every_n_epochs = std::nullopt;
  // Unset: at train epoch end when validation runs once per epoch (or not at all),
  // else after each validation run.
  std::optional<bool> save_on_train_epoch_end = std::nullopt;
  bool enable_version_counter = true;  // "name-v1.ckpt" instead of overwriting "name.ckpt"
  std::ostream* stream = nullptr;      // verbose messages (default std::cerr)
};

class ModelCheckpoint {
 public:
  static constexpr bool is_model_checkpoint = true;
  static constexpr const char* last_name = "last";
  static constexpr const char* extension = ".ckpt";

  explicit ModelCheckpoint(ModelCheckpointOptions options = {}) : o_(std::move(options)) {
    const auto bad = [](const char* name, const std::string& value, const char* rule) {
      throw_bad_option("ModelCheckpointOptions", name, value, rule);
    };
    if (o_.save_top_k < -1)
      bad("save_top_k", std::to_string(o_.save_top_k), "must be >= -1 (-1: keep every file)");
    if (o_.every_n_train_steps && *o_.every_n_train_steps < 0)
      bad("every_n_train_steps", std::to_string(*o_.every_n_train_steps), "must be >= 0");
    if (o_.every_n_epochs && *o_.every_n_epochs < 0)
      bad("every_n_epochs", std::to_string(*o_.every_n_epochs), "must be >= 0");
    if (o_.train_time_interval && !(o_.train_time_interval->count() > 0))
      bad("train_time_interval", std::to_string(o_.train_time_interval->count()) + " s",
          "must be a positive duration");
    if (o_.monitor.empty() && o_.save_top_k != -1 && o_.save_top_k != 0 && o_.save_top_k != 1)
      bad("save_top_k", std::to_string(o_.save_top_k),
          "needs a monitor to rank checkpoints by; set ModelCheckpointOptions.monitor, or "
          "save_top_k = -1 (all), 1 (the latest) or 0");
    if (!o_.every_n_train_steps && !o_.every_n_epochs && !o_.train_time_interval) {
      every_n_epochs_ = 1;
    } else {
      every_n_epochs_ = o_.every_n_epochs.value_or(0);
      every_n_train_steps_ = o_.every_n_train_steps.value_or(0);
    }
    if ((every_n_train_steps_ >= 1) + (every_n_epochs_ >= 1) + o_.train_time_interval.has_value() >
        1)
      bad("every_n_train_steps/every_n_epochs/train_time_interval",
          std::to_string(o_.every_n_train_steps.value_or(0)) + "/" +
              std::to_string(o_.every_n_epochs.value_or(0)) + "/" +
              (o_.train_time_interval ? std::to_string(o_.train_time_interval->count()) + " s"
                                      : std::string("unset")),
          "the three triggers are mutually exclusive; set one of them");
    if (o_.dirpath) dirpath_ = *o_.dirpath;
    kth_value_ = detail::worst(o_.mode);
  }

  // The Trainer's default instance is disabled by enable_checkpointing = false.
  void disable() noexcept { enabled_ = false; }
  void enable() noexcept { enabled_ = true; }
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

  [[nodiscard]] const ModelCheckpointOptions& options() const noexcept { return o_; }
  [[nodiscard]] const std::filesystem::path& dirpath() const noexcept { return dirpath_; }
  [[nodiscard]] const std::string& best_model_path() const noexcept { return best_model_path_; }
  [[nodiscard]] std::optional<double> best_model_score() const noexcept {
    return best_model_score_;
  }
  [[nodiscard]] const std::string& last_model_path() const noexcept { return last_model_path_; }
  [[nodiscard]] std::optional<double> current_score() const noexcept { return current_score_; }
  [[nodiscard]] const std::string& kth_best_model_path() const noexcept { return kth_path_; }
  // The kept checkpoints and their scores, in the order they were saved.
  [[nodiscard]] const std::vector<std::pair<std::string, double>>& best_k_models() const noexcept {
    return best_k_;
  }

  // Lightning's state key: two checkpoint callbacks with other settings keep separate states.
  [[nodiscard]] std::string state_key() const {
    std::string k = "ModelCheckpoint{'monitor': ";
    k += o_.monitor.empty() ? "None" : detail::py_repr(o_.monitor);
    k += ", 'mode': ";
    k += detail::py_repr(detail::mode_name(o_.mode));
    k += ", 'every_n_train_steps': ";
    k += std::to_string(every_n_train_steps_);
    k += ", 'every_n_epochs': ";
    k += std::to_string(every_n_epochs_);
    k += ", 'train_time_interval': ";
    k += o_.train_time_interval ? python_float_repr(o_.train_time_interval->count()) : "None";
    k += '}';
    return k;
  }

  // The file name (in dirpath) for these metrics, as Lightning's format_checkpoint_name.
  [[nodiscard]] std::filesystem::path format_checkpoint_name(
      const MetricMap& metrics, std::int64_t epoch, std::int64_t step,
      const std::string& filename = {}, std::optional<std::int64_t> version = std::nullopt) const {
    std::string name = filename.empty()
                           ? callbacks::format_checkpoint_name(o_.filename, metrics, epoch, step,
                                                               o_.auto_insert_metric_name)
                           : filename;
    if (version) name += "-v" + std::to_string(*version);
    name += extension;
    check_inside_dirpath(name);
    return dirpath_.empty() ? std::filesystem::path(name) : dirpath_ / name;
  }

  // "last*.ckpt" files in the checkpoint directory (candidates for ckpt_path = "last").
  template <class Trainer>
  [[nodiscard]] std::vector<std::filesystem::path> find_last_checkpoints(Trainer& trainer) const {
    const auto dir = dirpath_.empty() ? resolve_dir(trainer) : dirpath_;
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const auto name = entry.path().filename().string();
      if (entry.is_regular_file() && name.starts_with(last_name) && name.ends_with(extension))
        out.push_back(entry.path());
    }
    return out;
  }

  // ---- hooks ----
  template <class Trainer, class Module>
  void setup(Trainer& trainer, Module&, Stage stage) {
    if (!enabled_) return;
    dirpath_ = resolve_dir(trainer);
    if (stage == Stage::fit && trainer.is_global_zero())
      require_directory(dirpath_,
                        o_.dirpath ? DirectoryRole{"ModelCheckpointOptions.dirpath",
                                                   "set ModelCheckpointOptions.dirpath to "
                                                   "another directory"}
                                   : DirectoryRole{"the checkpoint directory",
                                                   "set TrainerOptions.default_root_dir or "
                                                   "ModelCheckpointOptions.dirpath to another "
                                                   "directory"},
                        /*create=*/false);
    if (stage == Stage::fit && trainer.is_global_zero() && o_.save_top_k != 0) {
      std::error_code ec;
      if (std::filesystem::is_directory(dirpath_, ec) && !std::filesystem::is_empty(dirpath_, ec) &&
          !warned_dir_)
        out() << "lightning: checkpoint directory " << dirpath_.string()
              << " exists and is not empty\n";
      warned_dir_ = true;
      remove_stale_checkpoint_temporaries(dirpath_);
    }
  }

  template <class Trainer, class Module>
  void on_train_start(Trainer&, Module&) {
    last_time_checked_ = Clock::now();
  }

  template <class Trainer, class Module, class Out, class Batch>
  void on_train_batch_end(Trainer& trainer, Module&, const Out&, const Batch&, std::int64_t) {
    if (skip_saving(trainer)) return;
    const bool skip_batch =
        every_n_train_steps_ < 1 || trainer.global_step % every_n_train_steps_ != 0;
    bool skip_time = true;
    Clock::time_point now{};
    if (o_.train_time_interval) {
      now = Clock::now();
      skip_time = std::chrono::duration<double>(now - last_time_checked_) < *o_.train_time_interval;
      // The ranks' clocks differ, and save() is a collective: rank zero's decision holds.
      if constexpr (requires { trainer.broadcast(skip_time); })
        skip_time = trainer.broadcast(skip_time);
    }
    if (skip_batch && skip_time) return;
    if (!skip_time) last_time_checked_ = now;
    save_all(trainer);
  }

  template <class Trainer, class Module>
  void on_train_epoch_end(Trainer& trainer, Module&) {
    if (!skip_saving(trainer) && save_on_train_epoch_end(trainer) && epoch_due(trainer))
      save_all(trainer);
  }

  template <class Trainer, class Module>
  void on_validation_end(Trainer& trainer, Module&) {
    if (!trainer.sanity_checking) validation_has_run_ = true;
    if (!skip_saving(trainer) && !save_on_train_epoch_end(trainer) && epoch_due(trainer))
      save_all(trainer);
  }

  [[nodiscard]] CheckpointDict state_dict() const {
    CheckpointDict s = make_checkpoint();
    s.insert("monitor", o_.monitor);
    s.insert("best_model_score", score_entry(best_model_score_));
    s.insert("best_model_path", best_model_path_);
    s.insert("current_score", score_entry(current_score_));
    s.insert("dirpath", dirpath_.string());
    CheckpointDict best_k = make_checkpoint();
    for (const auto& [path, score] : best_k_) best_k.insert(path, score_entry(score));
    s.insert("best_k_models", best_k);
    s.insert("kth_best_model_path", kth_path_);
    s.insert("kth_value", score_entry(kth_value_));
    s.insert("last_model_path", last_model_path_);
    return s;
  }

  // As Lightning: the ranking is restored only when the checkpoint directory is the same.
  void load_state_dict(const CheckpointDict& s) {
    const auto dir = s.contains("dirpath") ? s.at("dirpath").toStringRef() : dirpath_.string();
    if (dir == dirpath_.string()) {
      // Lightning's files hold tensors, older lightning-cpp ones floats (score_of reads both).
      best_model_score_ = score_of(s.at("best_model_score"));
      current_score_ = s.contains("current_score") ? score_of(s.at("current_score")) : std::nullopt;
      kth_path_ = s.at("kth_best_model_path").toStringRef();
      kth_value_ = score_of(s.at("kth_value")).value_or(kth_value_);
      best_k_.clear();
      for (const auto& kv : s.at("best_k_models").toGenericDict())
        best_k_.emplace_back(kv.key().toStringRef(), score_of(kv.value()).value_or(0.0));
      last_model_path_ = s.at("last_model_path").toStringRef();
    } else {
      out() << "lightning: ModelCheckpoint's dirpath changed from " << dir << " to "
            << dirpath_.string()
            << "; best_model_score, kth_best_model_path, kth_value, last_model_path and "
               "best_k_models are not restored, only best_model_path\n";
    }
    best_model_path_ = s.at("best_model_path").toStringRef();
  }

 private:
  using Clock = std::chrono::steady_clock;

  std::ostream& out() const { return o_.stream ? *o_.stream : std::cerr; }

  // A name made from the template, metric names and values stays inside dirpath: a "/"
  // makes subfolders (as "val/loss" does in Lightning), but an absolute name or a ".."
  // that climbs out of dirpath could overwrite any file the run may write.
  void check_inside_dirpath(const std::string& name) const {
    const auto relative = std::filesystem::path(name).lexically_normal();
    const bool escapes = relative.is_absolute() || relative.has_root_name() ||
                         relative.has_root_directory() ||
                         (!relative.empty() && *relative.begin() == "..");
    if (escapes)
      throw_bad_option("ModelCheckpointOptions", "filename", "\"" + o_.filename + "\"",
                       "it made the checkpoint name \"" + name +
                           "\", which leaves the checkpoint directory; a name (and the metric "
                           "names it holds) may make subfolders with '/', but not start with "
                           "'/' or climb with '..'");
  }

  template <class Trainer>
  std::filesystem::path resolve_dir(Trainer& trainer) const {
    return o_.dirpath ? *o_.dirpath : trainer.default_checkpoint_dir();
  }

  template <class Trainer>
  bool skip_saving(Trainer& trainer) const {
    return !enabled_ || trainer.run_options().fast_dev_run > 0 || trainer.stage != Stage::fit ||
           trainer.sanity_checking || last_saved_ == progress_of(trainer);
  }
  template <class Trainer>
  bool epoch_due(Trainer& trainer) const {
    return every_n_epochs_ >= 1 && (trainer.current_epoch + 1) % every_n_epochs_ == 0;
  }
  template <class Trainer>
  bool save_on_train_epoch_end(Trainer& trainer) const {
    if (o_.save_on_train_epoch_end) return *o_.save_on_train_epoch_end;
    const auto& run = trainer.run_options();
    if (run.check_val_every_n_epoch != 1) return false;
    if (trainer.num_val_batches && *trainer.num_val_batches == 0) return true;
    if (!trainer.has_validation()) return true;
    return run.val_check_interval.is_all();
  }

  template <class Trainer>
  void save_all(Trainer& trainer) {
    MetricMap metrics = trainer.callback_metrics();
    save_topk(trainer, metrics);
    save_last(trainer, metrics);
  }

  template <class Trainer>
  void save_topk(Trainer& trainer, const MetricMap& metrics) {
    if (o_.save_top_k == 0) return;
    if (o_.monitor.empty()) {
      const auto path = versioned(trainer, metrics, {}, best_model_path_);
      auto previous = std::exchange(best_model_path_, path.string());
      save(trainer, path);
      if (o_.save_top_k == 1 && !previous.empty()) remove_if_ours(trainer, previous, path);
      return;
    }
    const auto it = metrics.find(o_.monitor);
    if (it == metrics.end()) {
      std::string m = "lightning: ModelCheckpoint(monitor = \"" + o_.monitor +
                      "\") could not find the monitored metric among the logged ones: [" +
                      detail::metric_names(metrics) + "]. Did you log(\"" + o_.monitor +
                      "\", value) in the module?";
      if (validation_has_run_) throw std::runtime_error(m);
      if (!warned_missing_) out() << m << '\n';
      warned_missing_ = true;
      return;
    }
    const double current = it->second;
    if (top_k_accepts(trainer, current)) {
      update_best_and_save(trainer, current, metrics);
    } else if (o_.verbose) {
      out() << "Epoch " << trainer.current_epoch << ", global step " << trainer.global_step << ": '"
            << o_.monitor << "' was not in top " << o_.save_top_k << '\n';
    }
  }

  // Every rank takes the same decision (save() is a collective): a monitored value not
  // synced across ranks may improve on one rank only, and then no rank saves (Lightning's
  // reduce_boolean_decision in check_monitor_top_k). Below k kept files every rank agrees.
  template <class Trainer>
  [[nodiscard]] bool top_k_accepts(Trainer& trainer, double current) const {
    if (o_.save_top_k == -1 || static_cast<std::int64_t>(best_k_.size()) < o_.save_top_k)
      return true;
    const bool improves = detail::improves(o_.mode, current, kth_value_);
    if constexpr (requires { trainer.reduce_boolean_decision(true, true); })
      return trainer.reduce_boolean_decision(improves, /*all=*/true);
    else
      return improves;
  }

  template <class Trainer>
  void update_best_and_save(Trainer& trainer, double current, const MetricMap& metrics) {
    const std::size_t k =
        o_.save_top_k == -1 ? best_k_.size() + 1 : static_cast<std::size_t>(o_.save_top_k);
    std::string removed;
    if (best_k_.size() == k && k > 0) {
      removed = kth_path_;
      std::erase_if(best_k_, [&](const auto& e) { return e.first == removed; });
    }
    if (std::isnan(current)) current = detail::worst(o_.mode);  // a NaN never ranks as best
    const auto path = versioned(trainer, metrics, {}, removed);
    current_score_ = current;
    best_k_.emplace_back(path.string(), current);
    // Lightning's min()/max() over a dict: the first of equal scores wins.
    const auto better = [&](const auto& a, const auto& b) {
      return detail::improves(o_.mode, a.second, b.second);
    };
    if (best_k_.size() == k) {
      const auto kth = std::min_element(best_k_.begin(), best_k_.end(),
                                        [&](const auto& a, const auto& b) { return better(b, a); });
      kth_path_ = kth->first;
      kth_value_ = kth->second;
    }
    const auto best = std::min_element(best_k_.begin(), best_k_.end(), better);
    best_model_path_ = best->first;
    best_model_score_ = best->second;
    if (o_.verbose) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "reached %.5f (best %.5f)", current, *best_model_score_);
      out() << "Epoch " << trainer.current_epoch << ", global step " << trainer.global_step << ": '"
            << o_.monitor << "' " << buf << ", saving model to " << path.string() << " as top " << k
            << '\n';
    }
    save(trainer, path);
    if (!removed.empty()) remove_if_ours(trainer, removed, path);
  }

  template <class Trainer>
  void save_last(Trainer& trainer, const MetricMap& metrics) {
    if (!o_.save_last) return;
    const auto path = versioned(trainer, metrics, last_name, last_model_path_);
    auto previous = std::exchange(last_model_path_, path.string());
    save(trainer, path);
    if (!previous.empty()) remove_if_ours(trainer, previous, path);
  }

  // The file name, with "-vN" added while another file has it (unless it is `reuse`,
  // the file this save replaces), as rank zero names it. A name this callback still keeps
  // is taken even before its file exists: its write may still be in flight.
  template <class Trainer>
  std::filesystem::path versioned(Trainer& trainer, const MetricMap& metrics,
                                  const std::string& filename, const std::string& reuse) const {
    auto path =
        format_checkpoint_name(metrics, trainer.current_epoch, trainer.global_step, filename);
    if (o_.enable_version_counter)
      for (std::int64_t v = 1; taken(path) && path.string() != reuse; ++v)
        path = format_checkpoint_name(metrics, trainer.current_epoch, trainer.global_step, filename,
                                      v);
    if constexpr (requires { trainer.broadcast(path.string()); })
      path = trainer.broadcast(path.string());
    return path;
  }
  [[nodiscard]] bool taken(const std::filesystem::path& path) const {
    const auto name = path.string();
    if (name == best_model_path_ || name == last_model_path_ || name == kth_path_) return true;
    for (const auto& kept : best_k_)
      if (kept.first == name) return true;
    std::error_code ec;
    return std::filesystem::exists(path, ec);
  }

  // Every rank calls it for rank zero's file (versioned()); the write leaves the training
  // thread.
  template <class Trainer>
  void save(Trainer& trainer, const std::filesystem::path& path) {
    if constexpr (requires { trainer.save_checkpoint_in_background(path, true); })
      trainer.save_checkpoint_in_background(path, o_.save_weights_only);
    else
      trainer.save_checkpoint(path, o_.save_weights_only);
    last_saved_ = progress_of(trainer);
  }

  // Deletes a file this callback wrote and no longer keeps: never the checkpoint the run
  // resumed from, never a file outside dirpath (files in its subfolders are inside, as
  // "epoch=2-val/loss=0.1.ckpt" from a metric "val/loss"), only on rank zero.
  template <class Trainer>
  void remove_if_ours(Trainer& trainer, const std::string& previous,
                      const std::filesystem::path& current) const {
    if (previous == current.string() || !trainer.is_global_zero()) return;
    std::error_code ec;
    const auto prev = std::filesystem::absolute(previous, ec).lexically_normal();
    if (trainer.ckpt_path() &&
        std::filesystem::absolute(*trainer.ckpt_path(), ec).lexically_normal() == prev)
      return;
    const auto inside =
        prev.lexically_relative(std::filesystem::absolute(dirpath_, ec).lexically_normal());
    if (inside.empty() || *inside.begin() == ".." || *inside.begin() == ".") return;
    if constexpr (requires { trainer.remove_checkpoint(prev); })
      trainer.remove_checkpoint(prev);  // after the save that replaces it is on disk
    else
      std::filesystem::remove(prev, ec);
  }

  ModelCheckpointOptions o_;
  std::int64_t every_n_epochs_ = 0;
  std::int64_t every_n_train_steps_ = 0;
  bool enabled_ = true;
  bool warned_dir_ = false;
  bool warned_missing_ = false;
  bool validation_has_run_ = false;
  std::filesystem::path dirpath_;
  std::string best_model_path_, last_model_path_, kth_path_;
  std::optional<double> best_model_score_, current_score_;
  double kth_value_ = 0.0;
  std::vector<std::pair<std::string, double>> best_k_;
  // What a save holds, as Lightning's _last_global_step_saved: the optimizer steps, and
  // the epochs that changed the module without one (StochasticWeightAveraging's BatchNorm
  // epoch, whose result must be saved). No checkpoint before the first step.
  template <class Trainer>
  static std::pair<std::int64_t, std::int64_t> progress_of(const Trainer& trainer) {
    if constexpr (requires { trainer.epochs_without_optimization(); })
      return {trainer.global_step, trainer.epochs_without_optimization()};
    else
      return {trainer.global_step, 0};
  }
  std::pair<std::int64_t, std::int64_t> last_saved_{0, 0};
  Clock::time_point last_time_checked_{};
};

}  // namespace lightning::callbacks
