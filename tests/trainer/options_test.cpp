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
  expect_rejected({.log_every_n_steps = 0}, "log_every_n_steps = 0");
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
