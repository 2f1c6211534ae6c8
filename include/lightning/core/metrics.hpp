// What `LightningModule::log` records, and how it is aggregated per step and per epoch.
//
// Hot-loop rules: a logged tensor stays on its device. Per step, log() copies it into
// a preallocated 0-d buffer and folds it into an on-device epoch accumulator, both
// in place under NoGradGuard: no host read, no allocation, no string building. Names
// are matched against the slot expected next (metrics are logged in the same order
// every step), so steady state costs one short string compare, never a hash lookup.
// Values are read back (`item()`) only when someone asks for a MetricMap: a logger
// at a logging step, the progress bar when it draws, a callback at epoch end.
#pragma once

#include <lightning/core/metric_map.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lightning {

// How epoch-level values of a metric are reduced (Lightning's reduce_fx).
enum class Reduce : std::uint8_t { mean, sum, max, min };

// Options of `log()`, in the order of Lightning's `self.log` parameters. Unset
// on_step/on_epoch take Lightning's default for the hook that logs.
struct LogOptions {
  bool prog_bar = false;
  bool logger = true;
  std::optional<bool> on_step = std::nullopt;
  std::optional<bool> on_epoch = std::nullopt;
  Reduce reduce = Reduce::mean;
  // With several validation/test loaders, suffix the name with "/dataloader_idx_N".
  bool add_dataloader_idx = true;
  std::optional<std::int64_t> batch_size = std::nullopt;  // weight of this value in the epoch mean
  // Reduce across ranks with `reduce` (Lightning's sync_dist): a step value when it is
  // logged, an epoch value when the epoch ends (a mean weighs every rank's batches). A
  // collective each time: every rank must log it alike.
  bool sync_dist = false;
};

// Where a log() call comes from, which decides Lightning's defaults and what is allowed.
enum class LogScope : std::uint8_t {
  forbidden,    // setup, on_fit_start, teardown, ...: logging is an error
  train_step,   // training_step and train batch hooks: on_step=true, on_epoch=false
  train_epoch,  // on_train_start, on_train_epoch_start/end: on_step=false, on_epoch=true
  evaluation,   // validation_step and validation hooks: on_step=false, on_epoch=true
};

class MetricStore {
 public:
  enum class Phase : std::uint8_t { train, validation };

  // Called by the trainer before it runs a hook; `hook` must be a string literal.
  void enter(LogScope scope, const char* hook, Phase phase) noexcept {
    scope_ = scope;
    hook_ = hook;
    phase_ = phase;
  }
  void set_batch_size(std::int64_t n) noexcept { batch_size_ = n; }
  // The evaluation loader being run when there are several (-1: none, no suffix).
  void set_dataloader(std::int64_t idx) noexcept { dataloader_ = idx; }
  [[nodiscard]] Phase phase() const noexcept { return phase_; }

  // How values logged with sync_dist are reduced across ranks (the strategy's reduce);
  // unset: they are this process's own.
  using CrossRankReduce = std::function<torch::Tensor(const torch::Tensor&, Reduce)>;
  void set_cross_rank_reduce(CrossRankReduce reduce) { across_ = std::move(reduce); }

  void log(std::string_view name, const torch::Tensor& value, const LogOptions& options) {
    Slot& s = slot_for(name, options);
    if (!value.defined() || value.numel() != 1)
      throw std::invalid_argument(
          "lightning: log(\"" + std::string(name) +
          "\") needs a scalar (one-element) tensor, got " +
          (value.defined() ? describe_shape(value) : "an undefined tensor") +
          "; reduce it first, e.g. value.mean()");
    const std::int64_t weight = options.batch_size.value_or(batch_size_);
    torch::NoGradGuard no_grad;
    const auto v = value.dim() == 0 ? value : value.reshape({});
    if (s.on_step) {
      if (!s.step.defined() || s.step.device() != v.device())
        s.step = torch::empty({}, v.options().dtype(torch::kDouble).requires_grad(false));
      s.step.copy_(s.sync_dist && across_ ? across_(v.to(torch::kDouble), s.reduce) : v);
      s.step_fresh = true;
      s.has_step = true;
    }
    if (s.on_epoch) {
      if (!s.accum.defined() || s.accum.device() != v.device())
        s.accum = torch::full({}, s.resumed_accum,
                              v.options().dtype(torch::kDouble).requires_grad(false));
      const bool first = s.weight == 0;
      switch (s.reduce) {
        case Reduce::mean:
          s.accum.add_(v, static_cast<double>(weight));
          break;
        case Reduce::sum:
          s.accum.add_(v);
          break;
        case Reduce::max:
          if (first)
            s.accum.copy_(v);
          else
            torch::maximum_out(s.accum, s.accum, v);
          break;
        case Reduce::min:
          if (first)
            s.accum.copy_(v);
          else
            torch::minimum_out(s.accum, s.accum, v);
          break;
      }
      s.weight += s.reduce == Reduce::mean ? weight : 1;
    }
  }

