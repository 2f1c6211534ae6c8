// The Trainer's callbacks (Lightning's trainer/connectors/callback_connector.py): which
// defaults it adds and where, the key each callback's state has in a checkpoint, and the
// dispatch of hooks to the callbacks and the module, resolved at compile time.
#pragma once

#include <lightning/core/hooks.hpp>
#include <lightning/profilers/profiler.hpp>
#include <lightning/trainer/connectors/profiler_connector.hpp>
#include <lightning/trainer/options.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace lightning {

// Lightning's default callbacks (progress bar, model summary, checkpointing) and default
// logger live in the callbacks layer, above the Trainer; <lightning/callbacks/defaults.hpp>
// defines this template (<lightning/lightning.hpp> includes it). It provides:
//   leading, trailing: std::tuple types of the defaults the user did not pass, placed
//     after the user's callbacks and after every ModelCheckpoint respectively;
//   configure(callbacks, options): turns each default on or off from the options at
//     the start of every entry point.
template <class... UserCallbacks>
struct DefaultCallbacks;

namespace detail {

template <class C>
concept is_progress_bar = requires {
  requires C::is_progress_bar;
};
template <class C>
concept is_model_checkpoint = requires {
  requires C::is_model_checkpoint;
};
// Callbacks that act on monitored metrics at epoch end, after the module's own hook.
template <class C>
concept is_monitoring = is_model_checkpoint<C> || requires {
  requires C::is_monitoring_callback;
};
template <class C>
concept is_model_summary = requires {
  requires C::is_model_summary;
};
template <class C>
concept is_logger = hooks::log_metrics::declared<C>;
template <class C>
concept is_timer = requires {
  requires C::is_timer;
};

// A callback as a tuple of one when Keep, else an empty tuple (for reordering).
template <bool Keep, class C>
auto keep_if(C& c) {
  if constexpr (Keep)
    return std::tuple<C>(std::move(c));
  else
    return std::tuple<>();
}
template <bool Keep, class C>
using keep_if_t = std::conditional_t<Keep, std::tuple<C>, std::tuple<>>;

template <class... C>
concept default_callbacks_defined = requires {
  typename DefaultCallbacks<C...>::leading;
  typename DefaultCallbacks<C...>::trailing;
};

// As Lightning orders them: the user's callbacks, the default progress bar, model
// summary and logger (each unless the user passed one), then every ModelCheckpoint, the
// default one last, so that a checkpoint saved at a hook holds the state the other
// callbacks reached at that hook. A profiler passed among them is not a callback.
template <class C>
inline constexpr bool is_plain_callback = !is_model_checkpoint<C> && !is_profiler<C>;

template <class... C>
struct CallbackTuple {
  using defaults = DefaultCallbacks<C...>;
  using type = decltype(std::tuple_cat(std::declval<keep_if_t<is_plain_callback<C>, C>>()...,
                                       std::declval<typename defaults::leading>(),
                                       std::declval<keep_if_t<is_model_checkpoint<C>, C>>()...,
                                       std::declval<typename defaults::trailing>()));
  static type make(C&... c) {
    return std::tuple_cat(keep_if<is_plain_callback<C>>(c)..., typename defaults::leading{},
                          keep_if<is_model_checkpoint<C>>(c)..., typename defaults::trailing{});
  }
};

template <class Found>
struct single_profiler {
  using type = profilers::PassThroughProfiler;
};
template <class P>
struct single_profiler<std::tuple<P>> {
  using type = P;
};

// The profiler passed among the callbacks (at most one), else PassThroughProfiler.
template <class... C>
struct ProfilerOf {
  using found = decltype(std::tuple_cat(std::declval<keep_if_t<is_profiler<C>, C>>()...));
  static_assert(std::tuple_size_v<found> <= 1,
                "lightning: a Trainer takes at most one profiler (SimpleProfiler, PyTorchProfiler, "
                "PassThroughProfiler or your own) among its callbacks");
  using given = typename single_profiler<found>::type;
  static_assert(Profiler<given>,
                "lightning: a profiler (a class with `static constexpr bool is_profiler = true`) "
                "must provide start(std::string_view action), stop(std::string_view action), "
                "setup(lightning::Stage, std::optional<std::int64_t> local_rank, const "
                "std::filesystem::path& log_dir) and describe(): see lightning::Profiler in "
                "<lightning/profilers/profiler.hpp>");
  // (An incomplete one is replaced, so that the message above is the only error.)
  using type = std::conditional_t<Profiler<given>, given, profilers::PassThroughProfiler>;
  static type make(C&... c) {
    if constexpr (std::tuple_size_v<found> == 0 || !Profiler<given>)
      return {};
    else
      return std::get<0>(std::tuple_cat(keep_if<is_profiler<C>>(c)...));
  }
};

// A callback's key in a checkpoint's "callbacks" entry: its state_key(). A type name
// would change with the compiler, a namespace or a rename, and a resume would silently
// drop the state, so a callback with state must name its key.
template <class C>
std::string callback_state_key(const C& c) {
  static_assert(
      requires(const C& x) { std::string(x.state_key()); },
      "lightning: a callback with state_dict() must also declare "
      "`std::string state_key() const`: the stable key its state has in a checkpoint "
      "(Lightning's Callback.state_key), e.g. its class name plus the settings that "
      "tell two instances apart");
  return std::string(c.state_key());
}

}  // namespace detail

