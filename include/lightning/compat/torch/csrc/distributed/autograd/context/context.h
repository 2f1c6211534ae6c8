// Debian's libtorch-dev 1.13 ships c10d's reducer.hpp, which includes this header, but
// none of torch/csrc/distributed/autograd/. strategies::DDP needs only the two names
// below from it (a static_assert and a shared_ptr member of the Reducer), so where the
// real header is missing they are declared here; where it exists it is used.
// CMake puts this folder on the include path for LibTorch 1.13 only. Nothing built with
// this stand-in may use RPC or distributed autograd. (docs: ddp-notes, "Shim for A")
#pragma once

#if __has_include_next(<torch/csrc/distributed/autograd/context/context.h>)
#include_next <torch/csrc/distributed/autograd/context/context.h>
#else
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace torch::distributed::autograd {
class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
  DistAutogradContext() = delete;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;
}  // namespace torch::distributed::autograd
#endif
