// ProgressBar: Lightning's stage lines, plain periodic lines off a terminal, redraws on
// one, metrics read only on drawn steps, silent when disabled.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include <algorithm>
#include <regex>
#include <sstream>

#include "support/models.hpp"
#include "support/policies.hpp"

namespace L = lightning;
using L::callbacks::ProgressBar;
using L::callbacks::ProgressBarOptions;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

struct ProgModel : lightning::testing::ValidatedModel {
  torch::Tensor training_step(const XY& b, int64_t i) {
    auto loss = SimpleModel::training_step(b, i);
    log("shown", loss, {.prog_bar = true});
    return loss;
  }
  void test_step(const XY&, std::int64_t) {}
  torch::Tensor predict_step(const XY& b, std::int64_t) { return forward(std::get<0>(b)); }
};

// The trainer state the bar reads, counting the reads of the (device) metrics.
struct FakeTrainer {
  std::int64_t current_epoch = 0;
  std::optional<std::int64_t> num_training_batches{};
  std::optional<std::int64_t> num_val_batches{};
  std::optional<std::int64_t> num_sanity_val_batches{};
  std::optional<std::int64_t> num_test_batches{};
  std::optional<std::int64_t> num_predict_batches{};
  bool sanity_checking = false;
  int metric_reads = 0;
  L::MetricMap progress_bar_metrics() {
    ++metric_reads;
    return {{"loss", 0.5}};
  }
};
struct FakeModule {};

// Runs one epoch of `batches` batches through the bar's hooks.
std::string fake_epoch(FakeTrainer& t, ProgressBarOptions options, std::int64_t batches) {
  std::ostringstream out;
  options.stream = &out;
  ProgressBar bar(options);
  FakeModule m;
  const int output = 0, batch = 0;
  bar.on_train_epoch_start(t, m);
  for (std::int64_t i = 0; i < batches; ++i) bar.on_train_batch_end(t, m, output, batch, i);
  bar.on_train_epoch_end(t, m);
  return out.str();
}

std::int64_t count(const std::string& text, std::string_view what) {
  std::int64_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

std::string run(ProgressBarOptions options, bool enabled = true, bool validate = false) {
  std::ostringstream out;
  options.stream = &out;
  auto [X, y] = seed_data(256);
  ProgModel m;
  CpuTrainer<ProgressBar> t({.max_epochs = 2}, ProgressBar(options));
  if (!enabled) t.callback<ProgressBar>().disable();
  auto train = L::data::TensorLoader({X, y}, {.batch_size = 32});  // 8 batches
  if (validate)
    t.fit(m, train, L::data::TensorLoader({X, y}, {.batch_size = 128}));  // 2 batches
  else
    t.fit(m, train);
  return out.str();
}

}  // namespace

TEST(ProgressBar, MetricsAreReadOnlyOnDrawnSteps) {
  FakeTrainer t{.num_training_batches = 10};
  // Terminal, every 4 batches: draws at 4, 8, 10 (the last) and the epoch's end.
  auto text = fake_epoch(
      t, {.refresh_rate = 4, .min_interval = std::chrono::milliseconds(0), .interactive = true},
      10);
  EXPECT_EQ(t.metric_reads, 4);
  EXPECT_EQ(count(text, "\r"), 4);
  EXPECT_EQ(count(text, "loss=0.5"), 4);
  EXPECT_NE(text.find("Epoch 0:  40%|########            | 4/10 ["), std::string::npos) << text;

  // With the default min_interval (100 ms) a fast epoch redraws by time, not by batch:
  // the first due batch (4), the last (10) and the epoch's end; batch 8 reads nothing.
  t.metric_reads = 0;
  text = fake_epoch(t, {.refresh_rate = 4, .interactive = true}, 10);
  EXPECT_EQ(t.metric_reads, 3);
  EXPECT_EQ(count(text, "\r"), 3);

  // Off a terminal, every 25% of 10 batches (2): lines at 2, 4, 6, 8 and the epoch's end.
  t.metric_reads = 0;
  text = fake_epoch(t, {.interactive = false}, 10);
  EXPECT_EQ(t.metric_reads, 5);
  EXPECT_EQ(count(text, "\n"), 5);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("Epoch 0:  20% 2/10 ["), std::string::npos) << text;
  EXPECT_NE(text.find("Epoch 0: 100% 10/10 ["), std::string::npos) << text;

  // refresh_rate 0: nothing drawn, nothing read.
  t.metric_reads = 0;
  EXPECT_EQ(fake_epoch(t, {.refresh_rate = 0, .interactive = true}, 10), "");
  EXPECT_EQ(fake_epoch(t, {.refresh_rate = 0, .interactive = false}, 10), "");
  EXPECT_EQ(t.metric_reads, 0);
}

