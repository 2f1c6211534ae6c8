// ProgressBar: per-epoch progress of fit, with the metrics logged with prog_bar=true.
// On a terminal it redraws one line every `refresh_rate` batches; when the output is
// not a terminal (CI, a log file) it prints one plain line per epoch. Metrics are
// read from the device only on steps it draws.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <ostream>
#include <string>

namespace lightning::callbacks {

struct ProgressBarOptions {
  std::int64_t refresh_rate = 1;   // batches between redraws on a terminal (0: never)
  std::ostream* stream = nullptr;  // default: std::cout
  std::optional<bool> interactive = std::nullopt;  // default: whether stdout is a terminal
};

class ProgressBar {
 public:
  static constexpr bool is_progress_bar = true;

  explicit ProgressBar(ProgressBarOptions options = {}) : options_(options) {
    out_ = options_.stream ? options_.stream : &std::cout;
    interactive_ =
        options_.interactive.value_or(options_.stream == nullptr && ::isatty(STDOUT_FILENO));
  }

  void disable() noexcept { enabled_ = false; }
  void enable() noexcept { enabled_ = true; }
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

  template <class Trainer, class Module>
  void on_train_epoch_start(Trainer&, Module&) {
    if (!enabled_) return;
    start_ = Clock::now();
    batches_ = 0;
  }

  template <class Trainer, class Module, class Out, class Batch>
  void on_train_batch_end(Trainer& trainer, Module&, const Out&, const Batch&, std::int64_t) {
    if (!enabled_) return;
    ++batches_;
    if (interactive_ && options_.refresh_rate > 0 && batches_ % options_.refresh_rate == 0)
      draw(trainer, /*final=*/false);
  }

  template <class Trainer, class Module>
  void on_train_epoch_end(Trainer& trainer, Module&) {
    if (!enabled_) return;
    draw(trainer, /*final=*/true);
  }

 private:
  using Clock = std::chrono::steady_clock;

  static std::string clock_text(double seconds) {
    const auto s = static_cast<long>(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
    return buf;
  }

  template <class Trainer>
  void draw(Trainer& trainer, bool final) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(batches_) / elapsed : 0.0;
    const auto total = trainer.num_training_batches;
    std::string line = "Epoch " + std::to_string(trainer.current_epoch) + ": ";
    char buf[64];
    if (total && *total > 0) {
      const double frac = static_cast<double>(batches_) / static_cast<double>(*total);
      std::snprintf(buf, sizeof buf, "%3d%%", static_cast<int>(frac * 100.0));
      line += buf;
      if (interactive_) {
        constexpr int width = 20;
        const int filled = static_cast<int>(frac * width);
        line += "|" + std::string(static_cast<std::size_t>(filled), '#') +
                std::string(static_cast<std::size_t>(width - filled), ' ') + "|";
      }
      line += " " + std::to_string(batches_) + "/" + std::to_string(*total);
    } else {
      line += std::to_string(batches_);
    }
    const double remaining =
        total && rate > 0 ? static_cast<double>(*total - batches_) / rate : 0.0;
    std::snprintf(buf, sizeof buf, " [%s<%s, %.2fit/s", clock_text(elapsed).c_str(),
                  clock_text(remaining).c_str(), rate);
    line += buf;
    for (const auto& [name, value] : trainer.progress_bar_metrics()) {
      std::snprintf(buf, sizeof buf, ", %s=%.3g", name.c_str(), value);
      line += buf;
    }
    line += "]";
    if (interactive_)
      *out_ << '\r' << line << (final ? "\n" : "") << std::flush;
    else if (final)
      *out_ << line << '\n' << std::flush;
  }

  ProgressBarOptions options_;
  std::ostream* out_ = nullptr;
  bool interactive_ = false;
  bool enabled_ = true;
  std::int64_t batches_ = 0;
  Clock::time_point start_{};
};

}  // namespace lightning::callbacks
