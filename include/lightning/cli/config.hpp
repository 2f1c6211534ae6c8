// The raw configuration a command line gathers before it is typed: YAML files merged in
// order (later files win), dotted flags set on top (--trainer.max_epochs 20), each value
// read as YAML (jsonargparse's rule: 20 is an int, null is null, [1, 2] a list), and
// Lightning's spellings of callbacks and loggers (class_path / init_args) brought to one
// shape: trainer.callbacks.<Name>.<field>.
#pragma once

#include <lightning/cli/fields.hpp>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lightning::cli {

namespace detail {

inline std::vector<std::string> split_key(std::string_view key) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (true) {
    const auto dot = key.find('.', at);
    parts.emplace_back(key.substr(at, dot - at));
    if (dot == std::string_view::npos) break;
    at = dot + 1;
  }
  return parts;
}

// "lightning.pytorch.callbacks.EarlyStopping", "lightning::callbacks::EarlyStopping" and
// "EarlyStopping" name the same class.
inline std::string short_class_name(std::string_view path) {
  const auto colons = path.rfind("::");
  if (colons != std::string_view::npos) path = path.substr(colons + 2);
  const auto dot = path.rfind('.');
  if (dot != std::string_view::npos) path = path.substr(dot + 1);
  return std::string(path);
}

// Sets map[key] to a new node. (yaml-cpp's `map[key] = v` writes through the node map[key]
// refers to, and so through every YAML alias of it; removing the key first does not.)
inline void replace(YAML::Node map, const std::string& key, const YAML::Node& value) {
  map.remove(key);
  map[key] = value;
}

// Deep merge: maps merge key by key, anything else replaces. optimizer and lr_scheduler
// sections of another class replace the section (their arguments belong to the class).
inline void merge_into(YAML::Node target, const YAML::Node& source, bool top = false) {
  for (const auto& entry : source) {
    const auto key = key_text(entry.first);
    YAML::Node existing = target[key];
    bool merge = existing.IsMap() && entry.second.IsMap();
    if (merge && top && (key == "optimizer" || key == "lr_scheduler")) {
      const auto class_of = [](const YAML::Node& n) {
        return n["class_path"] && n["class_path"].IsScalar()
                   ? short_class_name(n["class_path"].Scalar())
                   : std::string();
      };
      merge = class_of(existing) == class_of(entry.second) || class_of(entry.second).empty();
    }
    if (merge)
      merge_into(existing, entry.second);
    else
      replace(target, key, YAML::Clone(entry.second));
  }
}

// Damerau-free Levenshtein distance, for "did you mean".
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace detail

// The closest of `valid` to `key`, when it is close enough to be what was meant.
inline std::string closest_key(std::string_view key, const std::vector<std::string>& valid) {
  std::string best;
  std::size_t best_distance = std::string::npos;
  for (const auto& candidate : valid) {
    const auto d = detail::edit_distance(key, candidate);
    if (d < best_distance) best_distance = d, best = candidate;
  }
  return best_distance <= std::max<std::size_t>(3, key.size() / 3) ? best : std::string();
}

// The configuration as given: a YAML map built from files and flags.
class RawConfig {
 public:
  // The loggers the program declares (their options: trainer.logger.<field> when there is
  // one, as Lightning's --trainer.logger.save_dir).
  explicit RawConfig(std::vector<std::string> logger_names = {})
      : loggers_(std::move(logger_names)), root_(YAML::NodeType::Map) {}

