// TrainerOptions: validation with the option's name and value; Lightning's defaults.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"

namespace L = lightning;

namespace {
void expect_rejected(const L::TrainerOptions& o, const std::string& expected) {
  lightning::testing::expect_invalid_argument([&] { L::validate(o); }, expected);
}
}  // namespace

TEST(TrainerOptions, InvalidValuesNameTheOptionAndValue) {
  expect_rejected({.max_epochs = -2}, "max_epochs = -2");
  expect_rejected({.min_epochs = -1}, "min_epochs = -1");
  expect_rejected({.max_steps = -5}, "max_steps = -5");
  expect_rejected({.limit_train_batches = 1.5}, "limit_train_batches = 1.5");
  expect_rejected({.limit_val_batches = -3}, "limit_val_batches = -3");
  expect_rejected({.val_check_interval = 0}, "val_check_interval = 0");
  expect_rejected({.val_check_interval = 0.5, .check_val_every_n_epoch = std::nullopt},
                  "must be a batch count when check_val_every_n_epoch is unset");
  expect_rejected({.check_val_every_n_epoch = 0}, "check_val_every_n_epoch = 0");
  expect_rejected({.num_sanity_val_steps = -2}, "num_sanity_val_steps = -2");
  expect_rejected({.accumulate_grad_batches = 0}, "accumulate_grad_batches = 0");
  expect_rejected({.gradient_clip_val = -1.0}, "gradient_clip_val = -1.0 is invalid");
  expect_rejected({.log_every_n_steps = 0}, "log_every_n_steps = 0 is invalid: must be >= 1");
  expect_rejected({.fast_dev_run = -1}, "fast_dev_run = -1");
  expect_rejected({.devices = 0}, "TrainerOptions.devices = 0 is invalid: must be >= 1");
  expect_rejected({.num_nodes = 0}, "TrainerOptions.num_nodes = 0 is invalid: must be >= 1");
}

// More than one process needs a strategy that runs several: a clear error at
// construction, before any work, naming the option and the fix.
TEST(TrainerOptions, DevicesNeedAStrategyOfSeveralProcesses) {
  lightning::testing::expect_invalid_argument(
      [] { L::Trainer<L::accelerators::CPU>({.devices = 2}); },
      "TrainerOptions.devices = 2 is invalid: strategy \"single_device\" runs one process; "
      "use lightning::strategies::DDP");
  lightning::testing::expect_invalid_argument(
      [] { L::Trainer<L::accelerators::CPU>({.num_nodes = 4}); },
      "TrainerOptions.num_nodes = 4 is invalid");
  EXPECT_NO_THROW(L::Trainer<L::accelerators::CPU>({.devices = 1}));
}

TEST(TrainerOptions, TheTrainerConstructorValidates) {
  EXPECT_THROW(L::Trainer({.accumulate_grad_batches = 0}), std::invalid_argument);
}

TEST(TrainerOptions, ResolveAppliesLightningDefaults) {
  EXPECT_EQ(L::resolve({}).max_epochs, 1000);
  EXPECT_EQ(L::resolve({.max_steps = 10}).max_epochs, -1);
  const auto fdr = L::resolve({.max_epochs = 9, .num_sanity_val_steps = 5, .fast_dev_run = 3});
  EXPECT_EQ(fdr.max_epochs, 1);
  EXPECT_EQ(fdr.max_steps, 3);
  EXPECT_EQ(fdr.limit_train_batches.count(), 3);
  EXPECT_EQ(fdr.limit_val_batches.count(), 3);
  EXPECT_EQ(fdr.num_sanity_val_steps, 0);
  // Lightning's None defaults, filled in.
  const auto d = L::resolve({});
  EXPECT_EQ(d.enable_progress_bar, true);
  EXPECT_EQ(d.enable_checkpointing, true);
  EXPECT_EQ(d.enable_model_summary, true);
  EXPECT_EQ(d.logger, true);
  EXPECT_EQ(d.log_every_n_steps, 50);
  EXPECT_EQ(d.num_sanity_val_steps, 2);
  EXPECT_TRUE(d.use_distributed_sampler);
  EXPECT_EQ(d.reload_dataloaders_every_n_epochs, 0);
}

