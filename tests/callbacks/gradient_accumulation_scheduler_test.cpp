// GradientAccumulationScheduler: accumulate_grad_batches by epoch.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"

#include <vector>

namespace L = lightning;
using L::callbacks::GradientAccumulationScheduler;
using lightning::testing::CpuTrainer;
using lightning::testing::expect_invalid_argument;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;

namespace {
struct StepsPerEpoch {
  std::vector<std::int64_t>* steps;
  std::int64_t at_start = 0;
  template <class T, class M>
  void on_train_epoch_start(T& trainer, M&) {
    at_start = trainer.global_step;
  }
  template <class T, class M>
  void on_train_epoch_end(T& trainer, M&) {
    steps->push_back(trainer.global_step - at_start);
  }
};
}  // namespace

TEST(GradientAccumulationScheduler, ChangesTheFactorAtTheGivenEpochs) {
  GradientAccumulationScheduler schedule({{1, 2}, {3, 4}});
  EXPECT_EQ(schedule.accumulate_grad_batches(0), 1);  // before the first key: 1
  EXPECT_EQ(schedule.accumulate_grad_batches(2), 2);
  EXPECT_EQ(schedule.accumulate_grad_batches(9), 4);
  SimpleModel model;
  auto [X, y] = seed_data(80);
  std::vector<std::int64_t> steps;
  CpuTrainer<StepsPerEpoch, GradientAccumulationScheduler> trainer({.max_epochs = 4,
                                                                    .enable_progress_bar = false,
                                                                    .enable_checkpointing = false,
                                                                    .enable_model_summary = false},
                                                                   StepsPerEpoch{&steps}, schedule);
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 10}));
  EXPECT_EQ(steps, (std::vector<std::int64_t>{8, 4, 4, 2}));  // 8 batches per epoch
}

TEST(GradientAccumulationScheduler, RejectsBadSchedulesAndAConflictingTrainerOption) {
  expect_invalid_argument([] { GradientAccumulationScheduler({{-1, 2}}); }, "epoch -1");
  expect_invalid_argument(
      [] {
        GradientAccumulationScheduler({{0, 0}});
      },
      "accumulate_grad_batches = 0");
  expect_invalid_argument([] { GradientAccumulationScheduler({}); }, "at least one");
  SimpleModel model;
  auto [X, y] = seed_data(20);
  CpuTrainer<GradientAccumulationScheduler> trainer({.max_epochs = 1,
                                                     .accumulate_grad_batches = 2,
                                                     .enable_progress_bar = false,
                                                     .enable_checkpointing = false,
                                                     .enable_model_summary = false},
                                                    GradientAccumulationScheduler({{0, 4}}));
  expect_invalid_argument(
      [&] {
        trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 10}));
      },
      "accumulate_grad_batches = 2");
}
