// TensorLoader: PyTorch's DataLoader(TensorDataset(X, y), batch_size, shuffle, drop_last)
// for tensors held in memory. Batches are slices of contiguous storage, never stacks
// of single examples: in order, a batch is a view (`narrow`) of the tensors given;
// shuffled, each epoch gathers the tensors once in permuted order into a buffer and
// batches are views of it. The buffer is reused only when no batch of the previous
// epoch is still alive, so holding on to a batch is always safe.
#pragma once

#include <lightning/core/batch.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace lightning::data {

struct LoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;
  // Seed of the loader's own shuffling generator. Unset: each epoch's order is drawn
  // from LibTorch's global generator, so seed_everything() makes it repeatable.
  std::optional<std::uint64_t> seed = std::nullopt;
};

namespace detail {
template <std::size_t N, class Is = std::make_index_sequence<N>>
struct tensor_tuple;
template <std::size_t N, std::size_t... I>
struct tensor_tuple<N, std::index_sequence<I...>> {
  template <std::size_t>
  using tensor = torch::Tensor;
  using type = Batch<tensor<I>...>;
};
}  // namespace detail

template <std::size_t N>
class TensorLoader {
 public:
  using batch_type = typename detail::tensor_tuple<N>::type;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = batch_type;
    using difference_type = std::ptrdiff_t;
    using reference = batch_type;
    using pointer = void;

    iterator() = default;
    iterator(const TensorLoader* loader, std::int64_t index) : loader_(loader), index_(index) {}

    batch_type operator*() const { return loader_->batch(index_); }
    iterator& operator++() {
      ++index_;
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.index_ == b.index_; }

   private:
    const TensorLoader* loader_ = nullptr;
    std::int64_t index_ = 0;
  };

  // Tensors share their first dimension (the examples); the batch holds them in order.
  TensorLoader(const torch::Tensor (&tensors)[N], LoaderOptions options = {}) : options_(options) {
    static_assert(N > 0, "lightning: TensorLoader needs at least one tensor");
    for (std::size_t i = 0; i < N; ++i) tensors_[i] = tensors[i];
    validate();
    if (options_.seed) generator_ = at::make_generator<at::CPUGeneratorImpl>(*options_.seed);
  }

  // Starts an epoch: reshuffles when shuffling.
  [[nodiscard]] iterator begin() {
    if (options_.shuffle) reshuffle();
    return iterator(this, 0);
  }
  [[nodiscard]] iterator end() const { return iterator(this, size()); }

  // Number of batches per epoch.
  [[nodiscard]] std::int64_t size() const noexcept {
    const std::int64_t n = num_examples(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  [[nodiscard]] std::int64_t num_examples() const noexcept { return tensors_[0].size(0); }
  [[nodiscard]] const LoaderOptions& options() const noexcept { return options_; }

  // The i-th batch of the current epoch.
  [[nodiscard]] batch_type batch(std::int64_t i) const {
    const std::int64_t start = i * options_.batch_size;
    const std::int64_t len = std::min(options_.batch_size, num_examples() - start);
    const auto& source = options_.shuffle && shuffled_[0].defined() ? shuffled_ : tensors_;
    return std::apply([&](const auto&... t) { return batch_type{t.narrow(0, start, len)...}; },
                      source);
  }

 private:
  void validate() const {
    if (options_.batch_size <= 0)
      throw std::invalid_argument(
          "lightning: LoaderOptions.batch_size = " + std::to_string(options_.batch_size) +
          " is invalid; it must be >= 1");
    for (std::size_t i = 0; i < N; ++i) {
      if (!tensors_[i].defined() || tensors_[i].dim() == 0)
        throw std::invalid_argument("lightning: TensorLoader tensor #" + std::to_string(i) +
                                    " must be defined and have a first (example) dimension");
      if (tensors_[i].size(0) != tensors_[0].size(0))
        throw std::invalid_argument(
            "lightning: TensorLoader tensors must have the same number of examples; tensor #0 "
            "has " +
            std::to_string(tensors_[0].size(0)) + ", tensor #" + std::to_string(i) + " has " +
            std::to_string(tensors_[i].size(0)));
    }
  }

  void reshuffle() {
    const auto n = num_examples();
    const auto perm = generator_ ? torch::randperm(n, *generator_, torch::kLong)
                                 : torch::randperm(n, torch::kLong);
    for (std::size_t i = 0; i < N; ++i) {
      const auto index = perm.to(tensors_[i].device());
      auto& buf = shuffled_[i];
      // Reuse last epoch's buffer only if no batch view of it is still alive.
      if (buf.defined() && buf.storage().use_count() == 1 && buf.sizes() == tensors_[i].sizes())
        torch::index_select_out(buf, tensors_[i], 0, index);
      else
        buf = tensors_[i].index_select(0, index);
    }
  }

  std::array<torch::Tensor, N> tensors_;
  std::array<torch::Tensor, N> shuffled_;
  LoaderOptions options_;
  std::optional<at::Generator> generator_;
};

template <std::size_t N>
TensorLoader(const torch::Tensor (&)[N], LoaderOptions) -> TensorLoader<N>;
template <std::size_t N>
TensorLoader(const torch::Tensor (&)[N]) -> TensorLoader<N>;

}  // namespace lightning::data
