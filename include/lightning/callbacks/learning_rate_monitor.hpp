// LearningRateMonitor: Lightning's callback that sends each optimizer's learning rate
// (and optionally momentum and weight decay) to the loggers, per step or per epoch.
#pragma once

#include <lightning/callbacks/logger_required.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/core/optimizers.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lightning::callbacks {

struct LearningRateMonitorOptions {
  // Unset: each scheduler's own interval (optimizers without one: both).
  std::optional<Interval> logging_interval = std::nullopt;
  bool log_momentum = false;      // "<name>-momentum": SGD's momentum, Adam's beta1
  bool log_weight_decay = false;  // "<name>-weight_decay"
};

class LearningRateMonitor {
 public:
  explicit LearningRateMonitor(LearningRateMonitorOptions options = {}) : o_(options) {}

  // Keys Lightning uses: "lr-<Optimizer>" (or the scheduler's name), "-N" for a repeated
  // name, "/pgN" per param group when there are several. Fixed when training starts.
  template <class Trainer, class Module>
  void on_train_start(Trainer& trainer, Module&) {
    if constexpr (requires { trainer.has_active_logger(); })
      detail::require_logger(trainer, "LearningRateMonitor");
    names_.clear();
    std::map<std::string, int> seen;
    for (const auto& info : trainer.optimizer_infos()) {
      std::string base = info.schedulers.empty() || info.schedulers.front().first.empty()
                             ? "lr-" + info.type_name
                             : info.schedulers.front().first;
      if (const int n = seen[base]++; n > 0) base += "-" + std::to_string(n);
      const auto groups = info.optimizer->param_groups().size();
      std::vector<std::string> keys;
      for (std::size_t g = 0; g < groups; ++g)
        keys.push_back(groups == 1 ? base : base + "/pg" + std::to_string(g + 1));
      names_.push_back(std::move(keys));
    }
  }

  template <class Trainer, class Module, class Batch>
  void on_train_batch_start(Trainer& trainer, Module&, const Batch&, std::int64_t) {
    if (o_.logging_interval == Interval::epoch || !trainer.should_update_logs()) return;
    send(trainer, o_.logging_interval ? std::nullopt : std::optional(Interval::step));
  }
  template <class Trainer, class Module>
  void on_train_epoch_start(Trainer& trainer, Module&) {
    if (o_.logging_interval == Interval::step) return;
    send(trainer, o_.logging_interval ? std::nullopt : std::optional(Interval::epoch));
  }

  // The keys of each optimizer's param groups (empty before training starts).
  [[nodiscard]] const std::vector<std::vector<std::string>>& names() const noexcept {
    return names_;
  }

 private:
  // `interval` unset: every optimizer; else those whose scheduler runs at it, and
  // those with no scheduler.
  template <class Trainer>
  void send(Trainer& trainer, std::optional<Interval> interval) {
    MetricMap stats;
    const auto& infos = trainer.optimizer_infos();
    for (std::size_t i = 0; i < infos.size() && i < names_.size(); ++i) {
      const auto& info = infos[i];
      if (interval && !info.schedulers.empty() && info.schedulers.front().second != *interval)
        continue;
      auto& groups = info.optimizer->param_groups();
      for (std::size_t g = 0; g < groups.size() && g < names_[i].size(); ++g) {
        auto& options = groups[g].options();
        const auto& key = names_[i][g];
        stats[key] = options.get_lr();
        if (o_.log_momentum)
          if (auto m = momentum(options)) stats[key + "-momentum"] = *m;
        if (o_.log_weight_decay)
          if (auto w = weight_decay(options)) stats[key + "-weight_decay"] = *w;
      }
    }
    if (!stats.empty()) trainer.log_metrics(stats, trainer.global_step);
  }

  static std::optional<double> momentum(torch::optim::OptimizerOptions& o) {
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&o)) return sgd->momentum();
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&o))
      return std::get<0>(adam->betas());
    if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&o))
      return std::get<0>(adamw->betas());
    if (auto* rms = dynamic_cast<torch::optim::RMSpropOptions*>(&o)) return rms->momentum();
    return std::nullopt;
  }
  static std::optional<double> weight_decay(torch::optim::OptimizerOptions& o) {
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&o)) return sgd->weight_decay();
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&o)) return adam->weight_decay();
    if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&o)) return adamw->weight_decay();
    if (auto* rms = dynamic_cast<torch::optim::RMSpropOptions*>(&o)) return rms->weight_decay();
    if (auto* ada = dynamic_cast<torch::optim::AdagradOptions*>(&o)) return ada->weight_decay();
    return std::nullopt;
  }

  LearningRateMonitorOptions o_;
  std::vector<std::vector<std::string>> names_;
};

}  // namespace lightning::callbacks
