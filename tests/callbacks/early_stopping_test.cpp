// EarlyStopping: patience, min_delta, mode, thresholds, non-finite values, strictness,
// where it checks, its message and its state across a resume.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace L = lightning;
using L::callbacks::EarlyStopping;
using lightning::testing::CpuTrainer;
using lightning::testing::expect_invalid_argument;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;
using ScriptedModel = lightning::testing::ScriptedValLossModel;
using lightning::testing::XY;

namespace {

struct Run {
  std::int64_t epochs_run = 0;
  std::int64_t stopped_epoch = 0;
  std::string message;
};

Run fit(std::vector<double> values, L::callbacks::EarlyStoppingOptions options,
        std::int64_t max_epochs = 10, L::TrainerOptions trainer_options = {}) {
  ScriptedModel model;
  model.val_losses = std::move(values);
  auto [X, y] = seed_data(40);
  L::data::TensorLoader train({X, y}, {.batch_size = 10});
  L::data::TensorLoader val({X, y}, {.batch_size = 20});
  std::ostringstream out;
  options.stream = &out;
  trainer_options.max_epochs = max_epochs;
  trainer_options.num_sanity_val_steps = 0;
  trainer_options.enable_progress_bar = false;
  trainer_options.enable_checkpointing = false;
  trainer_options.enable_model_summary = false;
  CpuTrainer<EarlyStopping> trainer(trainer_options, EarlyStopping(options));
  trainer.fit(model, train, val);
  return {trainer.current_epoch, trainer.callback<EarlyStopping>().stopped_epoch(), out.str()};
}

}  // namespace

TEST(EarlyStopping, StopsAfterPatienceChecksWithoutImprovement) {
  const auto r = fit({1.0, 0.9, 0.95, 0.96, 0.97, 0.5}, {.monitor = "val_loss", .patience = 2});
  EXPECT_EQ(r.stopped_epoch, 3);  // epochs 2 and 3 did not beat 0.9
  EXPECT_EQ(r.epochs_run, 4);
  EXPECT_NE(r.message.find("did not improve in the last 2 records. Best score: 0.900"),
            std::string::npos)
      << r.message;
}

TEST(EarlyStopping, MinDeltaAndModeMax) {
  // Gains of 0.005 are below min_delta = 0.01: they do not count.
  const auto r = fit(
      {0.5, 0.505, 0.51, 0.8},
      {.monitor = "val_loss", .min_delta = 0.01, .patience = 2, .mode = L::callbacks::Mode::max});
  EXPECT_EQ(r.stopped_epoch, 2);
  // Without min_delta they do.
  const auto r2 = fit({0.5, 0.505, 0.51, 0.515, 0.52},
                      {.monitor = "val_loss", .patience = 2, .mode = L::callbacks::Mode::max}, 5);
  EXPECT_EQ(r2.stopped_epoch, 0);
  EXPECT_EQ(r2.epochs_run, 5);
}

TEST(EarlyStopping, ThresholdsAndNonFiniteValuesStopAtOnce) {
  auto r = fit({0.5, 0.05, 0.01}, {.monitor = "val_loss", .stopping_threshold = 0.1});
  EXPECT_EQ(r.stopped_epoch, 1);
  EXPECT_NE(r.message.find("Stopping threshold reached: val_loss = 0.05 < 0.1"), std::string::npos)
      << r.message;
  r = fit({0.5, 0.4, 7.0}, {.monitor = "val_loss", .divergence_threshold = 5.0});
  EXPECT_EQ(r.stopped_epoch, 2);
  EXPECT_NE(r.message.find("Divergence threshold reached: val_loss = 7.0 < 5.0"), std::string::npos)
      << r.message;
  r = fit({0.5, std::numeric_limits<double>::quiet_NaN()}, {.monitor = "val_loss"});
  EXPECT_EQ(r.stopped_epoch, 1);
  EXPECT_NE(r.message.find("val_loss = nan is not finite"), std::string::npos) << r.message;
  // check_finite = false: a NaN is just not an improvement.
  r = fit({0.5, std::numeric_limits<double>::quiet_NaN()},
          {.monitor = "val_loss", .patience = 3, .check_finite = false}, 3);
  EXPECT_EQ(r.stopped_epoch, 0);
}

