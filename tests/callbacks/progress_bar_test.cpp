// ProgressBar: plain per-epoch lines off a terminal, redraws on one, silent when disabled.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include <sstream>

#include "support/models.hpp"

namespace L = lightning;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;

namespace {
struct ProgModel : lightning::testing::SimpleModel {
  torch::Tensor training_step(const lightning::testing::XY& b, int64_t i) {
    auto loss = SimpleModel::training_step(b, i);
    log("shown", loss, {.prog_bar = true});
    return loss;
  }
};

std::string run(L::callbacks::ProgressBarOptions options, bool enabled = true) {
  std::ostringstream out;
  options.stream = &out;
  auto [X, y] = seed_data(256);
  ProgModel m;
  CpuTrainer<L::callbacks::ProgressBar> t({.max_epochs = 2, .enable_progress_bar = enabled},
                                          L::callbacks::ProgressBar(options));
  if (!enabled) t.callback<L::callbacks::ProgressBar>().disable();
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  return out.str();
}
}  // namespace

TEST(ProgressBar, PlainOutputIsOneLinePerEpochWithProgBarMetrics) {
  const auto text = run({.interactive = false});
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("Epoch 0: 100% 8/8"), std::string::npos) << text;
  EXPECT_NE(text.find("Epoch 1: 100% 8/8"), std::string::npos) << text;
  EXPECT_NE(text.find("shown="), std::string::npos) << text;
  EXPECT_EQ(text.find("train_loss="), std::string::npos) << text;  // not a prog_bar metric
  EXPECT_NE(text.find("it/s"), std::string::npos) << text;
}

TEST(ProgressBar, TerminalOutputRedrawsEveryRefreshRateBatches) {
  const auto text = run({.refresh_rate = 4, .interactive = true});
  // 8 batches per epoch, redraw at 4 and 8, plus the final draw: 3 per epoch.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 6) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_NE(text.find("|####################| 8/8"), std::string::npos) << text;
}

TEST(ProgressBar, DisabledPrintsNothing) {
  EXPECT_EQ(run({.interactive = false}, false), "");
}

TEST(ProgressBar, TrainerFlagDisablesTheDefaultBar) {
  auto [X, y] = seed_data(64);
  lightning::testing::SimpleModel m;
  CpuTrainer<> t({.max_epochs = 1, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_FALSE(t.callback<L::callbacks::ProgressBar>().enabled());
}
