// What EarlyStopping and ModelCheckpoint share: the direction of a monitored metric and
// the text of their checkpoint state keys.
#pragma once

#include <lightning/core/metric_map.hpp>
#include <lightning/core/python_format.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lightning::callbacks {

// Whether a lower (min: a loss) or a higher (max: an accuracy) value is better.
enum class Mode { min, max };

namespace detail {

[[nodiscard]] constexpr const char* mode_name(Mode m) noexcept {
  return m == Mode::min ? "min" : "max";
}
[[nodiscard]] constexpr bool improves(Mode m, double candidate, double reference) noexcept {
  return m == Mode::min ? candidate < reference : candidate > reference;
}
[[nodiscard]] constexpr double worst(Mode m) noexcept {
  return m == Mode::min ? std::numeric_limits<double>::infinity()
                        : -std::numeric_limits<double>::infinity();
}

// The names a missing metric could have been, for error messages.
inline std::string metric_names(const MetricMap& metrics) {
  std::string names;
  for (const auto& kv : metrics) {
    if (!names.empty()) names += ", ";
    names += kv.first;
  }
  return names.empty() ? "(nothing was logged)" : names;
}

// Python's repr of a str, as Lightning's state keys spell option values.
inline std::string py_repr(std::string_view s) {
  std::string out = "'";
  out += s;
  out += '\'';
  return out;
}

}  // namespace detail
}  // namespace lightning::callbacks