  void log(std::string_view name, double value, const LogOptions& options) {
    Slot& s = slot_for(name, options);
    s.host = true;
    const double weight = static_cast<double>(options.batch_size.value_or(batch_size_));
    if (s.on_step) {
      s.host_step = s.sync_dist && across_ ? reduce_host(value, s.reduce) : value;
      s.step_fresh = true;
      s.has_step = true;
    }
    if (s.on_epoch) {
      const bool first = s.weight == 0;
      switch (s.reduce) {
        case Reduce::mean:
          s.host_accum += value * weight;
          break;
        case Reduce::sum:
          s.host_accum += value;
          break;
        case Reduce::max:
          s.host_accum = first ? value : std::max(s.host_accum, value);
          break;
        case Reduce::min:
          s.host_accum = first ? value : std::min(s.host_accum, value);
          break;
      }
      s.weight += s.reduce == Reduce::mean ? static_cast<std::int64_t>(weight) : 1;
    }
  }

  // Starts a new epoch (or evaluation run) of a phase: accumulators restart, on-device.
  void reset_epoch(Phase phase) {
    for (auto& s : slots_)
      if (s.phase == phase) {
        s.weight = 0;
        s.host_accum = 0;
        s.resumed_accum = 0;
        if (s.accum.defined()) s.accum.zero_();
      }
  }

  // Ends an epoch of a phase: epoch values become visible to callbacks and loggers.
  void finalize_epoch(Phase phase) {
    for (auto& s : slots_) {
      if (s.phase != phase || !s.on_epoch || s.weight == 0) continue;
      if (s.sync_dist && across_) {
        sync_epoch(s);
      } else if (s.host) {
        s.host_epoch =
            s.reduce == Reduce::mean ? s.host_accum / static_cast<double>(s.weight) : s.host_accum;
      } else {
        s.epoch =
            s.reduce == Reduce::mean ? s.accum / static_cast<double>(s.weight) : s.accum.clone();
      }
      s.has_epoch = true;
      s.epoch_fresh = true;
    }
  }

  // Forgets everything of a phase (Lightning discards sanity-check results).
  void clear(Phase phase) {
    std::erase_if(slots_, [&](const Slot& s) { return s.phase == phase; });
    cursor_ = 0;
  }

  // Lightning's trainer.callback_metrics: every metric, latest step and epoch values.
  [[nodiscard]] MetricMap callback_metrics() const {
    return collect([](const Slot&) { return true; });
  }
  // One of callback_metrics() by its key, reading only that value (a plateau scheduler's
  // monitor); nullopt when it was never logged.
  [[nodiscard]] std::optional<double> callback_metric(std::string_view key) const {
    std::optional<double> out;
    for (const auto& s : slots_) {
      if (s.on_step && s.has_step && s.step_key == key) out = step_value(s);
      if (s.on_epoch && s.has_epoch && s.epoch_key == key) out = epoch_value(s);
      if (s.on_step && s.on_epoch && (s.has_step || s.has_epoch) && s.key == key)
        out = s.has_epoch ? epoch_value(s) : step_value(s);
    }
    return out;
  }
  // Lightning's trainer.logged_metrics: metrics logged with logger=true.
  [[nodiscard]] MetricMap logged_metrics() const {
    return collect([](const Slot& s) { return s.logger; });
  }
  // The logged metrics of evaluation loader `idx` (of several), and those logged
  // without a loader suffix: Lightning's per-dataloader result of validate/test.
  [[nodiscard]] MetricMap logged_metrics(std::int64_t dataloader_idx) const {
    return collect([&](const Slot& s) {
      return s.logger && (s.dataloader < 0 || s.dataloader == dataloader_idx);
    });
  }
  // Lightning's trainer.progress_bar_metrics: metrics logged with prog_bar=true.
  [[nodiscard]] MetricMap progress_bar_metrics() const {
    return collect([](const Slot& s) { return s.prog_bar; });
  }

