// PyTorch's operator summary (torch.profiler's key_averages().table()): a profile's events
// nested per thread, their self times, averaged by name and printed as PyTorch prints them,
// so that a table from each language can be read side by side.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace lightning::profilers {

// One event of a profile, as the profiler gives it (times relative to the trace's start).
struct ProfiledEvent {
  enum class Device : std::uint8_t { cpu, accelerator };  // an operator, or a kernel
  std::string name;
  std::uint64_t thread = 0;
  std::int64_t start_ns = 0;
  std::int64_t end_ns = 0;
  Device device = Device::cpu;
  bool is_async = false;
  bool is_user_annotation = false;  // a named scope (record_function), not an operator
  std::uint64_t correlation_id = 0;
  // A kernel's launching operator (its correlation_id), 0 for an operator.
  std::uint64_t linked_correlation_id = 0;
};

// One row: the events of one name (ProfilerStep#N are all "ProfilerStep*"), in µs.
struct OperatorStats {
  std::string key;
  std::int64_t count = 0;
  double cpu_time_total = 0;
  double self_cpu_time_total = 0;
  double device_time_total = 0;
  double self_device_time_total = 0;
  ProfiledEvent::Device device = ProfiledEvent::Device::cpu;
  bool is_async = false;
  bool is_user_annotation = false;
  [[nodiscard]] double cpu_time() const noexcept {
    return count == 0 ? 0.0 : cpu_time_total / static_cast<double>(count);
  }
  [[nodiscard]] double device_time() const noexcept {
    return count == 0 ? 0.0 : device_time_total / static_cast<double>(count);
  }
};

struct OperatorTableOptions {
  // PyTorch's sort_by: cpu_time_total, self_cpu_time_total, cpu_time, cuda_time_total
  // (device_time_total), self_cuda_time_total, cuda_time, count; empty: first-seen order.
  std::string sort_by = "cpu_time_total";
  int row_limit = 20;  // -1: every row
  // The accelerator's name in the headers ("cuda"), when kernels were profiled; empty: none.
  std::string device_name{};
};

namespace detail {

// Utility events PyTorch leaves out of its tables.
inline bool filtered_event_name(std::string_view name) noexcept {
  for (const std::string_view n :
       {"[memory]", "[OutOfMemory]", "profiler::_record_function_enter",
        "profiler::_record_function_enter_new", "profiler::_record_function_exit", "aten::is_leaf",
        "aten::output_nr", "aten::_version"})
    if (name == n) return true;
  return false;
}

// PyTorch's FunctionEvent, with what its tree needs.
struct FunctionEvent {
  const ProfiledEvent* source;
  std::string key;
  std::uint64_t thread;
  double start_us, end_us;
  std::vector<double> kernels{};  // durations of the kernels it launched (µs)
  std::vector<std::size_t> children{};
  std::ptrdiff_t parent = -1;
  bool cpu() const noexcept { return source->device == ProfiledEvent::Device::cpu; }
  double elapsed_us() const noexcept { return end_us - start_us; }
};

// PyTorch's EventList with its tree built (_parse_kineto_results, _build_tree).
class EventTree {
 public:
  EventTree(const std::vector<ProfiledEvent>& events, bool use_device) : use_device_(use_device) {
    std::vector<std::size_t> frontend;
    std::multimap<std::uint64_t, std::size_t> linked;  // correlation id -> kernels and CPU events
    for (const auto& e : events) {
      if (filtered_event_name(e.name)) continue;
      std::string key = e.name;
      if (key.starts_with("ProfilerStep#")) key = "ProfilerStep*";
      events_.push_back(FunctionEvent{.source = &e,
                                      .key = std::move(key),
                                      .thread = e.thread,
                                      .start_us = static_cast<double>(e.start_ns) / 1000,
                                      .end_us = static_cast<double>(e.end_ns) / 1000});
      if (e.linked_correlation_id > 0)
        linked.emplace(e.linked_correlation_id, events_.size() - 1);
      else
        frontend.push_back(events_.size() - 1);
    }
    for (const std::size_t i : frontend) {
      auto& fe = events_[i];
      if (!fe.cpu() || fe.source->is_async) continue;
      const auto [first, last] = linked.equal_range(fe.source->correlation_id);
      for (auto it = first; it != last; ++it) {
        auto& linked_event = events_[it->second];
        if (linked_event.cpu())
          linked_event.thread = fe.thread;
        else
          fe.kernels.push_back(linked_event.elapsed_us());
      }
    }
    const auto by_start = [this](std::size_t a, std::size_t b) {
      const auto& x = events_[a];
      const auto& y = events_[b];
      return std::tuple(x.start_us, -x.end_us) < std::tuple(y.start_us, -y.end_us);
    };
    order_.resize(events_.size());
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::stable_sort(order_.begin(), order_.end(), by_start);
    populate_children(by_start);
    remove_duplicate_nodes();
  }

