// LambdaCallback: a callback made of closures, one per hook (Lightning's
// LambdaCallback(on_train_epoch_end=fn, ...)):
//
//   L::callbacks::LambdaCallback cb{
//       L::callbacks::lambda::on_fit_start([&](auto& trainer, auto& module) { ... }),
//       L::callbacks::lambda::on_train_epoch_end([&](auto& trainer, auto& module) { ... })};
//
// Each closure's type is part of the callback's type and each given hook is a member of
// it, so the Trainer detects and calls exactly the hooks given, statically, like those
// of a hand-written callback. A closure that cannot take the hook's arguments is the
// same compile error as a near-miss member hook (docs/callbacks.md).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <functional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace lightning::callbacks {

namespace lambda {

// lambda::NAME(fn) makes a NAME_slot<F>: a base of LambdaCallback whose member NAME
// calls fn with the hook's arguments, exactly as the Trainer passes them (for
// evaluation batch hooks, with dataloader_idx when fn takes it).
#define LIGHTNING_DETAIL_LAMBDA_SLOT(NAME)                                                 \
  template <class F>                                                                       \
  struct NAME##_slot {                                                                     \
    static constexpr std::string_view hook_name = #NAME;                                   \
    F fn;                                                                                  \
    template <class... A>                                                                  \
    requires std::invocable<F&, A&&...>                                                    \
    decltype(auto) NAME(A&&... args) { return std::invoke(fn, std::forward<A>(args)...); } \
  };                                                                                       \
  template <class F>                                                                       \
  [[nodiscard]] constexpr NAME##_slot<std::decay_t<F>> NAME(F&& fn) {                      \
    return {std::forward<F>(fn)};                                                          \
  }

// Lifecycle: (trainer, module[, lightning::Stage]).
LIGHTNING_DETAIL_LAMBDA_SLOT(setup)
LIGHTNING_DETAIL_LAMBDA_SLOT(teardown)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_fit_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_fit_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_sanity_check_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_sanity_check_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_train_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_train_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_train_epoch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_train_epoch_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_validation_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_validation_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_validation_epoch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_validation_epoch_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_test_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_test_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_test_epoch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_test_epoch_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_predict_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_predict_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_predict_epoch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_predict_epoch_end)
// Batches: (trainer, module[, outputs], batch, batch_idx[, dataloader_idx]).
LIGHTNING_DETAIL_LAMBDA_SLOT(on_train_batch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_train_batch_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_validation_batch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_validation_batch_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_test_batch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_test_batch_end)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_predict_batch_start)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_predict_batch_end)
// Optimization: (trainer, module, loss) or (trainer, module, optimizer); after backward: none.
LIGHTNING_DETAIL_LAMBDA_SLOT(on_before_backward)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_after_backward)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_before_optimizer_step)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_before_zero_grad)
// Errors: (trainer, module, const std::exception&).
LIGHTNING_DETAIL_LAMBDA_SLOT(on_exception)
// Checkpoints: (trainer, module, lightning::CheckpointDict&) to add entries when saving,
// (trainer, module, const lightning::CheckpointDict&) to read them back when loading.
LIGHTNING_DETAIL_LAMBDA_SLOT(on_save_checkpoint)
LIGHTNING_DETAIL_LAMBDA_SLOT(on_load_checkpoint)
// Loggers: (const lightning::MetricMap& metrics, int64_t step), no trainer or module.
LIGHTNING_DETAIL_LAMBDA_SLOT(log_metrics)

#undef LIGHTNING_DETAIL_LAMBDA_SLOT

template <class S>
concept Slot = requires {
  { S::hook_name } -> std::convertible_to<std::string_view>;
};

}  // namespace lambda

template <lambda::Slot... Slots>
class LambdaCallback : public Slots... {
  // Two closures for one hook would make its name ambiguous: the Trainer would see a
  // hook it cannot call. Refuse it here, where the mistake is.
  static constexpr bool distinct_hooks = [] {
    const std::array<std::string_view, sizeof...(Slots)> names{Slots::hook_name...};
    for (std::size_t i = 0; i < names.size(); ++i)
      for (std::size_t j = i + 1; j < names.size(); ++j)
        if (names[i] == names[j]) return false;
    return true;
  }();
  static_assert(distinct_hooks, "lightning: LambdaCallback was given two closures for one hook");

 public:
  explicit LambdaCallback(Slots... slots) : Slots(std::move(slots))... {}
};

template <class... Slots>
LambdaCallback(Slots...) -> LambdaCallback<Slots...>;

}  // namespace lightning::callbacks
