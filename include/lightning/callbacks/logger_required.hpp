// The check of the callbacks that only report to loggers (LearningRateMonitor,
// DeviceStatsMonitor): as Lightning, the Trainer's default logger will do, none is an
// error that names the callback and the fix.
#pragma once

#include <stdexcept>
#include <string>

namespace lightning::callbacks::detail {

template <class T>
void require_logger(const T& trainer, const char* callback) {
  if (!trainer.has_active_logger())
    throw std::invalid_argument(
        std::string("lightning: ") + callback +
        " needs a logger: TrainerOptions.logger = false and no logger is among the callbacks; "
        "keep the default logger or pass one (e.g. lightning::loggers::CSVLogger)");
}

}  // namespace lightning::callbacks::detail
