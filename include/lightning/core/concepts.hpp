// Every concept of lightning-cpp, in one place: what a module, a loader, a callback
// and each policy kind (Accelerator, Strategy, Precision) must provide.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/hooks.hpp>
#include <lightning/core/manual_optimization.hpp>
#include <lightning/core/metrics.hpp>
#include <lightning/core/module.hpp>
#include <lightning/core/optimizers.hpp>

#include <torch/torch.h>

#include <concepts>
#include <cstdint>
#include <iterator>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lightning {

// An RAII scope that does nothing: what a policy returns when it has no scope to open
// (F32's autocast, Fabric's gradient-sync suspension on one device).
struct NoScope {
  NoScope() = default;
  NoScope(const NoScope&) = delete;
  NoScope& operator=(const NoScope&) = delete;
  ~NoScope() {}  // user-provided so `auto scope = ...;` is not an unused-variable warning
};

// What a step that returns nothing (void validation_step) passes to *_batch_end hooks.
struct NoOutput {};

// ---------------------------------------------------------------------------------
// Loaders

namespace detail {
template <class L>
requires std::ranges::range<L>
auto loader_begin(L& l) {
  return std::ranges::begin(l);
}
template <class L>
requires(!std::ranges::range<L>) && requires(L& l) {
  l.begin();
}
auto loader_begin(L& l) {
  return l.begin();
}
template <class L>
requires std::ranges::range<L>
auto loader_end(L& l) {
  return std::ranges::end(l);
}
template <class L>
requires(!std::ranges::range<L>) && requires(L& l) {
  l.end();
}
auto loader_end(L& l) {
  return l.end();
}
}  // namespace detail

// Anything iterable once per epoch that yields batches: our TensorLoader, a
// std::vector of batches, a range-v3 view, LibTorch's torch::data loaders (whose
// iterators are not std::input_iterators, hence the member fallback).
template <class L>
concept BatchLoader = requires(L& l) {
  detail::loader_begin(l);
  detail::loader_end(l);
}
&&requires(decltype(detail::loader_begin(std::declval<L&>())) it,
           decltype(detail::loader_end(std::declval<L&>())) end) {
  ++it;
  *it;
  { it != end } -> std::convertible_to<bool>;
};

// The batch type a loader yields (by value: the trainer owns each batch for a step).
template <BatchLoader L>
using loader_batch_t = std::remove_cvref_t<decltype(*detail::loader_begin(std::declval<L&>()))>;

// Loaders that know their length up front (needed for fractional limits and intervals).
template <class L>
concept SizedLoader = BatchLoader<L> && requires(const L& l) {
  { l.size() } -> std::convertible_to<std::int64_t>;
};

// ---------------------------------------------------------------------------------
// Modules

// What training_step may return: the loss, or a struct carrying it in `loss`.
template <class T>
concept StepOutput = std::same_as<std::remove_cvref_t<T>, torch::Tensor> || requires(const T& out) {
  { out.loss } -> std::convertible_to<torch::Tensor>;
};

// What configure_optimizers may return: an optimizer, or one with its schedulers
// (lightning::optimizers(optimizer, scheduler(...)...)), or a std::tuple of those
// (several optimizers, for manual optimization).
template <class T>
concept ConfiguredOptimizers =
    detail::single_optimizer_config<T> || detail::is_optimizer_tuple<std::remove_cvref_t<T>>::value;

// A module the Trainer can fit with batches of type Batch. In manual optimization
// (automatic_optimization = false) training_step may return anything, void included,
// and configure_optimizers may return several optimizers.
template <class M, class Batch>
concept TrainingModule = std::derived_from<M, torch::nn::Module> &&
    requires(M& m, Batch& batch, std::int64_t batch_idx) {
  m.training_step(batch, batch_idx);
  { m.configure_optimizers() } -> ConfiguredOptimizers;
} &&(uses_manual_optimization<M> ||
     (StepOutput<decltype(std::declval<M&>().training_step(std::declval<Batch&>(),
                                                           std::int64_t{}))> &&
      detail::optimizer_count<decltype(std::declval<M&>().configure_optimizers())> == 1));

