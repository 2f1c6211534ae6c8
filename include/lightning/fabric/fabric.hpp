// Fabric: the three policies put together for a hand-written loop (Lightning Fabric).
// The Trainer's loops are written against this class; a custom loop written with it
// gets the same device placement, precision handling and clipping, at the same cost.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/batch.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>
#include <lightning/core/interrupts.hpp>
#include <lightning/core/seed.hpp>
#include <lightning/fabric/gradient_clipping.hpp>
#include <lightning/fabric/host_memory.hpp>
#include <lightning/policies/accelerators.hpp>
#include <lightning/policies/precision.hpp>
#include <lightning/policies/strategies.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning {

// Options of Fabric::clip_gradients (Lightning's clip_val / max_norm / norm_type).
struct ClipOptions {
  std::optional<double> clip_val = std::nullopt;  // clamp each element to [-v, v]
  std::optional<double> max_norm = std::nullopt;  // scale so the total norm is <= max_norm
  double norm_type = 2.0;
};

namespace detail {
// A precision that cannot run on the accelerator's device fails here, at compile time,
// when the device type is known (CPU, CUDA); with Auto, at launch.
template <class A, class P>
consteval bool check_precision_on_device() {
  if constexpr (!A::device_type.has_value()) {
    return true;
  } else if constexpr (std::is_same_v<P, precision::F16Mixed> &&
                       !precision::supports_device<P>(*A::device_type)) {
    static_assert(precision::supports_device<P>(*A::device_type),
                  "lightning: F16Mixed (\"16-mixed\") needs a CUDA accelerator; use BF16Mixed "
                  "on the CPU");
    return false;
  } else {
    static_assert(precision::supports_device<P>(*A::device_type),
                  "lightning: this precision cannot run on the accelerator's device (its "
                  "supports(device type) says so); choose another precision or accelerator");
    return precision::supports_device<P>(*A::device_type);
  }
}
}  // namespace detail

template <Accelerator A = accelerators::Auto, Strategy S = strategies::SingleDevice,
          Precision P = precision::F32>
class Fabric {
  static_assert(detail::check_precision_on_device<A, P>());

 public:
  using accelerator_type = A;
  using strategy_type = S;
  using precision_type = P;

  Fabric() = default;
  Fabric(A accelerator, S strategy, P precision)
      : accelerator_(std::move(accelerator)),
        strategy_(std::move(strategy)),
        precision_(std::move(precision)) {}

  // Joins the strategy's process group, resolves the device from the local rank
  // (accelerator "auto" picks here) and keeps the host memory a step frees for the next
  // one (fabric/host_memory.hpp). Idempotent.
  void launch() {
    if (!launched_) {
      strategy_.setup_environment();
      accelerator_.setup(strategy_.local_rank());
      if constexpr (!A::device_type.has_value()) check_precision_on_device();
      retain_freed_host_memory();
    }
    launched_ = true;
  }

  [[nodiscard]] c10::Device device() const noexcept { return accelerator_.device(); }

  // Moves the module to the device, converts it to the precision's dtype, then lets the
  // strategy wrap it (last: a DDP Reducer must see the final parameters). Call it before
  // creating the optimizer, so the optimizer sees the final parameters.
  template <class M>
  M& setup_module(M& module) {
    launch();
    module.to(device());
    precision_.convert_module(module);
    strategy_.setup_module(module, device());
    return module;
  }

  // Lightning Fabric's fabric.setup(model, optimizer). Module::to keeps parameter
  // identities, so an optimizer made before setup_module stays valid.
  template <class M, class O>
  void setup(M& module, O& /*optimizer*/) {
    setup_module(module);
  }

  // Lightning Fabric's setup_dataloaders: the loader this rank iterates (its shard, or
  // with use_distributed_sampler false all of it, for a loader the user shards).
  template <class L>
  decltype(auto) setup_dataloader(L&& loader, bool use_distributed_sampler = true) {
    if constexpr (requires { strategy_.process_dataloader(loader, use_distributed_sampler); })
      return strategy_.process_dataloader(std::forward<L>(loader), use_distributed_sampler);
    else
      return strategy_.process_dataloader(std::forward<L>(loader));
  }

