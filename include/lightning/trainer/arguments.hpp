// What the Trainer checks of its template arguments (each misplaced policy named, one
// diagnostic, no cascade), the types it derives from them, and the RAII link between a
// module and the running trainer.
#pragma once

#include <lightning/core/concepts.hpp>
#include <lightning/core/module.hpp>
#include <lightning/core/trainer_state.hpp>
#include <lightning/fabric/fabric.hpp>
#include <lightning/trainer/connectors/callback_connector.hpp>
#include <lightning/trainer/options.hpp>

#include <concepts>
#include <tuple>

namespace lightning {
namespace detail {

// Classifies a Trainer template argument and says what is wrong with a misplaced one.
template <class A, class S, class P, class... C>
consteval bool check_trainer_arguments() {
  if constexpr (!Accelerator<A>) {
    static_assert(Accelerator<A>,
                  "lightning: Trainer's first template argument must be an Accelerator "
                  "(accelerators::CPU, accelerators::Auto); the order is "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (!Strategy<S>) {
    static_assert(Strategy<S>,
                  "lightning: Trainer's second template argument must be a Strategy "
                  "(strategies::SingleDevice); the order is "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (!Precision<P>) {
    static_assert(Precision<P>,
                  "lightning: Trainer's third template argument must be a Precision "
                  "(precision::F32, precision::F64); the order is "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (((Accelerator<C> || Strategy<C> || Precision<C>) || ...)) {
    static_assert(detail::always_false<A>,
                  "lightning: a policy (Accelerator, Strategy or Precision) was passed among the "
                  "callbacks; each policy goes in its own position: "
                  "Trainer<Accelerator, Strategy, Precision, Callbacks...>");
    return false;
  } else if constexpr (!(Callback<C> && ...)) {
    static_assert((Callback<C> && ...), "lightning: every callback must be a movable class type");
    return false;
  } else if constexpr (!default_callbacks_defined<C...>) {
    static_assert(default_callbacks_defined<C...>,
                  "lightning: the Trainer's default callbacks are not defined: include "
                  "<lightning/lightning.hpp> (or <lightning/callbacks/defaults.hpp>)");
    return false;
  } else {
    return true;
  }
}

// Fabric<A, S, P> and the callback tuple only when the arguments are valid: naming them
// otherwise would add a second, less readable error after check_trainer_arguments' own.
template <bool Valid, class A, class S, class P, class... C>
struct trainer_types {
  struct fabric {};
  using callbacks = std::tuple<>;
  using profiler = profilers::PassThroughProfiler;
  static profiler make_profiler(C&...) { return {}; }
  struct defaults {
    static void configure(callbacks&, const TrainerOptions&) {}
  };
  static callbacks make(C&...) { return {}; }
};
template <class A, class S, class P, class... C>
struct trainer_types<true, A, S, P, C...> {
  using fabric = Fabric<A, S, P>;
  using callbacks = typename CallbackTuple<C...>::type;
  using defaults = DefaultCallbacks<C...>;
  using profiler = typename ProfilerOf<C...>::type;
  static callbacks make(C&... c) { return CallbackTuple<C...>::make(c...); }
  static profiler make_profiler(C&... c) { return ProfilerOf<C...>::make(c...); }
};

// Connects a LightningModule to a trainer for the duration of a run.
template <class M>
class Attachment {
 public:
  Attachment(M& model, TrainerState* s) : m_(model) {
    if constexpr (std::derived_from<M, LightningModule>) m_.attach_trainer(s);
  }
  ~Attachment() {
    if constexpr (std::derived_from<M, LightningModule>) m_.attach_trainer(nullptr);
  }
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

 private:
  M& m_;
};

}  // namespace detail
}  // namespace lightning