  // key_averages(): one row per (name, device, annotation), in the order names first ran.
  [[nodiscard]] std::vector<OperatorStats> key_averages() const {
    std::vector<OperatorStats> rows;
    std::map<std::tuple<std::string, ProfiledEvent::Device, bool>, std::size_t> index;
    for (const std::size_t i : order_) {
      const auto& e = events_[i];
      const auto k = std::tuple(e.key, e.source->device, e.source->is_user_annotation);
      auto [it, added] = index.emplace(k, rows.size());
      if (added)
        rows.push_back(OperatorStats{.key = e.key,
                                     .device = e.source->device,
                                     .is_async = e.source->is_async,
                                     .is_user_annotation = e.source->is_user_annotation});
      auto& row = rows[it->second];
      row.cpu_time_total += cpu_time_total(i);
      row.device_time_total += device_time_total(i);
      row.self_cpu_time_total += self_cpu_time_total(i);
      row.self_device_time_total += self_device_time_total(i);
      ++row.count;
    }
    return rows;
  }

 private:
  template <class Less>
  void populate_children(Less by_start) {
    std::vector<std::size_t> sync;
    for (std::size_t i = 0; i < events_.size(); ++i)
      if (!events_[i].source->is_async && events_[i].cpu()) sync.push_back(i);
    std::stable_sort(sync.begin(), sync.end(), [this](std::size_t a, std::size_t b) {
      return events_[a].thread < events_[b].thread;
    });
    for (auto first = sync.begin(); first != sync.end();) {
      auto last = std::find_if(first, sync.end(), [&](std::size_t i) {
        return events_[i].thread != events_[*first].thread;
      });
      std::vector<std::size_t> thread_events(first, last);
      std::stable_sort(thread_events.begin(), thread_events.end(), by_start);
      std::vector<std::size_t> open;
      for (const std::size_t i : thread_events) {
        auto& event = events_[i];
        while (!open.empty()) {
          auto& parent = events_[open.back()];
          if (event.start_us >= parent.end_us || event.end_us > parent.end_us) {
            open.pop_back();
          } else {
            parent.children.push_back(i);
            event.parent = static_cast<std::ptrdiff_t>(open.back());
            break;
          }
        }
        open.push_back(i);
      }
      first = last;
    }
  }

  // An event whose parent has the same name and no other child is merged into the parent.
  void remove_duplicate_nodes() {
    for (;;) {
      std::vector<bool> remove(events_.size(), false);
      bool any = false;
      for (const std::size_t i : order_) {
        auto& e = events_[i];
        if (e.parent < 0) continue;
        auto& parent = events_[static_cast<std::size_t>(e.parent)];
        if (parent.source->name != e.source->name || parent.children.size() != 1) continue;
        parent.children = e.children;
        parent.kernels = e.kernels;
        for (const std::size_t c : e.children) events_[c].parent = e.parent;
        remove[i] = any = true;
      }
      if (!any) return;
      std::erase_if(order_, [&](std::size_t i) { return remove[i]; });
    }
  }

  double cpu_time_total(std::size_t i) const {
    return events_[i].cpu() ? events_[i].elapsed_us() : 0.0;
  }
  double self_cpu_time_total(std::size_t i) const {
    const auto& e = events_[i];
    if (e.source->is_async || !e.cpu()) return 0;
    double children = 0;
    for (const std::size_t c : e.children) children += cpu_time_total(c);
    return cpu_time_total(i) - children;
  }
  double device_time_total(std::size_t i) const {
    const auto& e = events_[i];
    if (e.source->is_async || !use_device_) return 0;
    if (!e.cpu()) return e.elapsed_us();
    double kernels = 0, children = 0;
    for (const double d : e.kernels) kernels += d;
    for (const std::size_t c : e.children) children += device_time_total(c);
    return kernels + children;
  }
  double self_device_time_total(std::size_t i) const {
    const auto& e = events_[i];
    if (e.source->is_async || !use_device_) return 0;
    if (!e.cpu()) return device_time_total(i);
    double children = 0;
    for (const std::size_t c : e.children) children += device_time_total(c);
    return device_time_total(i) - children;
  }

