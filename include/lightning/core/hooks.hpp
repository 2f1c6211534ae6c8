// Hook detection and dispatch for modules and callbacks.
//
// Every Lightning hook is described once below by a small descriptor type
// (`hooks::on_train_epoch_end`, ...). A descriptor answers two separate questions
// at compile time:
//   - declared<T>: does T have a member of that name at all (any signature)?
//   - callable<T, Args...>: can it be called with the arguments Lightning passes?
// A hook that is declared but not callable is a near miss (a typo in a parameter
// type) and is a hard compile error naming the hook and the expected signature:
// unlike libraries that detect by exact signature, a near miss is never skipped.
// A hook that is not declared costs nothing: no call is emitted.
#pragma once

#include <tuple>
#include <type_traits>
#include <utility>

namespace lightning::detail {

template <class...>
inline constexpr bool always_false = false;

}  // namespace lightning::detail

// Declares `lightning::hooks::NAME` with the expected module and callback signatures
// (spelled for diagnostics). The member-name probe makes `&Mix<T>::NAME` ambiguous
// exactly when T declares NAME, whatever its signature, overloads or templates.
#define LIGHTNING_DETAIL_DECLARE_HOOK(NAME, MODULE_SIGNATURE, CALLBACK_SIGNATURE)            \
  namespace lightning::hooks {                                                               \
  namespace probe_##NAME {                                                                   \
    struct Probe {                                                                           \
      int NAME;                                                                              \
    };                                                                                       \
    template <class T>                                                                       \
    struct Mix : T, Probe {};                                                                \
  }                                                                                          \
  struct NAME {                                                                              \
    static constexpr const char* name = #NAME;                                               \
    template <class T>                                                                       \
    static constexpr bool declared = [] {                                                    \
      using U = std::remove_cvref_t<T>;                                                      \
      if constexpr (!std::is_class_v<U>)                                                     \
        return false;                                                                        \
      else if constexpr (std::is_final_v<U>)                                                 \
        return requires {                                                                    \
          &U::NAME;                                                                          \
        };                                                                                   \
      else                                                                                   \
        return !requires {                                                                   \
          &probe_##NAME::Mix<U>::NAME;                                                       \
        };                                                                                   \
    }();                                                                                     \
    template <class T, class... A>                                                           \
    static constexpr bool callable = requires(T & t, A&&... a) {                             \
      t.NAME(std::forward<A>(a)...);                                                         \
    };                                                                                       \
    /* Calls module.NAME(args...) if declared; a declared near miss does not compile. */     \
    template <class T, class... A>                                                           \
    static constexpr decltype(auto) on_module(T& t, A&&... a) {                              \
      if constexpr (callable<T, A...>) {                                                     \
        return t.NAME(std::forward<A>(a)...);                                                \
      } else {                                                                               \
        static_assert(!declared<T>, "lightning: the module declares the hook `" #NAME        \
                                    "` but it cannot be called with Lightning's arguments. " \
                                    "Expected: " MODULE_SIGNATURE);                          \
      }                                                                                      \
    }                                                                                        \
    /* Calls callback.NAME(trainer, module, args...) if declared, same rule. */              \
    template <class T, class... A>                                                           \
    static constexpr decltype(auto) on_callback(T& t, A&&... a) {                            \
      if constexpr (callable<T, A...>) {                                                     \
        return t.NAME(std::forward<A>(a)...);                                                \
      } else {                                                                               \
        static_assert(!declared<T>, "lightning: a callback declares the hook `" #NAME        \
                                    "` but it cannot be called with Lightning's arguments. " \
                                    "Expected: " CALLBACK_SIGNATURE);                        \
      }                                                                                      \
    }                                                                                        \
  };                                                                                         \
  }

