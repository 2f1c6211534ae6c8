// ProgressBar: Lightning's TQDMProgressBar. One line per stage: "Sanity Checking",
// "Epoch N" (training, with the metrics logged with prog_bar=true), "Validation",
// "Testing", "Predicting"; each shows n/total, the percentage (and a bar on a terminal)
// when the total is known, elapsed and remaining time and the rate.
//
// On a terminal a line is redrawn every `refresh_rate` batches, at most once per
// `min_interval` (100 ms, as tqdm), and at its end; training keeps one line
// that each epoch redraws (unless `leave`); the validation line of fit appears below the
// epoch's line and is erased when validation ends (Lightning's leave=False), as is the
// sanity check's. Off a terminal (CI, a log file) a plain line is printed each time a
// stage crosses another `plain_interval_percent` of its known total (every
// `plain_every_n_batches` batches when the total is unknown), and at each stage's end.
//
// The metrics are read from the device (trainer.progress_bar_metrics()) only when the
// training line is drawn; a batch that draws nothing costs a counter and a comparison.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/stage.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lightning::callbacks {

struct ProgressBarOptions {
  std::int64_t refresh_rate = 1;  // batches between redraws on a terminal (0: no output)
  // On a terminal, the least time between two redraws (tqdm's mininterval): a step that
  // comes sooner draws nothing and reads no metric. 0: every refresh_rate batches.
  std::chrono::milliseconds min_interval{100};
  std::ostream* stream = nullptr;                  // default: std::cout
  std::optional<bool> interactive = std::nullopt;  // default: whether stdout is a terminal
  std::int64_t plain_interval_percent = 25;        // off a terminal: a line per this much progress
  std::int64_t plain_every_n_batches = 100;        // off a terminal, total unknown: a line per this
  bool leave = false;  // on a terminal, keep each epoch's finished line (else the next redraws it)
};

class ProgressBar {
 public:
  static constexpr bool is_progress_bar = true;

  explicit ProgressBar(ProgressBarOptions options = {}) : options_(options) {
    require(options_.refresh_rate >= 0, "refresh_rate", options_.refresh_rate,
            "must be >= 0 (0 disables the bar)");
    require(options_.plain_interval_percent >= 1 && options_.plain_interval_percent <= 100,
            "plain_interval_percent", options_.plain_interval_percent, "must be in [1, 100]");
    require(options_.plain_every_n_batches >= 1, "plain_every_n_batches",
            options_.plain_every_n_batches, "must be >= 1");
    out_ = options_.stream ? options_.stream : &std::cout;
    interactive_ =
        options_.interactive.value_or(options_.stream == nullptr && ::isatty(STDOUT_FILENO));
  }

  // Only rank zero draws (Lightning's ProgressBar.setup disables it on the other ranks).
  template <class T, class M>
  void setup(T& trainer, M&, Stage) {
    if (!trainer.is_global_zero()) disable();
  }

  void disable() noexcept { enabled_ = false; }
  void enable() noexcept { enabled_ = true; }
  [[nodiscard]] bool enabled() const noexcept { return enabled_ && options_.refresh_rate > 0; }
  [[nodiscard]] bool interactive() const noexcept { return interactive_; }

