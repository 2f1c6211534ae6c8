// What a checkpoint holds, and the generator state every policy can save into one.
// Policies (a precision's scaler, an accelerator's generators) fill these dicts; the
// files are written by fabric/checkpoint_io.hpp.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <mutex>
#include <optional>
#include <string>
#include <type_traits>

namespace lightning {

// String keys, any pickleable value (tensors, numbers, strings, nested dicts and lists).
// Make an empty one with make_checkpoint().
using CheckpointDict = c10::impl::GenericDict;
inline CheckpointDict make_checkpoint() {
  return CheckpointDict(c10::StringType::get(), c10::AnyType::get());
}

// A dict entry of a loaded checkpoint as the typed dict it was written as (the
// unpickler hands back dicts with generic element types).
template <class V = c10::IValue>
auto checkpoint_dict(const c10::IValue& value) {
  if constexpr (std::is_same_v<V, c10::IValue>) {
    CheckpointDict out = make_checkpoint();
    for (const auto& kv : value.toGenericDict()) out.insert(kv.key(), kv.value());
    return out;
  } else {
    c10::Dict<std::string, V> out;
    for (const auto& kv : value.toGenericDict())
      out.insert(kv.key().toStringRef(), kv.value().template to<V>());
    return out;
  }
}

// A monitored score as Lightning's callbacks keep it (a 0-d tensor, float64 here so a
// C++ resume compares the exact value) and back; lightning-cpp files before 0.2 hold
// plain floats, and None is "no score yet".
inline c10::IValue score_entry(std::optional<double> score) {
  if (!score) return c10::IValue();
  return torch::tensor(*score, torch::kDouble);
}
inline std::optional<double> score_of(const c10::IValue& v) {
  if (v.isNone()) return std::nullopt;
  if (v.isTensor()) return v.toTensor().item<double>();
  if (v.isInt()) return static_cast<double>(v.toInt());
  return v.toDouble();
}

// The default CPU generator's state (dropout, shuffling without a seed, torch::rand).
inline torch::Tensor cpu_rng_state() {
  return at::detail::getDefaultCPUGenerator().get_state();
}
inline void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace lightning
