// SimpleProfiler (Lightning's profilers.SimpleProfiler): the wall time of every hook and
// loop action, reported per entry point as Lightning's table (mean, calls, total, share).
#pragma once

#include <lightning/core/stage.hpp>
#include <lightning/profilers/profiler.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lightning {

struct SimpleProfilerOptions {
  // Where `filename` is written; empty: the Trainer's log_dir (Lightning's dirpath=None).
  std::filesystem::path dirpath{};
  // The report goes to <dirpath>/<stage>-<filename>[-<rank>].txt, appended; empty: stdout.
  std::string filename{};
  // Lightning's extended table (Num calls and Percentage % columns, a Total row).
  bool extended = true;
};

namespace profilers {

class SimpleProfiler {
  using clock = std::chrono::steady_clock;

 public:
  static constexpr bool is_profiler = true;
  static constexpr bool times_actions = true;

  struct Row {
    std::string action;
    std::int64_t calls = 0;
    double sum_s = 0;
    double compensation_s = 0;  // Neumaier's: the total is as exact as Lightning's math.fsum
    [[nodiscard]] double total_s() const noexcept { return sum_s + compensation_s; }
    [[nodiscard]] double mean_s() const noexcept { return total_s() / static_cast<double>(calls); }
  };

  explicit SimpleProfiler(SimpleProfilerOptions options = {})
      : options_(std::move(options)), start_(clock::now()) {}

  // Lightning's start/stop: an action started twice, or stopped without a start, is an error.
  void start(std::string_view action) {
    if (!open_.emplace(std::string(action), clock::now()).second)
      throw std::logic_error("lightning: SimpleProfiler: attempted to start " +
                             std::string(action) + " which has already started");
  }
  void stop(std::string_view action) {
    const auto end = clock::now();
    const auto it = open_.find(action);
    if (it == open_.end())
      throw std::logic_error("lightning: SimpleProfiler: attempting to stop recording an action (" +
                             std::string(action) + ") which was never started");
    add(row(action), end - it->second);
    open_.erase(it);
  }

