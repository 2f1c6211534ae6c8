// DeviceStatsMonitor (Lightning's callbacks.DeviceStatsMonitor): the device's statistics
// sent to the loggers at the start and end of training, validation and test batches, on
// logging steps, under "DeviceStatsMonitor.<hook>/<stat>" (fabric/device_stats.hpp lists
// the stats). Reading them costs a few /proc reads on the CPU and nothing on the device
// (the CUDA allocator's counters are host-side), but the callback is for diagnosis.
#pragma once

#include <lightning/callbacks/logger_required.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/fabric/device_stats.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace lightning::callbacks {

struct DeviceStatsMonitorOptions {
  // CPU statistics: unset logs them when training on the CPU; true adds them on a GPU
  // too; false never logs them (on the CPU: nothing).
  std::optional<bool> cpu_stats = std::nullopt;
};

class DeviceStatsMonitor {
 public:
  explicit DeviceStatsMonitor(DeviceStatsMonitorOptions options = {}) : o_(options) {}

  // As Lightning: only fit is monitored, and it needs a logger.
  template <class T, class M>
  void setup(T& trainer, M&, Stage stage) {
    if (stage != Stage::fit) return;
    detail::require_logger(trainer, "DeviceStatsMonitor");
    cpu_.emplace();
  }

  template <class T, class M, class B>
  void on_train_batch_start(T& trainer, M&, const B&, std::int64_t) {
    if (trainer.should_update_logs()) send(trainer, "on_train_batch_start", trainer.global_step);
  }
  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M&, const O&, const B&, std::int64_t idx) {
    if (trainer.should_update_logs()) send(trainer, "on_train_batch_end", stepped(trainer, idx));
  }
  template <class T, class M, class B>
  void on_validation_batch_start(T& trainer, M&, const B&, std::int64_t idx, std::int64_t = 0) {
    if (evaluation_logs(trainer, idx)) send(trainer, "on_validation_batch_start", during(trainer));
  }
  template <class T, class M, class O, class B>
  void on_validation_batch_end(T& trainer, M&, const O&, const B&, std::int64_t idx,
                               std::int64_t = 0) {
    if (evaluation_logs(trainer, idx)) send(trainer, "on_validation_batch_end", during(trainer));
  }
  template <class T, class M, class B>
  void on_test_batch_start(T& trainer, M&, const B&, std::int64_t idx, std::int64_t = 0) {
    if (evaluation_logs(trainer, idx)) send(trainer, "on_test_batch_start", during(trainer));
  }
  template <class T, class M, class O, class B>
  void on_test_batch_end(T& trainer, M&, const O&, const B&, std::int64_t idx, std::int64_t = 0) {
    if (evaluation_logs(trainer, idx)) send(trainer, "on_test_batch_end", during(trainer));
  }

  // The statistics as they would be logged now (without the hook's prefix).
  template <class T>
  [[nodiscard]] MetricMap read(const T& trainer) {
    const c10::Device device = trainer.fabric().device();
    MetricMap stats;
    if (device.is_cpu()) {
      if (o_.cpu_stats.value_or(true)) stats = cpu().read();
    } else {
      if (device.is_cuda()) stats = cuda_memory_stats(device);
      if (o_.cpu_stats.value_or(false))
        for (auto& [k, v] : cpu().read()) stats[k] = v;
    }
    return stats;
  }

 private:
  CpuStats& cpu() {
    if (!cpu_) cpu_.emplace();
    return *cpu_;
  }

  // Lightning logs at fit_loop's _batches_that_stepped: the optimizer steps before this
  // batch's (its own counts from on_train_batch_end's return, after the callbacks).
  template <class T>
  static std::int64_t stepped(const T& trainer, std::int64_t idx) {
    const auto n = trainer.num_training_batches;
    const bool steps = (idx + 1) % trainer.accumulate_grad_batches() == 0 || (n && idx + 1 == *n);
    return steps ? std::max<std::int64_t>(trainer.global_step - 1, 0) : trainer.global_step;
  }
  // Validation inside fit runs after the batch that stepped.
  template <class T>
  static std::int64_t during(const T& trainer) {
    return trainer.stage == Stage::fit ? std::max<std::int64_t>(trainer.global_step - 1, 0)
                                       : trainer.global_step;
  }
  // Lightning's should_update_logs in an evaluation loop: the run's batch count.
  template <class T>
  static bool evaluation_logs(const T& trainer, std::int64_t idx) {
    const auto n = *trainer.run_options().log_every_n_steps;
    return n > 0 && ((idx + 1) % n == 0 || trainer.should_stop);
  }

  template <class T>
  void send(T& trainer, const char* hook, std::int64_t step) {
    MetricMap prefixed;
    const std::string prefix = std::string("DeviceStatsMonitor.") + hook + "/";
    for (const auto& [k, v] : read(trainer)) prefixed[prefix + k] = v;
    if (!prefixed.empty()) trainer.log_metrics(prefixed, step);
  }

  DeviceStatsMonitorOptions o_;
  std::optional<CpuStats> cpu_;
};

}  // namespace lightning::callbacks
