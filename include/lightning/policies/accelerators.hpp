// Accelerators: where tensors live. Valid with every Strategy and Precision of this
// release (CPU: F32, F64).
#pragma once

#include <lightning/core/concepts.hpp>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <string_view>

namespace lightning::accelerators {

// The host CPU. Its device is known at compile time.
struct CPU {
  static constexpr std::string_view name = "cpu";
  static bool is_available() noexcept { return true; }
  void setup() {}
  [[nodiscard]] c10::Device device() const noexcept { return c10::Device(c10::kCPU); }
  void synchronize() const noexcept {}
};

// Lightning's accelerator="auto": the first CUDA device when LibTorch has one at run
// time, else the CPU. Resolved once in setup() (at fit), never inside the loop.
struct Auto {
  static constexpr std::string_view name = "auto";
  static bool is_available() noexcept { return true; }
  void setup() {
    device_ = torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  [[nodiscard]] c10::Device device() const noexcept { return device_; }
  void synchronize() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }

 private:
  c10::Device device_{c10::kCPU};
};

static_assert(Accelerator<CPU> && Accelerator<Auto>);

}  // namespace lightning::accelerators