// A module with a validation_step for batches of type Batch.
template <class M, class Batch>
concept ValidationModule = requires(M& m, Batch& batch, std::int64_t batch_idx) {
  m.validation_step(batch, batch_idx);
};

namespace detail {
// The loss of a step output.
template <StepOutput T>
const torch::Tensor& loss_of(const T& out) {
  if constexpr (std::same_as<std::remove_cvref_t<T>, torch::Tensor>)
    return out;
  else
    return out.loss;
}

// Checks a module for fit() and reports the first problem only, in words (no cascade).
template <class M, class Batch>
consteval bool check_training_module() {
  if constexpr (!std::derived_from<M, torch::nn::Module>) {
    static_assert(std::derived_from<M, torch::nn::Module>,
                  "lightning: the model must derive from lightning::LightningModule "
                  "(a torch::nn::Module)");
    return false;
  } else if constexpr (hooks::automatic_optimization::declared<M> &&
                       !constant_automatic_optimization<M>) {
    static_assert(constant_automatic_optimization<M>,
                  "lightning: `automatic_optimization` is a compile-time property of the module; "
                  "declare it as `static constexpr bool automatic_optimization = false;`");
    return false;
  } else if constexpr (!hooks::training_step::declared<M>) {
    static_assert(hooks::training_step::declared<M>,
                  "lightning: the module has no `training_step` hook. Add: "
                  "torch::Tensor training_step(const Batch& batch, int64_t batch_idx)");
    return false;
  } else if constexpr (!hooks::configure_optimizers::declared<M>) {
    static_assert(hooks::configure_optimizers::declared<M>,
                  "lightning: the module has no `configure_optimizers` hook. Add: "
                  "auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }");
    return false;
  } else if constexpr (!hooks::training_step::callable<M, Batch&, std::int64_t>) {
    static_assert(hooks::training_step::callable<M, Batch&, std::int64_t>,
                  "lightning: `training_step` cannot take the batches this loader yields. "
                  "Expected training_step(const Batch& batch, int64_t batch_idx) where Batch is "
                  "the loader's batch type (named as `Batch` in the instantiation notes below)");
    return false;
  } else if constexpr (!uses_manual_optimization<M> &&
                       !StepOutput<decltype(std::declval<M&>().training_step(std::declval<Batch&>(),
                                                                             std::int64_t{}))>) {
    static_assert(detail::always_false<M>,
                  "lightning: `training_step` must return the loss as a torch::Tensor, or a "
                  "struct with a `torch::Tensor loss` member");
    return false;
  } else if constexpr (!hooks::configure_optimizers::callable<M>) {
    static_assert(hooks::configure_optimizers::callable<M>,
                  "lightning: `configure_optimizers` must be callable with no arguments");
    return false;
  } else if constexpr (!ConfiguredOptimizers<decltype(std::declval<M&>().configure_optimizers())>) {
    static_assert(detail::always_false<M>,
                  "lightning: `configure_optimizers` must return a torch::optim optimizer "
                  "(e.g. torch::optim::Adam(parameters(), 1e-3)) or "
                  "lightning::optimizers(optimizer, lightning::scheduler(...)...), or a std::tuple "
                  "of those, by value");
    return false;
  } else if constexpr (!uses_manual_optimization<M> &&
                       optimizer_count<decltype(std::declval<M&>().configure_optimizers())> > 1) {
    static_assert(detail::always_false<M>,
                  "lightning: `configure_optimizers` returns several optimizers, which needs "
                  "manual optimization: declare `static constexpr bool automatic_optimization = "
                  "false;` and step each optimizer in training_step (docs/manual-optimization.md)");
    return false;
  } else if constexpr (uses_manual_optimization<M> && !std::derived_from<M, LightningModule>) {
    static_assert(std::derived_from<M, LightningModule>,
                  "lightning: manual optimization needs the module to derive from "
                  "lightning::LightningModule (for optimizers<N>() and manual_backward)");
    return false;
  } else {
    return true;
  }
}
}  // namespace detail

