// Fabric: clipping matches PyTorch's, and a Fabric loop equals the hand-written loop.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

namespace L = lightning;

namespace {
// Two identical small models with gradients from the same loss.
std::pair<torch::nn::Sequential, torch::nn::Sequential> twin_models_with_grads() {
  torch::manual_seed(3);
  torch::nn::Sequential a(torch::nn::Linear(5, 8), torch::nn::Tanh(), torch::nn::Linear(8, 2));
  torch::nn::Sequential b(torch::nn::Linear(5, 8), torch::nn::Tanh(), torch::nn::Linear(8, 2));
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < a->parameters().size(); ++i)
      b->parameters()[i].copy_(a->parameters()[i]);
  }
  auto x = torch::randn({16, 5}) * 10;
  (a->forward(x).pow(2).sum()).backward();
  (b->forward(x).pow(2).sum()).backward();
  return {a, b};
}
}  // namespace

TEST(GradientClipping, NormMatchesTorchClipGradNorm) {
  for (double norm_type : {2.0, 1.0, std::numeric_limits<double>::infinity()}) {
    auto [a, b] = twin_models_with_grads();
    torch::optim::SGD opt(a->parameters(), 0.1);
    L::Fabric<L::accelerators::CPU> fabric;
    auto total = fabric.clip_gradients(opt, {.max_norm = 0.5, .norm_type = norm_type});
    const double expected = torch::nn::utils::clip_grad_norm_(b->parameters(), 0.5, norm_type);
    EXPECT_NEAR(total.item<double>(), expected, 1e-3 * expected) << "norm_type " << norm_type;
    for (size_t i = 0; i < a->parameters().size(); ++i)
      EXPECT_TRUE(torch::allclose(a->parameters()[i].grad(), b->parameters()[i].grad(), 1e-5, 1e-6))
          << "norm_type " << norm_type;
  }
}

TEST(GradientClipping, ValueMatchesTorchClipGradValue) {
  auto [a, b] = twin_models_with_grads();
  torch::optim::SGD opt(a->parameters(), 0.1);
  L::Fabric<L::accelerators::CPU> fabric;
  fabric.clip_gradients(opt, {.clip_val = 0.01});
  torch::nn::utils::clip_grad_value_(b->parameters(), 0.01);
  for (size_t i = 0; i < a->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(a->parameters()[i].grad(), b->parameters()[i].grad()));
}

TEST(GradientClipping, NeedsExactlyOneMode) {
  L::Fabric<L::accelerators::CPU> fabric;
  torch::nn::Linear lin(2, 1);
  torch::optim::SGD opt(lin->parameters(), 0.1);
  EXPECT_THROW(fabric.clip_gradients(opt, {}), std::invalid_argument);
  EXPECT_THROW(fabric.clip_gradients(opt, {.clip_val = 1.0, .max_norm = 1.0}),
               std::invalid_argument);
}

TEST(Fabric, F64MovesModuleAndBatchToDouble) {
  L::Fabric<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F64> fabric;
  torch::nn::Linear lin(3, 1);
  fabric.setup_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kDouble);
  auto [x, labels] =
      fabric.to_device(std::make_tuple(torch::ones({2, 3}), torch::ones({2}, torch::kLong)));
  EXPECT_EQ(x.scalar_type(), torch::kDouble);
  EXPECT_EQ(labels.scalar_type(), torch::kLong);
  EXPECT_EQ(fabric.world_size(), 1);
  EXPECT_TRUE(fabric.is_global_zero());
  EXPECT_TRUE(fabric.broadcast(true));
}

TEST(Fabric, SetupAfterTheOptimizerKeepsItValid) {
  L::Fabric<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F64> fabric;
  torch::nn::Linear lin(3, 1);
  torch::optim::SGD opt(lin->parameters(), 0.1);
  fabric.setup(*lin, opt);  // converts parameters in place: the optimizer still owns them
  auto loss = lin(torch::ones({2, 3}, torch::kDouble)).sum();
  fabric.backward(loss);
  const auto before = lin->weight.clone();
  EXPECT_TRUE(fabric.step(opt));
  EXPECT_FALSE(torch::equal(before, lin->weight));
}

// Law: F32 + SingleDevice through Fabric is the hand-written LibTorch loop, bit for bit.
TEST(Fabric, LoopEqualsHandWrittenLoopBitwise) {
  auto [X, y] = lightning::testing::seed_data(256);
  auto run = [&](bool use_fabric) {
    torch::manual_seed(11);
    torch::nn::Linear lin(10, 1);
    torch::optim::Adam opt(lin->parameters(), 1e-2);
    L::Fabric<L::accelerators::CPU> fabric;
    if (use_fabric) fabric.setup_module(*lin);
    for (int epoch = 0; epoch < 3; ++epoch)
      for (int64_t i = 0; i < 256; i += 32) {
        auto x = X.narrow(0, i, 32), t = y.narrow(0, i, 32);
        if (use_fabric) std::tie(x, t) = fabric.to_device(std::make_tuple(x, t));
        opt.zero_grad();
        auto loss = torch::mse_loss(lin(x), t.unsqueeze(1));
        if (use_fabric) {
          fabric.backward(loss);
          fabric.step(opt);
        } else {
          loss.backward();
          opt.step();
        }
      }
    return torch::cat({lin->weight.detach().flatten(), lin->bias.detach()});
  };
  EXPECT_TRUE(torch::equal(run(true), run(false)));
}
