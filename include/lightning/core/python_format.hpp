// Python's spelling of a float (repr), for every text Lightning writes with one: CSV
// rows, hparams.yaml, checkpoint file names, EarlyStopping's messages. Torch-free.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>

namespace lightning {

// Python's repr(float): the shortest text that reads back the same double, positional
// when 1e-4 <= |v| < 1e16 (always with a fraction: "1.0"), scientific otherwise ("1e-05").
inline std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof buffer, v, std::chars_format::scientific);
  std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  std::string out;
  if (text.front() == '-') {
    out += '-';
    text.remove_prefix(1);
  }
  const auto e_at = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e_at))
    if (c != '.') digits += c;
  int exponent = 0;
  const auto exponent_text = text.substr(e_at + 1);
  std::from_chars(exponent_text.data() + (exponent_text.front() == '+' ? 1 : 0),
                  exponent_text.data() + exponent_text.size(), exponent);
  const auto n = static_cast<int>(digits.size());
  if (exponent >= -4 && exponent < 16) {
    if (exponent >= 0) {
      const int whole = exponent + 1;
      out += digits.substr(0, static_cast<std::size_t>(std::min(whole, n)));
      if (n < whole) out.append(static_cast<std::size_t>(whole - n), '0');
      out += '.';
      out += n > whole ? digits.substr(static_cast<std::size_t>(whole)) : "0";
    } else {
      out += "0.";
      out.append(static_cast<std::size_t>(-exponent - 1), '0');
      out += digits;
    }
    return out;
  }
  out += digits.front();
  if (n > 1) {
    out += '.';
    out += digits.substr(1);
  }
  out += exponent < 0 ? "e-" : "e+";
  const int magnitude = exponent < 0 ? -exponent : exponent;
  if (magnitude < 10) out += '0';
  out += std::to_string(magnitude);
  return out;
}

}  // namespace lightning
