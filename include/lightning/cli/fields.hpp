// How the command line reads and writes one value: a Field<T> per type (bool, integers,
// floating values, strings, paths, named enums, BatchLimit, durations, lists,
// std::optional), and the walk over a Hana struct's fields that gives --section.field
// options, their help lines and their part of the resolved config.
//
// A Field<T> provides: type() (the type as --help shows it), decode(node, key) (throws
// UsageError naming the key, the value and the type) and encode(value) (YAML text that
// yaml.safe_load and decode read back as the same value).
#pragma once

#include <lightning/core/duration.hpp>
#include <lightning/core/hyperparameter_struct.hpp>
#include <lightning/loggers/hparams_yaml.hpp>
#include <lightning/trainer/options.hpp>

#include <yaml-cpp/yaml.h>
#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lightning::cli {

// A mistake on the command line or in a config file. LightningCLI prints it and exits
// with status 2 before anything is trained or written.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The resolved config as it is printed: maps keep their order, scalars are YAML text.
struct YamlTree {
  enum class Kind { scalar, map, list };
  Kind kind = Kind::scalar;
  std::string text;  // a scalar's YAML spelling
  std::vector<std::pair<std::string, YamlTree>> entries;
  std::vector<YamlTree> items;

  static YamlTree scalar(std::string text) { return {Kind::scalar, std::move(text), {}, {}}; }
  static YamlTree map() { return {Kind::map, {}, {}, {}}; }
  static YamlTree list() { return {Kind::list, {}, {}, {}}; }

  YamlTree& set(std::string key, YamlTree value) {
    for (auto& [k, v] : entries)
      if (k == key) return v = std::move(value);
    return entries.emplace_back(std::move(key), std::move(value)).second;
  }
  [[nodiscard]] const YamlTree* find(std::string_view key) const {
    for (const auto& [k, v] : entries)
      if (k == key) return &v;
    return nullptr;
  }

  // Block style, two spaces per level, as PyYAML (and so jsonargparse) writes it.
  [[nodiscard]] std::string dump() const {
    std::string out;
    write(out, 0);
    return out;
  }

 private:
  [[nodiscard]] bool empty_collection() const {
    return (kind == Kind::map && entries.empty()) || (kind == Kind::list && items.empty());
  }
  [[nodiscard]] std::string inline_text() const {
    if (kind == Kind::scalar) return text;
    return kind == Kind::map ? "{}" : "[]";
  }
  void write(std::string& out, std::size_t indent) const {
    const std::string pad(indent, ' ');
    if (kind == Kind::map) {
      for (const auto& [k, v] : entries) {
        out += pad + loggers::detail::yaml_string(k) + ":";
        if (v.kind == Kind::scalar || v.empty_collection()) {
          out += " " + v.inline_text() + "\n";
        } else {
          out += "\n";
          v.write(out, v.kind == Kind::map ? indent + 2 : indent);
        }
      }
    } else if (kind == Kind::list) {
      for (const auto& item : items) {
        if (item.kind == Kind::scalar || item.empty_collection()) {
          out += pad + "- " + item.inline_text() + "\n";
        } else {
          std::string nested;
          item.write(nested, indent + 2);
          out += pad + "- " + nested.substr(indent + 2);  // first line after the dash
        }
      }
    } else {
      out += pad + text + "\n";
    }
  }
};

namespace detail {

// A node as the user wrote it, for messages.
inline std::string node_text(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  YAML::Emitter e;
  e << YAML::Flow << node;
  return e.c_str();
}

[[noreturn]] inline void wrong_type(const std::string& key, const YAML::Node& node,
                                    const std::string& type) {
  throw UsageError("lightning: " + key + " = " + node_text(node) + " is not a valid value: " + key +
                   " takes " + type);
}

inline bool is_null(const YAML::Node& node) {
  return !node.IsDefined() || node.IsNull();
}

// A key as text; a YAML key that is not a scalar ([a, b]: 1) is a usage error.
inline std::string key_text(const YAML::Node& key) {
  if (!key.IsScalar())
    throw UsageError("lightning: " + node_text(key) +
                     " is not a valid key: keys are names (trainer, max_epochs, ...)");
  return key.Scalar();
}

template <class T>
std::optional<T> parse_number(const std::string& text) {
  T value{};
  auto begin = text.data();
  const auto end = text.data() + text.size();
  if (begin != end && *begin == '+') ++begin;
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

inline std::optional<double> parse_real(std::string text) {
  if (text == ".inf" || text == ".Inf" || text == ".INF" || text == "+.inf")
    return std::numeric_limits<double>::infinity();
  if (text == "-.inf" || text == "-.Inf" || text == "-.INF")
    return -std::numeric_limits<double>::infinity();
  if (text == ".nan" || text == ".NaN" || text == ".NAN")
    return std::numeric_limits<double>::quiet_NaN();
  return parse_number<double>(text);
}

template <class T>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

}  // namespace detail

template <class T>
struct Field;

template <>
struct Field<bool> {
  static std::string type() { return "bool"; }
  static bool decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar()) {
      const auto& s = node.Scalar();
      for (auto t : {"true", "True", "TRUE", "yes", "Yes", "on", "On"})
        if (s == t) return true;
      for (auto f : {"false", "False", "FALSE", "no", "No", "off", "Off"})
        if (s == f) return false;
    }
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(bool v) { return YamlTree::scalar(v ? "true" : "false"); }
};

