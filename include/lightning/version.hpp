// The library's version (also recorded in checkpoints by later releases).
#pragma once

#define LIGHTNING_VERSION_MAJOR 0
#define LIGHTNING_VERSION_MINOR 1
#define LIGHTNING_VERSION_PATCH 0

namespace lightning {
inline constexpr const char* version = "0.1.0";
}  // namespace lightning
