// Lightning's duration strings ("DD:HH:MM:SS", as Trainer(max_time=...) and Timer take),
// for options that are durations.
#pragma once

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lightning {

// "DD:HH:MM:SS" (four non-negative integers) as a duration; nullopt for anything else.
inline std::optional<std::chrono::duration<double>> parse_duration(std::string_view text) {
  std::array<std::int64_t, 4> parts{};
  std::size_t count = 0, at = 0;
  for (;;) {
    const std::size_t colon = std::min(text.find(':', at), text.size());
    const auto part = text.substr(at, colon - at);
    std::int64_t value = -1;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (count == 4 || part.empty() || error != std::errc() || end != part.data() + part.size() ||
        value < 0)
      return std::nullopt;
    parts[count++] = value;
    if (colon == text.size()) break;
    at = colon + 1;
  }
  if (count != 4) return std::nullopt;
  const auto [d, h, m, s] = parts;
  return std::chrono::seconds(((d * 24 + h) * 60 + m) * 60 + s);
}

// The same, for options: TrainerOptions{.max_time = L::duration_from_string("00:12:00:00")}. Text
// that is not "DD:HH:MM:SS" throws std::invalid_argument saying what was expected.
inline std::chrono::duration<double> duration_from_string(std::string_view text) {
  if (auto d = parse_duration(text)) return *d;
  throw std::invalid_argument("lightning: duration_from_string(\"" + std::string(text) +
                              "\"): expected \"DD:HH:MM:SS\" (days, hours, minutes, seconds; e.g. "
                              "\"00:12:00:00\" for 12 hours), or a std::chrono duration");
}

}  // namespace lightning
