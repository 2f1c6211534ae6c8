// MetricMap: metric name -> value read back to the host. Torch-free, so loggers and
// their tests do not pull in LibTorch.
#pragma once

#include <functional>
#include <map>
#include <string>

namespace lightning {

// Built only when something consumes it: a logger at a logging step, the progress bar
// when it draws, a callback that asks.
using MetricMap = std::map<std::string, double, std::less<>>;

}  // namespace lightning