// A LightningDataModule: provides at least train_dataloader(); prepare_data(),
// setup(Stage), teardown(Stage) and val/test/predict_dataloader() are optional.
template <class D>
concept DataModule = std::is_class_v<D> && !BatchLoader<D> && requires(D & d) {
  { d.train_dataloader() } -> BatchLoader;
};

// A module that can be evaluated or used for prediction on batches of type Batch.
template <class M, class Batch>
concept TestModule = requires(M& m, Batch& batch, std::int64_t batch_idx) {
  m.test_step(batch, batch_idx);
};
template <class M, class Batch>
concept PredictModule = requires(M& m, Batch& batch, std::int64_t batch_idx) {
  m.predict_step(batch, batch_idx);
};

// ---------------------------------------------------------------------------------
// Policies. Each contract point is called by the loops at one place (docs/architecture.md
// lists who calls what, and when); a policy with nothing to do there makes it an inline
// no-op, so it costs nothing.

namespace detail {
// What the concepts hand to a policy's templated members to check that they exist.
using ProbeLoader = std::vector<torch::Tensor>;
}  // namespace detail

// Accelerator: where tensors live.
// - device_type: the device kind when it is known at compile time (CPU), std::nullopt
//   when it is resolved at run time (Auto), so a policy can static_assert on it.
// - setup(local_rank): picks the device once per process, from the process's rank on its
//   node (a CUDA accelerator takes cuda:<local_rank>); device() hands it out after.
// - to_device(t): the batch transfer of one tensor (non-blocking from pinned host memory
//   where the device allows it; a tensor already there is returned as is).
// - rng_state()/set_rng_state(d): every generator work on this device draws from (the
//   CPU's always), saved in and restored from checkpoints for an exact resume.
// - synchronize(): waits for queued device work (for timing, never per step).
template <class A>
concept Accelerator = std::default_initializable<A> &&
    requires(A& a, const A& ca, const torch::Tensor& t, const CheckpointDict& state) {
  { A::name } -> std::convertible_to<std::string_view>;
  { A::device_type } -> std::convertible_to<std::optional<c10::DeviceType>>;
  a.setup(std::int64_t{0});
  { ca.device() } -> std::same_as<c10::Device>;
  { ca.to_device(t) } -> std::same_as<torch::Tensor>;
  { ca.rng_state() } -> std::same_as<CheckpointDict>;
  a.set_rng_state(state);
  ca.synchronize();
};

