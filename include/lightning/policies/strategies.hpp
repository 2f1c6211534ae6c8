// Strategies: how training is spread over processes and devices.
#pragma once

#include <lightning/core/concepts.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <string_view>

namespace lightning::strategies {

// One process, one device. Every collective is the identity, inlined away.
struct SingleDevice {
  static constexpr std::string_view name = "single_device";

  void setup_module(torch::nn::Module& module, c10::Device device) { module.to(device); }
  [[nodiscard]] torch::Tensor reduce(const torch::Tensor& t, Reduce = Reduce::mean) const {
    return t;
  }
  void barrier() const noexcept {}
  [[nodiscard]] bool broadcast(bool decision) const noexcept { return decision; }
  [[nodiscard]] std::int64_t rank() const noexcept { return 0; }
  [[nodiscard]] std::int64_t world_size() const noexcept { return 1; }
  [[nodiscard]] bool is_global_zero() const noexcept { return true; }
  [[nodiscard]] NoScope no_backward_sync() const noexcept { return {}; }
};

static_assert(Strategy<SingleDevice>);

}  // namespace lightning::strategies
