// Reproducibility switches (Lightning's seed_everything and deterministic=True).
#pragma once

#include <ATen/Context.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>

namespace lightning {

// Seeds LibTorch's CPU and CUDA generators. TensorLoaders without their own seed draw
// their shuffling from these generators, so one seed makes a run repeatable.
inline void seed_everything(std::uint64_t seed) {
  torch::manual_seed(seed);
  std::srand(static_cast<unsigned>(seed));
}

// Makes LibTorch choose deterministic kernels and fail on ops that have none.
inline void use_deterministic_algorithms(bool on) {
  if (on) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
  at::globalContext().setDeterministicCuDNN(on);
  if (on) at::globalContext().setBenchmarkCuDNN(false);
}

}  // namespace lightning
