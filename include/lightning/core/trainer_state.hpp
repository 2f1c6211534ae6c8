// The part of the Trainer that a module can see: Lightning's `self.trainer` attributes.
#pragma once

#include <lightning/core/metrics.hpp>
#include <lightning/core/stage.hpp>

#include <cstdint>
#include <iostream>
#include <optional>

namespace lightning {

// Progress and flags of a running Trainer. `Trainer` derives from it, so
// `trainer.current_epoch`, `trainer.should_stop = true` read as in Python, and a
// module reaches the same object through `trainer()`.
struct TrainerState {
  std::int64_t current_epoch = 0;  // epochs completed so far (the running epoch's index)
  std::int64_t global_step = 0;    // optimizer steps taken
  bool should_stop = false;        // set by a callback or the module to stop fit early
  bool sanity_checking = false;    // true during the sanity validation before training
  bool training = false;           // inside the training part of fit
  bool validating = false;         // inside a validation run
  Stage stage = Stage::fit;        // the running entry point
  std::int64_t batch_idx = 0;      // index of the current batch in its epoch
  std::optional<std::int64_t> num_training_batches;    // per epoch, after limits; unknown if unset
  std::optional<std::int64_t> num_val_batches;         // per validation (or test) run, after limits
  std::optional<std::int64_t> num_sanity_val_batches;  // the sanity check's, over all loaders
  std::optional<std::int64_t> num_test_batches;        // per test run, after limits
  std::optional<std::int64_t> num_predict_batches;     // per predict run, after limits
  MetricStore metrics;                                 // what log() recorded
  bool barebones = false;  // TrainerOptions.barebones: log() records nothing

  // Whether log() records: not under barebones, where the first call warns (as Lightning).
  [[nodiscard]] bool accepts_logs() {
    if (!barebones) return true;
    if (!barebones_log_warned) {
      std::cerr << "lightning: warning: log() was called, but TrainerOptions.barebones = true; "
                   "logging can impact raw speed, so it is disabled (the value is dropped)\n";
      barebones_log_warned = true;
    }
    return false;
  }
  bool barebones_log_warned = false;

  [[nodiscard]] MetricMap callback_metrics() const { return metrics.callback_metrics(); }
  [[nodiscard]] MetricMap logged_metrics() const { return metrics.logged_metrics(); }
  [[nodiscard]] MetricMap progress_bar_metrics() const { return metrics.progress_bar_metrics(); }
};

}  // namespace lightning