  // Step values for loggers that were logged since the previous call (reads the device).
  // All of them in one device-to-host copy, not one .item() (one sync) each.
  [[nodiscard]] MetricMap take_step_metrics() {
    MetricMap out;
    read_.clear();
    for (auto& s : slots_)
      if (s.logger && s.on_step && s.step_fresh) {
        read_.push_back({&s.step_key, s.host ? nullptr : &s.step, s.host_step});
        s.step_fresh = false;
      }
    read_together(out);
    return out;
  }
  // Epoch values for loggers of a phase finalized since the previous call.
  [[nodiscard]] MetricMap take_epoch_metrics(Phase phase) {
    MetricMap out;
    read_.clear();
    for (auto& s : slots_)
      if (s.phase == phase && s.logger && s.epoch_fresh) {
        read_.push_back({&s.epoch_key, s.host ? nullptr : &s.epoch, s.host_epoch});
        s.epoch_fresh = false;
      }
    read_together(out);
    return out;
  }
  [[nodiscard]] std::size_t size() const noexcept { return slots_.size(); }

  // The running epoch's accumulators of a phase (read from the device), for a
  // checkpoint taken in the middle of an epoch.
  struct EpochAccumulator {
    std::string name;
    std::int64_t dataloader = -1;
    double value = 0;
    std::int64_t weight = 0;
  };
  [[nodiscard]] std::vector<EpochAccumulator> epoch_state(Phase phase) const {
    std::vector<EpochAccumulator> out;
    for (const auto& s : slots_)
      if (s.phase == phase && s.on_epoch && s.weight > 0)
        out.push_back({s.name, s.dataloader,
                       s.host ? s.host_accum : s.accum.template item<double>(), s.weight});
    return out;
  }
  // Continues those accumulators: each is taken up by the slot of its name when that
  // metric is first logged in this (fresh) store, so the resumed epoch's means match.
  void resume_epoch(Phase phase, std::vector<EpochAccumulator> state) {
    pending_phase_ = phase;
    pending_ = std::move(state);
  }

 private:
  struct Slot {
    std::string name, key, step_key, epoch_key;  // key: name with its loader suffix
    Phase phase{};
    std::int64_t dataloader = -1;
    bool on_step = false, on_epoch = false, prog_bar = false, logger = true, host = false;
    bool sync_dist = false;
    Reduce reduce = Reduce::mean;
    torch::Tensor step, accum, epoch;
    double host_step = 0, host_accum = 0, host_epoch = 0;
    double resumed_accum = 0;  // an accumulator continued from a checkpoint
    std::int64_t weight = 0;
    bool has_step = false, has_epoch = false, step_fresh = false, epoch_fresh = false;
  };

  double reduce_host(double value, Reduce op) const {
    return across_(torch::tensor(value, torch::kDouble), op).template item<double>();
  }
  // Every rank's epoch value, reduced: a mean is the sum of all ranks' weighted sums over
  // the sum of their weights (Lightning's compute() with sync_dist).
  void sync_epoch(Slot& s) {
    const auto mine = s.host ? torch::tensor(s.host_accum, torch::kDouble) : s.accum;
    const auto op = s.reduce == Reduce::mean ? Reduce::sum : s.reduce;
    auto value = across_(mine, op);
    if (s.reduce == Reduce::mean) {
      const auto weight = torch::tensor(static_cast<double>(s.weight), torch::kDouble);
      value = value / across_(weight.to(value.device()), Reduce::sum);
    }
    if (s.host)
      s.host_epoch = value.template item<double>();
    else
      s.epoch = value.to(s.accum.device());
  }

  static std::string describe_shape(const torch::Tensor& t) {
    std::string s = "shape [";
    for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
  }

  Slot& slot_for(std::string_view name, const LogOptions& options) {
    const std::int64_t dl = options.add_dataloader_idx ? dataloader_ : -1;
    const auto matches = [&](const Slot& s) {
      return s.phase == phase_ && s.dataloader == dl && s.name == name;
    };
    if (cursor_ < slots_.size() && matches(slots_[cursor_])) return slots_[cursor_++];
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (matches(slots_[i])) {
        cursor_ = i + 1;
        return slots_[i];
      }
    return create(name, options, dl);
  }

