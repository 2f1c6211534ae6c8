// Checkpoint file names from Lightning's templates: "{epoch}-{val_loss:.2f}" becomes
// "epoch=3-val_loss=0.12" (auto_insert_metric_name) with Python's format-spec rules for
// the subset that file names use: [sign][0][width][.precision][type], type one of
// d f F e E g G %. A value without a spec is written as Python writes it (3, 0.125, 1.0).
#pragma once

#include <lightning/callbacks/monitor.hpp>
#include <lightning/core/bad_option.hpp>
#include <lightning/core/metric_map.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lightning::callbacks {

namespace detail {

[[noreturn]] inline void bad_template(std::string_view tmpl, const std::string& why) {
  throw_bad_option("ModelCheckpointOptions", "filename", "\"" + std::string(tmpl) + "\"", why);
}

// One value under a Python format spec; `integral` values (epoch, step) also take 'd'.
inline std::string format_value(double v, bool integral, std::string_view spec,
                                std::string_view tmpl) {
  if (spec.empty())
    return integral ? std::to_string(static_cast<std::int64_t>(v)) : python_float_repr(v);
  std::string flags;
  std::size_t i = 0;
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) {
    if (spec[i] != '-') flags += spec[i];
    ++i;
  }
  if (i < spec.size() && spec[i] == '0') {
    flags += '0';
    ++i;
  }
  std::size_t digits = i;
  while (digits < spec.size() && spec[digits] >= '0' && spec[digits] <= '9') ++digits;
  const std::string width(spec.substr(i, digits - i));
  i = digits;
  std::string precision;
  if (i < spec.size() && spec[i] == '.') {
    std::size_t end = i + 1;
    while (end < spec.size() && spec[end] >= '0' && spec[end] <= '9') ++end;
    if (end == i + 1) bad_template(tmpl, "a '.' in a format spec needs a precision");
    precision = std::string(spec.substr(i, end - i));
    i = end;
  }
  char type = i < spec.size() ? spec[i++] : 'g';
  if (i != spec.size())
    bad_template(tmpl, "unsupported format spec \"" + std::string(spec) +
                           "\"; use [sign][0][width][.precision][d|f|e|g|%]");
  if (type == 'd' && !integral)
    bad_template(tmpl,
                 "format code 'd' needs an integer (epoch, step); metrics are reals: "
                 "use e.g. \":.4f\"");
  std::string fmt = "%" + flags + width;
  char buf[128];
  if (type == 'd') {
    fmt += "lld";
    std::snprintf(buf, sizeof buf, fmt.c_str(), static_cast<long long>(v));
  } else if (type == '%') {
    fmt += (precision.empty() ? ".6" : precision) + "f%%";
    std::snprintf(buf, sizeof buf, fmt.c_str(), v * 100.0);
  } else if (std::string_view("fFeEgG").find(type) != std::string_view::npos) {
    if (precision.empty() && type != 'g' && type != 'G') precision = ".6";
    fmt += precision;
    fmt += type;
    std::snprintf(buf, sizeof buf, fmt.c_str(), v);
  } else {
    bad_template(tmpl, std::string("unknown format code '") + type + "'");
  }
  return buf;
}

}  // namespace detail

// Formats `tmpl` with `metrics`, plus the integers "epoch" and "step". A name the
// metrics lack is written as 0, as Lightning does (a missing metric is not an error
// here; ModelCheckpoint reports a missing `monitor` itself).
inline std::string format_checkpoint_name(std::string_view tmpl, const MetricMap& metrics,
                                          std::int64_t epoch, std::int64_t step,
                                          bool auto_insert_metric_name = true) {
  const std::string_view pattern = tmpl.empty() ? std::string_view("{epoch}-{step}") : tmpl;
  std::string out;
  std::size_t pos = 0;
  while (pos < pattern.size()) {
    const auto open = pattern.find('{', pos);
    if (open == std::string_view::npos) {
      out += pattern.substr(pos);
      break;
    }
    const auto close = pattern.find('}', open);
    if (close == std::string_view::npos) detail::bad_template(tmpl, "a '{' is never closed");
    out += pattern.substr(pos, open - pos);
    const auto field = pattern.substr(open + 1, close - open - 1);
    const auto colon = field.find(':');
    const auto name = field.substr(0, colon);
    const auto spec =
        colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
    if (name.empty()) detail::bad_template(tmpl, "a field has no metric name");
    if (auto_insert_metric_name) {
      out += name;
      out += '=';
    }
    if (name == "epoch" || name == "step") {
      out += detail::format_value(static_cast<double>(name == "epoch" ? epoch : step), true, spec,
                                  tmpl);
    } else {
      const auto it = metrics.find(name);
      out += it == metrics.end() ? detail::format_value(0.0, true, spec, tmpl)
                                 : detail::format_value(it->second, false, spec, tmpl);
    }
    pos = close + 1;
  }
  return out;
}

}  // namespace lightning::callbacks
