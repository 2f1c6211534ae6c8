// Accelerators: where tensors live (the Accelerator concept, core/concepts.hpp). Valid
// with every Strategy and Precision of this release (CPU: F32, F64).
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>

#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace lightning::accelerators {

// The host CPU: device_type is known at compile time, every rank uses the same device,
// and transfers are the identity for CPU tensors.
struct CPU {
  static constexpr std::string_view name = "cpu";
  static constexpr std::optional<c10::DeviceType> device_type = c10::kCPU;
  static bool is_available() noexcept { return true; }
  void setup(std::int64_t /*local_rank*/) noexcept {}
  [[nodiscard]] c10::Device device() const noexcept { return c10::Device(c10::kCPU); }
  [[nodiscard]] torch::Tensor to_device(const torch::Tensor& t) const {
    return !t.defined() || t.is_cpu() ? t : t.to(c10::kCPU);
  }
  [[nodiscard]] CheckpointDict rng_state() const {
    auto state = make_checkpoint();
    state.insert("cpu", cpu_rng_state());
    return state;
  }
  void set_rng_state(const CheckpointDict& state) {
    if (state.contains("cpu")) set_cpu_rng_state(state.at("cpu").toTensor());
  }
  void synchronize() const noexcept {}
};

// Lightning's accelerator="auto": cuda:<local_rank> when LibTorch sees a CUDA device at
// run time, else the CPU. Resolved once in setup() (at fit), never inside the loop;
// device_type is unknown at compile time.
struct Auto {
  static constexpr std::string_view name = "auto";
  static constexpr std::optional<c10::DeviceType> device_type = std::nullopt;
  static bool is_available() noexcept { return true; }
  void setup(std::int64_t local_rank) {
    if (torch::cuda::is_available()) {
      const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
      device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
    } else {
      device_ = c10::Device(c10::kCPU);
    }
  }
  [[nodiscard]] c10::Device device() const noexcept { return device_; }
  // From pinned host memory the copy is queued and the host goes on; from pageable
  // memory it must wait, so it is not asked to.
  [[nodiscard]] torch::Tensor to_device(const torch::Tensor& t) const {
    if (!t.defined() || t.device() == device_) return t;
    return t.to(device_, /*non_blocking=*/device_.is_cuda() && t.is_pinned());
  }
  [[nodiscard]] CheckpointDict rng_state() const {
    auto state = make_checkpoint();
    state.insert("cpu", cpu_rng_state());
    if (device_.is_cuda()) state.insert("cuda", cuda_generator().get_state());
    return state;
  }
  void set_rng_state(const CheckpointDict& state) {
    if (state.contains("cpu")) set_cpu_rng_state(state.at("cpu").toTensor());
    if (device_.is_cuda() && state.contains("cuda")) {
      auto gen = cuda_generator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state.at("cuda").toTensor());
    }
  }
  void synchronize() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }

 private:
  // The device's default generator (LibTorch 1.13 and 2.x spell it the same way here);
  // a CPU-only LibTorch compiles this and never calls it: device_ is never CUDA there.
  [[nodiscard]] at::Generator cuda_generator() const {
    return at::globalContext().defaultGenerator(device_);
  }
  c10::Device device_{c10::kCPU};
};

static_assert(Accelerator<CPU> && Accelerator<Auto>);
static_assert(CPU::device_type == c10::kCPU && !Auto::device_type.has_value());

}  // namespace lightning::accelerators
