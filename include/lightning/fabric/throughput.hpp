// Throughput (Lightning Fabric's utilities.throughput.Throughput): rates over a rolling
// window of the most recent updates, from running totals of time, batches, samples,
// items (lengths) and FLOPs. The keys and arithmetic are Fabric's, so a ThroughputMonitor
// logs the same numbers Lightning's would for the same totals.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/metric_map.hpp>

#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>

namespace lightning {

struct ThroughputOptions {
  // The device's peak FLOP/s for the dtype trained in: with it, device/mfu is logged.
  std::optional<double> available_flops = std::nullopt;
  std::int64_t world_size = 1;     // > 1: the global (all ranks) rates are logged too
  std::int64_t window_size = 100;  // updates the rates are averaged over (>= 2)
  std::string separator = "/";
};

class Throughput {
 public:
  explicit Throughput(ThroughputOptions options = {}) : o_(std::move(options)) {
    if (o_.world_size < 1)
      throw_bad_option("ThroughputOptions", "world_size", std::to_string(o_.world_size),
                       "must be >= 1");
    if (o_.window_size < 2)
      throw_bad_option("ThroughputOptions", "window_size", std::to_string(o_.window_size),
                       "must be >= 2 (rates need two updates)");
  }

  // Totals since the start: `time` in seconds, `batches`, `samples`, `lengths` (items) on
  // this device; `flops` done on this device since the previous update.
  void update(double time, std::int64_t batches, std::int64_t samples,
              std::optional<std::int64_t> lengths = std::nullopt,
              std::optional<double> flops = std::nullopt) {
    if (!time_.empty() && time < time_.back())
      throw std::invalid_argument("lightning: Throughput: time went back from " +
                                  std::to_string(time_.back()) + " to " + std::to_string(time));
    if (samples < batches)
      throw std::invalid_argument("lightning: Throughput: samples (" + std::to_string(samples) +
                                  ") must be >= batches (" + std::to_string(batches) + ")");
    push(time_, time);
    push(batches_, batches);
    push(samples_, samples);
    if (lengths) {
      if (*lengths < samples)
        throw std::invalid_argument("lightning: Throughput: lengths (" + std::to_string(*lengths) +
                                    ") must be >= samples (" + std::to_string(samples) + ")");
      push(lengths_, *lengths);
      if (lengths_.size() != samples_.size())
        throw std::logic_error(
            "lightning: Throughput: lengths must be given with every update or with none");
    }
    if (flops) push(flops_, *flops * static_cast<double>(o_.world_size));
  }

  // Fabric's keys: time, batches, samples[, lengths]; once the window is full
  // device/batches_per_sec, device/samples_per_sec[, device/items_per_sec], and with more
  // than one rank batches_per_sec, samples_per_sec[, items_per_sec]; with FLOPs
  // device/flops_per_sec[, flops_per_sec][, device/mfu].
  [[nodiscard]] MetricMap compute() const {
    MetricMap m;
    if (time_.empty()) return m;
    const std::string device = "device" + o_.separator;
    const bool global = o_.world_size > 1;
    const auto world = static_cast<double>(o_.world_size);
    m["time"] = time_.back();
    m["batches"] = static_cast<double>(batches_.back());
    m["samples"] = static_cast<double>(samples_.back());
    if (!lengths_.empty()) m["lengths"] = static_cast<double>(lengths_.back());
    const auto window = static_cast<std::size_t>(o_.window_size);
    const double elapsed = time_.back() - time_.front();
    if (time_.size() == window) {
      const auto per_sec = [&](const auto& totals) {
        return static_cast<double>(totals.back() - totals.front()) / elapsed;
      };
      m[device + "batches_per_sec"] = per_sec(batches_);
      m[device + "samples_per_sec"] = per_sec(samples_);
      if (global) {
        m["batches_per_sec"] = per_sec(batches_) * world;
        m["samples_per_sec"] = per_sec(samples_) * world;
      }
      if (lengths_.size() == window) {
        m[device + "items_per_sec"] = per_sec(lengths_);
        if (global) m["items_per_sec"] = per_sec(lengths_) * world;
      }
    }
    if (flops_.size() == window) {
      double sum = 0.0;
      for (double f : flops_) sum += f;
      const double flops_per_sec = (sum - flops_.front()) / elapsed;
      const double device_flops = flops_per_sec / world;
      if (global) m["flops_per_sec"] = flops_per_sec;
      m[device + "flops_per_sec"] = device_flops;
      if (o_.available_flops && *o_.available_flops != 0.0)
        m[device + "mfu"] = device_flops / *o_.available_flops;
    }
    return m;
  }

  void reset() {
    time_.clear();
    batches_.clear();
    samples_.clear();
    lengths_.clear();
    flops_.clear();
  }

  [[nodiscard]] const ThroughputOptions& options() const noexcept { return o_; }
  // The latest elapsed time (0 before the first update).
  [[nodiscard]] double last_time() const noexcept { return time_.empty() ? 0.0 : time_.back(); }

 private:
  template <class T>
  void push(std::deque<T>& window, T value) {
    window.push_back(value);
    if (window.size() > static_cast<std::size_t>(o_.window_size)) window.pop_front();
  }

  ThroughputOptions o_;
  std::deque<double> time_;
  std::deque<std::int64_t> batches_, samples_, lengths_;
  std::deque<double> flops_;
};

}  // namespace lightning
