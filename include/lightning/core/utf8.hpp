// Text that readers in other languages must decode: a metric or hyperparameter name is a
// std::string of any bytes, but TensorBoard's protobuf strings, Python's csv module on a
// UTF-8 file and PyYAML all need valid UTF-8. Malformed sequences become U+FFFD, one per
// maximal ill-formed subpart, as Unicode recommends and Python's
// bytes.decode("utf-8", "replace") does, so both languages agree on the name. Torch-free.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lightning {

namespace detail {
// The byte range a continuation at position `k` (1-based) after `lead` must fall in.
constexpr bool utf8_continuation_fits(unsigned char lead, int k, unsigned char c) {
  unsigned char low = 0x80, high = 0xBF;
  if (k == 1) {
    if (lead == 0xE0)
      low = 0xA0;  // no overlong 3-byte forms
    else if (lead == 0xED)
      high = 0x9F;  // no surrogates
    else if (lead == 0xF0)
      low = 0x90;  // no overlong 4-byte forms
    else if (lead == 0xF4)
      high = 0x8F;  // nothing past U+10FFFF
  }
  return c >= low && c <= high;
}
}  // namespace detail

// `s` with every malformed sequence replaced by U+FFFD.
inline std::string valid_utf8(std::string_view s) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const int extra = lead < 0x80                    ? 0
                      : lead >= 0xC2 && lead <= 0xDF ? 1
                      : lead >= 0xE0 && lead <= 0xEF ? 2
                      : lead >= 0xF0 && lead <= 0xF4 ? 3
                                                     : -1;
    if (extra < 0) {  // a stray continuation byte, C0/C1, or F5..FF
      out += replacement;
      ++i;
      continue;
    }
    int k = 1;
    while (k <= extra && i + static_cast<std::size_t>(k) < s.size() &&
           detail::utf8_continuation_fits(
               lead, k, static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)])))
      ++k;
    if (k <= extra) {  // cut short: the lead and the continuations that fitted are one error
      out += replacement;
      i += static_cast<std::size_t>(k);
      continue;
    }
    out.append(s.substr(i, static_cast<std::size_t>(extra) + 1));
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

// Whether `s` is valid UTF-8 (then valid_utf8(s) == s).
inline bool is_valid_utf8(std::string_view s) {
  return valid_utf8(s) == s;
}

}  // namespace lightning
