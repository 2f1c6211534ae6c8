// The Trainer's profiler (Lightning's trainer/call.py wrapping each hook in
// trainer.profiler.profile(...)): the actions it times, named as Lightning names them. With
// no profiler, or PassThroughProfiler, every function here is the call it wraps.
#pragma once

#include <lightning/profilers/profiler.hpp>

#include <boost/core/demangle.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>

namespace lightning {
namespace detail {

// A type's name without its namespaces (Python's __class__.__name__).
template <class C>
const std::string& class_name() {
  static const std::string name = [] {
    const std::string full = boost::core::demangle(typeid(C).name());
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < full.size(); ++i) {
      if (full[i] == '<' || full[i] == '(') ++depth;
      if (full[i] == '>' || full[i] == ')') --depth;
      if (depth == 0 && full.compare(i, 2, "::") == 0) start = i + 2;
    }
    return full.substr(start);
  }();
  return name;
}

// A default callback the options turned off (enable_checkpointing = false) does nothing
// and keeps no state.
template <class C>
bool callback_enabled(const C& c) {
  if constexpr (requires { c.enabled(); })
    return c.enabled();
  else
    return true;
}

// The strategy as Lightning's class is called (SingleDeviceStrategy, DDPStrategy).
template <class S>
std::string_view strategy_class_name() {
  if constexpr (requires { std::string_view(S::lightning_class); })
    return S::lightning_class;
  else
    return class_name<S>();
}

}  // namespace detail

namespace connectors {

// What Lightning times as module hooks that are not hooks here (the Trainer steps and
// zeroes the optimizer itself unless the module overrides nothing).
namespace actions {
struct optimizer_step {
  static constexpr const char* name = "optimizer_step";
};
struct optimizer_zero_grad {
  static constexpr const char* name = "optimizer_zero_grad";
};
}  // namespace actions

// f() timed as `action` (a loop action: "run_training_epoch", "save_checkpoint", ...).
template <class T, class F>
decltype(auto) profiled(T& trainer, std::string_view action, F&& f) {
  if constexpr (T::profiling) {
    auto scope = trainer.profile_action(action);
    return std::forward<F>(f)();
  } else {
    return std::forward<F>(f)();
  }
}

// f() timed as the module's hook: "[LightningModule]SimpleModel.on_train_epoch_end".
template <class Hook, class T, class M, class F>
decltype(auto) profiled_module(T& trainer, F&& f) {
  if constexpr (T::profiling) {
    auto scope =
        trainer.profile_action("[LightningModule]", detail::class_name<M>(), ".", Hook::name);
    return std::forward<F>(f)();
  } else {
    return std::forward<F>(f)();
  }
}

// f() timed as the strategy's part of a step: "[Strategy]SingleDeviceStrategy.backward".
template <class T, class F>
decltype(auto) profiled_strategy(T& trainer, std::string_view what, F&& f) {
  if constexpr (T::profiling) {
    auto scope = trainer.profile_action(
        "[Strategy]", detail::strategy_class_name<typename T::strategy_type>(), ".", what);
    return std::forward<F>(f)();
  } else {
    return std::forward<F>(f)();
  }
}

// f() timed as callback I's hook: "[Callback]<state_key>.on_train_batch_end". A default
// callback the options turned off is not timed: Lightning's trainer.callbacks lacks it.
template <class Hook, std::size_t I, class T, class C, class F>
void profiled_callback(T& trainer, const C& callback, F&& f) {
  if constexpr (T::profiling) {
    if (detail::callback_enabled(callback)) {
      auto scope = trainer.profile_action(trainer.callback_action_prefix(I), Hook::name);
      std::forward<F>(f)();
      return;
    }
  }
  std::forward<F>(f)();
}

}  // namespace connectors
}  // namespace lightning
