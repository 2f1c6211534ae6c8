// What configure_optimizers may return, and how the Trainer steps LR schedulers.
//
//   return torch::optim::Adam(parameters(), 1e-3);                       // an optimizer
//   return L::optimizers(torch::optim::SGD(parameters(), 0.1),            // with schedulers
//                        L::scheduler(L::lr::StepLR{.step_size = 30}),
//                        L::scheduler(L::lr::ReduceLROnPlateau({.patience = 2}),
//                                     {.monitor = "val_loss"}));
//
// Types stay concrete (an OptimizerConfig<SGD, Scheduler<StepLR>, ReduceLROnPlateau>):
// no type erasure on the step path.
#pragma once

#include <lightning/core/lr_schedulers.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace lightning {

// When a scheduler steps (Lightning's "interval").
enum class Interval { epoch, step };

// Lightning's lr_scheduler dict, without the scheduler itself.
struct SchedulerOptions {
  Interval interval = Interval::epoch;
  std::int64_t frequency = 1;        // every n epochs, or every n optimizer steps
  std::string monitor = "val_loss";  // the metric a plateau scheduler reads
  bool strict = true;                // a missing monitored metric is an error (else a skip)
};

// A scheduler and its options.
template <class S>
struct SchedulerConfig {
  S scheduler;
  SchedulerOptions options;
  static constexpr bool reduce_on_plateau = std::same_as<S, lr::ReduceLROnPlateau>;
};

// An optimizer with its schedulers.
template <class Opt, class... Schedulers>
struct OptimizerConfig {
  Opt optimizer;
  std::tuple<SchedulerConfig<Schedulers>...> lr_schedulers;
};

// Wraps a formula (lr::StepLR{...}) in lr::Scheduler; a plateau scheduler stays as is.
template <class S>
auto scheduler(S s, SchedulerOptions options = {}) {
  if constexpr (lr::Formula<S>) {
    return SchedulerConfig<lr::Scheduler<S>>{lr::Scheduler<S>(std::move(s)), std::move(options)};
  } else {
    static_assert(
        std::same_as<S, lr::ReduceLROnPlateau> ||
            requires(S & x, torch::optim::Optimizer & o) {
              x.attach(o);
              x.step(o);
            },
        "lightning: scheduler(...) takes an lr formula (lr::StepLR{...}), lr::ReduceLROnPlateau, "
        "or a "
        "type with attach(optimizer) and step(optimizer)");
    return SchedulerConfig<S>{std::move(s), std::move(options)};
  }
}

// An optimizer and its scheduler configurations.
template <class Opt, class... S>
auto optimizers(Opt optimizer, SchedulerConfig<S>... schedulers) {
  static_assert(std::derived_from<Opt, torch::optim::Optimizer>,
                "lightning: optimizers(...) takes a torch::optim optimizer first");
  return OptimizerConfig<Opt, S...>{std::move(optimizer), {std::move(schedulers)...}};
}

namespace detail {
template <class T>
struct is_optimizer_config : std::false_type {};
template <class Opt, class... S>
struct is_optimizer_config<OptimizerConfig<Opt, S...>> : std::true_type {};

// configure_optimizers()'s result as an OptimizerConfig (a bare optimizer has no schedulers).
template <class R>
auto to_optimizer_config(R&& result) {
  using T = std::remove_cvref_t<R>;
  if constexpr (is_optimizer_config<T>::value)
    return std::forward<R>(result);
  else
    return OptimizerConfig<T>{std::forward<R>(result), {}};
}
}  // namespace detail

}  // namespace lightning
