// What configure_optimizers may return, and how the Trainer steps LR schedulers.
//
//   return torch::optim::Adam(parameters(), 1e-3);                       // an optimizer
//   return L::optimizers(torch::optim::SGD(parameters(), 0.1),            // with schedulers
//                        L::scheduler(L::lr::StepLR{.step_size = 30}),
//                        L::scheduler(L::lr::ReduceLROnPlateau({.patience = 2}),
//                                     {.monitor = "val_loss"}));
//
//   return std::tuple{torch::optim::Adam(G->parameters(), 2e-4),       // several
//                     torch::optim::Adam(D->parameters(), 2e-4)};     // (manual optimization)
//
// Types stay concrete (an OptimizerConfig<SGD, Scheduler<StepLR>, ReduceLROnPlateau>):
// no type erasure on the step path.
#pragma once

#include <lightning/core/lr_schedulers.hpp>

#include <torch/torch.h>

#include <boost/core/demangle.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace lightning {

// Lightning's gradient_clip_algorithm.
enum class GradClipAlgorithm { norm, value };

inline std::ostream& operator<<(std::ostream& os, GradClipAlgorithm a) {
  return os << (a == GradClipAlgorithm::norm ? "norm" : "value");
}

// When a scheduler steps (Lightning's "interval").
enum class Interval { epoch, step };

// Lightning's lr_scheduler dict, without the scheduler itself.
struct SchedulerOptions {
  Interval interval = Interval::epoch;
  std::int64_t frequency = 1;        // every n epochs, or every n optimizer steps
  std::string monitor = "val_loss";  // the metric a plateau scheduler reads
  bool strict = true;                // a missing monitored metric is an error (else a skip)
  std::string name = {};             // LearningRateMonitor's key (default "lr-<Optimizer>")
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

// What the Trainer tells callbacks about a configured optimizer (LearningRateMonitor):
// the optimizer, its class name ("SGD", "Adam"), and the name and interval of each of
// its schedulers.
struct OptimizerInfo {
  torch::optim::Optimizer* optimizer = nullptr;
  std::string type_name;
  std::vector<std::pair<std::string, Interval>> schedulers;
};

namespace detail {
template <class T>
struct is_optimizer_config : std::false_type {};
template <class Opt, class... S>
struct is_optimizer_config<OptimizerConfig<Opt, S...>> : std::true_type {};

// One entry of what configure_optimizers returns: an optimizer or an OptimizerConfig.
template <class T>
concept single_optimizer_config =
    std::derived_from<std::remove_cvref_t<T>, torch::optim::Optimizer> ||
    is_optimizer_config<std::remove_cvref_t<T>>::value;

template <class T>
struct is_optimizer_tuple : std::false_type {};
template <class... T>
struct is_optimizer_tuple<std::tuple<T...>>
    : std::bool_constant<(sizeof...(T) > 0 && (single_optimizer_config<T> && ...))> {};

// The optimizer of a config: a torch::optim optimizer, or one chosen at run time and held
// as std::unique_ptr<torch::optim::Optimizer> (LightningCLI's --optimizer).
inline torch::optim::Optimizer& optimizer_of(torch::optim::Optimizer& o) noexcept {
  return o;
}
inline torch::optim::Optimizer& optimizer_of(
    const std::unique_ptr<torch::optim::Optimizer>& o) noexcept {
  return *o;
}
template <class Opt>
std::string optimizer_type_name(const Opt& o) {
  if constexpr (std::same_as<Opt, std::unique_ptr<torch::optim::Optimizer>>)
    return boost::core::demangle(typeid(*o).name());
  else
    return boost::core::demangle(typeid(Opt).name());
}

// A scheduler slot may be left empty (a type with `bool active() const`, LightningCLI's
// shorthand without --lr_scheduler): the Trainer neither lists, saves nor restores it.
template <class S>
bool scheduler_active(const S& s) {
  if constexpr (requires { s.active(); })
    return s.active();
  else
    return true;
}

// configure_optimizers()'s result as an OptimizerConfig (a bare optimizer has no schedulers).
template <class R>
auto to_optimizer_config(R&& result) {
  using T = std::remove_cvref_t<R>;
  if constexpr (is_optimizer_config<T>::value)
    return std::forward<R>(result);
  else
    return OptimizerConfig<T>{std::forward<R>(result), {}};
}

// configure_optimizers()'s result as a tuple of OptimizerConfigs, one per optimizer.
template <class R>
auto to_optimizer_configs(R&& result) {
  using T = std::remove_cvref_t<R>;
  if constexpr (is_optimizer_tuple<T>::value)
    return std::apply(
        [](auto&&... each) {
          return std::tuple{to_optimizer_config(std::forward<decltype(each)>(each))...};
        },
        std::forward<R>(result));
  else
    return std::tuple{to_optimizer_config(std::forward<R>(result))};
}

// How many optimizers configure_optimizers returns (R is its return type).
template <class R>
inline constexpr std::size_t optimizer_count =
    std::tuple_size_v<decltype(to_optimizer_configs(std::declval<R>()))>;
}  // namespace detail

}  // namespace lightning
