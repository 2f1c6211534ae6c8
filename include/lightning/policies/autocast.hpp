// Scopes a precision policy opens around each forward: autocast (mixed precision) and
// the default dtype (true half and double precision). LibTorch has no RAII guard for
// either; these do what Python's `torch.autocast` and Lightning's
// `_DtypeContextManager` do on entry and exit.
#pragma once

#include <lightning/core/torch_version.hpp>

#include <ATen/autocast_mode.h>
#include <c10/core/DefaultDtype.h>
#include <torch/torch.h>

namespace lightning {

namespace detail {
inline void set_autocast(c10::DeviceType device, bool enabled, c10::ScalarType dtype) {
#if LIGHTNING_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::kCPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}
inline bool autocast_enabled(c10::DeviceType device) {
#if LIGHTNING_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}
inline c10::ScalarType autocast_dtype(c10::DeviceType device) {
#if LIGHTNING_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::kCPU ? at::autocast::get_autocast_cpu_dtype()
                             : at::autocast::get_autocast_gpu_dtype();
#endif
}
}  // namespace detail

// `with torch.autocast(device_type, dtype)`: eligible ops on `device` (matmul, linear,
// convolution) run in `dtype`, precision-sensitive ones (losses, softmax) in float32.
// The cast cache (on unless turned off: torch.autocast's cache_enabled=None) lives until
// the outermost scope closes, as in Python. Thread-local, as autocast is: a thread of its
// own needs its own scope.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, c10::ScalarType dtype)
      : device_(device),
        was_enabled_(detail::autocast_enabled(device)),
        previous_dtype_(detail::autocast_dtype(device)) {
    detail::set_autocast(device, true, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    detail::set_autocast(device_, was_enabled_, previous_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
  c10::ScalarType previous_dtype_;
};

// `torch.set_default_dtype(dtype)` for the scope's life: tensors a forward creates
// (torch::zeros, torch::randn) take the precision's dtype, as Lightning's true-half and
// double precisions arrange. The default dtype is process-wide in LibTorch, as in Python:
// a thread of the user's that creates tensors by default dtype during a step sees it too.
class DefaultDtypeScope {
 public:
  explicit DefaultDtypeScope(c10::ScalarType dtype) : previous_(c10::get_default_dtype()) {
    c10::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
  }
  ~DefaultDtypeScope() { c10::set_default_dtype(previous_); }
  DefaultDtypeScope(const DefaultDtypeScope&) = delete;
  DefaultDtypeScope& operator=(const DefaultDtypeScope&) = delete;

 private:
  caffe2::TypeMeta previous_;
};

}  // namespace lightning