template <std::integral T>
requires(!std::same_as<T, bool>) struct Field<T> {
  static std::string type() { return "int"; }
  static T decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar())
      if (auto v = detail::parse_number<T>(node.Scalar())) return *v;
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(T v) { return YamlTree::scalar(std::to_string(v)); }
};

template <std::floating_point T>
struct Field<T> {
  static std::string type() { return "float"; }
  static T decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar())
      if (auto v = detail::parse_real(node.Scalar())) return static_cast<T>(*v);
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(T v) {
    return YamlTree::scalar(loggers::detail::yaml_float(static_cast<double>(v)));
  }
};

template <>
struct Field<std::string> {
  static std::string type() { return "str"; }
  static std::string decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar() && !node.IsNull()) return node.Scalar();
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(const std::string& v) {
    return YamlTree::scalar(loggers::detail::yaml_string(v));
  }
};

template <>
struct Field<std::filesystem::path> {
  static std::string type() { return "path"; }
  static std::filesystem::path decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar() && !node.IsNull()) return node.Scalar();
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(const std::filesystem::path& v) {
    return YamlTree::scalar(loggers::detail::yaml_string(v.string()));
  }
};

template <NamedEnum E>
struct Field<E> {
  static std::string type() {
    std::string names;
    for (const auto& [v, name] : EnumNames<E>::values)
      names += (names.empty() ? "" : " | ") + std::string(name);
    return names;
  }
  static E decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar())
      for (const auto& [v, name] : EnumNames<E>::values)
        if (node.Scalar() == name) return v;
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(E v) { return YamlTree::scalar(std::string(enum_name(v))); }
};

template <>
struct Field<BatchLimit> {
  static std::string type() { return "int (batches) | float (fraction)"; }
  static BatchLimit decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar()) {
      if (auto n = detail::parse_number<std::int64_t>(node.Scalar())) return BatchLimit(*n);
      if (auto f = detail::parse_real(node.Scalar())) return BatchLimit(*f);
    }
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(const BatchLimit& v) {
    return v.is_count() ? Field<std::int64_t>::encode(v.count())
                        : Field<double>::encode(v.fraction());
  }
};

// Lightning's durations (Timer, max_time): seconds, or "DD:HH:MM:SS".
template <class D>
requires detail::is_duration<D>::value struct Field<D> {
  static std::string type() { return "seconds | DD:HH:MM:SS"; }
  static D decode(const YAML::Node& node, const std::string& key) {
    if (node.IsScalar()) {
      const auto& s = node.Scalar();
      if (auto seconds = detail::parse_real(s); seconds && *seconds >= 0)
        return std::chrono::duration_cast<D>(std::chrono::duration<double>(*seconds));
      if (auto d = parse_duration(s)) return std::chrono::duration_cast<D>(*d);
    }
    detail::wrong_type(key, node, type());
  }
  static YamlTree encode(const D& v) {
    return Field<double>::encode(std::chrono::duration<double>(v).count());
  }
};

template <class T>
struct Field<std::optional<T>> {
  static std::string type() {
    std::string t = Field<T>::type();
    t.append(" | null");
    return t;
  }
  static std::optional<T> decode(const YAML::Node& node, const std::string& key) {
    if (detail::is_null(node)) return std::nullopt;
    try {
      return Field<T>::decode(node, key);
    } catch (const UsageError&) {
      detail::wrong_type(key, node, type());  // the message names "| null" too
    }
  }
  static YamlTree encode(const std::optional<T>& v) {
    return v ? Field<T>::encode(*v) : YamlTree::scalar("null");
  }
};

