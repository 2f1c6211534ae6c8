// What a Trainer's profiler is (Lightning's Trainer(profiler=...)): passed among the
// callbacks, kept apart from them, and told of every hook and loop action it times.
#pragma once

#include <lightning/core/stage.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace lightning {

// A profiler (Lightning's profilers.Profiler) provides:
//   start(action) / stop(action): an action's bounds, named as Lightning names it;
//   setup(stage, local_rank, log_dir) at an entry point's start, describe() at its end.
// It may add scope(action), an RAII object that times one action without a second lookup,
// and teardown(), called when an entry point fails (describe() is not, then).
template <class P>
concept Profiler = requires(P& p, std::string_view action, Stage stage,
                            std::optional<std::int64_t> rank, const std::filesystem::path& dir) {
  requires P::is_profiler;
  p.start(action);
  p.stop(action);
  p.setup(stage, rank, dir);
  p.describe();
};

namespace profilers {

// No profiler (Lightning's PassThroughProfiler): its actions compile to nothing.
struct PassThroughProfiler {
  static constexpr bool is_profiler = true;
  static constexpr bool times_actions = false;
  void start(std::string_view) noexcept {}
  void stop(std::string_view) noexcept {}
  void setup(Stage, std::optional<std::int64_t>, const std::filesystem::path&) noexcept {}
  void describe() noexcept {}
};

// Times one action from construction to destruction through start/stop, for a profiler
// without a scope() of its own.
template <class P>
class ActionScope {
 public:
  ActionScope(P& p, std::string_view action) : p_(p), action_(action) { p_.start(action_); }
  // (A copy of the name: the Trainer builds names in one buffer that nested actions reuse.)
  ~ActionScope() { p_.stop(action_); }
  ActionScope(const ActionScope&) = delete;
  ActionScope& operator=(const ActionScope&) = delete;

 private:
  P& p_;
  std::string action_;
};

namespace detail {

// Lightning's Profiler._prepare_filename: "<stage>-<filename>-<rank>-<action>", path-unsafe
// characters as one '_', "profile" when empty (without the extension).
inline std::string profile_file_base(std::optional<Stage> stage, std::string_view filename,
                                     std::optional<std::int64_t> local_rank,
                                     std::string_view action = {}) {
  std::string base;
  const auto add = [&](std::string_view part) {
    if (!base.empty()) base += '-';
    base += part;
  };
  if (stage) add(to_string(*stage));
  if (!filename.empty()) add(filename);
  if (local_rank) add(std::to_string(*local_rank));
  if (!action.empty()) add(action);
  std::string safe;
  for (const char c : base) {
    const char d =
        std::string_view("\\/:*?\"<>|\n\r\t").find(c) == std::string_view::npos ? c : '_';
    if (!(d == '_' && !safe.empty() && safe.back() == '_')) safe += d;
  }
  const auto first = safe.find_first_not_of(" \f\v");
  const auto last = safe.find_last_not_of(" \f\v");
  safe = first == std::string::npos ? std::string() : safe.substr(first, last - first + 1);
  return safe.empty() ? "profile" : safe;
}

// Lightning's report heading: "FIT Profiler Report" (the stage in capitals, when known).
inline std::string report_heading(std::optional<Stage> stage) {
  std::string out;
  if (stage) {
    for (const char c : to_string(*stage))
      out += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    out += ' ';
  }
  return out + "Profiler Report";
}

// Lightning's describe(): a report to stdout (rank zero's; `to_stdout` is how it ends
// there) when the profiler has no file name, else appended to `path`.
inline void write_report(const std::string& text, std::string_view to_stdout, bool to_file,
                         std::optional<std::int64_t> local_rank, const std::filesystem::path& path,
                         std::string_view profiler) {
  if (!to_file) {
    if (local_rank && *local_rank != 0) return;
    std::cout << text << to_stdout << std::flush;
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  std::ofstream file(path, std::ios::app);
  file << text;
  file.flush();
  if (!file)
    throw std::runtime_error("lightning: " + std::string(profiler) +
                             " could not write its report to " + path.string() + "; set " +
                             std::string(profiler) + "Options.dirpath to a writable directory");
}

}  // namespace detail
}  // namespace profilers

namespace detail {

template <class C>
concept is_profiler = requires {
  requires C::is_profiler;
};

}  // namespace detail
}  // namespace lightning
