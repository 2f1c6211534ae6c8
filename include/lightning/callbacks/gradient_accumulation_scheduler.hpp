// GradientAccumulationScheduler: Lightning's callback that changes
// accumulate_grad_batches by epoch, e.g. {{0, 8}, {4, 4}, {8, 1}}: 8 batches per
// optimizer step for epochs 0-3, 4 for epochs 4-7, then 1.
#pragma once

#include <lightning/core/bad_option.hpp>

#include <lightning/core/concepts.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lightning::callbacks {

class GradientAccumulationScheduler {
 public:
  // {epoch, accumulate_grad_batches from that epoch on} pairs; epochs before the first
  // one use 1. (A vector, not a map: `{{0, 4}}` must not read as a copy of a scheduler.)
  explicit GradientAccumulationScheduler(
      const std::vector<std::pair<std::int64_t, std::int64_t>>& scheduling) {
    for (const auto& [epoch, factor] : scheduling)
      if (!scheduling_.emplace(epoch, factor).second)
        throw std::invalid_argument(
            std::string("lightning: GradientAccumulationScheduler: epoch ") +
            std::to_string(epoch) + " is given twice");
    if (scheduling_.empty())
      throw std::invalid_argument(
          "lightning: GradientAccumulationScheduler(scheduling = {}) is invalid: give at least "
          "one {epoch, accumulate_grad_batches} pair");
    for (const auto& [epoch, factor] : scheduling_) {
      if (epoch < 0)
        throw std::invalid_argument(
            std::string("lightning: GradientAccumulationScheduler: epoch ") +
            std::to_string(epoch) + " is invalid: epochs are >= 0");
      if (factor < 1)
        throw std::invalid_argument(
            std::string("lightning: GradientAccumulationScheduler: accumulate_grad_batches = ") +
            std::to_string(factor) + " for epoch " + std::to_string(epoch) +
            " is invalid: must be >= 1");
    }
    scheduling_.try_emplace(0, 1);
  }

  [[nodiscard]] std::int64_t accumulate_grad_batches(std::int64_t epoch) const {
    auto it = scheduling_.upper_bound(epoch);
    return std::prev(it)->second;
  }
  [[nodiscard]] const std::map<std::int64_t, std::int64_t>& scheduling() const noexcept {
    return scheduling_;
  }

  template <class Trainer, class Module>
  void on_train_start(Trainer& trainer, Module&) {
    static_assert(!uses_manual_optimization<Module>,
                  "lightning: GradientAccumulationScheduler needs automatic optimization; a "
                  "module with automatic_optimization = false accumulates by itself");
    if (trainer.options().accumulate_grad_batches != 1)
      throw_bad_option("TrainerOptions", "accumulate_grad_batches",
                       std::to_string(trainer.options().accumulate_grad_batches),
                       "it conflicts with GradientAccumulationScheduler; leave it at 1 and put "
                       "the factor in the scheduler");
  }
  template <class Trainer, class Module>
  void on_train_epoch_start(Trainer& trainer, Module&) {
    trainer.set_accumulate_grad_batches(accumulate_grad_batches(trainer.current_epoch));
  }

 private:
  std::map<std::int64_t, std::int64_t> scheduling_;
};

}  // namespace lightning::callbacks
