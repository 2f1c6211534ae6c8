// ModelSummary: Lightning's table of a module's named submodules (type, parameter
// count, train/eval mode) and its parameter totals, printed at the start of fit on
// rank zero. summarize() computes the same rows and totals for use anywhere.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lightning::callbacks {

// One row: a submodule named by its path from the module ("encoder.0").
struct LayerSummary {
  std::string name;
  std::string type;     // class name without namespaces or LibTorch's `Impl` suffix
  std::int64_t params;  // parameters of the submodule and everything below it
  bool training;        // its mode: train or eval
};

struct Summary {
  std::vector<LayerSummary> layers;
  std::int64_t trainable_params = 0;
  std::int64_t total_params = 0;
  double params_size_mb = 0;       // bytes of all parameters (each by its dtype) / 1e6
  std::int64_t train_modules = 0;  // submodules in train mode, at every depth
  std::int64_t eval_modules = 0;

  [[nodiscard]] std::int64_t non_trainable_params() const noexcept {
    return total_params - trainable_params;
  }
  // Lightning's text table (what ModelSummary prints).
  [[nodiscard]] std::string table() const;
};

namespace detail {

// `1234567` -> "1,234,567" (Python's `,` format).
inline std::string group_thousands(std::string digits) {
  const std::size_t first = digits.find_first_of("0123456789");
  std::size_t end = digits.find_first_not_of("0123456789", first);
  if (end == std::string::npos) end = digits.size();
  for (std::size_t i = end; i > first + 3; i -= 3) digits.insert(i - 3, 1, ',');
  return digits;
}

// "ns::inner::EncoderImpl" -> "Encoder"; template arguments stay as written.
inline std::string short_type_name(std::string_view name) {
  const std::size_t bracket = name.find('<');
  const std::size_t colons = name.substr(0, bracket).rfind("::");
  if (colons != std::string_view::npos) name.remove_prefix(colons + 2);
  if (name.find('<') == std::string_view::npos && name.size() > 4 && name.ends_with("Impl"))
    name.remove_suffix(4);
  return std::string(name);
}

[[noreturn]] inline void bad_max_depth(const char* option, int value) {
  std::string message = "lightning: ";
  message += option;
  message += " = ";
  message += std::to_string(value);
  message += " must be -1 (all levels), 0 (none) or > 0";
  throw std::invalid_argument(message);
}

}  // namespace detail

// Lightning's get_human_readable_count: 66 -> "66  ", 1234 -> "1.2 K", 123456 -> "123 K",
// 3400000 -> "3.4 M" (units K, M, B, T; three significant digits at most).
inline std::string human_readable_count(std::int64_t number) {
  if (number < 0) {
    std::string message = "lightning: human_readable_count(";
    message += std::to_string(number);
    message += "): the count must be >= 0";
    throw std::invalid_argument(message);
  }
  static constexpr const char* labels[] = {" ", "K", "M", "B", "T"};
  std::int64_t digits = 1;
  for (std::int64_t n = number; n >= 10; n /= 10) ++digits;
  const std::int64_t groups = std::min<std::int64_t>((digits + 2) / 3, 5);
  const std::int64_t index = groups - 1;
  const double scaled =
      static_cast<double>(number) / std::pow(10.0, 3.0 * static_cast<double>(index));
  std::string text;
  if (index < 1 || scaled >= 100) {
    text = detail::group_thousands(std::to_string(static_cast<std::int64_t>(scaled)));
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", scaled);
    text = buf;
  }
  text += ' ';
  text += labels[index];
  return text;
}