  // Merges a YAML file; a missing file, a syntax error or a file that is not a map of
  // sections is a UsageError naming the path (and the line).
  void merge_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw UsageError("lightning: config file not found: " + path.string() +
                       (std::filesystem::exists(path, ec) ? " (it is not a regular file)" : ""));
    YAML::Node doc;
    try {
      doc = YAML::LoadFile(path.string());
    } catch (const YAML::ParserException& e) {
      throw UsageError("lightning: config file " + path.string() + ", line " +
                       std::to_string(e.mark.line + 1) + ", column " +
                       std::to_string(e.mark.column + 1) + ": " + e.msg);
    } catch (const YAML::BadFile&) {
      throw UsageError("lightning: config file " + path.string() + " cannot be read");
    }
    if (doc.IsNull()) return;  // an empty file
    if (!doc.IsMap())
      throw UsageError("lightning: config file " + path.string() +
                       " must hold a map of sections (trainer:, model:, data:, ...), not " +
                       detail::node_text(doc));
    detail::merge_into(root_, normalized(doc, path.string()), /*top=*/true);
  }

  // Sets one dotted key from the command line; `value` is read as YAML.
  void set_flag(const std::string& key, const std::string& value) {
    YAML::Node parsed;
    if (value.empty()) {
      parsed = YAML::Node(std::string());
    } else {
      try {
        parsed = YAML::Load(value);
      } catch (const YAML::Exception& e) {
        throw UsageError("lightning: --" + key + " " + value + ": the value is not valid YAML (" +
                         e.msg + ")");
      }
    }
    auto parts = detail::split_key(key);
    for (const auto& part : parts)
      if (part.empty()) throw UsageError("lightning: --" + key + " is not a valid option name");
    // Lightning's spellings: --trainer.logger.save_dir, --trainer.logger.init_args.save_dir,
    // --trainer.callbacks.EarlyStopping.init_args.patience.
    if (parts.size() > 2 && parts[0] == "trainer" && parts[1] == "logger" && loggers_.size() == 1)
      parts[1] = "callbacks", parts.insert(parts.begin() + 2, loggers_.front());
    parts.erase(std::remove(parts.begin() + std::min<std::ptrdiff_t>(3, parts.size()), parts.end(),
                            std::string("init_args")),
                parts.end());
    if (parts.size() == 1 && (parts[0] == "optimizer" || parts[0] == "lr_scheduler") &&
        parsed.IsScalar()) {
      // --optimizer Adam: a class name; its options are kept only if it is the same class.
      YAML::Node section = root_[parts[0]];
      const bool same = section.IsMap() && section["class_path"] &&
                        detail::short_class_name(section["class_path"].as<std::string>()) ==
                            detail::short_class_name(parsed.Scalar());
      if (!same) detail::replace(root_, parts[0], YAML::Node(YAML::NodeType::Map));
      detail::replace(root_[parts[0]], "class_path", YAML::Node(parsed.Scalar()));
      return;
    }
    if (parts.size() > 1 && (parts[0] == "optimizer" || parts[0] == "lr_scheduler") &&
        parts[1] != "class_path" && parts[1] != "init_args")
      parts.insert(parts.begin() + 1, "init_args");
    // (yaml-cpp's Node is a reference: `=` writes through it, reset() rebinds it.)
    YAML::Node at = root_;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      if (!at[parts[i]].IsMap()) detail::replace(at, parts[i], YAML::Node(YAML::NodeType::Map));
      YAML::Node next = at[parts[i]];
      at.reset(next);
    }
    if (parts.size() == 2 && parts[0] == "trainer" &&
        ((parts[1] == "logger" && (parsed.IsMap() || parsed.IsSequence())) ||
         parts[1] == "callbacks")) {
      // Lightning's shapes as a flag: --trainer.callbacks '[{class_path: ..., init_args: ...}]'
      YAML::Node wrapped(YAML::NodeType::Map);
      wrapped["trainer"] = YAML::Node(YAML::NodeType::Map);
      wrapped["trainer"][parts[1]] = parsed;
      detail::merge_into(root_, normalized(wrapped, "--trainer." + parts[1]));
      return;
    }
    detail::replace(at, parts.back(), parsed);
  }

  [[nodiscard]] const YAML::Node& root() const noexcept { return root_; }

 private:
  // Lightning's shapes brought to this class's: callbacks as a list of
  // {class_path, init_args}, a logger as one such map or a list of them, optimizer and
  // lr_scheduler as a bare class name.
  static YAML::Node normalized(const YAML::Node& doc, const std::string& source) {
    YAML::Node out = YAML::Clone(doc);
    const auto entry_of = [&](const YAML::Node& item, const char* where) {
      if (item.IsScalar())
        return std::make_pair(detail::short_class_name(item.Scalar()), YAML::Node());
      if (!item.IsMap() || !item["class_path"])
        throw UsageError("lightning: " + source + ": each entry of trainer." + where +
                         " needs a class_path (and optionally init_args), not " +
                         detail::node_text(item));
      return std::make_pair(detail::short_class_name(item["class_path"].as<std::string>()),
                            item["init_args"] ? YAML::Clone(item["init_args"]) : YAML::Node());
    };
    YAML::Node trainer = out["trainer"];
    if (trainer && trainer.IsMap()) {
      YAML::Node callbacks(YAML::NodeType::Map);
      const auto add = [&](const YAML::Node& list, const char* where) {
        if (list.IsSequence()) {
          for (const auto& item : list) {
            auto [name, args] = entry_of(item, where);
            callbacks[name] =
                args.IsDefined() && !args.IsNull() ? args : YAML::Node(YAML::NodeType::Map);
          }
        } else if (list.IsMap() && list["class_path"]) {
          auto [name, args] = entry_of(list, where);
          callbacks[name] =
              args.IsDefined() && !args.IsNull() ? args : YAML::Node(YAML::NodeType::Map);
        } else if (list.IsMap()) {
          detail::merge_into(callbacks, list);  // already this class's shape
        } else if (!list.IsNull()) {
          throw UsageError("lightning: " + source + ": trainer." + where + " = " +
                           detail::node_text(list) +
                           " is not a valid value: a list of {class_path, init_args}");
        }
      };
      if (trainer["callbacks"]) add(trainer["callbacks"], "callbacks");
      if (trainer["callbacks"] && !trainer["callbacks"].IsMap() &&
          !trainer["callbacks"].IsSequence() && !trainer["callbacks"].IsNull())
        throw UsageError("lightning: " + source +
                         ": trainer.callbacks = " + detail::node_text(trainer["callbacks"]) +
                         " is not a valid value: a list of {class_path, init_args}");
      if (trainer["logger"] && !trainer["logger"].IsScalar() && !trainer["logger"].IsNull()) {
        add(trainer["logger"], "logger");
        trainer.remove("logger");
      }
      if (trainer["callbacks"] || callbacks.size() > 0) trainer["callbacks"] = callbacks;
    }
    for (const char* section : {"optimizer", "lr_scheduler"}) {
      YAML::Node s = out[section];
      if (s && s.IsScalar()) {
        const auto name = s.Scalar();
        out[section] = YAML::Node(YAML::NodeType::Map);
        out[section]["class_path"] = name;
      }
    }
    return out;
  }

  std::vector<std::string> loggers_;
  YAML::Node root_;
};

}  // namespace lightning::cli
