// Accelerators: the device, its kind at compile time, the transfer and the generators.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

namespace L = lightning;

// The concept, positive and negative: an accelerator without a transfer is not one.
namespace {
struct NoTransfer {
  static constexpr std::string_view name = "x";
  static constexpr std::optional<c10::DeviceType> device_type = c10::kCPU;
  void setup(std::int64_t) {}
  c10::Device device() const { return c10::kCPU; }
  L::CheckpointDict rng_state() const { return L::make_checkpoint(); }
  void set_rng_state(const L::CheckpointDict&) {}
  void synchronize() const {}
};
struct WithTransfer : NoTransfer {
  torch::Tensor to_device(const torch::Tensor& t) const { return t; }
};
}  // namespace
static_assert(L::Accelerator<L::accelerators::CPU> && L::Accelerator<L::accelerators::Auto>);
static_assert(L::Accelerator<WithTransfer>);
static_assert(!L::Accelerator<NoTransfer>);
static_assert(!L::Accelerator<L::strategies::SingleDevice>);

TEST(Accelerators, CpuKnowsItsDeviceAtCompileTimeAutoDoesNot) {
  static_assert(L::accelerators::CPU::device_type == c10::kCPU);
  static_assert(!L::accelerators::Auto::device_type.has_value());
  L::accelerators::CPU cpu;
  cpu.setup(3);  // any local rank: one CPU
  EXPECT_EQ(cpu.device(), c10::Device(c10::kCPU));
}

TEST(Accelerators, AutoTakesTheCpuWhenLibTorchSeesNoCuda) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA: see AcceleratorsGpu";
  L::accelerators::Auto a;
  a.setup(1);
  EXPECT_EQ(a.device(), c10::Device(c10::kCPU));
  a.synchronize();
}

TEST(Accelerators, TransferLeavesTensorsAlreadyOnTheDeviceAlone) {
  L::accelerators::CPU cpu;
  const auto t = torch::ones({2});
  EXPECT_TRUE(cpu.to_device(t).is_same(t));
  EXPECT_FALSE(cpu.to_device(torch::Tensor()).defined());
}

TEST(Accelerators, GeneratorStateRoundTripsThroughACheckpointDict) {
  L::accelerators::CPU cpu;
  torch::manual_seed(7);
  const auto state = cpu.rng_state();
  ASSERT_TRUE(state.contains("cpu"));
  const auto first = torch::rand({4});
  cpu.set_rng_state(state);
  EXPECT_TRUE(torch::equal(torch::rand({4}), first));
}

// GPU tests (CTest label `gpu`): run on a machine with a GPU, skipped with the reason
// elsewhere. The seed workload under accelerators::Auto trains on the first CUDA device
// and ends where the same run on the CPU ends, to float tolerance.
namespace {
template <class Accelerator>
torch::Tensor seed_parameters_after_fit() {
  torch::manual_seed(0);
  const auto X = torch::randn({1000, 10}), y = torch::randn({1000});
  lightning::testing::SimpleModel model;  // the seed workload
  L::Trainer<Accelerator> trainer({.max_epochs = 3,
                                   .enable_progress_bar = false,
                                   .enable_checkpointing = false,
                                   .enable_model_summary = false,
                                   .logger = false});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  return torch::cat({model.linear->weight.flatten(), model.linear->bias}).to(torch::kCPU);
}
}  // namespace

TEST(AcceleratorsGpu, AutoTrainsOnCudaAndEndsWhereTheCpuEnds) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: torch::cuda::is_available() is false on this machine";
  L::accelerators::Auto a;
  a.setup(0);
  ASSERT_TRUE(a.device().is_cuda());
  const auto on_gpu = seed_parameters_after_fit<L::accelerators::Auto>();
  const auto on_cpu = seed_parameters_after_fit<L::accelerators::CPU>();
  EXPECT_TRUE(torch::allclose(on_gpu, on_cpu, 1e-4, 1e-5)) << on_gpu << "\n" << on_cpu;
}

TEST(AcceleratorsGpu, AutoSavesAndRestoresTheCudaGenerator) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: torch::cuda::is_available() is false on this machine";
  L::accelerators::Auto a;
  a.setup(0);
  const auto state = a.rng_state();
  ASSERT_TRUE(state.contains("cuda"));
  const auto first = torch::rand({4}, torch::Device(torch::kCUDA, 0));
  a.set_rng_state(state);
  EXPECT_TRUE(torch::equal(torch::rand({4}, torch::Device(torch::kCUDA, 0)), first));
}