// overfit_batches: the same count or fraction for training and validation (Lightning's
// _init_debugging_flags), test and predict untouched; it wins over fast_dev_run's limits.
TEST(TrainerOptions, OverfitBatchesLimitsTrainingAndValidation) {
  EXPECT_FALSE(L::overfitting({}));
  const auto two = L::resolve({.limit_train_batches = 0.5, .overfit_batches = 2});
  EXPECT_TRUE(L::overfitting(two));
  EXPECT_EQ(two.limit_train_batches.count(), 2);
  EXPECT_EQ(two.limit_val_batches.count(), 2);
  EXPECT_TRUE(two.limit_test_batches.is_all());
  const auto quarter = L::resolve({.overfit_batches = 0.25});
  EXPECT_EQ(quarter.limit_train_batches.fraction(), 0.25);
  EXPECT_EQ(quarter.limit_val_batches.fraction(), 0.25);
  const auto with_fdr = L::resolve({.fast_dev_run = 5, .overfit_batches = 3});
  EXPECT_EQ(with_fdr.limit_train_batches.count(), 3);
  EXPECT_EQ(with_fdr.limit_test_batches.count(), 5);
  expect_rejected({.overfit_batches = 1.5}, "TrainerOptions.overfit_batches = 1.5 is invalid");
  expect_rejected({.overfit_batches = -1}, "TrainerOptions.overfit_batches = -1 is invalid");
  expect_rejected({.reload_dataloaders_every_n_epochs = -1},
                  "TrainerOptions.reload_dataloaders_every_n_epochs = -1 is invalid: must be >= 0");
}

// barebones: Lightning's list of what it turns off, and an error for each option that
// would turn one back on (unset is Lightning's None: allowed; false and 0 too).
TEST(TrainerOptions, BarebonesTurnsOffWhatCostsSpeedAndRefusesWhatTurnsItOn) {
  const auto b = L::resolve({.barebones = true});
  EXPECT_EQ(b.enable_progress_bar, false);
  EXPECT_EQ(b.enable_checkpointing, false);
  EXPECT_EQ(b.enable_model_summary, false);
  EXPECT_EQ(b.logger, false);
  EXPECT_EQ(b.log_every_n_steps, 0);
  EXPECT_EQ(b.num_sanity_val_steps, 0);
  EXPECT_NO_THROW(L::validate({.num_sanity_val_steps = 0,
                               .log_every_n_steps = 0,
                               .enable_progress_bar = false,
                               .enable_checkpointing = false,
                               .enable_model_summary = false,
                               .logger = false,
                               .barebones = true}));
  const std::string why = "can impact raw speed, so it is disabled with barebones = true";
  expect_rejected({.enable_checkpointing = true, .barebones = true},
                  "TrainerOptions.enable_checkpointing = true is invalid: Checkpointing " + why);
  expect_rejected({.logger = true, .barebones = true},
                  "TrainerOptions.logger = true is invalid: Logging " + why);
  expect_rejected({.enable_progress_bar = true, .barebones = true},
                  "TrainerOptions.enable_progress_bar = true is invalid: The progress bar " + why);
  expect_rejected({.log_every_n_steps = 10, .barebones = true},
                  "TrainerOptions.log_every_n_steps = 10 is invalid: Logging " + why);
  expect_rejected(
      {.enable_model_summary = true, .barebones = true},
      "TrainerOptions.enable_model_summary = true is invalid: The model summary " + why);
  expect_rejected({.num_sanity_val_steps = -1, .barebones = true},
                  "TrainerOptions.num_sanity_val_steps = -1 is invalid: Sanity checking " + why);
  expect_rejected({.fast_dev_run = 1, .barebones = true},
                  "TrainerOptions.fast_dev_run = 1 is invalid: A development run " + why);
  expect_rejected({.detect_anomaly = true, .barebones = true},
                  "TrainerOptions.detect_anomaly = true is invalid: Anomaly detection " + why);
  // Callbacks that barebones turns off cannot be passed either (checked by the Trainer).
  lightning::testing::expect_invalid_argument(
      [] {
        lightning::testing::CpuTrainer<L::callbacks::ModelCheckpoint> t(
            {.barebones = true}, L::callbacks::ModelCheckpoint());
      },
      "TrainerOptions.barebones = true is invalid: a ModelCheckpoint was passed among the "
      "callbacks, and barebones turns it off");
  lightning::testing::expect_invalid_argument(
      [] {
        lightning::testing::CpuTrainer<L::SimpleProfiler> t({.barebones = true},
                                                            L::SimpleProfiler());
      },
      "TrainerOptions.barebones = true is invalid: a profiler was passed among the callbacks");
  lightning::testing::expect_invalid_argument(
      [] {
        lightning::testing::CpuTrainer<L::loggers::CSVLogger> t(
            {.barebones = true}, L::loggers::CSVLogger({.save_dir = "logs"}));
      },
      "TrainerOptions.barebones = true is invalid: a logger was passed");
}

