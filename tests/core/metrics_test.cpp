// log(): Lightning's options and defaults, reductions, on-device accumulation.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

namespace L = lightning;
using Phase = L::MetricStore::Phase;

namespace {
torch::Tensor scalar(double v) {
  return torch::tensor(v, torch::kFloat);
}
}  // namespace

TEST(MetricStore, TrainStepDefaultsAreOnStepOnly) {
  L::MetricStore m;
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  m.log("loss", scalar(2.0), {});
  m.log("loss", scalar(4.0), {});
  m.finalize_epoch(Phase::train);
  const auto cb = m.callback_metrics();
  ASSERT_EQ(cb.size(), 1u);
  EXPECT_DOUBLE_EQ(cb.at("loss"), 4.0);  // the latest step value, no epoch value
}

TEST(MetricStore, OnStepAndOnEpochForkNamesAsLightningDoes) {
  L::MetricStore m;
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  m.set_batch_size(10);
  m.log("loss", scalar(1.0), {.on_epoch = true});
  m.set_batch_size(30);
  m.log("loss", scalar(3.0), {.on_epoch = true});
  auto cb = m.callback_metrics();
  EXPECT_DOUBLE_EQ(cb.at("loss_step"), 3.0);
  EXPECT_DOUBLE_EQ(cb.at("loss"), 3.0);  // no epoch value yet: the step value
  EXPECT_EQ(cb.count("loss_epoch"), 0u);
  m.finalize_epoch(Phase::train);
  cb = m.callback_metrics();
  // mean weighted by batch size: (1*10 + 3*30) / 40
  EXPECT_DOUBLE_EQ(cb.at("loss_epoch"), 2.5);
  EXPECT_DOUBLE_EQ(cb.at("loss"), 2.5);
}

TEST(MetricStore, ReductionsSumMaxMin) {
  L::MetricStore m;
  m.enter(L::LogScope::evaluation, "validation_step", Phase::validation);
  for (double v : {3.0, -1.0, 5.0}) {
    m.log("s", scalar(v), {.reduce = L::Reduce::sum});
    m.log("hi", scalar(v), {.reduce = L::Reduce::max});
    m.log("lo", scalar(v), {.reduce = L::Reduce::min});
    m.log("mean", scalar(v), {});
    m.log("host", v, {.reduce = L::Reduce::max});
  }
  m.finalize_epoch(Phase::validation);
  const auto cb = m.callback_metrics();
  EXPECT_DOUBLE_EQ(cb.at("s"), 7.0);
  EXPECT_DOUBLE_EQ(cb.at("hi"), 5.0);
  EXPECT_DOUBLE_EQ(cb.at("lo"), -1.0);
  EXPECT_NEAR(cb.at("mean"), 7.0 / 3.0, 1e-6);
  EXPECT_DOUBLE_EQ(cb.at("host"), 5.0);
}

TEST(MetricStore, ExplicitBatchSizeWeightsTheMean) {
  L::MetricStore m;
  m.enter(L::LogScope::evaluation, "validation_step", Phase::validation);
  m.log("acc", scalar(1.0), {.batch_size = 1});
  m.log("acc", scalar(0.0), {.batch_size = 3});
  m.finalize_epoch(Phase::validation);
  EXPECT_DOUBLE_EQ(m.callback_metrics().at("acc"), 0.25);
}

TEST(MetricStore, ResetStartsANewEpochInTheSameSlot) {
  L::MetricStore m;
  m.enter(L::LogScope::train_epoch, "on_train_epoch_end", Phase::train);
  m.log("x", scalar(1.0), {});
  m.finalize_epoch(Phase::train);
  m.reset_epoch(Phase::train);
  m.log("x", scalar(7.0), {});
  m.finalize_epoch(Phase::train);
  EXPECT_DOUBLE_EQ(m.callback_metrics().at("x"), 7.0);
  EXPECT_EQ(m.size(), 1u);
}

TEST(MetricStore, PhasesKeepSeparateSlotsAndClearForgetsOne) {
  L::MetricStore m;
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  m.log("loss", scalar(1.0), {});
  m.enter(L::LogScope::evaluation, "validation_step", Phase::validation);
  m.log("val", scalar(2.0), {});
  m.finalize_epoch(Phase::validation);
  EXPECT_EQ(m.size(), 2u);
  m.clear(Phase::validation);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.callback_metrics().count("val"), 0u);
}

TEST(MetricStore, LoggedAndProgressBarMetricsFollowTheirFlags) {
  L::MetricStore m;
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  m.log("a", scalar(1.0), {.prog_bar = true, .logger = false});
  m.log("b", scalar(2.0), {});
  EXPECT_EQ(m.progress_bar_metrics().count("a"), 1u);
  EXPECT_EQ(m.progress_bar_metrics().count("b"), 0u);
  EXPECT_EQ(m.logged_metrics().count("a"), 0u);
  EXPECT_EQ(m.logged_metrics().count("b"), 1u);
  const auto step = m.take_step_metrics();
  EXPECT_EQ(step, (L::MetricMap{{"b", 2.0}}));  // only the metric logged for the loggers
  EXPECT_TRUE(m.take_step_metrics().empty());   // nothing new since
}

// Values logged on a device are never read by log() itself: on the meta device, which
// has no data to read, logging and accumulating work, and only an explicit read fails.
TEST(MetricStore, ValuesStayOnTheDeviceUntilRead) {
  L::MetricStore m;
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  const auto on_meta = torch::ones({}, torch::TensorOptions().device(torch::kMeta));
  for (int i = 0; i < 3; ++i) {
    m.log("loss", on_meta, {.on_epoch = true});
    m.log("peak", on_meta, {.on_epoch = true, .reduce = L::Reduce::max});
  }
  m.finalize_epoch(Phase::train);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_ANY_THROW((void)m.take_step_metrics());  // a read is the first thing that syncs
}

