// Strategies: how training is spread over processes and devices (the Strategy concept,
// core/concepts.hpp, documents each point and when the loops call it).
#pragma once

#include <lightning/core/concepts.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <string_view>
#include <utility>

namespace lightning::strategies {

// One process, one device: every collective is the identity and every hook a no-op,
// inlined away.
struct SingleDevice {
  static constexpr std::string_view name = "single_device";
  static constexpr std::string_view lightning_class = "SingleDeviceStrategy";  // profiler rows

  void setup_environment() noexcept {}
  void setup_module(torch::nn::Module&, c10::Device) noexcept {}
  template <class L>
  L&& process_dataloader(L&& loader, bool /*use_distributed_sampler*/ = true) const noexcept {
    return std::forward<L>(loader);
  }
  void pre_forward(torch::nn::Module&) noexcept {}
  void zero_grad(torch::optim::Optimizer& optimizer) { optimizer.zero_grad(); }
  void pre_backward(const torch::Tensor&, bool /*sync*/) noexcept {}
  void post_backward(const torch::Tensor&, bool /*sync*/) noexcept {}
  [[nodiscard]] torch::Tensor reduce(const torch::Tensor& t, Reduce = Reduce::mean) const {
    return t;
  }
  template <class T>
  [[nodiscard]] T broadcast(T value) const noexcept(std::is_nothrow_move_constructible_v<T>) {
    return value;
  }
  [[nodiscard]] bool reduce_boolean_decision(bool decision, bool /*all*/ = true) const noexcept {
    return decision;
  }
  void barrier() const noexcept {}
  void teardown() noexcept {}
  [[nodiscard]] std::int64_t rank() const noexcept { return 0; }
  [[nodiscard]] std::int64_t local_rank() const noexcept { return 0; }
  [[nodiscard]] std::int64_t world_size() const noexcept { return 1; }
  [[nodiscard]] bool is_global_zero() const noexcept { return true; }
};

static_assert(Strategy<SingleDevice>);

}  // namespace lightning::strategies