TEST(BatchLimit, CountsAndFractions) {
  L::BatchLimit all = 1.0, quarter = 0.25, five = 5;
  EXPECT_EQ(all.apply(32), 32);
  EXPECT_EQ(quarter.apply(32), 8);
  EXPECT_EQ(five.apply(32), 5);
  EXPECT_EQ(five.apply(3), 3);
  EXPECT_EQ(five.apply(std::nullopt), 5);
  EXPECT_EQ(all.apply(std::nullopt), std::nullopt);
}

// benchmark: torch.backends.cudnn.benchmark as Lightning sets it; unset leaves the
// process's value, deterministic turns it off unless it is given.
TEST(TrainerOptions, BenchmarkSetsCudnnsAutotunerAsLightningDoes) {
  auto& context = at::globalContext();
  const auto benchmark_after = [&](L::TrainerOptions o, bool before, std::string* warning) {
    context.setBenchmarkCuDNN(before);
    o.max_epochs = 1;
    o.enable_progress_bar = false;
    o.enable_checkpointing = false;
    o.enable_model_summary = false;
    o.logger = false;
    lightning::testing::SimpleModel model;
    auto [X, y] = lightning::testing::seed_data(64);
    lightning::testing::CpuTrainer<> trainer(o);
    testing::internal::CaptureStderr();
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    *warning = testing::internal::GetCapturedStderr();
    const bool after = context.benchmarkCuDNN();
    L::use_deterministic_algorithms(false);
    return after;
  };
  std::string warning;
  EXPECT_TRUE(benchmark_after({}, true, &warning));  // unset: left as it is
  EXPECT_FALSE(benchmark_after({}, false, &warning));
  EXPECT_TRUE(benchmark_after({.benchmark = true}, false, &warning));
  EXPECT_FALSE(benchmark_after({.benchmark = false}, true, &warning));
  EXPECT_FALSE(benchmark_after({.deterministic = true}, true, &warning));
  EXPECT_EQ(warning.find("benchmark"), std::string::npos) << warning;
  EXPECT_TRUE(benchmark_after({.deterministic = true, .benchmark = true}, false, &warning));
  EXPECT_NE(warning.find("lightning: warning: TrainerOptions.deterministic = true and "
                         "benchmark = true"),
            std::string::npos)
      << warning;
  context.setBenchmarkCuDNN(false);
  EXPECT_EQ(L::resolve({}).benchmark, std::nullopt);
  EXPECT_EQ(L::resolve({.deterministic = true}).benchmark, false);
  EXPECT_EQ(L::resolve({.deterministic = true, .benchmark = true}).benchmark, true);
}
