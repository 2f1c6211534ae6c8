// hparams.yaml as Lightning writes it (save_hparams_to_yaml, i.e. PyYAML's yaml.dump of a
// flat dict): keys sorted, one `key: value` line each, scalars spelled and quoted the way
// PyYAML spells them, so that yaml.safe_load (and Lightning's load_hparams_from_yaml)
// reads back the same values and types.
#pragma once

#include <lightning/core/durable_file.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/python_format.hpp>
#include <lightning/core/utf8.hpp>
#include <lightning/loggers/experiment_dir.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace lightning::loggers {

namespace detail {

// PyYAML's float: repr() in lower case, ".0" added before a bare exponent ("1.0e-05"),
// and YAML's own names for the special values.
inline std::string yaml_float(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  auto text = lightning::python_float_repr(v);
  if (text.find('.') == std::string::npos) {
    const auto e_at = text.find('e');
    if (e_at != std::string::npos) text.insert(e_at, ".0");
  }
  return text;
}

// True when a plain scalar `s` would load as something other than a string (PyYAML's
// implicit resolvers: bool, int, float, null, timestamp, merge, value), so it needs quotes.
inline bool yaml_resolves_to_non_string(const std::string& s) {
  static const std::regex implicit(
      // bool
      "yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
      // float
      "|[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?"
      "|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
      "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*"
      "|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)"
      // int
      "|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
      "|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
      // null, merge, value
      "|~|null|Null|NULL|<<|="
      // timestamp
      "|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
      "|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \\t]+)[0-9][0-9]?:[0-9][0-9]:"
      "[0-9][0-9](?:\\.[0-9]*)?(?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?");
  return std::regex_match(s, implicit);
}

// Decodes one UTF-8 sequence at s[i] (advancing i); a malformed byte stands for itself.
inline char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto lead = static_cast<unsigned char>(s[i++]);
  const int extra = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  if (extra == 0 || i + static_cast<std::size_t>(extra) > s.size()) return lead;
  char32_t cp = lead & (0x3F >> extra);
  for (int k = 0; k < extra; ++k) {
    const auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
    if ((c & 0xC0) != 0x80) return lead;
    cp = (cp << 6) | (c & 0x3F);
  }
  i += static_cast<std::size_t>(extra);
  return cp;
}

// PyYAML's double-quoted style, used for what is not printable ASCII (it writes with
// allow_unicode=False): its short escapes, else \xXX, \uXXXX or \UXXXXXXXX.
inline std::string yaml_double_quoted(std::string_view s) {
  static constexpr std::string_view short_escapes[][2] = {
      {"\0", "0"}, {"\a", "a"}, {"\b", "b"},   {"\t", "t"},  {"\n", "n"}, {"\v", "v"},
      {"\f", "f"}, {"\r", "r"}, {"\x1b", "e"}, {"\"", "\""}, {"\\", "\\"}};
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const char32_t cp = next_code_point(s, i);
    if (cp >= 0x20 && cp <= 0x7E && cp != '"' && cp != '\\') {
      out += static_cast<char>(cp);
      continue;
    }
    bool escaped = false;
    for (const auto& [raw, name] : short_escapes)
      if (cp == static_cast<unsigned char>(raw[0]) && cp < 0x80) {
        out += '\\';
        out += name;
        escaped = true;
        break;
      }
    if (escaped) continue;
    const int width = cp <= 0xFF ? 2 : cp <= 0xFFFF ? 4 : 8;
    out += width == 2 ? "\\x" : width == 4 ? "\\u" : "\\U";
    auto value = static_cast<std::uint32_t>(cp);
    std::string digits(static_cast<std::size_t>(width), '0');
    for (int k = width - 1; k >= 0; --k, value >>= 4)
      digits[static_cast<std::size_t>(k)] = "0123456789ABCDEF"[value & 0xF];
    out += digits;
  }
  out += '"';
  return out;
}

// A string as PyYAML writes it in block context: plain when that loads back as the same
// string, else single-quoted, else (control characters, line breaks, non-ASCII)
// double-quoted. PyYAML folds long plain lines and writes line breaks as folded
// single-quoted text; both load identically to the forms chosen here.
inline std::string yaml_string(std::string_view text) {
  // PyYAML reads UTF-8: a malformed sequence is written as U+FFFD (core/utf8.hpp), as
  // Python would decode it, not as bytes that load as other characters.
  const std::string valid = valid_utf8(text);
  const std::string_view s = valid;
  bool needs_double = false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E) needs_double = true;
  }
  if (needs_double) return yaml_double_quoted(s);

  const auto followed_by_space = [&](std::size_t i) {
    return i + 1 == s.size() || s[i + 1] == ' ';
  };
  bool plain = !s.empty() && s.front() != ' ' && s.back() != ' ' &&
               !yaml_resolves_to_non_string(std::string(s));
  if (plain) {
    constexpr std::string_view always_indicators = "#,[]{}&*!|>'\"%@`";
    const char first = s.front();
    if (always_indicators.find(first) != std::string_view::npos) plain = false;
    if ((first == '-' || first == '?' || first == ':') && followed_by_space(0)) plain = false;
    for (std::size_t i = 0; plain && i < s.size(); ++i) {
      if (s[i] == ':' && followed_by_space(i)) plain = false;
      if (s[i] == '#' && i > 0 && s[i - 1] == ' ') plain = false;
    }
  }
  if (plain) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

inline std::string yaml_value(const HParam& p) {
  return std::visit(
      [](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, bool>)
          return v ? "true" : "false";
        else if constexpr (std::is_same_v<V, std::int64_t>)
          return std::to_string(v);
        else if constexpr (std::is_same_v<V, double>)
          return yaml_float(v);
        else
          return yaml_string(v);
      },
      p.value());
}

}  // namespace detail

// The text of hparams.yaml: yaml.dump sorts the keys; an empty dict is "{}".
inline std::string hparams_to_yaml(const HParams& hparams) {
  if (hparams.empty()) return "{}\n";
  std::vector<const HParams::Entry*> sorted;
  for (const auto& entry : hparams) sorted.push_back(&entry);
  std::ranges::sort(sorted, {},
                    [](const HParams::Entry* e) -> const std::string& { return e->first; });
  std::string out;
  for (const auto* entry : sorted) {
    out += detail::yaml_string(entry->first);
    out += ": ";
    out += detail::yaml_value(entry->second);
    out += '\n';
  }
  return out;
}

// Lightning's save_hparams_to_yaml; the file is replaced atomically.
inline void save_hparams_to_yaml(const std::filesystem::path& file, const HParams& hparams) {
  write_file_durably(file, hparams_to_yaml(hparams));
}

}  // namespace lightning::loggers
