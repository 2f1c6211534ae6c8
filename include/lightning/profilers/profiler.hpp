// What a Trainer's profiler is (Lightning's Trainer(profiler=...)): passed among the
// callbacks, kept apart from them, and told of every hook and loop action it times.
#pragma once

#include <lightning/core/stage.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace lightning {

// A profiler (Lightning's profilers.Profiler) provides:
//   start(action) / stop(action): an action's bounds, named as Lightning names it;
//   setup(stage, local_rank, log_dir) at an entry point's start, describe() at its end.
// It may add scope(action), an RAII object that times one action without a second lookup.
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

}  // namespace profilers

namespace detail {

template <class C>
concept is_profiler = requires {
  requires C::is_profiler;
};

}  // namespace detail
}  // namespace lightning