TEST(EarlyStopping, MinEpochsKeepTheRunGoing) {
  const auto r = fit({1.0, 1.0, 1.0, 1.0, 1.0, 1.0}, {.monitor = "val_loss", .patience = 1}, 10,
                     {.min_epochs = 4});
  EXPECT_EQ(r.stopped_epoch, 3);
  EXPECT_EQ(r.epochs_run, 4);
}

TEST(EarlyStopping, AMissingMetricIsAnErrorUnlessNotStrict) {
  try {
    (void)fit({0.5}, {.monitor = "val_acc"});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("\"val_acc\", which is not available"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("val_loss"), std::string::npos) << e.what();
  }
  const auto r = fit({0.5}, {.monitor = "val_acc", .strict = false}, 3);
  EXPECT_EQ(r.epochs_run, 3);
}

TEST(EarlyStopping, ChecksAfterEachValidationWhenAskedTo) {
  // Validation twice per epoch (val_check_interval 0.5), checking after each run: with
  // patience 1 the second non-improving validation of epoch 0 already stops.
  ScriptedModel model;
  model.val_losses = {0.5};
  auto [X, y] = seed_data(40);
  L::data::TensorLoader train({X, y}, {.batch_size = 10});
  L::data::TensorLoader val({X, y}, {.batch_size = 20});
  std::ostringstream out;
  CpuTrainer<EarlyStopping> trainer(
      {.max_epochs = 5,
       .val_check_interval = 0.5,
       .num_sanity_val_steps = 0,
       .enable_progress_bar = false,
       .enable_checkpointing = false,
       .enable_model_summary = false},
      EarlyStopping({.monitor = "val_loss", .patience = 1, .stream = &out}));
  trainer.fit(model, train, val);
  EXPECT_EQ(trainer.callback<EarlyStopping>().stopped_epoch(), 0);
  EXPECT_EQ(trainer.current_epoch, 1);
}

TEST(EarlyStopping, RejectsBadOptionsByName) {
  expect_invalid_argument([] { EarlyStopping({.monitor = ""}); }, "monitor");
  expect_invalid_argument([] { EarlyStopping({.monitor = "val_loss", .patience = -1}); },
                          "patience = -1");
}

TEST(EarlyStopping, ItsCountersSurviveAResume) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("lightning_es_" + std::to_string(::getpid()) + ".ckpt");
  ScriptedModel model;
  model.val_losses = {1.0, 0.9, 0.95, 0.96, 0.97};
  auto [X, y] = seed_data(40);
  L::data::TensorLoader train({X, y}, {.batch_size = 10});
  L::data::TensorLoader val({X, y}, {.batch_size = 20});
  const L::TrainerOptions options{.max_epochs = 3,
                                  .num_sanity_val_steps = 0,
                                  .enable_progress_bar = false,
                                  .enable_checkpointing = false,
                                  .enable_model_summary = false};
  std::ostringstream out;
  CpuTrainer<EarlyStopping> first(
      options, EarlyStopping({.monitor = "val_loss", .patience = 2, .stream = &out}));
  first.fit(model, train, val);  // epoch 2 did not improve: wait 1
  first.save_checkpoint(path);
  auto more = options;
  more.max_epochs = 10;
  CpuTrainer<EarlyStopping> second(
      more, EarlyStopping({.monitor = "val_loss", .patience = 2, .stream = &out}));
  second.fit(model, train, val, L::CheckpointPath{path});
  const auto& es = second.callback<EarlyStopping>();
  EXPECT_DOUBLE_EQ(es.best_score(), 0.9);
  EXPECT_EQ(es.stopped_epoch(), 3);  // the second miss, as in one uninterrupted run
  std::filesystem::remove(path);
}