// Strategy: how work is spread over processes, at every point c10d's Reducer needs
// (docs: ddp-notes). In call order:
// - setup_environment(): joins the process group (ranks, world size, local rank);
// - setup_module(m, device): wraps the module, after the precision converted it (the
//   Reducer must see the final parameters);
// - process_dataloader(loader[, use_distributed_sampler]): the loader this rank iterates
//   (its shard; the same number of batches on every rank; all of it when the optional
//   flag is false);
// - pre_forward(m): before each training forward (the Reducer's prepare_for_forward);
// - zero_grad(optimizer): the only place gradients are cleared (bucket views forbid
//   Optimizer::zero_grad);
// - pre_backward(loss, sync)/post_backward(loss, sync): around the precision's backward;
//   sync is false on accumulation micro-batches, whose gradients stay local;
// - reduce(t, op): a tensor across ranks; broadcast(v): rank zero's decision (a stop, a
//   path, a number) for every rank; reduce_boolean_decision(d, all): a decision each rank
//   made for itself, combined (all ranks' when `all`, else any rank's: EarlyStopping stops
//   every rank when one would, as Lightning's); barrier();
// - teardown(): at the end of each run, unwraps the module and frees what setup_module
//   made (the process group lives as long as the process).
// Optional points (a strategy without them runs one process):
// - configure_processes(devices, num_nodes): TrainerOptions.devices (unset: what the
//   environment says, else 1) and num_nodes, before setup_environment;
// - agree_on_interrupt(mine) -> bool: whether any rank got SIGTERM/SIGINT, the same
//   answer on every rank at the same step boundary (without it: this process's own);
// - handle_failure(error): a run failed on this rank; may throw another rank's failure
//   in its place (the cause, where this rank only saw a collective break).
template <class S>
concept Strategy = std::default_initializable<S> &&
    requires(S& s, const S& cs, torch::nn::Module& m, const torch::Tensor& t, c10::Device d,
             torch::optim::Optimizer& o, detail::ProbeLoader& loader) {
  { S::name } -> std::convertible_to<std::string_view>;
  s.setup_environment();
  s.setup_module(m, d);
  s.process_dataloader(loader);
  s.pre_forward(m);
  s.zero_grad(o);
  s.pre_backward(t, true);
  s.post_backward(t, true);
  { cs.reduce(t, Reduce::mean) } -> std::same_as<torch::Tensor>;
  { cs.broadcast(true) } -> std::same_as<bool>;
  { cs.broadcast(std::int64_t{0}) } -> std::same_as<std::int64_t>;
  { cs.broadcast(0.0) } -> std::same_as<double>;
  { cs.broadcast(std::string()) } -> std::same_as<std::string>;
  { cs.reduce_boolean_decision(true, true) } -> std::same_as<bool>;
  cs.barrier();
  s.teardown();
  { cs.rank() } -> std::convertible_to<std::int64_t>;
  { cs.local_rank() } -> std::convertible_to<std::int64_t>;
  { cs.world_size() } -> std::convertible_to<std::int64_t>;
  { cs.is_global_zero() } -> std::same_as<bool>;
};

// Precision: the numeric policy.
// - convert_module(m), convert_input(t): parameters and floating inputs in param_dtype;
// - autocast(device): the scope around every forward;
// - backward(loss): scaled where needed; unscale_gradients(o): before clipping;
// - optimizer_step(o) -> false when the step was skipped (non-finite gradients). The rule
//   (docs/architecture.md): a skipped step is not a step. The loop then steps no
//   scheduler and does not count it in global_step. Lightning steps the scheduler anyway
//   and only warns ("Detected call of lr_scheduler.step() before optimizer.step()").
//   With a closure (LBFGS) it returns the closure's loss;
// - state_dict()/load_state_dict(d): its own state (a gradient scaler's scale and growth
//   tracker), saved in and restored from checkpoints; empty when it has none.
template <class P>
concept Precision = std::default_initializable<P> &&
    requires(P& p, const P& cp, torch::nn::Module& m, const torch::Tensor& t,
             torch::optim::Optimizer& o, c10::Device d,
             const torch::optim::Optimizer::LossClosure& closure, const CheckpointDict& state) {
  { P::name } -> std::convertible_to<std::string_view>;
  { P::param_dtype } -> std::convertible_to<c10::ScalarType>;
  p.convert_module(m);
  { cp.convert_input(t) } -> std::same_as<torch::Tensor>;
  cp.autocast(d);
  p.backward(t);
  p.unscale_gradients(o);
  { p.optimizer_step(o) } -> std::same_as<bool>;
  { p.optimizer_step(o, closure) } -> std::same_as<torch::Tensor>;
  { cp.state_dict() } -> std::same_as<CheckpointDict>;
  p.load_state_dict(state);
};

// Callback: any movable class that is not a policy. It may define any subset of
// Lightning's hooks (see core/hooks.hpp); undefined hooks cost nothing.
template <class C>
concept Callback = std::is_class_v<C> && std::move_constructible<C> && !Accelerator<C> &&
                   !Strategy<C> && !Precision<C>;

}  // namespace lightning
