// What a device reports about itself (Lightning's accelerator.get_device_stats): on the CPU
// the numbers Lightning takes from psutil (memory and swap in use, CPU use since the last
// call) and this process's resident memory and CPU use, read from /proc; on CUDA the
// caching allocator's statistics under torch.cuda.memory_stats()'s names.
#pragma once

#include <lightning/core/metric_map.hpp>
#include <lightning/core/torch_version.hpp>

#include <c10/core/Device.h>

#if LIGHTNING_TORCH_AT_LEAST(2, 11)
#include <ATen/DeviceAccelerator.h>
#endif

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lightning {

namespace detail {
// psutil rounds its percentages to one decimal.
inline double round1(double percent) {
  return std::round(percent * 10.0) / 10.0;
}

// /proc/meminfo's fields in kB.
inline std::map<std::string, double> meminfo() {
  std::map<std::string, double> fields;
  std::ifstream in("/proc/meminfo");
  std::string key;
  double value = 0;
  std::string unit;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    if (words >> key >> value) fields[key.substr(0, key.size() - 1)] = value;
  }
  return fields;
}
}  // namespace detail

// The CPU's numbers. cpu_percent and process_cpu_percent are the use since the previous
// call of this object (the first call: since it was made), as psutil's cpu_percent().
class CpuStats {
 public:
  CpuStats() : last_(sample()) {}

  // Lightning's keys (cpu_vm_percent, cpu_percent, cpu_swap_percent) and ours
  // (process_rss_bytes, process_cpu_percent).
  [[nodiscard]] MetricMap read() {
    MetricMap m;
    const auto mem = detail::meminfo();
    const auto get = [&](const char* k) {
      const auto it = mem.find(k);
      return it == mem.end() ? 0.0 : it->second;
    };
    const double total = get("MemTotal"), available = get("MemAvailable");
    m["cpu_vm_percent"] = total > 0 ? detail::round1((total - available) / total * 100.0) : 0.0;
    const double swap_total = get("SwapTotal"), swap_free = get("SwapFree");
    m["cpu_swap_percent"] =
        swap_total > 0 ? detail::round1((swap_total - swap_free) / swap_total * 100.0) : 0.0;
    const Sample now = sample();
    const double all = now.all - last_.all, busy = now.busy - last_.busy;
    m["cpu_percent"] = all > 0 ? detail::round1(std::max(0.0, busy) / all * 100.0) : 0.0;
    const double wall = now.wall - last_.wall;
    m["process_cpu_percent"] =
        wall > 0 ? detail::round1((now.process - last_.process) / wall * 100.0) : 0.0;
    m["process_rss_bytes"] = resident_bytes();
    last_ = now;
    return m;
  }

  // This process's resident set (/proc/self/statm's second field, in pages).
  [[nodiscard]] static double resident_bytes() {
    std::ifstream in("/proc/self/statm");
    double size = 0, resident = 0;
    in >> size >> resident;
    return resident * static_cast<double>(::sysconf(_SC_PAGESIZE));
  }

 private:
  struct Sample {
    double all = 0, busy = 0;  // system CPU time (clock ticks): all of it, and not idle
    double process = 0;        // this process's CPU seconds
    double wall = 0;           // seconds
  };
  static Sample sample() {
    Sample s;
    std::ifstream in("/proc/stat");
    std::string cpu;
    in >> cpu;  // the aggregate "cpu" line: user nice system idle iowait irq softirq steal
    std::vector<double> t;  // guest guest_nice (already counted in user and nice)
    for (double v; t.size() < 10 && in >> v;) t.push_back(v);
    t.resize(10, 0.0);
    double sum = 0;
    for (std::size_t i = 0; i < 8; ++i) sum += t[i];
    s.all = sum;
    s.busy = sum - t[3] - t[4];  // psutil: busy = all - idle - iowait
    timespec cpu_time{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_time);
    s.process = static_cast<double>(cpu_time.tv_sec) + static_cast<double>(cpu_time.tv_nsec) * 1e-9;
    s.wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    return s;
  }

  Sample last_;
};

// torch.cuda.memory_stats(device): the caching allocator's counters as
// "<stat>.<all|small_pool|large_pool>.<current|peak|allocated|freed>" and the plain counts.
inline MetricMap cuda_memory_stats([[maybe_unused]] c10::Device device) {
#if LIGHTNING_TORCH_AT_LEAST(2, 11)
  const auto stats = at::getDeviceAllocator(c10::kCUDA)->getDeviceStats(device.index());
  MetricMap m;
  const char* pools[] = {"all", "small_pool", "large_pool"};
  const auto add_array = [&](const char* name, const auto& array) {
    for (std::size_t p = 0; p < 3; ++p) {
      const std::string key = std::string(name) + "." + pools[p] + ".";
      m[key + "current"] = static_cast<double>(array[p].current);
      m[key + "peak"] = static_cast<double>(array[p].peak);
      m[key + "allocated"] = static_cast<double>(array[p].allocated);
      m[key + "freed"] = static_cast<double>(array[p].freed);
    }
  };
  const auto add_stat = [&](const char* name, const auto& stat) {
    m[std::string(name) + ".current"] = static_cast<double>(stat.current);
    m[std::string(name) + ".peak"] = static_cast<double>(stat.peak);
    m[std::string(name) + ".allocated"] = static_cast<double>(stat.allocated);
    m[std::string(name) + ".freed"] = static_cast<double>(stat.freed);
  };
  add_array("allocation", stats.allocation);
  add_array("segment", stats.segment);
  add_array("active", stats.active);
  add_array("inactive_split", stats.inactive_split);
  add_array("allocated_bytes", stats.allocated_bytes);
  add_array("reserved_bytes", stats.reserved_bytes);
  add_array("active_bytes", stats.active_bytes);
  add_array("inactive_split_bytes", stats.inactive_split_bytes);
  add_array("requested_bytes", stats.requested_bytes);
  add_stat("oversize_allocations", stats.oversize_allocations);
  add_stat("oversize_segments", stats.oversize_segments);
  m["num_alloc_retries"] = static_cast<double>(stats.num_alloc_retries);
  m["num_ooms"] = static_cast<double>(stats.num_ooms);
  m["num_sync_all_streams"] = static_cast<double>(stats.num_sync_all_streams);
  m["num_device_alloc"] = static_cast<double>(stats.num_device_alloc);
  m["num_device_free"] = static_cast<double>(stats.num_device_free);
  m["max_split_size"] = static_cast<double>(stats.max_split_size);
  return m;
#else
  throw std::runtime_error(
      "lightning: CUDA memory statistics need LibTorch 2.11 or later (at::getDeviceAllocator)");
#endif
}

}  // namespace lightning
