// ThroughputMonitor (Lightning's callbacks.ThroughputMonitor): batches, samples, items and
// FLOPs per second of training, validation, test and prediction, logged under Lightning's
// keys ("train/device/samples_per_sec", "validate/time", ...) at its steps.
//
//   L::callbacks::ThroughputMonitor monitor({.window_size = 50},
//                                          [](const XY& b) { return std::get<0>(b).size(0); });
//
// The batch size defaults to the one the Trainer infers (L::infer_batch_size); items per
// sample (length_fn) are optional. A module with a `flops_per_batch` member (a number, or a
// function returning one) adds FLOP rates, and with `available_flops` the model FLOPs
// utilization. On CUDA each update synchronizes the device, as Lightning's does: the
// times must include the work queued, so this callback is for measuring, not production.
#pragma once

#include <lightning/core/batch.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/fabric/throughput.hpp>
#include <lightning/trainer/connectors/profiler_connector.hpp>

#include <torch/cuda.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <type_traits>

namespace lightning::callbacks {

struct ThroughputMonitorOptions {
  std::int64_t window_size = 100;  // updates the rates average over (Fabric's window_size)
  std::string separator = "/";
  // Peak FLOP/s of one device for the dtype trained in (Lightning looks it up for known
  // GPUs; here it is given): with it and the module's flops_per_batch, device/mfu.
  std::optional<double> available_flops = std::nullopt;
  // Seconds on a monotonic clock (default: std::chrono::steady_clock); a simulated clock
  // for tests and for runs whose time is not the wall's.
  std::function<double()> clock = nullptr;
};

namespace detail {
struct InferredBatchSize {
  template <class B>
  std::int64_t operator()(const B& batch) const {
    return infer_batch_size(batch);
  }
};
struct NoLength {};

// The module's FLOPs per batch (Lightning reads pl_module.flops_per_batch each batch).
template <class M>
concept HasFlopsPerBatch = requires(M& m) {
  { m.flops_per_batch() } -> std::convertible_to<double>;
}
|| requires(M& m) {
  { m.flops_per_batch } -> std::convertible_to<double>;
};
template <class M>
double flops_per_batch(M& m) {
  if constexpr (requires { m.flops_per_batch(); })
    return static_cast<double>(m.flops_per_batch());
  else
    return static_cast<double>(m.flops_per_batch);
}
}  // namespace detail

template <class BatchSize = detail::InferredBatchSize, class Length = detail::NoLength>
class ThroughputMonitor {
  enum Kind : std::size_t { train, validate, test, predict, kinds };
  static constexpr std::array<const char*, kinds> names{"train", "validate", "test", "predict"};

 public:
  explicit ThroughputMonitor(ThroughputMonitorOptions options = {}, BatchSize batch_size_fn = {},
                             Length length_fn = {})
      : o_(std::move(options)),
        batch_size_fn_(std::move(batch_size_fn)),
        length_fn_(std::move(length_fn)) {
    (void)Throughput({.window_size = o_.window_size});  // checks the window now
  }

  template <class T, class M>
  void setup(T& trainer, M&, Stage stage) {
    const ThroughputOptions t{.available_flops = o_.available_flops,
                              .world_size = trainer.fabric().world_size(),
                              .window_size = o_.window_size,
                              .separator = o_.separator};
    if (stage == Stage::fit) {
      running_[validate].emplace(t);
      running_[train].emplace(t);
    } else {
      running_[kind_of(stage)].emplace(t);
    }
  }

  template <class T, class M>
  void on_train_start(T& trainer, M&) {
    if (trainer.is_global_zero()) start(train, /*fitting=*/true);
  }
  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M& module, const O&, const B& batch, std::int64_t idx) {
    if (!trainer.is_global_zero()) return;
    update(trainer, module, batch, train);
    // Lightning computes after the batches that step the optimizer (not while accumulating).
    const auto n = trainer.num_training_batches;
    const bool steps = (idx + 1) % trainer.accumulate_grad_batches() == 0 || (n && idx + 1 == *n);
    if (steps && trainer.should_update_logs())
      log(trainer, train, std::max<std::int64_t>(trainer.global_step - 1, 0),
          static_cast<double>(trainer.current_epoch));
  }

  template <class T, class M>
  void on_validation_start(T& trainer, M&) {
    if (trainer.sanity_checking || !trainer.is_global_zero()) return;
    run_batches_ = 0;
    start(validate, trainer.stage == Stage::fit);
  }
  template <class T, class M, class O, class B>
  void on_validation_batch_end(T& trainer, M& module, const O&, const B& batch, std::int64_t,
                               std::int64_t = 0) {
    if (trainer.sanity_checking || !trainer.is_global_zero()) return;
    evaluation_batch_end(trainer, module, batch, validate);
  }
  // As Lightning: the training clock does not run while fit validates.
  template <class T, class M>
  void on_validation_end(T& trainer, M&) {
    if (trainer.sanity_checking || trainer.stage != Stage::fit || !trainer.is_global_zero()) return;
    const double train_elapsed = running_[train] ? running_[train]->last_time() : 0.0;
    const double val_elapsed = running_[validate] ? running_[validate]->last_time() : 0.0;
    const double training_finished = t0_[train] + train_elapsed;
    t0_[train] += (t0_[validate] - training_finished) + val_elapsed;
  }

