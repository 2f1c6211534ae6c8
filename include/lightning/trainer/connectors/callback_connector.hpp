// The Trainer's callbacks (Lightning's trainer/connectors/callback_connector.py): which
// defaults it adds and where, the key each callback's state has in a checkpoint, and the
// dispatch of hooks to the callbacks and the module, resolved at compile time.
#pragma once

#include <lightning/core/hooks.hpp>
#include <lightning/trainer/options.hpp>

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
// callbacks reached at that hook.
template <class... C>
struct CallbackTuple {
  using defaults = DefaultCallbacks<C...>;
  using type = decltype(std::tuple_cat(std::declval<keep_if_t<!is_model_checkpoint<C>, C>>()...,
                                       std::declval<typename defaults::leading>(),
                                       std::declval<keep_if_t<is_model_checkpoint<C>, C>>()...,
                                       std::declval<typename defaults::trailing>()));
  static type make(C&... c) {
    return std::tuple_cat(keep_if<!is_model_checkpoint<C>>(c)..., typename defaults::leading{},
                          keep_if<is_model_checkpoint<C>>(c)..., typename defaults::trailing{});
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

// A default callback the options turned off (enable_checkpointing = false) does nothing
// and keeps no state.
template <class C>
bool callback_enabled(const C& c) {
  if constexpr (requires { c.enabled(); })
    return c.enabled();
  else
    return true;
}

}  // namespace detail

namespace connectors {

// A hook on every callback (in order), then on the module.
template <class Hook, class T, class M, class... Args>
void call_hooks(T& trainer, M& model, Args&&... args) {
  hooks::call_callbacks<Hook>(trainer.callbacks(), trainer, model, args...);
  hooks::call_module<Hook>(model, std::forward<Args>(args)...);
}

// A hook of the callbacks that are (Monitoring) or are not monitoring ones.
template <class Hook, bool Monitoring, class T, class M>
void call_monitoring_hooks(T& trainer, M& model) {
  std::apply(
      [&](auto&... cb) {
        const auto one = [&](auto& c) {
          if constexpr (detail::is_monitoring<std::remove_cvref_t<decltype(c)>> == Monitoring)
            Hook::on_callback(c, trainer, model);
        };
        (one(cb), ...);
      },
      trainer.callbacks());
}

// A batch hook of the callbacks, then of the module, with dataloader_idx appended for
// those that take it (Lightning's optional last parameter).
template <class Hook, class T, class M, class... Args>
void call_batch_hooks(T& trainer, M& model, std::int64_t dataloader_idx, const Args&... args) {
  std::apply(
      [&](auto&... cb) {
        const auto one = [&](auto& c) {
          using C = std::remove_cvref_t<decltype(c)>;
          if constexpr (Hook::template callable<C, T&, M&, const Args&..., std::int64_t&>)
            Hook::on_callback(c, trainer, model, args..., dataloader_idx);
          else
            Hook::on_callback(c, trainer, model, args...);
        };
        (one(cb), ...);
      },
      trainer.callbacks());
  if constexpr (Hook::template callable<M, const Args&..., std::int64_t&>)
    Hook::on_module(model, args..., dataloader_idx);
  else
    Hook::on_module(model, args...);
}

}  // namespace connectors
}  // namespace lightning