  // Training: the "Epoch N" line.
  template <class T, class M>
  void on_train_epoch_start(T& trainer, M&) {
    if (!enabled()) return;
    train_.start(trainer.num_training_batches, plain_step(trainer.num_training_batches));
    train_open_ = true;
  }
  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M&, const O&, const B&, std::int64_t) {
    if (!enabled()) return;
    ++train_.n;
    if (due(train_)) draw_train(trainer, End::no);
  }
  template <class T, class M>
  void on_train_epoch_end(T& trainer, M&) {
    if (!enabled()) return;
    draw_train(trainer, options_.leave ? End::keep : End::no);
    train_open_ = false;
  }
  // The last epoch's line stays.
  template <class T, class M>
  void on_train_end(T&, M&) {
    end_open_line();
  }
  // A failed run leaves its line: end it so that what follows starts on a fresh line.
  template <class T, class M>
  void on_exception(T&, M&, const std::exception&) {
    end_open_line();
    train_open_ = false;
  }

  // Evaluation: the sanity check and validation (during fit or validate()), test, predict.
  template <class T, class M>
  void on_validation_start(T& trainer, M&) {
    if (!enabled()) return;
    if (trainer.sanity_checking)
      start_eval(Kind::sanity, trainer.num_sanity_val_batches);
    else
      start_eval(Kind::validation, trainer.num_val_batches);
  }
  template <class T, class M, class O, class B>
  void on_validation_batch_end(T&, M&, const O&, const B&, std::int64_t) {
    eval_batch_end();
  }
  template <class T, class M>
  void on_validation_end(T& trainer, M&) {
    if (!enabled()) return;
    if (!interactive_ || (kind_ == Kind::validation && !train_open_)) {
      draw(eval_, End::keep);
      return;
    }
    // The sanity check's line and fit's validation line go (Lightning's leave=False);
    // the epoch's line above shows the new metrics.
    *out_ << "\r\033[K";
    line_open_ = false;
    if (train_open_) {
      if (below_) *out_ << "\033[A";
      draw_train(trainer, End::no);
    }
    *out_ << std::flush;
  }
  template <class T, class M>
  void on_test_start(T& trainer, M&) {
    if (!enabled()) return;
    start_eval(Kind::test, trainer.num_test_batches);
  }
  template <class T, class M, class O, class B>
  void on_test_batch_end(T&, M&, const O&, const B&, std::int64_t) {
    eval_batch_end();
  }
  template <class T, class M>
  void on_test_end(T&, M&) {
    if (enabled()) draw(eval_, End::keep);
  }
  template <class T, class M>
  void on_predict_start(T& trainer, M&) {
    if (!enabled()) return;
    start_eval(Kind::predict, trainer.num_predict_batches);
  }
  template <class T, class M, class O, class B>
  void on_predict_batch_end(T&, M&, const O&, const B&, std::int64_t) {
    eval_batch_end();
  }
  template <class T, class M>
  void on_predict_end(T&, M&) {
    if (enabled()) draw(eval_, End::keep);
  }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Kind { sanity, validation, test, predict };
  enum class End { no, keep };  // whether the draw ends the line (it stays on screen)

  struct Line {
    std::int64_t n = 0;
    std::optional<std::int64_t> total;
    Clock::time_point started{};
    Clock::time_point drawn{};    // on a terminal: the latest redraw
    std::int64_t plain_step = 1;  // off a terminal: batches between plain lines
    std::int64_t next_plain = 1;

    void start(std::optional<std::int64_t> t, std::int64_t step) {
      n = 0;
      total = t && *t > 0 ? t : std::nullopt;
      started = Clock::now();
      drawn = Clock::time_point{};  // the first due batch draws
      plain_step = step;
      next_plain = step;
    }
  };

  static void require(bool ok, const char* name, std::int64_t value, const char* rule) {
    if (!ok) throw_bad_option("ProgressBarOptions", name, std::to_string(value), rule);
  }

  // Off a terminal: batches between plain lines, from the stage's total when known.
  [[nodiscard]] std::int64_t plain_step(std::optional<std::int64_t> total) const {
    if (!total || *total <= 0) return options_.plain_every_n_batches;
    const std::int64_t step = *total * options_.plain_interval_percent / 100;
    return step > 0 ? step : 1;
  }

  // Whether the batch just counted is drawn: on a terminal every refresh_rate batches
  // once min_interval has passed, and at the last; off one, at each plain step short of
  // the end (the end draws anyway).
  [[nodiscard]] bool due(Line& line) const {
    if (interactive_) {
      if (line.n == line.total) return true;
      if (line.n % options_.refresh_rate != 0) return false;
      const auto now = Clock::now();
      if (now - line.drawn < options_.min_interval) return false;
      line.drawn = now;
      return true;
    }
    if (line.n < line.next_plain || line.n == line.total) return false;
    line.next_plain += line.plain_step;
    return true;
  }

  void start_eval(Kind kind, std::optional<std::int64_t> total) {
    kind_ = kind;
    eval_.start(total, plain_step(total));
    // On a terminal the evaluation line goes below a line still being drawn.
    below_ = interactive_ && line_open_;
    if (below_) {
      *out_ << '\n';
      line_open_ = false;
    }
  }
  void eval_batch_end() {
    if (!enabled()) return;
    ++eval_.n;
    if (due(eval_)) draw(eval_, End::no);
  }

  // Lightning's descriptions, by Kind.
  [[nodiscard]] std::string_view description() const {
    constexpr std::array<std::string_view, 4> names{"Sanity Checking", "Validation", "Testing",
                                                    "Predicting"};
    return names[static_cast<std::size_t>(kind_)];
  }

  template <class T>
  void draw_train(T& trainer, End end) {
    line_.clear();
    line_ += "Epoch ";
    line_ += std::to_string(trainer.current_epoch);
    append_progress(train_);
    for (const auto& [name, value] : trainer.progress_bar_metrics()) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "=%.3g", value);
      line_ += ", ";
      line_ += name;
      line_ += buf;
    }
    line_ += ']';
    emit(end);
  }
  void draw(const Line& line, End end) {
    line_.clear();
    line_ += description();
    append_progress(line);
    line_ += ']';
    emit(end);
  }

  // ": 50%|#####     | 4/8 [00:01<00:01, 3.96it/s" (tqdm's layout, bar on a terminal).
  void append_progress(const Line& line) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - line.started).count();
    const double rate = elapsed > 0 ? static_cast<double>(line.n) / elapsed : 0.0;
    char buf[64];
    line_ += ": ";
    if (line.total) {
      const double frac = static_cast<double>(line.n) / static_cast<double>(*line.total);
      // Rounded half to even, as tqdm's "{percentage:3.0f}".
      std::snprintf(buf, sizeof buf, "%3d%%", static_cast<int>(std::nearbyint(frac * 100.0)));
      line_ += buf;
      if (interactive_) {
        constexpr int width = 20;
        const int filled = std::min(width, static_cast<int>(frac * width));
        line_ += '|';
        line_.append(static_cast<std::size_t>(filled), '#');
        line_.append(static_cast<std::size_t>(width - filled), ' ');
        line_ += '|';
      }
      line_ += ' ';
    }
    line_ += std::to_string(line.n);
    if (line.total) {
      line_ += '/';
      line_ += std::to_string(*line.total);
    } else {
      line_ += "it";  // tqdm without a total: "5it [00:01, 4.20it/s]"
    }
    line_ += " [";
    append_clock(elapsed);
    if (line.total) {
      line_ += '<';
      if (rate > 0)
        append_clock(static_cast<double>(*line.total - line.n) / rate);
      else
        line_ += '?';
    }
    if (rate >= 1.0 || rate == 0.0)
      std::snprintf(buf, sizeof buf, ", %.2fit/s", rate);
    else
      std::snprintf(buf, sizeof buf, ", %.2fs/it", 1.0 / rate);
    line_ += buf;
  }

  // tqdm's interval: "MM:SS", "H:MM:SS" from an hour on.
  void append_clock(double seconds) {
    const auto s = static_cast<long long>(seconds + 0.5);
    char buf[40];
    if (s >= 3600)
      std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
      std::snprintf(buf, sizeof buf, "%02lld:%02lld", s / 60, s % 60);
    line_ += buf;
  }

  void emit(End end) {
    if (interactive_)
      *out_ << '\r' << line_ << "\033[K";
    else
      *out_ << line_;
    line_open_ = interactive_ && end == End::no;
    if (!line_open_) *out_ << '\n';
    *out_ << std::flush;
  }
  void end_open_line() {
    if (!line_open_) return;
    *out_ << '\n' << std::flush;
    line_open_ = false;
  }

  ProgressBarOptions options_;
  std::ostream* out_ = nullptr;
  bool interactive_ = false;
  bool enabled_ = true;
  bool train_open_ = false;  // an epoch's line is on screen (validation goes below it)
  bool line_open_ = false;   // on a terminal: the cursor is at the end of a drawn line
  bool below_ = false;       // the evaluation line is drawn below the open epoch line
  Kind kind_ = Kind::validation;
  Line train_;
  Line eval_;
  std::string line_;  // reused: no allocation per draw once it has grown
};

}  // namespace lightning::callbacks