// The rows of `module`'s named submodules down to `max_depth` levels (-1: all; 0: none)
// and totals over all of its parameters.
inline Summary summarize(const torch::nn::Module& module, int max_depth = 1) {
  if (max_depth < -1) detail::bad_max_depth("summarize(module, max_depth)", max_depth);
  Summary s;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    const auto& sub = *item.value();
    (sub.is_training() ? s.train_modules : s.eval_modules) += 1;
    const auto depth = std::count(item.key().begin(), item.key().end(), '.') + 1;
    if (max_depth != -1 && depth > max_depth) continue;
    std::int64_t params = 0;
    for (const auto& p : sub.parameters()) params += p.numel();
    s.layers.push_back(
        {item.key(), detail::short_type_name(sub.name()), params, sub.is_training()});
  }
  double bytes = 0;
  for (const auto& p : module.parameters()) {
    s.total_params += p.numel();
    if (p.requires_grad()) s.trainable_params += p.numel();
    bytes += static_cast<double>(p.numel()) * static_cast<double>(p.element_size());
  }
  s.params_size_mb = bytes / 1e6;
  return s;
}

inline std::string Summary::table() const {
  struct Column {
    const char* header;
    std::vector<std::string> cells;
    std::size_t width = 0;
  };
  std::vector<Column> cols{{" ", {}}, {"Name", {}}, {"Type", {}}, {"Params", {}}, {"Mode", {}}};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    cols[0].cells.push_back(std::to_string(i));
    cols[1].cells.push_back(layers[i].name);
    cols[2].cells.push_back(layers[i].type);
    cols[3].cells.push_back(human_readable_count(layers[i].params));
    cols[4].cells.push_back(layers[i].training ? "train" : "eval");
  }
  std::size_t total_width = 3 * (cols.size() + 1);
  for (auto& c : cols) {
    c.width = std::string_view(c.header).size();
    for (const auto& cell : c.cells) c.width = std::max(c.width, cell.size());
    total_width += c.width;
  }
  std::string out;
  auto row = [&](auto cell_of) {
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (c > 0) out += " | ";
      const std::string_view cell = cell_of(cols[c]);
      out += cell;
      out.append(cols[c].width - cell.size(), ' ');
    }
    out += '\n';
  };
  const std::string rule(total_width, '-');
  row([](const Column& c) { return std::string_view(c.header); });
  out += rule;
  out += '\n';
  for (std::size_t i = 0; i < layers.size(); ++i)
    row([i](const Column& c) { return std::string_view(c.cells[i]); });
  out += rule;
  out += '\n';
  auto total = [&](std::string value, const char* label) {
    if (value.size() < 10) value.append(10 - value.size(), ' ');
    out += value;
    out += label;
    out += '\n';
  };
  char size[64];
  std::snprintf(size, sizeof size, "%.3f", params_size_mb);
  total(human_readable_count(trainable_params), "Trainable params");
  total(human_readable_count(non_trainable_params()), "Non-trainable params");
  total(human_readable_count(total_params), "Total params");
  total(detail::group_thousands(size), "Total estimated model params size (MB)");
  total(std::to_string(train_modules), "Modules in train mode");
  total(std::to_string(eval_modules), "Modules in eval mode");
  return out;
}

struct ModelSummaryOptions {
  int max_depth = 1;               // levels of submodules shown (-1: all; 0: no summary)
  std::ostream* stream = nullptr;  // default: std::cout
};

class ModelSummary {
 public:
  static constexpr bool is_model_summary = true;

  explicit ModelSummary(ModelSummaryOptions options = {}) : options_(options) {
    if (options_.max_depth < -1)
      detail::bad_max_depth("ModelSummaryOptions.max_depth", options_.max_depth);
  }

  [[nodiscard]] const ModelSummaryOptions& options() const noexcept { return options_; }
  // The Trainer's default instance is turned off by enable_model_summary = false.
  void disable() noexcept { enabled_ = false; }
  void enable() noexcept { enabled_ = true; }
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

  template <class T, class M>
  void on_fit_start(T& trainer, M& module) {
    if (!enabled_ || options_.max_depth == 0 || !trainer.is_global_zero()) return;
    std::ostream& out = options_.stream ? *options_.stream : std::cout;
    out << summarize(module, options_.max_depth).table() << std::flush;
  }

 private:
  ModelSummaryOptions options_;
  bool enabled_ = true;
};

}  // namespace lightning::callbacks