  // Moves every tensor of a batch to the device (the accelerator's transfer) and casts
  // floating inputs to the precision: one rebuild of the batch, moved through the cast.
  template <class B>
  [[nodiscard]] std::remove_cvref_t<B> to_device(const B& batch) const {
    auto moved =
        map_tensors(batch, [this](const torch::Tensor& t) { return accelerator_.to_device(t); });
    if constexpr (requires { precision_.convert_batch(std::move(moved)); })
      return precision_.convert_batch(std::move(moved));
    else
      return map_tensors(moved,
                         [this](const torch::Tensor& t) { return precision_.convert_input(t); });
  }

  // The forward-pass scope of the precision (autocast for mixed precision; else nothing).
  [[nodiscard]] auto autocast() const { return precision_.autocast(device()); }

  // Before each forward of a training step (a DDP Reducer prepares its buckets here).
  void pre_forward(torch::nn::Module& module) { strategy_.pre_forward(module); }

  // Back-propagates through the precision (scaled where it scales), between the
  // strategy's hooks; `sync` says whether gradients are synchronised across ranks after
  // it (false on gradient-accumulation micro-batches). Without `sync`, it is false
  // inside a no_backward_sync() scope.
  void backward(const torch::Tensor& loss, bool sync) {
    strategy_.pre_backward(loss, sync);
    precision_.backward(loss);
    strategy_.post_backward(loss, sync);
  }
  void backward(const torch::Tensor& loss) { backward(loss, backward_sync_); }

  // Clears the gradients of an optimizer's parameters, through the strategy.
  void zero_grad(torch::optim::Optimizer& optimizer) { strategy_.zero_grad(optimizer); }

  // Clips the gradients of the optimizer's parameters: by value if clip_val is set,
  // else by norm. Unscales first (mixed precision). Returns the total norm when
  // clipping by norm, without reading it to the host.
  torch::Tensor clip_gradients(torch::optim::Optimizer& optimizer, const ClipOptions& options) {
    if (options.clip_val.has_value() == options.max_norm.has_value())
      throw std::invalid_argument(
          "lightning: Fabric::clip_gradients needs exactly one of clip_val and max_norm");
    if (options.clip_val) {
      clip_gradients_by_value(optimizer, *options.clip_val);
      return {};
    }
    return clip_gradients_by_norm(optimizer, *options.max_norm, options.norm_type);
  }
  torch::Tensor clip_gradients_by_norm(torch::optim::Optimizer& optimizer, double max_norm,
                                       double norm_type = 2.0) {
    precision_.unscale_gradients(optimizer);
    detail::collect_gradients(optimizer, grads_);
    auto norm = clip_grad_norm(grads_, max_norm, norm_type);
    grads_.clear();  // keeps the capacity, not the gradients: zero_grad may free them
    return norm;
  }
  void clip_gradients_by_value(torch::optim::Optimizer& optimizer, double clip_val) {
    precision_.unscale_gradients(optimizer);
    detail::collect_gradients(optimizer, grads_);
    clip_grad_value(grads_, clip_val);
    grads_.clear();
  }

  // Divides the optimizer's gradients by a gradient scaler's scale, once per step (later
  // calls in the same step do nothing); a no-op for precisions without a scaler. The
  // loops call it before on_before_optimizer_step, so hooks and clipping see true
  // gradients, as Lightning's MixedPrecision arranges.
  void unscale_gradients(torch::optim::Optimizer& optimizer) {
    precision_.unscale_gradients(optimizer);
  }

  // Steps the optimizer through the precision; false when the step was skipped.
  bool step(torch::optim::Optimizer& optimizer) { return precision_.optimizer_step(optimizer); }
  // Steps with a closure that recomputes the loss (LBFGS); returns the closure's loss.
  torch::Tensor step(torch::optim::Optimizer& optimizer,
                     const torch::optim::Optimizer::LossClosure& closure) {
    return precision_.optimizer_step(optimizer, closure);
  }

