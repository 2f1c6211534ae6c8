// Trainer(detect_anomaly=True): where an anomaly autograd found happened.
#pragma once

#include <torch/csrc/autograd/anomaly_mode.h>
#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace lightning::detail {
// detect_anomaly's error with where it happened: autograd's message names only the
// operation ("Function 'SqrtBackward0' returned nan values in its 0th output."). Other
// errors go on as they are. Called from a catch block: `throw;` rethrows what it caught.
// Only while anomaly mode is on: a plain run's errors are not touched.
[[noreturn, gnu::cold, gnu::noinline]] inline void rethrow_with_place(const std::exception& e,
                                                                      const char* what,
                                                                      std::int64_t epoch,
                                                                      std::int64_t idx,
                                                                      std::int64_t step) {
  if (!torch::autograd::AnomalyMode::is_enabled()) throw;
  // c10::Error's what() carries a C++ backtrace after the message; LibTorch 1.13's engine
  // rethrows autograd's error as another std::exception type.
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  const std::string message = error != nullptr ? error->msg() : std::string(e.what());
  throw std::runtime_error(
      "lightning: detect_anomaly: " + std::string(what) + " at epoch " + std::to_string(epoch) +
      (idx >= 0 ? ", batch " + std::to_string(idx) : std::string()) + " (global step " +
      std::to_string(step) + ") failed: " + message.substr(0, message.find('\n')));
}
}  // namespace lightning::detail
