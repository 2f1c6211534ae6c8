// Datasets (torch.utils.data's Dataset and IterableDataset) and what a loader's worker
// knows about itself (get_worker_info). A DataLoader calls a map-style dataset's get(i)
// from several threads at once, so get must not change shared state; an iterable
// dataset is copied into each worker instead, as Python pickles it into each process.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <array>
#include <concepts>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning::data {

// A map-style dataset: size() examples, get(i) for 0 <= i < size(), safe to call from
// several threads at once. Optional: `std::string describe(std::int64_t i) const`, the
// example's source (a file), named in the loader's errors.
template <class D>
concept Dataset = std::is_class_v<D> && requires(const D& d, std::int64_t i) {
  { d.size() } -> std::convertible_to<std::int64_t>;
  d.get(i);
};

// An iterable dataset (a simulator, a socket, a generator): next() returns the next
// example, or nothing at the end of the stream. Each epoch, each worker iterates a fresh
// copy of the dataset as it was given; worker_info() says which part a worker should take.
template <class D>
concept IterableDataset = std::is_class_v<D> && std::copy_constructible<D> && requires(D& d) {
  { d.next().has_value() } -> std::convertible_to<bool>;
  *d.next();
};

template <class D>
requires Dataset<D>
using dataset_example_t = std::remove_cvref_t<decltype(std::declval<const D&>().get(0))>;
template <class D>
requires IterableDataset<D>
using stream_example_t = std::remove_cvref_t<decltype(*std::declval<D&>().next())>;

// Examples of a map-style or an iterable dataset.
template <class D>
struct example_of;
template <Dataset D>
struct example_of<D> {
  using type = dataset_example_t<D>;
};
template <IterableDataset D>
requires(!Dataset<D>) struct example_of<D> {
  using type = stream_example_t<D>;
};
template <class D>
using example_t = typename example_of<D>::type;

// torch.utils.data.get_worker_info(): set on a loader's worker threads while they load.
// `seed` is PyTorch's per-worker seed (the epoch's base seed + id) and `generator` the
// worker's own generator seeded with it, which random transforms draw from.
struct WorkerInfo {
  std::int64_t id = 0;
  std::int64_t num_workers = 0;
  std::uint64_t seed = 0;
  at::Generator generator;
};

namespace detail {
inline thread_local const WorkerInfo* current_worker = nullptr;

// Makes `info` the calling thread's worker info for its lifetime.
class WorkerScope {
 public:
  explicit WorkerScope(const WorkerInfo& info) noexcept : previous_(current_worker) {
    current_worker = &info;
  }
  ~WorkerScope() { current_worker = previous_; }
  WorkerScope(const WorkerScope&) = delete;
  WorkerScope& operator=(const WorkerScope&) = delete;

 private:
  const WorkerInfo* previous_;
};
}  // namespace detail

// The calling thread's worker, or nothing on a thread that is not a loader's worker
// (num_workers = 0 loads on the calling thread, as Python's get_worker_info() is None).
inline const WorkerInfo* worker_info() noexcept {
  return detail::current_worker;
}

// The generator random transforms use: the worker's own, else LibTorch's default one (so
// seed_everything makes a num_workers = 0 run repeatable, as in Python).
inline at::Generator worker_generator() {
  if (const auto* w = detail::current_worker) return w->generator;
  return at::detail::getDefaultCPUGenerator();
}

namespace detail {
// Tensors that hold the same examples along their first dimension (TensorDataset's and
// TensorLoader's argument).
template <std::size_t N>
void check_example_tensors(const char* who, const std::array<torch::Tensor, N>& tensors) {
  for (std::size_t i = 0; i < N; ++i) {
    if (!tensors[i].defined() || tensors[i].dim() == 0)
      throw std::invalid_argument(std::string("lightning: ") + who + " tensor #" +
                                  std::to_string(i) +
                                  " must be defined and have a first (example) dimension");
    if (tensors[i].size(0) != tensors[0].size(0))
      throw std::invalid_argument(std::string("lightning: ") + who +
                                  " tensors must have the same number of examples; tensor #0 "
                                  "has " +
                                  std::to_string(tensors[0].size(0)) + ", tensor #" +
                                  std::to_string(i) + " has " + std::to_string(tensors[i].size(0)));
  }
}
}  // namespace detail

// torch.utils.data.TensorDataset: example i is the i-th row of every tensor.
template <std::size_t N>
class TensorDataset {
 public:
  template <class... T>
  requires(sizeof...(T) == N &&
           (std::convertible_to<T, torch::Tensor> && ...)) explicit TensorDataset(T&&... tensors)
      : tensors_{torch::Tensor(std::forward<T>(tensors))...} {
    detail::check_example_tensors("TensorDataset", tensors_);
  }
  [[nodiscard]] std::int64_t size() const noexcept { return tensors_[0].size(0); }
  [[nodiscard]] auto get(std::int64_t i) const {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::tuple{tensors_[I].select(0, i)...};
    }
    (std::make_index_sequence<N>{});
  }

 private:
  std::array<torch::Tensor, N> tensors_;
};
template <class... T>
TensorDataset(T&&...) -> TensorDataset<sizeof...(T)>;

}  // namespace lightning::data
