// HParams: a module's hyperparameters (Lightning's save_hyperparameters / self.hparams),
// declared once, then written to loggers (hparams.yaml, TensorBoard) and checkpoints.
// Torch-free on purpose: loggers use it without LibTorch.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lightning {

// One value: a flag, an integer, a real or a text, as YAML and TensorBoard's hparams
// plugin can show them. The constructors pick the kind from the C++ type, so that
// `{"layers", 3}` is an integer and `{"optimizer", "adam"}` a text, never a bool.
class HParam {
 public:
  using Value = std::variant<bool, std::int64_t, double, std::string>;

  HParam(bool v) : value_(v) {}  // NOLINT(google-explicit-constructor)
  template <std::integral T>
  requires(!std::same_as<T, bool>) HParam(T v)  // NOLINT(google-explicit-constructor)
      : value_(static_cast<std::int64_t>(v)) {}
  template <std::floating_point T>
  HParam(T v) : value_(static_cast<double>(v)) {}         // NOLINT(google-explicit-constructor)
  HParam(const char* v) : value_(std::string(v)) {}       // NOLINT(google-explicit-constructor)
  HParam(std::string v) : value_(std::move(v)) {}         // NOLINT(google-explicit-constructor)
  HParam(std::string_view v) : value_(std::string(v)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] const Value& value() const noexcept { return value_; }
  template <class T>
  [[nodiscard]] bool holds() const noexcept {
    return std::holds_alternative<T>(value_);
  }
  template <class T>
  [[nodiscard]] const T& get() const {
    return std::get<T>(value_);
  }
  friend bool operator==(const HParam&, const HParam&) = default;

 private:
  Value value_;
};

// Names and values in declaration order (checkpoints and TensorBoard keep it;
// hparams.yaml sorts the names, as Lightning's yaml.dump does).
class HParams {
 public:
  using Entry = std::pair<std::string, HParam>;

  HParams() = default;
  HParams(std::initializer_list<Entry> entries) {
    for (const auto& [name, value] : entries) set(name, value);
  }

  // Adds `name`, or replaces its value keeping its position.
  void set(std::string_view name, HParam value) {
    for (auto& e : entries_)
      if (e.first == name) {
        e.second = std::move(value);
        return;
      }
    entries_.emplace_back(std::string(name), std::move(value));
  }
  [[nodiscard]] const HParam* find(std::string_view name) const noexcept {
    for (const auto& e : entries_)
      if (e.first == name) return &e.second;
    return nullptr;
  }
  [[nodiscard]] bool contains(std::string_view name) const noexcept {
    return find(name) != nullptr;
  }
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] auto begin() const noexcept { return entries_.begin(); }
  [[nodiscard]] auto end() const noexcept { return entries_.end(); }
  friend bool operator==(const HParams&, const HParams&) = default;

 private:
  std::vector<Entry> entries_;
};

}  // namespace lightning
