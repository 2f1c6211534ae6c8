// Timer: stops fit once the training time reaches the duration (after a step or an
// epoch), measures each stage, and carries the elapsed training time through its state.
#include <gtest/gtest.h>

#include <lightning/callbacks/timer.hpp>
#include <lightning/lightning.hpp>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "support/models.hpp"

namespace L = lightning;
using L::callbacks::Timer;
using L::callbacks::TimerStage;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using namespace std::chrono_literals;

namespace {

// Fits `m` (or a ValidatedModel of its own) for up to 3 epochs of 8 batches (validating
// each) with the timer.
template <class T>
void fit(T& trainer, lightning::testing::ValidatedModel& m) {
  auto [X, y] = seed_data(256);
  auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32});
  trainer.fit(m, loader, loader);
}
template <class T>
void fit(T& trainer) {
  lightning::testing::ValidatedModel m;
  fit(trainer, m);
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

// TrainerOptions.max_time: Lightning's Trainer(max_time=...) appends Timer(duration=max_time,
// interval="step"); here the Trainer's default Timer, off (and stateless) without it.
TEST(Timer, MaxTimeIsTheDefaultTimerCheckedEveryStep) {
  ::testing::internal::CaptureStderr();
  CpuTrainer<> t({.max_time = 1ns,
                  .enable_progress_bar = false,
                  .enable_checkpointing = false,
                  .logger = false});
  lightning::testing::ValidatedModel m;  // alive while save_checkpoint reads it
  fit(t, m);
  const auto err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(t.global_step, 1);  // of up to 3 epochs x 8
  EXPECT_TRUE(t.should_stop);
  EXPECT_TRUE(t.callback<Timer>().enabled());
  EXPECT_EQ(t.callback<Timer>().options().interval, L::Interval::step);
  EXPECT_NE(err.find("Time limit reached."), std::string::npos) << err;
  // As Lightning's _parse_loop_limits: with a Timer, an unset max_epochs is no limit.
  EXPECT_EQ(t.run_options().max_epochs, -1);

  // Its state is in the checkpoint under Lightning's key, as Lightning's Timer's.
  t.save_checkpoint("max_time.ckpt");
  const auto callbacks =
      L::checkpoint_dict(L::load_checkpoint_file("max_time.ckpt").at("callbacks"));
  EXPECT_TRUE(callbacks.contains("Timer"));
}

TEST(Timer, WithoutMaxTimeTheDefaultTimerIsOffAndKeepsNoState) {
  CpuTrainer<> t({.max_epochs = 2,
                  .enable_progress_bar = false,
                  .enable_checkpointing = false,
                  .logger = false});
  lightning::testing::ValidatedModel m;
  fit(t, m);
  EXPECT_EQ(t.global_step, 16);
  EXPECT_FALSE(t.callback<Timer>().enabled());
  EXPECT_FALSE(t.callback<Timer>().options().duration);
  t.save_checkpoint("no_max_time.ckpt");
  const auto callbacks =
      L::checkpoint_dict(L::load_checkpoint_file("no_max_time.ckpt").at("callbacks"));
  EXPECT_FALSE(callbacks.contains("Timer"));
  CpuTrainer<> unset({.enable_progress_bar = false, .logger = false});
  auto [X, y] = seed_data(64);
  unset.validate(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(unset.run_options().max_epochs, 1000);  // Lightning's default without a Timer
}

TEST(Timer, MaxTimeResumesWithTheTrainingTimeAlreadySpent) {
  CpuTrainer<> first({.max_epochs = 1,
                      .max_time = 1h,
                      .enable_progress_bar = false,
                      .enable_checkpointing = false,
                      .logger = false});
  lightning::testing::ValidatedModel fitted;  // alive while save_checkpoint reads it
  fit(first, fitted);
  const double spent = first.callback<Timer>().time_elapsed();
  ASSERT_GT(spent, 0.0);
  first.save_checkpoint("first.ckpt");
  // A limit the first run already used up: the resumed fit stops before its first step.
  CpuTrainer<> resumed({.max_epochs = 3,
                        .max_time = std::chrono::duration<double>(spent / 2),
                        .enable_progress_bar = false,
                        .enable_checkpointing = false,
                        .logger = false});
  auto [X, y] = seed_data(256);
  lightning::testing::ValidatedModel m;
  auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32});
  ::testing::internal::CaptureStderr();
  resumed.fit(m, loader, loader, L::CheckpointPath{"first.ckpt"});
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(resumed.global_step, 8);
  EXPECT_GE(resumed.callback<Timer>().time_elapsed(), spent);
}

TEST(Timer, AUserTimerTakesPrecedenceOverMaxTime) {
  ::testing::internal::CaptureStderr();
  CpuTrainer<Timer> t({.max_epochs = 2,
                       .max_time = 1ns,
                       .enable_progress_bar = false,
                       .enable_checkpointing = false,
                       .logger = false},
                      Timer({.duration = 1h}));
  fit(t);
  const auto err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(t.global_step, 16);  // the user's hour, not max_time's nanosecond
  EXPECT_NE(err.find("ignoring TrainerOptions.max_time: the callbacks already contain a Timer"),
            std::string::npos)
      << err;
  CpuTrainer<Timer> unset({.enable_progress_bar = false, .logger = false}, Timer({.duration = 1h}));
  EXPECT_EQ(std::tuple_size_v<decltype(unset)::callback_tuple>,
            std::tuple_size_v<decltype(t)::callback_tuple>);  // one Timer, the user's
}

TEST(Timer, MaxTimeTakesLightningsDurationText) {
  EXPECT_EQ(L::duration_from_string("00:12:00:00"), 12h);
  EXPECT_EQ(L::duration_from_string("1:00:00:01"), 24h + 1s);
  for (const char* bad : {"", "12h", "1:2:3", "1:2:3:4:5", "a:0:0:0", "0:0:0:", "-1:0:0:0",
                          "0:0:0:1x", ":0:0:0", "0:0:0:0 "}) {
    EXPECT_FALSE(L::parse_duration(bad)) << bad;
  }
  try {
    (void)L::duration_from_string("12h");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("duration_from_string(\"12h\"): expected \"DD:HH:MM:SS\""),
              std::string::npos)
        << e.what();
  }
  try {
    CpuTrainer<> t({.max_time = -1s});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("TrainerOptions.max_time = -1.0 s"), std::string::npos)
        << e.what();
  }
  const L::TrainerOptions twelve_hours{.max_time = L::duration_from_string("00:12:00:00")};
  EXPECT_EQ(*twelve_hours.max_time, 12h);
}
