// Host memory for a training loop: keep what a step frees for the next step.
//
// A step allocates its activations and gradients and frees them all at its end; LibTorch
// takes CPU tensor memory from malloc. glibc's malloc hands the freed top of its heap
// back to the OS once it exceeds a trim threshold, and serves blocks above an mmap
// threshold with fresh mappings; both thresholds adapt at run time to the largest block
// freed so far. A step's working set larger than those thresholds is therefore returned
// and faulted in again every step: on the Fashion-MNIST CNN of docs/performance.md,
// 3,000-6,300 minor page faults per step and ~40% of the run in the kernel. Whether a
// given loop escapes it depends on luck (one large block freed early raises the adaptive
// thresholds for good), which is why a hand-written loop and the Trainer differed.
//
// retain_freed_host_memory() pins the thresholds once per process (trim: never during
// training; mmap: glibc's maximum, 32 MiB on 64-bit), so a step reuses the pages of the
// previous one; release_free_host_memory() hands the retained free memory back (the
// Trainer calls it when fit ends). Left alone: programs that set glibc's malloc tunables
// themselves (GLIBC_TUNABLES=glibc.malloc.*, MALLOC_*_ env variables), non-glibc C
// libraries, and LIGHTNING_RETAIN_HOST_MEMORY=0 to opt out.
#pragma once

#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lightning {

namespace detail {

// True when the user or the environment already chose malloc's thresholds.
inline bool malloc_tuned_by_environment() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return true;
  for (const char* name :
       {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"})
    if (std::getenv(name) != nullptr) return true;
  const char* opt_out = std::getenv("LIGHTNING_RETAIN_HOST_MEMORY");
  return opt_out != nullptr && std::strcmp(opt_out, "0") == 0;
}

inline bool& host_memory_retained() {
  static bool retained = false;
  return retained;
}

}  // namespace detail

// Whether retain_freed_host_memory() took effect in this process.
[[nodiscard]] inline bool host_memory_is_retained() {
  return detail::host_memory_retained();
}

// Pins glibc's malloc thresholds so that a training loop's freed memory stays in the
// process (see above). Idempotent; a no-op where it does not apply.
inline void retain_freed_host_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    if (detail::malloc_tuned_by_environment()) return;
    // glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit).
    constexpr int kMmapThreshold = 32 * 1024 * 1024;
    const bool mmap_set = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
    const bool trim_set = mallopt(M_TRIM_THRESHOLD, -1) == 1;  // -1: never trim on free
    detail::host_memory_retained() = mmap_set && trim_set;
  });
#endif
}

// Returns the free memory retain_freed_host_memory() kept to the OS (malloc_trim), e.g.
// when a fit ends. Memory still in use is untouched.
inline void release_free_host_memory() {
#if defined(__GLIBC__)
  if (detail::host_memory_retained()) malloc_trim(0);
#endif
}

}  // namespace lightning