  template <class T, class M>
  void on_test_start(T& trainer, M&) {
    if (!trainer.is_global_zero()) return;
    run_batches_ = 0;
    start(test, false);
  }
  template <class T, class M, class O, class B>
  void on_test_batch_end(T& trainer, M& module, const O&, const B& batch, std::int64_t,
                         std::int64_t = 0) {
    if (trainer.is_global_zero()) evaluation_batch_end(trainer, module, batch, test);
  }
  template <class T, class M>
  void on_predict_start(T& trainer, M&) {
    if (!trainer.is_global_zero()) return;
    run_batches_ = 0;
    start(predict, false);
  }
  template <class T, class M, class O, class B>
  void on_predict_batch_end(T& trainer, M& module, const O&, const B& batch, std::int64_t) {
    if (trainer.is_global_zero()) evaluation_batch_end(trainer, module, batch, predict);
  }

  // The rates of a stage as last computed: Stage::fit is training's, Stage::validate that
  // of validation (inside fit too), test's and predict's.
  [[nodiscard]] MetricMap compute(Stage stage) const {
    const Kind k = kind_of(stage);
    return running_[k] ? running_[k]->compute() : MetricMap{};
  }

 private:
  static Kind kind_of(Stage stage) {
    switch (stage) {
      case Stage::fit:
        return train;
      case Stage::validate:
        return validate;
      case Stage::test:
        return test;
      case Stage::predict:
        return predict;
    }
    return train;
  }

  [[nodiscard]] double now() const {
    if (o_.clock) return o_.clock();
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Lightning's _start: fit restarts its counts; validate/test/predict keep counting
  // across calls of the same entry point.
  void start(Kind k, bool fitting) {
    if (!running_[k]) running_[k].emplace(ThroughputOptions{.window_size = o_.window_size});
    if (fitting || !started_[k]) {
      running_[k]->reset();
      lengths_[k] = samples_[k] = batches_[k] = 0;
      started_[k] = true;
    }
    t0_[k] = now();
  }

  template <class T, class M, class B>
  void update(T& trainer, M& module, const B& batch, Kind k) {
    if (trainer.fabric().device().is_cuda())
      torch::cuda::synchronize(trainer.fabric().device().index());
    const double elapsed = now() - t0_[k];
    std::optional<std::int64_t> lengths;
    if constexpr (!std::is_same_v<Length, detail::NoLength>) {
      lengths_[k] += static_cast<std::int64_t>(length_fn_(batch));
      lengths = lengths_[k];
    }
    std::optional<double> flops;
    if constexpr (detail::HasFlopsPerBatch<M>) {
      flops = detail::flops_per_batch(module);
    } else if (!flops_warned_) {
      std::cerr << "lightning: warning: ThroughputMonitor: define a `flops_per_batch` member in "
                << lightning::detail::class_name<M>() << " to compute the FLOPs\n";
      flops_warned_ = true;
    }
    samples_[k] += static_cast<std::int64_t>(batch_size_fn_(batch));
    batches_[k] += 1;
    running_[k]->update(elapsed, batches_[k], samples_[k], lengths, flops);
  }

  // Lightning logs an evaluation run's rows at its batch count (batch_progress.total.ready,
  // which each run starts again), on its logging batches.
  template <class T, class M, class B>
  void evaluation_batch_end(T& trainer, M& module, const B& batch, Kind k) {
    ++run_batches_;
    update(trainer, module, batch, k);
    const auto n = *trainer.run_options().log_every_n_steps;
    if (n > 0 && (run_batches_ % n == 0 || trainer.should_stop)) log(trainer, k, run_batches_);
  }

  // Training rows carry "epoch", as Lightning's logger connector adds it to rows logged
  // without a step of their own.
  template <class T>
  void log(T& trainer, Kind k, std::int64_t step, std::optional<double> epoch = std::nullopt) {
    MetricMap prefixed;
    if (epoch) prefixed["epoch"] = *epoch;
    for (const auto& [key, value] : running_[k]->compute())
      prefixed[std::string(names[k]) + o_.separator + key] = value;
    trainer.log_metrics(prefixed, step);
  }

  ThroughputMonitorOptions o_;
  BatchSize batch_size_fn_;
  [[no_unique_address]] Length length_fn_;
  std::array<std::optional<Throughput>, kinds> running_{};
  std::array<double, kinds> t0_{};
  std::array<std::int64_t, kinds> lengths_{}, samples_{}, batches_{};
  std::array<bool, kinds> started_{};
  std::int64_t run_batches_ = 0;
  bool flops_warned_ = false;
};

}  // namespace lightning::callbacks