TEST(ProgressBar, PercentRoundsAsTqdm) {
  FakeTrainer t{.num_training_batches = 8};
  const auto text = fake_epoch(t, {.interactive = true}, 3);
  EXPECT_NE(text.find("\rEpoch 0:  12%|##                  | 1/8 ["), std::string::npos) << text;
  EXPECT_NE(text.find("\rEpoch 0:  38%|#######             | 3/8 ["), std::string::npos) << text;
}

TEST(ProgressBar, UnknownTotalPrintsEveryNBatches) {
  FakeTrainer t{.current_epoch = 3};
  const auto text = fake_epoch(t, {.interactive = false, .plain_every_n_batches = 3}, 7);
  EXPECT_EQ(t.metric_reads, 3);  // at 3, 6 and the end
  EXPECT_EQ(count(text, "\n"), 3);
  EXPECT_NE(text.find("Epoch 3: 6it ["), std::string::npos) << text;
  EXPECT_NE(text.find("Epoch 3: 7it ["), std::string::npos) << text;
  EXPECT_EQ(text.find('%'), std::string::npos) << text;
}

TEST(ProgressBar, PlainOutputHasPeriodicLinesAndProgBarMetrics) {
  const auto text = run({.interactive = false});
  // 8 batches, a line per 25% (2 batches) short of the end, then the epoch's line.
  EXPECT_EQ(count(text, "\n"), 2 * 4) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("Epoch 0:  25% 2/8 ["), std::string::npos) << text;
  EXPECT_NE(text.find("Epoch 0: 100% 8/8 ["), std::string::npos) << text;
  EXPECT_NE(text.find("Epoch 1: 100% 8/8 ["), std::string::npos) << text;
  EXPECT_NE(text.find("shown="), std::string::npos) << text;
  EXPECT_EQ(text.find("train_loss="), std::string::npos) << text;  // not a prog_bar metric
  EXPECT_NE(text.find("it/s"), std::string::npos) << text;
}

TEST(ProgressBar, PlainFitWithValidationPrintsEachStageEnd) {
  const auto text = run({.interactive = false}, true, /*validate=*/true);
  // The sanity check at 1 of 2 batches (past 25%) and its end, then per epoch: the
  // training lines at 2, 4, 6 of 8 batches, validation at 1 of 2 and its end, the
  // epoch's line.
  EXPECT_EQ(count(text, "\n"), 2 + 2 * (3 + 2 + 1)) << text;
  EXPECT_EQ(count(text, "Validation:  50% 1/2 ["), 2) << text;
  EXPECT_EQ(count(text, "Sanity Checking:  50% 1/2 ["), 1) << text;
  EXPECT_EQ(count(text, "Sanity Checking: 100% 2/2 ["), 1) << text;
  EXPECT_EQ(count(text, "Validation: 100% 2/2 ["), 2) << text;
  EXPECT_LT(text.find("Validation: 100%"), text.find("Epoch 0: 100%")) << text;
  EXPECT_EQ(text.find("val_loss="), std::string::npos) << text;  // not a prog_bar metric
}

TEST(ProgressBar, TerminalOutputRedrawsEveryRefreshRateBatches) {
  const auto text = run({.refresh_rate = 4, .interactive = true});
  // 8 batches per epoch, redraw at 4 and 8, plus the epoch's final draw: 3 per epoch.
  EXPECT_EQ(count(text, "\r"), 6) << text;
  // One line for all epochs (each epoch redraws it), ended when training ends.
  EXPECT_EQ(count(text, "\n"), 1) << text;
  EXPECT_TRUE(text.ends_with("\033[K\n")) << text;
  EXPECT_NE(text.find("\rEpoch 1: 100%|####################| 8/8 ["), std::string::npos) << text;
  EXPECT_NE(text.find("\rEpoch 1:  50%|##########          | 4/8 ["), std::string::npos) << text;

  // leave: each epoch's finished line stays.
  const auto kept = run({.refresh_rate = 4, .interactive = true, .leave = true});
  EXPECT_EQ(count(kept, "\r"), 6) << kept;
  EXPECT_EQ(count(kept, "\n"), 2) << kept;
  const auto epoch0_done = kept.find("Epoch 0: 100%");
  ASSERT_NE(epoch0_done, std::string::npos) << kept;
  EXPECT_LT(kept.find('\n', epoch0_done), kept.find("Epoch 1")) << kept;
}

