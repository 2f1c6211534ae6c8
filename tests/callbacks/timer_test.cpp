// Timer: stops fit once the training time reaches the duration (after a step or an
// epoch), measures each stage, and carries the elapsed training time through its state.
#include <gtest/gtest.h>

#include <lightning/callbacks/timer.hpp>
#include <lightning/lightning.hpp>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "support/models.hpp"

namespace L = lightning;
using L::callbacks::Timer;
using L::callbacks::TimerStage;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using namespace std::chrono_literals;

namespace {

// Fits ValidatedModel for up to 3 epochs of 8 batches (validating each) with the timer.
template <class T>
void fit(T& trainer) {
  auto [X, y] = seed_data(256);
  lightning::testing::ValidatedModel m;
  auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32});
  trainer.fit(m, loader, loader);
}

}  // namespace

TEST(Timer, ZeroDurationStopsBeforeTheFirstStep) {
  // Lightning checks at fit start: a depleted timer trains nothing.
  std::ostringstream out;
  CpuTrainer<Timer> t({.max_epochs = 3, .enable_progress_bar = false},
                      Timer({.duration = 0s, .stream = &out}));
  fit(t);
  EXPECT_EQ(t.global_step, 0);
  EXPECT_NE(out.str().find("Time limit reached. Elapsed time is 0:00:00. Signaling Trainer to "
                           "stop."),
            std::string::npos)
      << out.str();
}

TEST(Timer, StepIntervalStopsAfterTheFirstStepOnceTheTimeIsUp) {
  std::ostringstream out;
  CpuTrainer<Timer> t({.max_epochs = 3, .enable_progress_bar = false},
                      Timer({.duration = 1ns, .interval = L::Interval::step, .stream = &out}));
  fit(t);
  EXPECT_EQ(t.global_step, 1);  // of 24
  EXPECT_TRUE(t.should_stop);
  EXPECT_NE(out.str().find("Time limit reached."), std::string::npos);
}

TEST(Timer, EpochIntervalStopsAfterTheFirstEpoch) {
  CpuTrainer<Timer> t({.max_epochs = 3, .enable_progress_bar = false},
                      Timer({.duration = 1ns, .interval = L::Interval::epoch, .verbose = false}));
  fit(t);
  EXPECT_EQ(t.global_step, 8);
  EXPECT_EQ(t.current_epoch, 1);
}

TEST(Timer, LongDurationNeverStopsAndMeasuresEveryStage) {
  std::ostringstream out;
  CpuTrainer<Timer> t({.max_epochs = 2, .enable_progress_bar = false},
                      Timer({.duration = 1h, .stream = &out}));
  fit(t);
  EXPECT_EQ(t.global_step, 16);
  EXPECT_FALSE(t.should_stop);
  EXPECT_EQ(out.str(), "");
  const Timer& timer = t.callback<Timer>();
  for (auto s : {TimerStage::train, TimerStage::validate}) {
    ASSERT_TRUE(timer.start_time(s) && timer.end_time(s)) << to_string(s);
    EXPECT_LE(*timer.start_time(s), *timer.end_time(s));
    EXPECT_GT(timer.time_elapsed(s), 0.0);
    EXPECT_LT(timer.time_elapsed(s), 3600.0);
  }
  // The training time covers validation inside it; it is fixed once training ended.
  EXPECT_GE(timer.time_elapsed(TimerStage::train), timer.time_elapsed(TimerStage::validate));
  EXPECT_EQ(timer.time_elapsed(), timer.time_elapsed(TimerStage::train));
  EXPECT_DOUBLE_EQ(*timer.time_remaining(), 3600.0 - timer.time_elapsed());
  EXPECT_FALSE(timer.start_time(TimerStage::test));
  EXPECT_EQ(timer.time_elapsed(TimerStage::test), 0.0);
}

TEST(Timer, WithoutDurationOnlyMeasures) {
  CpuTrainer<Timer> t({.max_epochs = 1, .enable_progress_bar = false}, Timer());
  fit(t);
  EXPECT_EQ(t.global_step, 8);
  EXPECT_FALSE(t.callback<Timer>().time_remaining());
  EXPECT_GT(t.callback<Timer>().time_elapsed(), 0.0);
}

TEST(Timer, TestStageIsMeasured) {
  auto [X, y] = seed_data(64);
  struct Tested : lightning::testing::SimpleModel {
    void test_step(const lightning::testing::XY&, std::int64_t) {}
  } m;
  CpuTrainer<Timer> t({.enable_progress_bar = false}, Timer());
  t.test(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  const Timer& timer = t.callback<Timer>();
  EXPECT_TRUE(timer.start_time(TimerStage::test) && timer.end_time(TimerStage::test));
  EXPECT_FALSE(timer.start_time(TimerStage::train));
}

TEST(Timer, StateRoundTripContinuesTheTrainingTime) {
  CpuTrainer<Timer> t({.max_epochs = 1, .enable_progress_bar = false}, Timer({.duration = 1h}));
  fit(t);
  const Timer& saved = t.callback<Timer>();

  // Through a checkpoint file, as the Trainer stores callback states.
  const std::filesystem::path path = "timer_state.ckpt";  // in the test's own directory
  auto entries = L::make_checkpoint();
  entries.insert("timer", saved.state_dict());
  L::save_checkpoint_file(path, entries);
  const auto loaded = L::checkpoint_dict(L::load_checkpoint_file(path).at("timer"));
  std::filesystem::remove(path);

  Timer resumed({.duration = 1h});
  resumed.load_state_dict(loaded);
  // Not started yet: the elapsed training time is the saved one; other stages restart.
  EXPECT_EQ(resumed.time_elapsed(TimerStage::train), saved.time_elapsed(TimerStage::train));
  EXPECT_EQ(resumed.time_elapsed(TimerStage::validate), 0.0);
  const auto elapsed = L::checkpoint_dict<double>(saved.state_dict().at("time_elapsed"));
  EXPECT_EQ(elapsed.size(), 3u);
  EXPECT_EQ(elapsed.at("validate"), saved.time_elapsed(TimerStage::validate));
}

TEST(Timer, LoadedStateThatUsedUpTheDurationStopsAtFitStart) {
  Timer timer({.duration = 1h, .verbose = false});
  auto state = L::make_checkpoint();
  c10::Dict<std::string, double> elapsed;
  elapsed.insert("train", 3600.0);
  state.insert("time_elapsed", elapsed);
  timer.load_state_dict(state);
  EXPECT_EQ(*timer.time_remaining(), 0.0);
  CpuTrainer<Timer> t({.max_epochs = 3, .enable_progress_bar = false}, timer);
  fit(t);
  EXPECT_EQ(t.global_step, 0);
  EXPECT_GE(t.callback<Timer>().time_elapsed(), 3600.0);
}

TEST(Timer, RejectsANegativeDuration) {
  try {
    Timer({.duration = -1s});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("TimerOptions.duration = -1"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(Timer({.interval = static_cast<L::Interval>(7)}), std::invalid_argument);
}
