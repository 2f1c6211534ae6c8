// The largest batch size that trains (Lightning's tuner/batch_size_scaling.py): short
// trials of a few steps at growing batch sizes until one runs out of memory, by doubling
// ("power") or doubling then bisecting ("binsearch"). On CUDA a trial fails as Lightning's
// does, with an out-of-memory error; on the CPU, where running out of memory means swap
// or the OOM killer rather than an error, a trial fails when the tensors it allocates
// peak above a limit you set.
#pragma once

#include <lightning/core/module.hpp>
#include <lightning/core/torch_version.hpp>

#include <c10/core/Allocator.h>
#if LIGHTNING_TORCH_AT_LEAST(2, 11)
#include <ATen/DeviceAccelerator.h>
#endif
#include <c10/util/ThreadLocalDebugInfo.h>
#include <torch/torch.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace lightning {

enum class BatchSizeScaling { power, binsearch };

struct BatchSizeFinderOptions {
  BatchSizeScaling mode = BatchSizeScaling::power;
  std::int64_t steps_per_trial = 3;  // optimizer steps per trial
  std::int64_t init_val = 2;         // the first batch size tried
  std::int64_t max_trials = 25;
  double margin = 0.05;         // binsearch: the result is reduced by this share, in [0, 1)
  std::int64_t max_val = 8192;  // never tried above this
  // A trial whose CPU tensors (parameters and optimizer state excluded: those allocated
  // before it) peak above this many bytes counts as out of memory; unset: only errors do.
  std::optional<std::int64_t> memory_limit_bytes = std::nullopt;
};

namespace detail {

// Lightning's is_oom_error: CUDA out of memory, cuDNN's unsupported-size error, or the
// CPU allocator failing.
inline bool is_oom_error(const std::exception& e) {
  const std::string_view m = e.what();
  return (m.find("CUDA") != m.npos && m.find("out of memory") != m.npos) ||
         m.find("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED.") != m.npos ||
         m.find("DefaultCPUAllocator: can't allocate memory") != m.npos;
}

// Lightning's garbage_collection_cuda after a failed trial: the caching allocator's free
// blocks go back to the device (LibTorch 2.11's at::getDeviceAllocator; before it the
// cache is kept, and the next trial reuses it).
inline void release_cached_memory(c10::Device device) {
#if LIGHTNING_TORCH_AT_LEAST(2, 11)
  if (device.is_cuda()) at::getDeviceAllocator(c10::kCUDA)->emptyCache();
#else
  (void)device;
#endif
}

// The argument types of MemoryReportingInfoBase::reportMemoryUsage (its totals are
// int64_t on LibTorch 1.13 and size_t on 2.x).
template <class>
struct memory_report_totals;
template <class C, class R, class P, class A, class T, class U, class D>
struct memory_report_totals<R (C::*)(P, A, T, U, D)> {
  using allocated = T;
  using reserved = U;
};

// Counts the CPU allocations and frees c10's allocator reports on this thread while it is
// installed (what torch.profiler's profile_memory reads), keeping the peak.
class CpuTensorMemory final : public c10::MemoryReportingInfoBase {
  using totals = memory_report_totals<decltype(&c10::MemoryReportingInfoBase::reportMemoryUsage)>;

 public:
  void reportMemoryUsage(void*, std::int64_t alloc_size, typename totals::allocated,
                         typename totals::reserved, c10::Device device) override {
    if (!device.is_cpu()) return;
    current_ += alloc_size;
    peak_ = std::max(peak_, current_);
  }
  [[nodiscard]] bool memoryProfilingEnabled() const override { return true; }
  [[nodiscard]] std::int64_t peak() const noexcept { return peak_; }

 private:
  std::int64_t current_ = 0, peak_ = 0;
};

}  // namespace detail

// The peak of the CPU tensor memory `f` allocates on this thread, above what was allocated
// before it (the measure BatchSizeFinderOptions.memory_limit_bytes is compared with).
template <class F>
std::int64_t cpu_tensor_memory_peak(F&& f) {
  auto counter = std::make_shared<detail::CpuTensorMemory>();
  {
    c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, counter);
    std::forward<F>(f)();
  }
  return counter->peak();
}

