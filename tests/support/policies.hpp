// The policy combinations the trainer tests are instantiated for: one generic test body
// per law, one instantiation per combination (STYLE 9). CPU/SingleDevice with F32, F64,
// BF16Mixed and BF16True today; CUDA and DDP join the list as their policies land.
#pragma once

#include <lightning/core/torch_version.hpp>
#include <lightning/lightning.hpp>

#include <gtest/gtest.h>

#include <string>

namespace lightning::testing {

template <class A, class S, class P>
struct Policies {
  using accelerator = A;
  using strategy = S;
  using precision = P;
  static constexpr c10::ScalarType dtype = P::param_dtype;
  // Whether the forward runs in a lower precision than the parameters' float32/64.
  static constexpr bool low_precision = dtype == c10::kBFloat16 || dtype == c10::kHalf || requires {
    P::autocast_dtype;
  };
  // Tolerances of a law that compares two orders of the same arithmetic (accumulation,
  // clipping): float32's, or bfloat16's 8 bits of mantissa.
  static constexpr double rtol = low_precision ? 2e-2 : 1e-5;
  static constexpr double atol = low_precision ? 1e-3 : 1e-7;
  // The precision's forward scope, for a hand-written loop to run what the Trainer runs.
  static auto forward_scope() { return P{}.autocast(c10::Device(c10::kCPU)); }
  template <class... Callbacks>
  using trainer = lightning::Trainer<A, S, P, Callbacks...>;
};

// LibTorch 1.13 has no bfloat16 CPU kernels for the laws' loss (mse_loss): bf16-true is
// checked against 2.x only. (bf16-mixed runs the loss in float32, so it runs on both.)
using CpuPolicies =
    ::testing::Types<Policies<accelerators::CPU, strategies::SingleDevice, precision::F32>,
                     Policies<accelerators::CPU, strategies::SingleDevice, precision::F64>,
                     Policies<accelerators::CPU, strategies::SingleDevice, precision::BF16Mixed>
#if LIGHTNING_TORCH_AT_LEAST(2, 0)
                     ,
                     Policies<accelerators::CPU, strategies::SingleDevice, precision::BF16True>
#endif
                     >;

// The strategy of a process that is not rank zero (what DDP's other ranks are), on one
// device: what rank-zero-only behaviour (logging, checkpoints, the progress bar) sees.
struct NotRankZero : strategies::SingleDevice {
  [[nodiscard]] std::int64_t rank() const noexcept { return 1; }
  [[nodiscard]] std::int64_t world_size() const noexcept { return 2; }
  [[nodiscard]] bool is_global_zero() const noexcept { return false; }
};

// Test names: "cpu_single_device_32-true".
struct PolicyNames {
  template <class T>
  static std::string GetName(int) {
    std::string name = std::string(T::accelerator::name) + "_" + std::string(T::strategy::name) +
                       "_" + std::string(T::precision::name);
    for (auto& c : name)
      if (c == '-') c = '_';
    return name;
  }
};

}  // namespace lightning::testing
