// The policy combinations the trainer tests are instantiated for: one generic test body
// per law, one instantiation per combination (STYLE 9). CPU/SingleDevice with F32 and F64
// today; CUDA, mixed precision and DDP join the list as their policies land.
#pragma once

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
  template <class... Callbacks>
  using trainer = lightning::Trainer<A, S, P, Callbacks...>;
};

using CpuPolicies =
    ::testing::Types<Policies<accelerators::CPU, strategies::SingleDevice, precision::F32>,
                     Policies<accelerators::CPU, strategies::SingleDevice, precision::F64>>;

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