template <class T>
struct Field<std::vector<T>> {
  static std::string type() { return "list[" + Field<T>::type() + "]"; }
  static std::vector<T> decode(const YAML::Node& node, const std::string& key) {
    if (!node.IsSequence()) detail::wrong_type(key, node, type());
    std::vector<T> out;
    for (std::size_t i = 0; i < node.size(); ++i)
      out.push_back(Field<T>::decode(node[i], key + "[" + std::to_string(i) + "]"));
    return out;
  }
  static YamlTree encode(const std::vector<T>& v) {
    auto tree = YamlTree::list();
    for (const auto& item : v) tree.items.push_back(Field<T>::encode(item));
    return tree;
  }
};

// A one-line description per field for --help, e.g.
//   template <> struct lightning::cli::FieldDocs<MyHParams> {
//     static constexpr std::array<std::pair<std::string_view, std::string_view>, 1> values{
//         {{"lr", "learning rate of Adam"}}};
//   };
// or, inside the struct, `static constexpr std::array<...> field_docs{...}`.
template <class S>
struct FieldDocs {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 0> values{};
};
template <class S>
requires requires {
  S::field_docs;
}
struct FieldDocs<S> {
  static constexpr auto values = S::field_docs;
};

template <class S>
std::string_view field_doc(std::string_view field) {
  for (const auto& [name, doc] : FieldDocs<S>::values)
    if (name == field) return doc;
  return {};
}

// One option as --help lists it.
struct OptionHelp {
  std::string key;  // "trainer.max_epochs"
  std::string type;
  std::string default_value;  // as YAML
  std::string doc;
};

namespace detail {
inline std::string one_line(const YamlTree& tree) {
  if (tree.kind == YamlTree::Kind::scalar) return tree.text;
  std::string out = "[";
  for (const auto& item : tree.items) out += (out.size() > 1 ? ", " : "") + item.text;
  return out + "]";
}
}  // namespace detail

// Every field of S under `prefix.`, with its type, its value in `defaults` and its doc.
template <HyperparameterStruct S>
void describe(const S& defaults, const std::string& prefix, std::vector<OptionHelp>& out) {
  boost::hana::for_each(boost::hana::accessors<S>(), [&](auto pair) {
    const std::string name = boost::hana::to<const char*>(boost::hana::first(pair));
    const auto& value = boost::hana::second(pair)(defaults);
    using T = std::remove_cvref_t<decltype(value)>;
    if constexpr (HyperparameterStruct<T>) {
      describe(value, prefix + "." + name, out);
    } else {
      out.push_back({prefix + "." + name, Field<T>::type(),
                     detail::one_line(Field<T>::encode(value)), std::string(field_doc<S>(name))});
    }
  });
}

// Sets the fields `node` names (a map); calls unknown(full key) for a key S has not.
template <HyperparameterStruct S, class Unknown>
void decode(S& target, const YAML::Node& node, const std::string& prefix, Unknown&& unknown) {
  if (detail::is_null(node)) return;
  if (!node.IsMap())
    throw UsageError("lightning: " + prefix + " = " + detail::node_text(node) +
                     " is not a valid value: " + prefix + " is a section of options (a map)");
  for (const auto& entry : node) {
    const auto key = detail::key_text(entry.first);
    bool found = false;
    boost::hana::for_each(boost::hana::accessors<S>(), [&](auto pair) {
      if (found || key != boost::hana::to<const char*>(boost::hana::first(pair))) return;
      found = true;
      auto& field = boost::hana::second(pair)(target);
      using T = std::remove_cvref_t<decltype(field)>;
      if constexpr (HyperparameterStruct<T>)
        decode(field, entry.second, prefix + "." + key, unknown);
      else
        field = Field<T>::decode(entry.second, prefix + "." + key);
    });
    if (!found) unknown(prefix + "." + key);
  }
}

// The struct as a map of its fields, in declaration order.
template <HyperparameterStruct S>
YamlTree encode(const S& value) {
  auto tree = YamlTree::map();
  boost::hana::for_each(boost::hana::accessors<S>(), [&](auto pair) {
    const auto& field = boost::hana::second(pair)(value);
    using T = std::remove_cvref_t<decltype(field)>;
    if constexpr (HyperparameterStruct<T>)
      tree.set(boost::hana::to<const char*>(boost::hana::first(pair)), encode(field));
    else
      tree.set(boost::hana::to<const char*>(boost::hana::first(pair)), Field<T>::encode(field));
  });
  return tree;
}

}  // namespace lightning::cli
