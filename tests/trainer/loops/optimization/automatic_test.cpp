// configure_optimizers with schedulers; how accumulation, clipping and scheduler steps
// interact (Lightning: clip after accumulation; a 'step' interval counts optimizer steps).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

namespace L = lightning;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

// Records the lr at each optimizer step and the gradient norm at each batch end.
struct Probe {
  std::vector<double>* lrs;
  std::vector<double>* norms;
  void on_before_optimizer_step(auto&, auto&, torch::optim::Optimizer& o) {
    lrs->push_back(o.param_groups()[0].options().get_lr());
  }
  void on_train_batch_end(auto&, auto& module, const auto&, const auto&, int64_t) {
    double sq = 0;
    for (auto& p : module.parameters())
      if (p.grad().defined()) sq += p.grad().pow(2).sum().template item<double>();
    norms->push_back(std::sqrt(sq));
  }
};

template <class Make>
struct ScheduledModel : lightning::testing::ValidatedModel {
  Make make;
  explicit ScheduledModel(Make m) : make(std::move(m)) {}
  auto configure_optimizers() { return make(parameters()); }
};

}  // namespace

TEST(Optimization, EpochIntervalSchedulerStepsOncePerEpochWithFrequency) {
  auto [X, y] = seed_data(128);
  std::vector<double> lrs, norms;
  ScheduledModel m([](auto params) {
    return L::optimizers(
        torch::optim::SGD(params, 0.1),
        L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.5}, {.frequency = 2}));
  });
  CpuTrainer<Probe> t({.max_epochs = 5, .enable_progress_bar = false}, Probe{&lrs, &norms});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  ASSERT_EQ(lrs.size(), 20u);
  // frequency 2: the scheduler steps after epochs 1 and 3 (epoch + 1 divisible by 2)
  for (size_t i = 0; i < 20; ++i) {
    const double expected = 0.1 * std::pow(0.5, static_cast<double>((i / 4) / 2));
    EXPECT_DOUBLE_EQ(lrs[i], expected) << "optimizer step " << i;
  }
}

TEST(Optimization, StepIntervalCountsOptimizerStepsAndClippingFollowsAccumulation) {
  auto [X, y] = seed_data(256);  // 8 batches of 32 per epoch
  std::vector<double> lrs, norms;
  ScheduledModel m([](auto params) {
    return L::optimizers(
        torch::optim::SGD(params, 0.1),
        L::scheduler(L::lr::ExponentialLR{.gamma = 0.5}, {.interval = L::Interval::step}));
  });
  const double clip = 1e-3;
  CpuTrainer<Probe> t({.max_epochs = 2,
                       .accumulate_grad_batches = 2,
                       .gradient_clip_val = clip,
                       .enable_progress_bar = false},
                      Probe{&lrs, &norms});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  // 16 batches, accumulate 2: 8 optimizer steps, 8 scheduler steps (not 16).
  EXPECT_EQ(t.global_step, 8);
  ASSERT_EQ(lrs.size(), 8u);
  for (size_t k = 0; k < 8; ++k)
    EXPECT_DOUBLE_EQ(lrs[k], 0.1 * std::pow(0.5, static_cast<double>(k)));
  // Clipping happens on the accumulated gradient, right before the step: at the end of
  // each window the gradient norm is the clip value; mid-window it is unclipped.
  ASSERT_EQ(norms.size(), 16u);
  for (size_t b = 0; b < 16; ++b) {
    if (b % 2 == 1) {
      EXPECT_LE(norms[b], clip * (1 + 1e-4)) << "batch " << b;
    } else {
      EXPECT_GT(norms[b], clip * 10) << "batch " << b;
    }
  }
}