  bool use_device_;
  std::vector<FunctionEvent> events_;
  std::vector<std::size_t> order_;  // the events kept, by start time
};

// Python's f"{x:.3f}"-based _format_time: s, ms or us.
inline std::string format_time(double us) {
  char buf[48];
  if (us >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3fs", us / 1e6);
  else if (us >= 1e3)
    std::snprintf(buf, sizeof buf, "%.3fms", us / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.3fus", us);
  return buf;
}
inline std::string format_share(double us, double total) {
  if (total == 0) return "NaN";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f%%", us * 100.0 / total);
  return buf;
}

inline constexpr std::string_view sort_keys =
    "cpu_time_total, self_cpu_time_total, cpu_time, cuda_time_total, self_cuda_time_total, "
    "cuda_time or count";

inline std::optional<double> sort_value(const OperatorStats& s, std::string_view key) {
  if (key == "cpu_time_total") return s.cpu_time_total;
  if (key == "self_cpu_time_total") return s.self_cpu_time_total;
  if (key == "cpu_time") return s.cpu_time();
  if (key == "cuda_time_total" || key == "device_time_total") return s.device_time_total;
  if (key == "self_cuda_time_total" || key == "self_device_time_total")
    return s.self_device_time_total;
  if (key == "cuda_time" || key == "device_time") return s.device_time();
  if (key == "count") return static_cast<double>(s.count);
  return std::nullopt;
}

}  // namespace detail

// The rows of PyTorch's key_averages() for these events.
inline std::vector<OperatorStats> key_averages(const std::vector<ProfiledEvent>& events,
                                               bool use_device) {
  return detail::EventTree(events, use_device).key_averages();
}

// PyTorch's table(sort_by, row_limit) of those rows, as PyTorch prints it (names are
// measured in bytes: PyTorch counts code points, the same for ASCII names).
inline std::string operator_table(std::vector<OperatorStats> rows,
                                  const OperatorTableOptions& options = {}) {
  if (rows.empty()) return "";
  constexpr std::size_t max_name_width = 55, column_width = 12;
  if (!options.sort_by.empty()) {
    if (!detail::sort_value(rows.front(), options.sort_by))
      throw std::invalid_argument("lightning: OperatorTableOptions.sort_by = \"" + options.sort_by +
                                  "\" is not a column; use " + std::string(detail::sort_keys));
    std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
      return *detail::sort_value(a, options.sort_by) > *detail::sort_value(b, options.sort_by);
    });
  }
  const bool has_device_time = std::any_of(
      rows.begin(), rows.end(), [](const auto& r) { return r.self_device_time_total > 0; });
  std::size_t name_width = 0;
  for (const auto& r : rows) name_width = std::max(name_width, r.key.size() + 4);
  name_width = std::min(name_width, max_name_width);

  std::string device = options.device_name.empty() ? "None" : options.device_name;
  for (auto& c : device) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  std::vector<std::string> headers{"Name",        "Self CPU %", "Self CPU",
                                   "CPU total %", "CPU total",  "CPU time avg"};
  if (has_device_time)
    for (const auto& h :
         {"Self " + device, "Self " + device + " %", device + " total", device + " time avg"})
      headers.push_back(h);
  headers.emplace_back("# of Calls");

  const auto row_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const std::size_t w = i == 0 ? name_width : column_width;
      if (cells[i].size() < w) line.append(w - cells[i].size(), ' ');
      line += cells[i];
      line += "  ";
    }
    return line + "\n";
  };
  std::string separator;
  for (std::size_t i = 0; i < headers.size(); ++i)
    separator += std::string(i == 0 ? name_width : column_width, '-') + "  ";
  separator += "\n";

  double self_cpu_total = 0, self_device_total = 0;
  for (const auto& r : rows) {
    self_cpu_total += r.self_cpu_time_total;
    if (r.device == ProfiledEvent::Device::accelerator && !r.is_user_annotation)
      self_device_total += r.self_device_time_total;
  }
  std::string out = separator + row_line(headers) + separator;
  int shown = 0;
  for (const auto& r : rows) {
    if (shown == options.row_limit) break;
    ++shown;
    std::string name = r.key;
    if (name.size() >= max_name_width - 3) name = name.substr(0, max_name_width - 3) + "...";
    std::vector<std::string> cells{
        name,
        detail::format_share(r.self_cpu_time_total, self_cpu_total),
        detail::format_time(r.self_cpu_time_total),
        r.is_async ? "0" : detail::format_share(r.cpu_time_total, self_cpu_total),
        detail::format_time(r.cpu_time_total),
        detail::format_time(r.cpu_time())};
    if (has_device_time) {
      cells.push_back(detail::format_time(r.self_device_time_total));
      cells.push_back(detail::format_share(r.self_device_time_total, self_device_total));
      cells.push_back(detail::format_time(r.device_time_total));
      cells.push_back(detail::format_time(r.device_time()));
    }
    cells.push_back(std::to_string(r.count));
    out += row_line(cells);
  }
  out += separator + "Self CPU time total: " + detail::format_time(self_cpu_total) + "\n";
  if (has_device_time)
    out += "Self " + device + " time total: " + detail::format_time(self_device_total) + "\n";
  return out;
}

}  // namespace lightning::profilers
