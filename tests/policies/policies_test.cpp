// The CPU-side policies: devices, identity collectives, full-precision conversions.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

namespace L = lightning;

TEST(Accelerators, CpuAndAutoResolveToTheCpuWithoutCuda) {
  L::accelerators::CPU cpu;
  cpu.setup();
  EXPECT_EQ(cpu.device(), c10::Device(c10::kCPU));
  L::accelerators::Auto a;
  a.setup();
  if (!torch::cuda::is_available())
    EXPECT_EQ(a.device(), c10::Device(c10::kCPU));
  else
    EXPECT_TRUE(a.device().is_cuda());
  a.synchronize();
}

TEST(Strategies, SingleDeviceIsTheIdentity) {
  L::strategies::SingleDevice s;
  auto t = torch::arange(3.0);
  EXPECT_TRUE(s.reduce(t, L::Reduce::sum).is_same(t));
  EXPECT_TRUE(s.broadcast(true));
  EXPECT_FALSE(s.broadcast(false));
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.world_size(), 1);
  EXPECT_TRUE(s.is_global_zero());
  torch::nn::Linear lin(2, 1);
  s.setup_module(*lin, c10::Device(c10::kCPU));
  EXPECT_TRUE(lin->weight.device().is_cpu());
}

TEST(Precision, F64ConvertsModuleAndFloatingInputsOnly) {
  L::precision::F64 p;
  torch::nn::Linear lin(2, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(p.convert_input(torch::ones({2})).scalar_type(), torch::kDouble);
  EXPECT_EQ(p.convert_input(torch::ones({2}, torch::kLong)).scalar_type(), torch::kLong);
  auto b = p.convert_batch(std::make_tuple(torch::ones({1}), torch::ones({1}, torch::kInt)));
  EXPECT_EQ(std::get<0>(b).scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<1>(b).scalar_type(), torch::kInt);
}

TEST(Precision, F32LeavesEverythingAsIsAndAlwaysSteps) {
  L::precision::F32 p;
  torch::nn::Linear lin(2, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);
  auto x = torch::ones({2}, torch::kDouble);
  EXPECT_TRUE(p.convert_input(x).is_same(x));
  torch::optim::SGD opt(lin->parameters(), 0.1);
  auto loss = lin(torch::ones({1, 2})).sum();
  p.backward(loss);
  const auto before = lin->weight.clone();
  EXPECT_TRUE(p.optimizer_step(opt));
  EXPECT_FALSE(torch::equal(before, lin->weight));
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
                                   .enable_model_summary = false});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  return torch::cat({model.linear->weight.flatten(), model.linear->bias}).to(torch::kCPU);
}
}  // namespace

TEST(AcceleratorsGpu, AutoTrainsOnCudaAndEndsWhereTheCpuEnds) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: torch::cuda::is_available() is false on this machine";
  L::accelerators::Auto a;
  a.setup();
  ASSERT_TRUE(a.device().is_cuda());
  const auto on_gpu = seed_parameters_after_fit<L::accelerators::Auto>();
  const auto on_cpu = seed_parameters_after_fit<L::accelerators::CPU>();
  EXPECT_TRUE(torch::allclose(on_gpu, on_cpu, 1e-4, 1e-5)) << on_gpu << "\n" << on_cpu;
}