TEST(ProgressBar, TerminalValidationLinesGoBelowAndAreErased) {
  const auto text = run({.interactive = true}, true, /*validate=*/true);
  // The sanity check's line (its total from the Trainer) is erased at its end.
  EXPECT_NE(text.find("\rSanity Checking: 100%|####################| 2/2 ["), std::string::npos)
      << text;
  EXPECT_NE(text.find("]\033[K\r\033[K"), std::string::npos) << text;
  // Validation at each epoch's end: below the epoch's line, erased, the line redrawn.
  EXPECT_EQ(count(text, "\n\rValidation: "), 2) << text;
  EXPECT_NE(text.find("Validation: 100%|####################| 2/2 ["), std::string::npos) << text;
  EXPECT_EQ(count(text, "\r\033[K\033[A\rEpoch "), 2) << text;
  EXPECT_EQ(count(text, "\n"), 2 + 1) << text;  // the validation lines', training's end
  EXPECT_TRUE(text.ends_with("\n"));
}

TEST(ProgressBar, PlainValidateTestPredictLines) {
  std::ostringstream out;
  auto [X, y] = seed_data(64);
  ProgModel m;
  // Only each stage's end line: every 100% short of the end is never.
  CpuTrainer<ProgressBar> t(
      {}, ProgressBar({.stream = &out, .interactive = false, .plain_interval_percent = 100}));
  auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32});
  t.validate(m, loader);
  t.test(m, loader);
  t.predict(m, loader);
  const auto text = out.str();
  EXPECT_NE(text.find("Validation: 100% 2/2 ["), std::string::npos) << text;
  EXPECT_NE(text.find("Testing: 100% 2/2 ["), std::string::npos) << text;
  EXPECT_NE(text.find("Predicting: 100% 2/2 ["), std::string::npos) << text;
  EXPECT_EQ(text.find("shown="), std::string::npos) << text;  // metrics: training line only
  EXPECT_EQ(count(text, "\n"), 3) << text;
}

TEST(ProgressBar, DisabledPrintsNothing) {
  EXPECT_EQ(run({.interactive = false}, false), "");
  EXPECT_EQ(run({.refresh_rate = 0, .interactive = true}, true, true), "");
}

// enable_progress_bar = false cannot be ignored for a bar the user passes: as in
// Lightning, the Trainer refuses the contradiction.
TEST(ProgressBar, TrainerFlagRefusesAUserBar) {
  try {
    CpuTrainer<ProgressBar> t({.enable_progress_bar = false}, ProgressBar());
    FAIL() << "a ProgressBar with enable_progress_bar = false must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("TrainerOptions.enable_progress_bar = false is invalid: "
                                         "a ProgressBar was passed among the callbacks"),
              std::string::npos)
        << e.what();
  }
}

TEST(ProgressBar, TrainerFlagDisablesTheDefaultBar) {
  auto [X, y] = seed_data(64);
  lightning::testing::SimpleModel m;
  CpuTrainer<> t({.max_epochs = 1, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_FALSE(t.callback<ProgressBar>().enabled());
}

TEST(ProgressBar, RejectsBadOptions) {
  auto message = [](ProgressBarOptions o) {
    try {
      ProgressBar bar(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message({.refresh_rate = -1}).find("ProgressBarOptions.refresh_rate = -1"),
            std::string::npos);
  EXPECT_NE(message({.plain_interval_percent = 0}).find("plain_interval_percent = 0"),
            std::string::npos);
  EXPECT_NE(message({.plain_interval_percent = 101}).find("plain_interval_percent = 101"),
            std::string::npos);
  EXPECT_NE(message({.plain_every_n_batches = 0}).find("plain_every_n_batches = 0"),
            std::string::npos);
}

TEST(ProgressBar, OnlyRankZeroDraws) {
  std::ostringstream out;
  auto [X, y] = seed_data(64);
  ProgModel m;
  L::Trainer<L::accelerators::CPU, lightning::testing::NotRankZero, L::precision::F32, ProgressBar>
      t({.max_epochs = 1, .enable_checkpointing = false, .logger = false},
        ProgressBar({.stream = &out, .interactive = false}));
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(out.str(), "");
  EXPECT_FALSE(t.callback<ProgressBar>().enabled());
}
