// Accelerators: where tensors live (the Accelerator concept, core/concepts.hpp): CPU,
// CUDA, and Auto (CUDA when LibTorch sees a GPU at run time, else the CPU).
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/core/concepts.hpp>

#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
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

namespace detail {
// What an accelerator that may hold a CUDA device shares: the transfer, the generators,
// the wait. A CPU-only LibTorch compiles it (the CUDA calls go through LibTorch's
// device-generic entry points) and never takes a CUDA branch: device_ is never CUDA there.
class DeviceAccelerator {
 public:
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
    if (device_.is_cuda()) state.insert("cuda", device_generator().get_state());
    return state;
  }
  void set_rng_state(const CheckpointDict& state) {
    if (state.contains("cpu")) set_cpu_rng_state(state.at("cpu").toTensor());
    if (device_.is_cuda() && state.contains("cuda")) {
      auto gen = device_generator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state.at("cuda").toTensor());
    }
  }
  void synchronize() const {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }

 protected:
  // Makes `device` current for this process before anything else touches CUDA (the
  // allocator, NCCL and cuBLAS handles go to the current device).
  void use(c10::Device device) {
    device_ = device;
    if (device_.is_cuda()) c10::impl::VirtualGuardImpl(c10::kCUDA).setDevice(device_);
  }

 private:
  // The device's default generator (LibTorch 1.13 and 2.x spell it the same way here).
  [[nodiscard]] at::Generator device_generator() const {
    return at::globalContext().defaultGenerator(device_);
  }
  c10::Device device_{c10::kCPU};
};
}  // namespace detail

// accelerators::CUDA's options.
struct CUDAOptions {
  // The GPU this process uses; unset: cuda:<local_rank> (one process per GPU, as DDP
  // launches them).
  std::optional<std::int64_t> device_index = std::nullopt;
};

// An NVIDIA GPU (Lightning's accelerator="cuda"): the device is chosen once, at setup,
// and made current before anything else; batches move non-blocking from pinned memory;
// the GPU's generator is saved in checkpoints beside the CPU's, so a resume is exact.
class CUDA : public detail::DeviceAccelerator {
 public:
  static constexpr std::string_view name = "cuda";
  static constexpr std::optional<c10::DeviceType> device_type = c10::kCUDA;
  static bool is_available() { return torch::cuda::is_available(); }

  CUDA() = default;
  explicit CUDA(CUDAOptions options) : o_(options) {}

  void setup(std::int64_t local_rank) {
    if (!torch::cuda::is_available())
      throw std::runtime_error(
          "lightning: accelerators::CUDA was chosen, but LibTorch sees no CUDA device "
          "(torch::cuda::is_available() is false: no GPU, no driver, or a LibTorch built "
          "without CUDA); use accelerators::CPU, or accelerators::Auto to take a GPU when there "
          "is one");
    const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
    const auto index = o_.device_index.value_or(local_rank);
    const auto rule = "must name one of the " + std::to_string(count) +
                      " CUDA devices this process sees (0 to " + std::to_string(count - 1) + ")";
    if (o_.device_index && (index < 0 || index >= count))
      throw_bad_option("CUDAOptions", "device_index", std::to_string(index), rule);
    if (index < 0 || index >= count)
      throw std::runtime_error(
          "lightning: accelerators::CUDA takes cuda:<local rank>, but the "
          "local rank is " +
          std::to_string(index) + ", which " + rule +
          "; set CUDAOptions.device_index, or start one process per GPU");
    use(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index)));
  }

 private:
  CUDAOptions o_;
};

// Lightning's accelerator="auto": cuda:<local_rank> when LibTorch sees a CUDA device at
// run time, else the CPU. Resolved once in setup() (at fit), never inside the loop;
// device_type is unknown at compile time.
class Auto : public detail::DeviceAccelerator {
 public:
  static constexpr std::string_view name = "auto";
  static constexpr std::optional<c10::DeviceType> device_type = std::nullopt;
  static bool is_available() noexcept { return true; }
  void setup(std::int64_t local_rank) {
    if (torch::cuda::is_available()) {
      const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
      use(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count)));
    } else {
      use(c10::Device(c10::kCPU));
    }
  }
};

static_assert(Accelerator<CPU> && Accelerator<CUDA> && Accelerator<Auto>);
static_assert(CPU::device_type == c10::kCPU && CUDA::device_type == c10::kCUDA &&
              !Auto::device_type.has_value());

}  // namespace lightning::accelerators