namespace connectors {

// f(callback, index) for every callback, in order.
template <class T, class F>
void for_each_callback(T& trainer, F&& f) {
  auto& callbacks = trainer.callbacks();
  using Tuple = std::remove_cvref_t<decltype(callbacks)>;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (f(std::get<I>(callbacks), std::integral_constant<std::size_t, I>{}), ...);
  }
  (std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}

// A hook on every callback that declares it (in order), each timed by the profiler.
template <class Hook, class T, class M, class... Args>
void call_callback_hooks(T& trainer, M& model, Args&&... args) {
  for_each_callback(trainer, [&](auto& c, auto index) {
    if constexpr (Hook::template declared<std::remove_cvref_t<decltype(c)>>)
      profiled_callback<Hook, index()>(trainer, c,
                                       [&] { Hook::on_callback(c, trainer, model, args...); });
  });
}

// A hook of the module, if it declares it, timed by the profiler.
template <class Hook, class T, class M, class... Args>
decltype(auto) call_module_hook(T& trainer, M& model, Args&&... args) {
  if constexpr (Hook::template declared<M>)
    return profiled_module<Hook, T, M>(trainer, [&]() -> decltype(auto) {
      return Hook::on_module(model, std::forward<Args>(args)...);
    });
  else
    return Hook::on_module(model, std::forward<Args>(args)...);
}

// A hook on every callback (in order), then on the module.
template <class Hook, class T, class M, class... Args>
void call_hooks(T& trainer, M& model, Args&&... args) {
  call_callback_hooks<Hook>(trainer, model, args...);
  call_module_hook<Hook>(trainer, model, std::forward<Args>(args)...);
}

// A hook of the callbacks that are (Monitoring) or are not monitoring ones.
template <class Hook, bool Monitoring, class T, class M>
void call_monitoring_hooks(T& trainer, M& model) {
  for_each_callback(trainer, [&](auto& c, auto index) {
    using C = std::remove_cvref_t<decltype(c)>;
    if constexpr (detail::is_monitoring<C> == Monitoring && Hook::template declared<C>)
      profiled_callback<Hook, index()>(trainer, c, [&] { Hook::on_callback(c, trainer, model); });
  });
}

// A batch hook of the callbacks, then of the module, with dataloader_idx appended for
// those that take it (Lightning's optional last parameter).
template <class Hook, class T, class M, class... Args>
void call_batch_hooks(T& trainer, M& model, std::int64_t dataloader_idx, const Args&... args) {
  for_each_callback(trainer, [&](auto& c, auto index) {
    using C = std::remove_cvref_t<decltype(c)>;
    if constexpr (Hook::template declared<C>)
      profiled_callback<Hook, index()>(trainer, c, [&] {
        if constexpr (Hook::template callable<C, T&, M&, const Args&..., std::int64_t&>)
          Hook::on_callback(c, trainer, model, args..., dataloader_idx);
        else
          Hook::on_callback(c, trainer, model, args...);
      });
  });
  if constexpr (Hook::template declared<M>)
    profiled_module<Hook, T, M>(trainer, [&] {
      if constexpr (Hook::template callable<M, const Args&..., std::int64_t&>)
        Hook::on_module(model, args..., dataloader_idx);
      else
        Hook::on_module(model, args...);
    });
}

}  // namespace connectors
}  // namespace lightning
