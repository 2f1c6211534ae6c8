// The seed workload and the Fashion-MNIST CNN over accelerators x precisions, through
// lightning/benchmarks/policy_combinations.hpp (its first user): CPU x {F32, F64,
// BF16Mixed, BF16True}, and CUDA x {F32, BF16Mixed, F16Mixed, BF16True} where a GPU is
// present. Counters: samples/s and host time per step.
//
//   ./build/bench/policy_combinations [--benchmark_filter=Seed]
//
// The CNN trains on the first 2,048 training images (32 steps of 64) per fit; the seed
// workload is one epoch of 1,000 x 10 (32 steps of 32).
#include "support/fashion_net.hpp"
#include "support/seed_workload.hpp"

#include <lightning/benchmarks/policy_combinations.hpp>
#include <lightning/data/fashion_mnist.hpp>
#include <lightning/lightning.hpp>

#include <benchmark/benchmark.h>

#include <iostream>

namespace L = lightning;
namespace LB = lightning::benchmarks;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

namespace {

using lightning::bench::SeedModel;

// examples/fashion_mnist.cpp's network, with Adam at a fixed rate.
struct FashionCNN : L::LightningModule {
  lightning::bench::FashionNet net{register_module("net", lightning::bench::FashionNet())};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::cross_entropy_loss(net(x), y);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

constexpr auto accelerators = LB::policies<L::accelerators::CPU, L::accelerators::CUDA>;
constexpr auto strategies = LB::policies<L::strategies::SingleDevice>;
constexpr auto precisions =
    LB::policies<L::precision::F32, L::precision::F64, L::precision::BF16Mixed,
                 L::precision::BF16True, L::precision::F16Mixed>;

}  // namespace

int main(int argc, char** argv) {
  torch::manual_seed(0);
  const auto X = torch::randn({1000, 10}), y = torch::randn({1000});
  LB::register_policy_combinations(
      "Seed", accelerators, strategies, precisions, [] { return SeedModel(); },
      [&] {
        return L::data::TensorLoader({X, y}, {.batch_size = 32});
      },
      {.epochs = 1});

  // Debian's dataset-fashion-mnist; a machine without it (the GPU machine) runs the seed
  // workload alone.
  L::data::FashionMNIST fashion({.batch_size = 64, .val_size = 0, .limit = 2048});
  try {
    fashion.prepare_data();
    fashion.setup(L::Stage::fit);
    LB::register_policy_combinations(
        "FashionCNN", accelerators, strategies, precisions, [] { return FashionCNN(); },
        [&] { return fashion.train_dataloader(); }, {.epochs = 1});
  } catch (const std::runtime_error& e) {
    std::cerr << "FashionCNN: not registered (" << e.what() << ")\n";
  }

  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