TEST(Optimization, PlateauSchedulerReadsItsMonitoredMetric) {
  auto [X, y] = seed_data(64);
  struct FlatVal : lightning::testing::SimpleModel {
    void validation_step(const XY&, int64_t) { log("val_metric", 1.0); }  // never improves
    auto configure_optimizers() {
      return L::optimizers(torch::optim::SGD(parameters(), 0.1),
                           L::scheduler(L::lr::ReduceLROnPlateau({.factor = 0.5, .patience = 1}),
                                        {.monitor = "val_metric"}));
    }
  };
  std::vector<double> lrs, norms;
  FlatVal m;
  CpuTrainer<Probe> t({.max_epochs = 6, .num_sanity_val_steps = 0, .enable_progress_bar = false},
                      Probe{&lrs, &norms});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}),
        L::data::TensorLoader({X, y}, {.batch_size = 64}));
  // epoch ends: 1st sets best, then bad epochs 1, 2 (> patience) -> halve, then 1, 2 -> halve.
  ASSERT_EQ(lrs.size(), 12u);
  const std::vector<double> per_epoch = {0.1, 0.1, 0.1, 0.05, 0.05, 0.025};
  for (size_t i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(lrs[i], per_epoch[i / 2]) << "step " << i;
}

TEST(Optimization, PlateauOnAMetricNeverLoggedIsAClearError) {
  auto [X, y] = seed_data(64);
  ScheduledModel m([](auto params) {
    return L::optimizers(torch::optim::SGD(params, 0.1),
                         L::scheduler(L::lr::ReduceLROnPlateau(), {}));
  });
  CpuTrainer<> t({.max_epochs = 2, .enable_progress_bar = false});
  try {
    t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    FAIL() << "expected an error for the missing monitored metric";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("\"val_loss\", which was never logged"), std::string::npos) << what;
    EXPECT_NE(what.find("train_loss"), std::string::npos) << what;  // lists what was logged
  }
  // strict = false: skipped, training completes
  ScheduledModel lenient([](auto params) {
    return L::optimizers(torch::optim::SGD(params, 0.1),
                         L::scheduler(L::lr::ReduceLROnPlateau(), {.strict = false}));
  });
  CpuTrainer<> t2({.max_epochs = 2, .enable_progress_bar = false});
  t2.fit(lenient, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(t2.global_step, 4);
}

namespace {
// training_step's loss, spoiled as users spoil it.
struct SpoiledLossModel : lightning::testing::SimpleModel {
  std::string how;
  torch::Tensor training_step(const XY& batch, std::int64_t idx) {
    const auto& [x, y] = batch;
    if (how == "detached") return SimpleModel::training_step(batch, idx).detach();
    if (how == "no_grad") {
      torch::NoGradGuard no_grad;
      return torch::mse_loss(forward(x), y.unsqueeze(1));
    }
    return (forward(x) - y.unsqueeze(1)).pow(2);  // "per_example": not reduced
  }
};

std::string fit_error(const std::string& how) {
  SpoiledLossModel model;
  model.how = how;
  auto [X, y] = seed_data(32);
  CpuTrainer<> trainer(lightning::testing::bare({.max_epochs = 1}));
  const auto before = lightning::testing::flat_parameters(model).clone();
  try {
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
  } catch (const L::MisconfigurationError& e) {
    EXPECT_TRUE(torch::equal(before, lightning::testing::flat_parameters(model)));
    return e.what();
  }
  return "(no MisconfigurationError)";
}
}  // namespace

// A loss autograd cannot use is the module's error, named as such at the first step,
// not autograd's message from inside backward.
TEST(Optimization, ALossWithoutGradOrNotAScalarIsAnErrorNamingTrainingStep) {
  for (const char* how : {"detached", "no_grad"}) {
    const auto error = fit_error(how);
    EXPECT_NE(error.find("training_step returned a loss that does not require grad (epoch 0, "
                         "batch 0)"),
              std::string::npos)
        << how << ": " << error;
    EXPECT_NE(error.find("NoGradGuard"), std::string::npos) << error;
  }
  const auto error = fit_error("per_example");
  EXPECT_NE(error.find("training_step returned a loss of shape [8, 1] (epoch 0, batch 0)"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("loss.mean()"), std::string::npos) << error;
}
