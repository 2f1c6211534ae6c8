// LearningRateMonitor: Lightning's keys, per-step and per-epoch logging, momentum.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace L = lightning;
using L::callbacks::LearningRateMonitor;
using lightning::testing::CpuTrainer;
using lightning::testing::RecordingLogger;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;

namespace {

struct SteppedModel : SimpleModel {
  auto configure_optimizers() {
    torch::optim::SGD sgd(parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    return L::optimizers(std::move(sgd), L::scheduler(L::lr::StepLR{.step_size = 2, .gamma = 0.5},
                                                      {.interval = L::Interval::step}));
  }
};

// Two param groups, no scheduler.
struct GroupsModel : SimpleModel {
  auto configure_optimizers() {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<torch::Tensor>{linear->weight},
                        std::make_unique<torch::optim::AdamOptions>(1e-3));
    groups.emplace_back(std::vector<torch::Tensor>{linear->bias},
                        std::make_unique<torch::optim::AdamOptions>(1e-2));
    return torch::optim::Adam(std::move(groups));
  }
};

template <class Model>
std::vector<RecordingLogger::Row> run(L::callbacks::LearningRateMonitorOptions options,
                                      std::int64_t log_every = 1) {
  Model model;
  auto [X, y] = seed_data(40);
  std::vector<RecordingLogger::Row> rows;
  CpuTrainer<LearningRateMonitor, RecordingLogger> trainer({.max_epochs = 2,
                                                            .log_every_n_steps = log_every,
                                                            .enable_progress_bar = false,
                                                            .enable_checkpointing = false,
                                                            .enable_model_summary = false},
                                                           LearningRateMonitor(options),
                                                           RecordingLogger{&rows});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 10}));
  std::erase_if(rows, [](const auto& r) {
    return std::none_of(r.metrics.begin(), r.metrics.end(),
                        [](const auto& kv) { return kv.first.starts_with("lr-"); });
  });
  return rows;
}

}  // namespace

TEST(LearningRateMonitor, LogsAStepSchedulersRateBeforeEachLoggedStep) {
  const auto rows = run<SteppedModel>({.log_momentum = true});
  // 4 batches per epoch, StepLR(2, 0.5) per optimizer step: the rate each batch starts with.
  ASSERT_EQ(rows.size(), 8u);
  const std::vector<double> expected{0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].step, static_cast<std::int64_t>(i));
    EXPECT_DOUBLE_EQ(rows[i].metrics.at("lr-SGD"), expected[i]) << i;
    EXPECT_DOUBLE_EQ(rows[i].metrics.at("lr-SGD-momentum"), 0.9);
  }
}

TEST(LearningRateMonitor, HonoursLogEveryNStepsAndTheEpochInterval) {
  EXPECT_EQ(run<SteppedModel>({}, /*log_every=*/2).size(), 4u);
  const auto per_epoch = run<SteppedModel>({.logging_interval = L::Interval::epoch});
  ASSERT_EQ(per_epoch.size(), 2u);
  EXPECT_DOUBLE_EQ(per_epoch[1].metrics.at("lr-SGD"), 0.025);
  EXPECT_EQ(per_epoch[1].step, 4);
}

TEST(LearningRateMonitor, NamesEachParamGroup) {
  const auto rows = run<GroupsModel>({.logging_interval = L::Interval::epoch});
  ASSERT_FALSE(rows.empty());
  EXPECT_DOUBLE_EQ(rows[0].metrics.at("lr-Adam/pg1"), 1e-3);
  EXPECT_DOUBLE_EQ(rows[0].metrics.at("lr-Adam/pg2"), 1e-2);
}

// As Lightning: the default logger takes the rates; with logger = false and no logger
// among the callbacks, fit refuses to start.
TEST(LearningRateMonitor, NeedsALoggerAtRunTime) {
  auto [X, y] = seed_data(40);
  lightning::testing::SimpleModel model;
  CpuTrainer<LearningRateMonitor> with_default(
      {.max_epochs = 1, .enable_progress_bar = false, .enable_model_summary = false},
      LearningRateMonitor());
  with_default.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 10}));
  EXPECT_TRUE(with_default.has_active_logger());

  CpuTrainer<LearningRateMonitor> without({.max_epochs = 1,
                                           .enable_progress_bar = false,
                                           .enable_model_summary = false,
                                           .logger = false},
                                          LearningRateMonitor());
  try {
    without.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 10}));
    FAIL() << "a LearningRateMonitor without a logger must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("LearningRateMonitor needs a logger"), std::string::npos)
        << e.what();
  }
}