#define LIGHTNING_DETAIL_PLAIN_HOOK(NAME)                 \
  LIGHTNING_DETAIL_DECLARE_HOOK(NAME, "void " #NAME "()", \
                                "void " #NAME "(auto& trainer, auto& module)")

// Required module hooks.
LIGHTNING_DETAIL_DECLARE_HOOK(training_step,
                              "torch::Tensor training_step(const Batch& batch, int64_t batch_idx) "
                              "(or a struct with a `loss` member)",
                              "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(configure_optimizers,
                              "auto configure_optimizers() returning a torch::optim optimizer",
                              "(not a callback hook)")

// Module properties (not called: detected, then read as constants).
LIGHTNING_DETAIL_DECLARE_HOOK(automatic_optimization,
                              "static constexpr bool automatic_optimization = false;",
                              "(not a callback hook)")

// Optional module steps.
LIGHTNING_DETAIL_DECLARE_HOOK(validation_step,
                              "auto validation_step(const Batch& batch, int64_t batch_idx[, "
                              "int64_t dataloader_idx])",
                              "(not a callback hook)")

// Lifecycle hooks (module: no arguments; callback: trainer and module).
LIGHTNING_DETAIL_DECLARE_HOOK(setup, "void setup(lightning::Stage stage)",
                              "void setup(auto& trainer, auto& module, lightning::Stage stage)")
LIGHTNING_DETAIL_DECLARE_HOOK(teardown, "void teardown(lightning::Stage stage)",
                              "void teardown(auto& trainer, auto& module, lightning::Stage stage)")
LIGHTNING_DETAIL_DECLARE_HOOK(configure_model, "void configure_model()", "(not a callback hook)")
LIGHTNING_DETAIL_PLAIN_HOOK(on_fit_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_fit_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_sanity_check_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_sanity_check_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_train_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_train_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_train_epoch_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_train_epoch_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_validation_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_validation_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_validation_epoch_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_validation_epoch_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_after_backward)

// Batch hooks.
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_train_batch_start,
    "void on_train_batch_start(const Batch& batch, int64_t batch_idx) (or returning int: -1 "
    "skips the rest of the epoch)",
    "void on_train_batch_start(auto& trainer, auto& module, const Batch& batch, int64_t batch_idx)")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_train_batch_end,
    "void on_train_batch_end(const Output& outputs, const Batch& batch, int64_t batch_idx)",
    "void on_train_batch_end(auto& trainer, auto& module, const Output& outputs, const Batch& "
    "batch, int64_t batch_idx)")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_validation_batch_start,
    "void on_validation_batch_start(const Batch& batch, int64_t batch_idx[, int64_t "
    "dataloader_idx])",
    "void on_validation_batch_start(auto& trainer, auto& module, const Batch& batch, int64_t "
    "batch_idx[, int64_t dataloader_idx])")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_validation_batch_end,
    "void on_validation_batch_end(const Output& outputs, const Batch& batch, int64_t batch_idx[, "
    "int64_t dataloader_idx])",
    "void on_validation_batch_end(auto& trainer, auto& module, const Output& outputs, const "
    "Batch& batch, int64_t batch_idx[, int64_t dataloader_idx])")
LIGHTNING_DETAIL_DECLARE_HOOK(on_before_batch_transfer,
                              "Batch on_before_batch_transfer(Batch batch, int64_t dataloader_idx)",
                              "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(on_after_batch_transfer,
                              "Batch on_after_batch_transfer(Batch batch, int64_t dataloader_idx)",
                              "(not a callback hook)")

// Optimization hooks.
LIGHTNING_DETAIL_DECLARE_HOOK(on_before_backward,
                              "void on_before_backward(const torch::Tensor& loss)",
                              "void on_before_backward(auto& trainer, auto& module, const "
                              "torch::Tensor& loss)")
LIGHTNING_DETAIL_DECLARE_HOOK(on_before_optimizer_step,
                              "void on_before_optimizer_step(torch::optim::Optimizer& optimizer)",
                              "void on_before_optimizer_step(auto& trainer, auto& module, "
                              "torch::optim::Optimizer& optimizer)")
LIGHTNING_DETAIL_DECLARE_HOOK(on_before_zero_grad,
                              "void on_before_zero_grad(torch::optim::Optimizer& optimizer)",
                              "void on_before_zero_grad(auto& trainer, auto& module, "
                              "torch::optim::Optimizer& optimizer)")

// Evaluation and prediction steps and hooks.
LIGHTNING_DETAIL_DECLARE_HOOK(test_step,
                              "auto test_step(const Batch& batch, int64_t batch_idx[, int64_t "
                              "dataloader_idx])",
                              "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(predict_step,
                              "auto predict_step(const Batch& batch, int64_t batch_idx)",
                              "(not a callback hook)")
