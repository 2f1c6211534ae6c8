// Laws every policy combination keeps, one body each, instantiated over
// support/policies.hpp: the Trainer is the hand-written loop (bit for bit, in the
// precision's dtype), accumulation is a larger batch, clipping is torch's, and a resume
// from a checkpoint continues bit for bit.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"
#include "support/policies.hpp"

#include <filesystem>

namespace L = lightning;
using lightning::testing::bare;
using lightning::testing::flat_parameters;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;
using lightning::testing::XY;

namespace {

struct SgdLaw : SimpleModel {
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};

// Dropout (the generator) and Adam (moments): what a resume must restore.
struct DropoutLaw : L::LightningModule {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(10, 16))};
  torch::nn::Dropout drop{register_module("drop", torch::nn::Dropout(0.3))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(16, 1))};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(fc2(drop(torch::relu(fc1(x)))), y.unsqueeze(1));
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-2); }
};

}  // namespace

template <class P>
class TrainerLaws : public ::testing::Test {};
TYPED_TEST_SUITE(TrainerLaws, lightning::testing::CpuPolicies, lightning::testing::PolicyNames);

TYPED_TEST(TrainerLaws, EqualsTheHandWrittenLoopBitForBit) {
  using P = TypeParam;
  auto [X, y] = seed_data(320);
  auto hand = [&] {
    torch::manual_seed(5);
    SimpleModel m;
    m.to(P::dtype);
    auto opt = m.configure_optimizers();
    const auto x_all = X.to(P::dtype), y_all = y.to(P::dtype);
    for (int e = 0; e < 2; ++e)
      for (int64_t i = 0; i < 320; i += 32) {
        opt.zero_grad();
        torch::Tensor loss;
        {
          auto scope = P::forward_scope();
          loss = torch::mse_loss(m.forward(x_all.narrow(0, i, 32)),
                                 y_all.narrow(0, i, 32).unsqueeze(1));
        }
        loss.backward();
        opt.step();
      }
    return flat_parameters(m);
  }();
  torch::manual_seed(5);
  SimpleModel m;
  typename P::template trainer<> trainer(bare({.max_epochs = 2}));
  trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(m.linear->weight.scalar_type(), P::dtype);
  EXPECT_TRUE(torch::equal(hand, flat_parameters(m)));
}

TYPED_TEST(TrainerLaws, AccumulatingHalfBatchesEqualsTheFullBatch) {
  using P = TypeParam;
  auto [X, y] = seed_data(256);
  auto run = [&](int64_t batch, int64_t accumulate) {
    torch::manual_seed(2);
    SgdLaw m;
    typename P::template trainer<> t(
        bare({.max_epochs = 2, .accumulate_grad_batches = accumulate}));
    t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = batch}));
    return flat_parameters(m);
  };
  const auto full = run(32, 1), halves = run(16, 2);
  EXPECT_TRUE(torch::allclose(full, halves, P::rtol, P::atol)) << full << "\n" << halves;
  EXPECT_FALSE(torch::equal(full, run(16, 1)));  // not accumulating does differ
}

TYPED_TEST(TrainerLaws, ClippingIsTorchsClipping) {
  using P = TypeParam;
  auto [X, y] = seed_data(128);
  for (auto algorithm : {L::GradClipAlgorithm::norm, L::GradClipAlgorithm::value}) {
    const double limit = algorithm == L::GradClipAlgorithm::norm ? 0.05 : 0.01;
    torch::manual_seed(4);
    SgdLaw hand;
    hand.to(P::dtype);
    torch::optim::SGD opt(hand.parameters(), 0.1);
    const auto x_all = X.to(P::dtype), y_all = y.to(P::dtype);
    for (int64_t i = 0; i < 128; i += 32) {
      opt.zero_grad();
      torch::Tensor loss;
      {
        auto scope = P::forward_scope();
        loss = torch::mse_loss(hand.forward(x_all.narrow(0, i, 32)),
                               y_all.narrow(0, i, 32).unsqueeze(1));
      }
      loss.backward();
      if (algorithm == L::GradClipAlgorithm::norm)
        torch::nn::utils::clip_grad_norm_(hand.parameters(), limit);
      else
        torch::nn::utils::clip_grad_value_(hand.parameters(), limit);
      opt.step();
    }
    torch::manual_seed(4);
    SgdLaw m;
    typename P::template trainer<> t(
        bare({.max_epochs = 1, .gradient_clip_val = limit, .gradient_clip_algorithm = algorithm}));
    t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    EXPECT_TRUE(torch::allclose(flat_parameters(hand), flat_parameters(m), P::rtol, P::atol));
  }
}

TYPED_TEST(TrainerLaws, ResumingFromAnEpochCheckpointContinuesBitForBit) {
  using P = TypeParam;
  auto [X, y] = seed_data(200);
  const auto path = std::filesystem::path("law.ckpt");
  auto train = [&](std::int64_t epochs, bool save, bool resume) {
    torch::manual_seed(resume ? 99 : 1);  // a resumed run starts from other weights
    DropoutLaw m;
    typename P::template trainer<> t(bare({.max_epochs = epochs, .seed = 7}));
    L::data::TensorLoader loader({X, y}, {.batch_size = 32, .shuffle = true});
    if (resume)
      t.fit(m, loader, L::CheckpointPath{path});
    else
      t.fit(m, loader);
    if (save) t.save_checkpoint(path);
    return flat_parameters(m).clone();
  };
  const auto straight = train(4, false, false);
  const auto first = train(2, true, false);
  const auto resumed = train(4, false, true);
  EXPECT_FALSE(torch::equal(first, straight));
  EXPECT_TRUE(torch::equal(resumed, straight));
}