  [[nodiscard]] torch::Tensor all_reduce(const torch::Tensor& t, Reduce op = Reduce::mean) const {
    return strategy_.reduce(t, op);
  }
  void barrier() const { strategy_.barrier(); }
  // Rank zero's value for every rank (a decision, a path, a number).
  template <class T>
  [[nodiscard]] T broadcast(T value) const {
    return strategy_.broadcast(std::move(value));
  }
  // Each rank's own decision, combined across ranks: all of them, or any (`all` false).
  [[nodiscard]] bool reduce_boolean_decision(bool decision, bool all = true) const {
    return strategy_.reduce_boolean_decision(decision, all);
  }
  // Whether fit was asked to stop by SIGTERM or SIGINT (core/interrupts.hpp): on every
  // rank the same answer at the same step boundary (the strategy agrees; one process
  // answers for itself).
  [[nodiscard]] bool interrupt_requested() {
    const bool mine = received_interrupt() != 0;
    if constexpr (requires { strategy_.agree_on_interrupt(mine); })
      return strategy_.agree_on_interrupt(mine);
    else
      return mine;
  }
  // How many processes to run (TrainerOptions.devices, num_nodes), before launch(); a
  // strategy of one process takes one.
  void configure_processes(std::optional<std::int64_t> devices, std::int64_t num_nodes) {
    if constexpr (requires { strategy_.configure_processes(devices, num_nodes); }) {
      strategy_.configure_processes(devices, num_nodes);
    } else if (devices.value_or(1) * num_nodes != 1) {
      throw_bad_option("TrainerOptions", devices.value_or(1) != 1 ? "devices" : "num_nodes",
                       std::to_string(devices.value_or(1) != 1 ? *devices : num_nodes),
                       "strategy \"" + std::string(S::name) +
                           "\" runs one process; use lightning::strategies::DDP to run more");
    }
  }
  // A run failed on this rank: the strategy may throw the failure of another rank that
  // caused it instead (the rank this one launched, whose end broke a collective).
  void handle_failure(const std::exception& error) {
    if constexpr (requires { strategy_.handle_failure(error); }) strategy_.handle_failure(error);
  }

  [[nodiscard]] std::int64_t global_rank() const { return strategy_.rank(); }
  [[nodiscard]] std::int64_t local_rank() const { return strategy_.local_rank(); }
  [[nodiscard]] std::int64_t world_size() const { return strategy_.world_size(); }
  [[nodiscard]] bool is_global_zero() const { return strategy_.is_global_zero(); }

  // Backward calls inside this scope leave gradients unsynchronised across ranks
  // (gradient accumulation; Lightning Fabric's no_backward_sync).
  class BackwardSyncSuspension {
   public:
    explicit BackwardSyncSuspension(Fabric& f) noexcept
        : fabric_(f), previous_(std::exchange(f.backward_sync_, false)) {}
    ~BackwardSyncSuspension() { fabric_.backward_sync_ = previous_; }
    BackwardSyncSuspension(const BackwardSyncSuspension&) = delete;
    BackwardSyncSuspension& operator=(const BackwardSyncSuspension&) = delete;

   private:
    Fabric& fabric_;
    bool previous_;
  };
  [[nodiscard]] BackwardSyncSuspension no_backward_sync() noexcept {
    return BackwardSyncSuspension(*this);
  }

  // What a checkpoint keeps of the policies: the accelerator's generators, the
  // precision's state (a gradient scaler's).
  [[nodiscard]] CheckpointDict rng_state() const { return accelerator_.rng_state(); }
  void set_rng_state(const CheckpointDict& state) { accelerator_.set_rng_state(state); }
  [[nodiscard]] CheckpointDict precision_state() const { return precision_.state_dict(); }
  void load_precision_state(const CheckpointDict& state) { precision_.load_state_dict(state); }

  // Ends a run: the strategy unwraps the module and frees what setup_module made (the
  // process group lives as long as the process). The Trainer calls it after each entry.
  void teardown() {
    if (launched_) strategy_.teardown();
  }

  void seed_everything(std::uint64_t seed) const { lightning::seed_everything(seed); }

  [[nodiscard]] A& accelerator() noexcept { return accelerator_; }
  [[nodiscard]] S& strategy() noexcept { return strategy_; }
  [[nodiscard]] P& precision() noexcept { return precision_; }

 private:
  // Auto resolved at launch: a precision that cannot run where it landed is an error
  // that names both, before any work.
  void check_precision_on_device() const {
    if (precision::supports_device<P>(device().type())) return;
    throw std::invalid_argument(
        std::string("lightning: precision \"") + std::string(P::name) + "\" cannot run on " +
        device().str() + ", where accelerator \"" + std::string(A::name) + "\" resolved" +
        (device().is_cpu() ? " (LibTorch sees no CUDA device); use BF16Mixed on the CPU" : ""));
  }

  A accelerator_{};
  S strategy_{};
  P precision_{};
  bool launched_ = false;
  bool backward_sync_ = true;         // false inside no_backward_sync()
  std::vector<torch::Tensor> grads_;  // reused by clip_gradients: no allocation per step
};

}  // namespace lightning