LIGHTNING_DETAIL_PLAIN_HOOK(on_test_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_test_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_test_epoch_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_test_epoch_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_predict_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_predict_end)
LIGHTNING_DETAIL_PLAIN_HOOK(on_predict_epoch_start)
LIGHTNING_DETAIL_PLAIN_HOOK(on_predict_epoch_end)
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_test_batch_start,
    "void on_test_batch_start(const Batch& batch, int64_t batch_idx[, int64_t dataloader_idx])",
    "void on_test_batch_start(auto& trainer, auto& module, const Batch& batch, int64_t batch_idx[, "
    "int64_t dataloader_idx])")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_test_batch_end,
    "void on_test_batch_end(const Output& outputs, const Batch& batch, int64_t batch_idx[, int64_t "
    "dataloader_idx])",
    "void on_test_batch_end(auto& trainer, auto& module, const Output& outputs, const Batch& "
    "batch, "
    "int64_t batch_idx[, int64_t dataloader_idx])")
LIGHTNING_DETAIL_DECLARE_HOOK(on_predict_batch_start,
                              "void on_predict_batch_start(const Batch& batch, int64_t batch_idx)",
                              "void on_predict_batch_start(auto& trainer, auto& module, const "
                              "Batch& batch, int64_t batch_idx)")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_predict_batch_end,
    "void on_predict_batch_end(const Output& outputs, const Batch& batch, int64_t batch_idx)",
    "void on_predict_batch_end(auto& trainer, auto& module, const Output& outputs, const Batch& "
    "batch, "
    "int64_t batch_idx)")

// DataModule hooks (Lightning's LightningDataModule).
LIGHTNING_DETAIL_DECLARE_HOOK(prepare_data, "void prepare_data()", "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(train_dataloader, "auto train_dataloader() returning a loader",
                              "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(val_dataloader, "auto val_dataloader() returning a loader",
                              "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(test_dataloader, "auto test_dataloader() returning a loader",
                              "(not a callback hook)")
LIGHTNING_DETAIL_DECLARE_HOOK(predict_dataloader, "auto predict_dataloader() returning a loader",
                              "(not a callback hook)")

// Errors.
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_exception, "void on_exception(const std::exception& error)",
    "void on_exception(auto& trainer, auto& module, const std::exception& "
    "error)")

// Checkpoints: a callback's own state (stored under its state key), and hooks that may
// add to or read a checkpoint as it is saved or loaded.
LIGHTNING_DETAIL_DECLARE_HOOK(state_dict, "(not a module hook)",
                              "lightning::CheckpointDict state_dict() const")
LIGHTNING_DETAIL_DECLARE_HOOK(load_state_dict, "(not a module hook)",
                              "void load_state_dict(const lightning::CheckpointDict& state)")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_save_checkpoint, "void on_save_checkpoint(lightning::CheckpointDict& checkpoint)",
    "void on_save_checkpoint(auto& trainer, auto& module, lightning::CheckpointDict& checkpoint)")
LIGHTNING_DETAIL_DECLARE_HOOK(
    on_load_checkpoint, "void on_load_checkpoint(const lightning::CheckpointDict& checkpoint)",
    "void on_load_checkpoint(auto& trainer, auto& module, const lightning::CheckpointDict& "
    "checkpoint)")

// Loggers are callbacks that also receive metrics at logging steps.
LIGHTNING_DETAIL_DECLARE_HOOK(log_metrics, "(not a module hook)",
                              "void log_metrics(const lightning::MetricMap& metrics, int64_t step)")
LIGHTNING_DETAIL_DECLARE_HOOK(log_hyperparams, "(not a module hook)",
                              "void log_hyperparams(const lightning::HParams& hparams)")

namespace lightning::hooks {

// Invokes a module hook if the module declares it (no code otherwise).
template <class Hook, class M, class... A>
constexpr decltype(auto) call_module(M& module, A&&... args) {
  return Hook::on_module(module, std::forward<A>(args)...);
}

// Invokes a callback hook on every callback of a tuple, in order, with the trainer and module.
template <class Hook, class Tuple, class Trainer, class M, class... A>
constexpr void call_callbacks(Tuple& callbacks, Trainer& trainer, M& module, A&&... args) {
  std::apply([&](auto&... cb) { (Hook::on_callback(cb, trainer, module, args...), ...); },
             callbacks);
}

}  // namespace lightning::hooks
