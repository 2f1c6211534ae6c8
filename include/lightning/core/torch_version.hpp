// Which LibTorch the library is compiled against, for the few places where 1.13 and 2.x
// spell something differently (../docs/libtorch-notes in the project's shared notes).
#pragma once

#include <torch/version.h>

// True when LibTorch is at least major.minor.
#define LIGHTNING_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
