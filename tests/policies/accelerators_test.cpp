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

TEST(Accelerators, CudaWithoutAGpuIsAClearErrorAtSetup) {
  static_assert(L::accelerators::CUDA::device_type == c10::kCUDA);
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA: see AcceleratorsGpu";
  EXPECT_FALSE(L::accelerators::CUDA::is_available());
  L::accelerators::CUDA cuda;
  try {
    cuda.setup(0);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("LibTorch sees no CUDA device"), std::string::npos)
        << e.what();
  }
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
template <class Accelerator, class Precision = L::precision::F32>
torch::Tensor seed_parameters_after_fit() {
  torch::manual_seed(0);
  const auto X = torch::randn({1000, 10}), y = torch::randn({1000});
  lightning::testing::SimpleModel model;  // the seed workload
  L::Trainer<Accelerator, L::strategies::SingleDevice, Precision> trainer(
      {.max_epochs = 3,
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

TEST(AcceleratorsGpu, CudaTakesTheLocalRanksDeviceOrTheOptionsAndResumesItsGenerator) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: torch::cuda::is_available() is false on this machine";
  L::accelerators::CUDA by_rank;
  by_rank.setup(0);
  EXPECT_EQ(by_rank.device(), c10::Device(c10::kCUDA, 0));
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  L::accelerators::CUDA by_option(L::accelerators::CUDAOptions{.device_index = count - 1});
  by_option.setup(0);
  EXPECT_EQ(by_option.device().index(), count - 1);
  L::accelerators::CUDA out_of_range(L::accelerators::CUDAOptions{.device_index = count});
  EXPECT_THROW(out_of_range.setup(0), std::invalid_argument);
  // Pinned host memory moves without blocking; the result is on the device.
  const auto pinned = torch::ones({1024}).pin_memory();
  EXPECT_TRUE(by_rank.to_device(pinned).is_cuda());
  const auto state = by_rank.rng_state();
  ASSERT_TRUE(state.contains("cuda"));
  const auto first = torch::rand({4}, torch::Device(torch::kCUDA, 0));
  by_rank.set_rng_state(state);
  EXPECT_TRUE(torch::equal(torch::rand({4}, torch::Device(torch::kCUDA, 0)), first));
}

TEST(AcceleratorsGpu, TheSeedWorkloadUnderF16MixedAndBF16MixedOnCudaEndsNearFloat32) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: torch::cuda::is_available() is false on this machine";
  const auto f32 = seed_parameters_after_fit<L::accelerators::CUDA>();
  const auto f16 = seed_parameters_after_fit<L::accelerators::CUDA, L::precision::F16Mixed>();
  const auto bf16 = seed_parameters_after_fit<L::accelerators::CUDA, L::precision::BF16Mixed>();
  EXPECT_FALSE(torch::equal(f32, f16));  // float16 did run
  EXPECT_FALSE(torch::equal(f32, bf16));
  EXPECT_LT((f32 - f16).abs().max().item<double>(), 1e-2) << f32 << "\n" << f16;
  EXPECT_LT((f32 - bf16).abs().max().item<double>(), 1e-2) << f32 << "\n" << bf16;
}