namespace detail {

inline void check_batch_size_finder_options(const BatchSizeFinderOptions& o) {
  const auto bad = [](const std::string& what, const char* why) {
    throw std::invalid_argument("lightning: BatchSizeFinderOptions." + what + " " + why);
  };
  if (o.steps_per_trial < 1)
    bad("steps_per_trial = " + std::to_string(o.steps_per_trial), "must be >= 1 (e.g. 3)");
  if (o.init_val < 1) bad("init_val = " + std::to_string(o.init_val), "must be >= 1 (e.g. 2)");
  if (o.max_trials < 1) bad("max_trials = " + std::to_string(o.max_trials), "must be >= 1");
  if (!(o.margin >= 0.0 && o.margin < 1.0))
    bad("margin = " + std::to_string(o.margin), "must be in [0, 1) (e.g. 0.05)");
  if (o.max_val < 1) bad("max_val = " + std::to_string(o.max_val), "must be >= 1");
  if (o.memory_limit_bytes && *o.memory_limit_bytes < 1)
    bad("memory_limit_bytes = " + std::to_string(*o.memory_limit_bytes),
        "must be > 0, or unset to rely on out-of-memory errors");
}

// Lightning's search over trials. `trial(size)` returns whether that batch size trained;
// `dataset_length` stops the growth at the data's size (unset: unknown). Returns the size
// found; `current` is the batch size the search changes (Lightning's attribute).
template <class Trial, class Say>
std::int64_t search_batch_size(const BatchSizeFinderOptions& o, std::int64_t current,
                               std::optional<std::int64_t> dataset_length, Trial&& trial,
                               Say&& say) {
  // Lightning's _adjust_batch_size: the next size (a factor or a value), capped at
  // max_val; it does not grow once the batch covers the dataset. Unlike Lightning, a
  // failed size always shrinks: Lightning keeps it when it covers the dataset, so its
  // binsearch retries it forever and its power mode returns it.
  const auto adjust = [&](std::optional<std::int64_t> value, double factor, const char* desc) {
    const bool grows = desc == nullptr || std::string_view(desc) == "succeeded";
    if (grows && dataset_length && current >= *dataset_length) {
      say("the batch size " + std::to_string(current) +
          " is greater or equal than the length of the dataset: " +
          std::to_string(*dataset_length));
      return std::pair{current, false};
    }
    std::int64_t next =
        value ? *value : static_cast<std::int64_t>(static_cast<double>(current) * factor);
    if (next > o.max_val) {
      if (desc)
        say("batch size " + std::to_string(next) + " exceeds max_val " + std::to_string(o.max_val) +
            ", capping at " + std::to_string(o.max_val));
      next = o.max_val;
    }
    if (desc)
      say("batch size " + std::to_string(current) + " " + desc + ", trying batch size " +
          std::to_string(next));
    const bool changed = next != current;
    current = next;
    return std::pair{next, changed};
  };
  const auto try_size = [&](std::int64_t size) {
    if (size < 1)
      throw std::runtime_error(
          "lightning: the batch size finder ran out of memory even with a batch size of 1; "
          "raise BatchSizeFinderOptions.memory_limit_bytes or use a smaller model");
    return trial(size);
  };

  std::int64_t size = adjust(o.init_val, 1.0, nullptr).first;
  // Lightning stops before trying a size at max_val (a capped doubling).
  const auto at_max = [&] {
    if (size < o.max_val) return false;
    say("reached the maximum batch size limit of " + std::to_string(o.max_val) +
        "; stopping the search");
    return true;
  };
  bool changed = false;
  if (o.mode == BatchSizeScaling::power) {
    bool any_success = false;
    for (std::int64_t i = 0; i < o.max_trials && !at_max(); ++i) {
      if (try_size(size)) {
        if (i + 1 >= o.max_trials) break;
        std::tie(size, changed) = adjust(std::nullopt, 2.0, "succeeded");
        if (!changed) break;
        any_success = true;
      } else {
        size = adjust(std::nullopt, 0.5, "failed").first;
        if (any_success) break;
      }
    }
    return size;
  }

  std::int64_t low = 1, count = 0;
  std::optional<std::int64_t> high;
  while (!at_max()) {
    if (try_size(size)) {
      if (++count >= o.max_trials) break;
      low = size;
      if (high && *high - low <= 1) break;
      std::tie(size, changed) = high ? adjust((*high + low) / 2, 1.0, "succeeded")
                                     : adjust(std::nullopt, 2.0, "succeeded");
      if (!changed) break;
    } else {
      high = size;
      size = adjust((*high + low) / 2, 1.0, "failed").first;
      if (*high - low <= 1) break;
    }
  }
  if (o.margin > 0) {
    const auto reduced = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(static_cast<double>(size) * (1 - o.margin)));
    if (reduced != size) {
      say("applying a margin of " + std::to_string(o.margin * 100) +
          "%, reducing the batch size from " + std::to_string(size) + " to " +
          std::to_string(reduced));
      size = reduced;
    }
  }
  return size;
}

// The number of examples a loader iterates, where it says.
template <class Loader>
std::optional<std::int64_t> dataset_length(const Loader& loader) {
  if constexpr (requires { loader.num_examples(); })
    return static_cast<std::int64_t>(loader.num_examples());
  else if constexpr (requires { loader.dataset().size(); })
    return static_cast<std::int64_t>(*loader.dataset().size());
  else
    return std::nullopt;
}

// Lightning's attribute lookup for the batch size: a `batch_size` member of the module,
// then the "batch_size" hyperparameter.
template <class M>
std::optional<std::int64_t> module_batch_size(const M& model) {
  if constexpr (requires { static_cast<std::int64_t>(model.batch_size); }) {
    return static_cast<std::int64_t>(model.batch_size);
  } else if constexpr (std::derived_from<M, LightningModule>) {
    if (const auto* h = model.hparams().find("batch_size"); h && h->template holds<std::int64_t>())
      return h->template get<std::int64_t>();
  }
  return std::nullopt;
}
template <class M>
void set_module_batch_size(M& model, std::int64_t size) {
  if constexpr (requires { model.batch_size = size; }) {
    model.batch_size = static_cast<std::remove_cvref_t<decltype(model.batch_size)>>(size);
  } else if constexpr (std::derived_from<M, LightningModule>) {
    if (model.hparams().contains("batch_size")) {
      auto h = model.hparams();
      h.set("batch_size", size);
      model.save_hyperparameters(h);
    }
  }
}

}  // namespace detail

}  // namespace lightning