  // Times one action: the row is found once, when the scope opens.
  class Scope {
   public:
    Scope(SimpleProfiler& p, std::string_view action)
        : p_(p), row_(p.row(action)), start_(clock::now()) {}
    ~Scope() { p_.add(row_, clock::now() - start_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    SimpleProfiler& p_;
    std::size_t row_;
    clock::time_point start_;
  };
  [[nodiscard]] Scope scope(std::string_view action) { return Scope(*this, action); }

  // Each entry point reports its own actions (Lightning's report also repeats the rows of
  // earlier entry points of the same profiler).
  void setup(Stage stage, std::optional<std::int64_t> local_rank,
             const std::filesystem::path& log_dir) {
    stage_ = stage;
    local_rank_ = local_rank;
    log_dir_ = log_dir;
    rows_.clear();
    index_.clear();
    open_.clear();
    start_ = clock::now();
  }

  // The rows so far, in the order the actions first ran.
  [[nodiscard]] const std::vector<Row>& rows() const noexcept { return rows_; }

  // Lightning's summary(): "<STAGE> Profiler Report" and the table; the Total row's time
  // and the shares are of the wall time since setup.
  [[nodiscard]] std::string summary() const {
    return summary(std::chrono::duration<double>(clock::now() - start_).count());
  }
  // The same report, as if `total_duration` seconds had passed since setup.
  [[nodiscard]] std::string summary(double total_duration) const {
    std::string out = detail::report_heading(stage_) + "\n";
    if (rows_.empty()) return out + "\n";
    std::size_t width = 0;
    for (const auto& r : rows_) width = std::max(width, code_points(r.action));
    std::vector<const Row*> order;
    for (const auto& r : rows_) order.push_back(&r);
    const auto cell = [](std::string_view text, std::size_t w) {
      std::string c(text);
      const std::size_t n = code_points(text);
      if (n < w) c.append(w - n, ' ');
      return c;
    };
    std::string sep_line;
    if (options_.extended) {
      const auto line = [&](std::string_view action, std::string_view mean, std::string_view calls,
                            std::string_view total, std::string_view share) {
        return "\n|  " + cell(action, width) + "\t|  " + cell(mean, 15) + "\t|  " +
               cell(calls, 15) + "\t|  " + cell(total, 15) + "\t|  " + cell(share, 15) + "\t|";
      };
      const std::string header =
          line("Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %");
      sep_line = "\n" + std::string(expanded_length(header), '-');
      // By share of the wall time, largest first; ties keep the order actions first ran.
      std::stable_sort(order.begin(), order.end(),
                       [](const Row* a, const Row* b) { return a->total_s() > b->total_s(); });
      std::int64_t calls = 0;
      for (const auto& r : rows_) calls += r.calls;
      out += sep_line + header + sep_line;
      out += line("Total", "-", std::to_string(calls), python_float(total_duration), "100 %");
      out += sep_line;
      for (const Row* r : order)
        out +=
            line(r->action, python_float(r->mean_s()), std::to_string(r->calls),
                 python_float(r->total_s()), python_float(100.0 * r->total_s() / total_duration));
    } else {
      const auto line = [&](std::string_view action, std::string_view mean,
                            std::string_view total) {
        return "\n|  " + cell(action, width) + "\t|  " + cell(mean, 15) + "\t|  " +
               cell(total, 15) + "\t|";
      };
      const std::string header = line("Action", "Mean duration (s)", "Total time (s)");
      sep_line = "\n" + std::string(expanded_length(header), '-');
      // Lightning's short table sorts by mean duration.
      std::stable_sort(order.begin(), order.end(),
                       [](const Row* a, const Row* b) { return a->mean_s() > b->mean_s(); });
      out += sep_line + header + sep_line;
      for (const Row* r : order)
        out += line(r->action, python_float(r->mean_s()), python_float(r->total_s()));
    }
    out += sep_line + "\n";
    return out;
  }

  // Lightning's describe(): the summary to stdout, or appended to the report file.
  void describe() {
    detail::write_report(summary(), "", !options_.filename.empty(), local_rank_, report_path(),
                         "SimpleProfiler");
  }

  // <dirpath or log_dir>/<stage>-<filename>[-<rank>].txt, as Lightning's _prepare_filename.
  [[nodiscard]] std::filesystem::path report_path() const {
    const auto dir = options_.dirpath.empty() ? log_dir_ : options_.dirpath;
    return dir / (detail::profile_file_base(stage_, options_.filename, local_rank_) + ".txt");
  }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  std::size_t row(std::string_view action) {
    const auto it = index_.find(action);
    if (it != index_.end()) return it->second;
    rows_.push_back(Row{.action = std::string(action)});
    index_.emplace(rows_.back().action, rows_.size() - 1);
    return rows_.size() - 1;
  }
  void add(std::size_t i, clock::duration d) {
    const double x = std::chrono::duration<double>(d).count();
    auto& r = rows_[i];
    const double t = r.sum_s + x;
    r.compensation_s += std::abs(r.sum_s) >= std::abs(x) ? (r.sum_s - t) + x : (x - t) + r.sum_s;
    r.sum_s = t;
    ++r.calls;
  }

  // Python's format(x, ".5"): five significant digits, exponent below 1e-4 or from 1e5,
  // and at least one digit after the point in fixed notation.
  static std::string python_float(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.5g", x);
    std::string s = buf;
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    return s;
  }
  static std::size_t code_points(std::string_view s) noexcept {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  }
  // len(s.expandtabs()) in Python: tabs to the next multiple of 8 columns.
  static std::size_t expanded_length(std::string_view s) noexcept {
    std::size_t n = 0, column = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if ((c & 0xC0) == 0x80) continue;
      if (c == '\t') {
        const std::size_t spaces = 8 - column % 8;
        n += spaces;
        column += spaces;
      } else {
        ++n;
        column = (c == '\n' || c == '\r') ? 0 : column + 1;
      }
    }
    return n;
  }

  SimpleProfilerOptions options_;
  clock::time_point start_;
  std::optional<Stage> stage_;
  std::optional<std::int64_t> local_rank_;
  std::filesystem::path log_dir_;
  std::vector<Row> rows_;
  std::unordered_map<std::string, std::size_t, Hash, std::equal_to<>> index_;
  std::unordered_map<std::string, clock::time_point, Hash, std::equal_to<>> open_;
};

}  // namespace profilers

using profilers::PassThroughProfiler;
using profilers::SimpleProfiler;

}  // namespace lightning
