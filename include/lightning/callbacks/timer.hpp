// Timer: Lightning's Timer callback. Measures the time spent in training, validation
// and testing, and stops fit (trainer.should_stop) once the training time reaches
// `duration`, checked after every batch (Interval::step) or every epoch.
//
// Its state_dict keeps the elapsed time of each stage, so a run resumed from a
// checkpoint keeps counting from where the saved run was (Lightning's offset).
#pragma once

#include <lightning/core/bad_option.hpp>

#include <lightning/core/optimizers.hpp>
#include <lightning/core/stage.hpp>
#include <lightning/fabric/checkpoint_io.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lightning::callbacks {

// The stages a Timer measures (Lightning's RunningStage values as keys of its state).
enum class TimerStage { train, validate, test };

constexpr std::string_view to_string(TimerStage s) noexcept {
  constexpr std::array<std::string_view, 3> names{"train", "validate", "test"};
  return names[static_cast<std::size_t>(s)];
}

struct TimerOptions {
  // Training time after which fit stops; unset: only measure.
  std::optional<std::chrono::duration<double>> duration = std::nullopt;
  Interval interval = Interval::step;  // when the time is checked: after each batch or epoch
  bool verbose = true;                 // say so (rank zero) when the time limit stops fit
  std::ostream* stream = nullptr;      // where that message goes; default: std::cerr
};

class Timer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr bool is_timer = true;

  // (The default one has nothing to check; GCC 12 also warns, wrongly, that checking an
  // empty optional duration reads it uninitialized.)
  Timer() = default;
  explicit Timer(TimerOptions options) : options_(options) {
    if (options_.duration && options_.duration->count() < 0)
      throw_bad_option("TimerOptions", "duration", std::to_string(options_.duration->count()) + "s",
                       "must be >= 0 (or unset to only measure time)");
    if (options_.interval != Interval::step && options_.interval != Interval::epoch)
      throw_bad_option("TimerOptions", "interval",
                       std::to_string(static_cast<int>(options_.interval)),
                       "must be Interval::step or Interval::epoch");
  }

  [[nodiscard]] const TimerOptions& options() const noexcept { return options_; }

  // The Trainer's own Timer (TrainerOptions.max_time): on with that duration, checked
  // every step, or off, when it measures nothing and keeps no state in checkpoints.
  void configure_max_time(std::optional<std::chrono::duration<double>> max_time) {
    enabled_ = max_time.has_value();
    options_.duration = max_time;
    options_.interval = Interval::step;
  }
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

  [[nodiscard]] std::optional<Clock::time_point> start_time(TimerStage s) const {
    return slot(s).start;
  }
  [[nodiscard]] std::optional<Clock::time_point> end_time(TimerStage s) const {
    return slot(s).end;
  }

  // Seconds spent in the stage so far (the training time includes a loaded offset).
  [[nodiscard]] double time_elapsed(TimerStage s = TimerStage::train) const {
    const Slot& t = slot(s);
    const double offset = s == TimerStage::train ? offset_ : 0.0;
    if (!t.start) return offset;
    const auto end = t.end.value_or(Clock::now());
    return std::chrono::duration<double>(end - *t.start).count() + offset;
  }

  // Seconds left of `duration` (negative once exceeded); unset without a duration.
  [[nodiscard]] std::optional<double> time_remaining(TimerStage s = TimerStage::train) const {
    if (!options_.duration) return std::nullopt;
    return options_.duration->count() - time_elapsed(s);
  }

  template <class T, class M>
  void on_train_start(T&, M&) {
    start(TimerStage::train);
  }
  template <class T, class M>
  void on_train_end(T&, M&) {
    stop(TimerStage::train);
  }
  template <class T, class M>
  void on_validation_start(T&, M&) {
    start(TimerStage::validate);
  }
  template <class T, class M>
  void on_validation_end(T&, M&) {
    stop(TimerStage::validate);
  }
  template <class T, class M>
  void on_test_start(T&, M&) {
    start(TimerStage::test);
  }
  template <class T, class M>
  void on_test_end(T&, M&) {
    stop(TimerStage::test);
  }

  // Checked regardless of the interval: a loaded state may already have used up the time.
  template <class T, class M>
  void on_fit_start(T& trainer, M&) {
    if (options_.duration) check_time_remaining(trainer);
  }
  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M&, const O&, const B&, std::int64_t) {
    if (options_.duration && options_.interval == Interval::step) check_time_remaining(trainer);
  }
  template <class T, class M>
  void on_train_epoch_end(T& trainer, M&) {
    if (options_.duration && options_.interval == Interval::epoch) check_time_remaining(trainer);
  }

  // Lightning's key: the class name (one Timer per Trainer).
  [[nodiscard]] std::string state_key() const { return "Timer"; }
  // {"time_elapsed": {"train": s, "validate": s, "test": s}} in seconds, as Lightning saves.
  [[nodiscard]] CheckpointDict state_dict() const {
    c10::Dict<std::string, double> elapsed;
    for (TimerStage s : {TimerStage::train, TimerStage::validate, TimerStage::test})
      elapsed.insert(std::string(to_string(s)), time_elapsed(s));
    CheckpointDict state = make_checkpoint();
    state.insert("time_elapsed", elapsed);
    return state;
  }

  // Continues counting the training time from the saved one (Lightning keeps only that).
  void load_state_dict(const CheckpointDict& state) {
    offset_ = 0.0;
    if (!state.contains("time_elapsed")) return;
    for (const auto& kv : state.at("time_elapsed").toGenericDict())
      if (kv.key().toStringRef() == to_string(TimerStage::train)) offset_ = kv.value().toDouble();
  }

 private:
  struct Slot {
    std::optional<Clock::time_point> start;
    std::optional<Clock::time_point> end;
  };

  [[nodiscard]] const Slot& slot(TimerStage s) const { return slots_[static_cast<std::size_t>(s)]; }
  void start(TimerStage s) { slots_[static_cast<std::size_t>(s)] = {Clock::now(), std::nullopt}; }
  void stop(TimerStage s) { slots_[static_cast<std::size_t>(s)].end = Clock::now(); }

  template <class T>
  void check_time_remaining(T& trainer) {
    bool stop_now = time_elapsed(TimerStage::train) >= options_.duration->count();
    if constexpr (requires { trainer.broadcast(true); })
      stop_now = trainer.broadcast(stop_now);  // every rank stops together
    trainer.should_stop = trainer.should_stop || stop_now;
    if (stop_now && options_.verbose && trainer.is_global_zero()) {
      std::ostream& out = options_.stream ? *options_.stream : std::cerr;
      out << "Time limit reached. Elapsed time is " << elapsed_text(time_elapsed(TimerStage::train))
          << ". Signaling Trainer to stop.\n";
    }
  }

  // Python's str(timedelta(seconds=int(s))): "H:MM:SS", "1 day, H:MM:SS".
  static std::string elapsed_text(double seconds) {
    auto s = static_cast<long long>(seconds);
    const long long days = s / 86400;
    s %= 86400;
    char buf[64];
    if (days > 0)
      std::snprintf(buf, sizeof buf, "%lld day%s, %lld:%02lld:%02lld", days, days == 1 ? "" : "s",
                    s / 3600, s / 60 % 60, s % 60);
    else
      std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    return buf;
  }

  TimerOptions options_;
  std::array<Slot, 3> slots_{};
  double offset_ = 0.0;
  bool enabled_ = true;
};

}  // namespace lightning::callbacks