TEST(MetricStore, LoggingLeavesTheGraphAlone) {
  L::MetricStore m;
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  auto w = torch::ones({}, torch::requires_grad());
  auto loss = w * 3.0;
  m.log("loss", loss, {.on_epoch = true});
  // Logging neither consumes nor extends the graph: backward still works as before.
  loss.backward();
  EXPECT_DOUBLE_EQ(w.grad().item<double>(), 3.0);
  EXPECT_DOUBLE_EQ(m.callback_metrics().at("loss_step"), 3.0);
}

TEST(MetricStore, ClearErrorsForMisuse) {
  L::MetricStore m;
  m.enter(L::LogScope::forbidden, "on_fit_start", Phase::train);
  try {
    m.log("x", scalar(1.0), {});
    FAIL() << "logging in on_fit_start must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("on_fit_start"), std::string::npos) << e.what();
  }
  m.enter(L::LogScope::train_epoch, "on_train_epoch_end", Phase::train);
  EXPECT_THROW(m.log("y", scalar(1.0), {.on_step = true}), std::logic_error);
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  EXPECT_THROW(m.log("z", torch::ones({3}), {}), std::invalid_argument);
  EXPECT_THROW(m.log("w", scalar(1.0), {.on_step = false, .on_epoch = false}),
               std::invalid_argument);
}

// Through a real fit: Lightning's per-hook defaults and trainer-state access.
namespace {
struct StateModel : lightning::testing::SimpleModel {
  std::vector<std::pair<int64_t, int64_t>> seen;  // (epoch, global_step) in training_step
  torch::Tensor training_step(const lightning::testing::XY& batch, int64_t i) {
    seen.emplace_back(current_epoch(), global_step());
    log("const", 2.0, {.prog_bar = true});
    return SimpleModel::training_step(batch, i);
  }
  void on_train_epoch_end() { log("epoch_metric", static_cast<double>(current_epoch())); }
  void validation_step(const lightning::testing::XY& batch, int64_t) {
    const auto& [x, y] = batch;
    log("val_loss", torch::mse_loss(forward(x), y.unsqueeze(1)));
  }
};
}  // namespace

TEST(ModuleLog, DefaultsPerHookAndTrainerStateThroughFit) {
  auto [X, y] = lightning::testing::seed_data(64);
  StateModel model;
  L::Trainer trainer({.max_epochs = 2, .num_sanity_val_steps = 0, .enable_progress_bar = false});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 16}),
              L::data::TensorLoader({X, y}, {.batch_size = 32}));
  ASSERT_EQ(model.seen.size(), 8u);
  EXPECT_EQ(model.seen[0], (std::pair<int64_t, int64_t>{0, 0}));
  EXPECT_EQ(model.seen[5], (std::pair<int64_t, int64_t>{1, 5}));
  const auto cb = trainer.callback_metrics();
  EXPECT_EQ(cb.count("train_loss"), 1u);         // step metric
  EXPECT_DOUBLE_EQ(cb.at("epoch_metric"), 1.0);  // epoch default in on_train_epoch_end
  EXPECT_EQ(cb.count("val_loss"), 1u);           // epoch default in validation_step
  EXPECT_EQ(trainer.progress_bar_metrics().size(), 1u);
  EXPECT_FALSE(model.has_trainer());  // detached after fit
}

// sync_dist: only those values go through the cross-rank reduce: a step value when it is
// logged (with the metric's reduction), an epoch mean as the sum of the ranks' weighted
// sums over the sum of their weights. The reduce here stands for a second rank that
// logged 10 more than this one, with the same weights.
TEST(MetricStore, SyncDistReducesOnlyItsValuesAcrossRanks) {
  L::MetricStore m;
  std::vector<L::Reduce> calls;
  int sums = 0;
  m.set_cross_rank_reduce([&](const torch::Tensor& t, L::Reduce op) {
    calls.push_back(op);
    if (op == L::Reduce::mean) return (t + (t + 10)) / 2;
    // The other rank's weighted sum (11 * 4 + 13 * 4), then its weights (4 + 4).
    if (op == L::Reduce::sum) return t + (sums++ == 0 ? 96.0 : 8.0);
    return t;
  });
  m.enter(L::LogScope::train_step, "training_step", Phase::train);
  m.set_batch_size(4);
  m.log("own", scalar(1.0), {.on_step = true, .on_epoch = true});
  m.log("loss", scalar(1.0), {.on_step = true, .on_epoch = true, .sync_dist = true});
  EXPECT_EQ(calls.size(), 1u);  // the step value, at once; "own" never
  EXPECT_DOUBLE_EQ(m.callback_metrics().at("loss_step"), 6.0);
  m.log("own", scalar(3.0), {.on_step = true, .on_epoch = true});
  m.log("loss", scalar(3.0), {.on_step = true, .on_epoch = true, .sync_dist = true});
  calls.clear();
  m.finalize_epoch(Phase::train);
  EXPECT_EQ(calls, (std::vector<L::Reduce>{L::Reduce::sum, L::Reduce::sum}));
  const auto cb = m.callback_metrics();
  EXPECT_DOUBLE_EQ(cb.at("own_epoch"), 2.0);
  EXPECT_DOUBLE_EQ(cb.at("loss_epoch"), 7.0);  // the mean of 1, 3, 11 and 13
  EXPECT_DOUBLE_EQ(cb.at("loss_step"), 8.0);
}