  Slot& create(std::string_view name, const LogOptions& options, std::int64_t dataloader) {
    if (scope_ == LogScope::forbidden)
      throw std::logic_error("lightning: log(\"" + std::string(name) + "\") is not allowed in `" +
                             hook_ +
                             "`; log from training_step, validation_step or an epoch/batch hook");
    const bool step_default = scope_ == LogScope::train_step;
    Slot s;
    s.name = std::string(name);
    s.phase = phase_;
    s.dataloader = dataloader;
    s.on_step = options.on_step.value_or(step_default);
    s.on_epoch = options.on_epoch.value_or(!step_default);
    if (s.on_step && scope_ != LogScope::train_step && scope_ != LogScope::evaluation)
      throw std::logic_error("lightning: log(\"" + s.name +
                             "\", on_step=true) is not allowed in `" + hook_ +
                             "`: an epoch-level hook has no step; use on_epoch=true");
    if (!s.on_step && !s.on_epoch)
      throw std::invalid_argument("lightning: log(\"" + s.name +
                                  "\") with on_step=false and on_epoch=false records nothing; "
                                  "set at least one of them");
    s.prog_bar = options.prog_bar;
    s.logger = options.logger;
    s.reduce = options.reduce;
    s.sync_dist = options.sync_dist;
    // Lightning's names: forked "_step"/"_epoch" first, then the loader suffix.
    const bool forked = s.on_step && s.on_epoch;
    const std::string suffix =
        dataloader >= 0 ? "/dataloader_idx_" + std::to_string(dataloader) : std::string();
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (phase_ == pending_phase_ && it->name == s.name && it->dataloader == dataloader) {
        s.weight = it->weight;
        s.host_accum = it->value;
        s.resumed_accum = it->value;
        pending_.erase(it);
        break;
      }
    s.key = s.name + suffix;
    s.step_key = (forked ? s.name + "_step" : s.name) + suffix;
    s.epoch_key = (forked ? s.name + "_epoch" : s.name) + suffix;
    slots_.push_back(std::move(s));
    cursor_ = slots_.size();
    return slots_.back();
  }

  // A value to read: on the host already, or a 0-d double tensor.
  struct Pending {
    const std::string* key;
    const torch::Tensor* tensor;
    double host;
  };
  // Reads every pending value with at most one copy from the device: CPU tensors are
  // read in place, device tensors are stacked and copied to the host together.
  void read_together(MetricMap& out) {
    const torch::Tensor* device_value = nullptr;
    for (const auto& p : read_)
      if (p.tensor && !p.tensor->is_cpu()) device_value = p.tensor;
    if (device_value) {
      const auto options = torch::TensorOptions(torch::kDouble).device(device_value->device());
      std::vector<torch::Tensor> values;
      values.reserve(read_.size());
      for (const auto& p : read_)
        values.push_back(p.tensor ? p.tensor->to(options) : torch::full({}, p.host, options));
      const auto host = torch::stack(values).cpu();
      const double* v = host.data_ptr<double>();
      for (std::size_t i = 0; i < read_.size(); ++i) out.emplace(*read_[i].key, v[i]);
      return;
    }
    for (const auto& p : read_)
      out.emplace(*p.key, p.tensor ? *p.tensor->data_ptr<double>() : p.host);
  }

  static double step_value(const Slot& s) { return s.host ? s.host_step : s.step.item<double>(); }
  static double epoch_value(const Slot& s) {
    return s.host ? s.host_epoch : s.epoch.item<double>();
  }

  template <class Pred>
  MetricMap collect(Pred keep) const {
    MetricMap out;
    for (const auto& s : slots_) {
      if (!keep(s)) continue;
      if (s.on_step && s.has_step) out.insert_or_assign(s.step_key, step_value(s));
      if (s.on_epoch && s.has_epoch) out.insert_or_assign(s.epoch_key, epoch_value(s));
      if (s.on_step && s.on_epoch &&
          (s.has_step || s.has_epoch))  // plain name: epoch value once known
        out.insert_or_assign(s.key, s.has_epoch ? epoch_value(s) : step_value(s));
    }
    return out;
  }

  std::vector<Slot> slots_;
  std::vector<Pending> read_;  // reused by each read: no allocation once it has grown
  CrossRankReduce across_;
  std::size_t cursor_ = 0;
  LogScope scope_ = LogScope::forbidden;
  const char* hook_ = "(outside the Trainer)";
  Phase phase_ = Phase::train;
  std::int64_t batch_size_ = 1;
  std::int64_t dataloader_ = -1;
  std::vector<EpochAccumulator> pending_;
  Phase pending_phase_ = Phase::train;
};

}  // namespace lightning
