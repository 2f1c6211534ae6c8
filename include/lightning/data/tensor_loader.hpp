// TensorLoader: PyTorch's DataLoader(TensorDataset(X, y), batch_size, shuffle, drop_last)
// for tensors held in memory. Batches are slices of contiguous storage, never stacks
// of single examples: in order, a batch is a view (`narrow`) of the tensors given;
// shuffled, each epoch gathers the tensors once in permuted order into a buffer and
// batches are views of it. The buffer is reused only when no batch of the previous
// epoch is still alive, so holding on to a batch is always safe.
//
// With `normalize`, the first tensor (the inputs) stays in its compact storage type
// (uint8 pixels) and each batch is gathered and converted to normalised float32 in one
// pass: an epoch then reads a quarter of the bytes of a float copy, which is what makes
// the loader fast on a memory-bound machine (docs/performance.md).
#pragma once

#include <lightning/core/bad_option.hpp>

#include <lightning/core/batch.hpp>
#include <lightning/data/dataset.hpp>
#include <lightning/data/samplers.hpp>

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

// (x * scale - mean) / std, as torchvision's ToTensor + Normalize: for 8-bit images,
// {.scale = 1.0 / 255, .mean = 0.2860, .std = 0.3530}.
struct Normalize {
  double scale = 1.0;
  double mean = 0.0;
  double std = 1.0;
};

struct LoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;
  // Seed of the loader's own shuffling generator. Unset: each epoch's order is drawn
  // from LibTorch's global generator, so seed_everything() makes it repeatable.
  std::optional<std::uint64_t> seed = std::nullopt;
  // Yield the first tensor as float32 normalised per batch (see Normalize).
  std::optional<Normalize> normalize = std::nullopt;
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

namespace detail {
// dst[k] = float(src row order[k] (or start + k)) * a + b, row by row. Shuffled rows are
// random reads, latency-bound without help: prefetching a few rows ahead lets the
// conversion of one row overlap the memory reads of the next (measured 2.5x here).
template <class T>
[[gnu::always_inline]] inline void normalize_rows_body(const T* src, float* dst,
                                                       const std::int64_t* order,
                                                       std::int64_t start, std::int64_t len,
                                                       std::int64_t row, float a, float b) {
  constexpr std::int64_t ahead = 4;
  constexpr std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(T));
  for (std::int64_t k = 0; k < len; ++k) {
    if (order != nullptr && k + ahead < len) {
      const T* next = src + order[k + ahead] * row;
      for (std::int64_t c = 0; c < row; c += line) __builtin_prefetch(next + c);
    }
    const T* __restrict in = src + (order != nullptr ? order[k] : start + k) * row;
    float* __restrict out = dst + k * row;
    for (std::int64_t j = 0; j < row; ++j) out[j] = static_cast<float>(in[j]) * a + b;
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The same loop compiled for AVX2, chosen at run time (as ATen dispatches its CPU
// kernels): the default x86-64 target has only SSE2, which halves the conversion rate.
template <class T>
[[gnu::target("avx2,fma")]] void normalize_rows_avx2(const T* src, float* dst,
                                                     const std::int64_t* order, std::int64_t start,
                                                     std::int64_t len, std::int64_t row, float a,
                                                     float b) {
  normalize_rows_body(src, dst, order, start, len, row, a, b);
}
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

template <class T>
void normalize_rows(const T* src, float* dst, const std::int64_t* order, std::int64_t start,
                    std::int64_t len, std::int64_t row, float a, float b) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (cpu_has_avx2()) return normalize_rows_avx2(src, dst, order, start, len, row, a, b);
#endif
  normalize_rows_body(src, dst, order, start, len, row, a, b);
}
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
    if (options_.normalize) tensors_[0] = tensors_[0].contiguous();
    if (options_.seed) generator_ = at::make_generator<at::CPUGeneratorImpl>(*options_.seed);
  }

  // Starts an epoch: reshuffles when shuffling; a shard takes this epoch's part.
  [[nodiscard]] iterator begin() {
    if (sharded())
      reshard();
    else if (options_.shuffle)
      reshuffle();
    return iterator(this, 0);
  }

  // The part of the data one of `count` processes iterates (`rank`: 0 to count - 1), as
  // torch's DistributedSampler (with Lightning's defaults) makes it: each epoch the
  // examples are ordered (shuffled with a generator seeded seed + epoch, seed being
  // LoaderOptions.seed or 0, so every rank draws the same order), padded with the first
  // ones to a multiple of count, and rank r takes positions r, r + count, ... Every rank
  // then has the same number of examples and batches. The epoch counts the begin() calls;
  // set_epoch() sets it (Lightning's sampler.set_epoch: a resumed run continues the order).
  [[nodiscard]] TensorLoader shard(std::int64_t rank, std::int64_t count) const {
    if (count < 1)
      throw_bad_option("TensorLoader::shard", "count", std::to_string(count), "must be >= 1");
    if (rank < 0 || rank >= count)
      throw_bad_option("TensorLoader::shard", "rank", std::to_string(rank),
                       "must be in [0, " + std::to_string(count) + ")");
    TensorLoader out = *this;
    out.shard_rank_ = rank;
    out.shard_count_ = count;
    out.epoch_ = 0;
    out.perm_ = torch::Tensor();
    out.shuffled_ = {};
    return out;
  }
  void set_epoch(std::int64_t epoch) noexcept { epoch_ = epoch; }
  [[nodiscard]] iterator end() const { return iterator(this, size()); }

  // Whether epochs are shuffled, and a copy that iterates in order (the Trainer's
  // overfit_batches uses it, as Lightning swaps in a SequentialSampler).
  [[nodiscard]] bool shuffles() const noexcept { return options_.shuffle; }
  [[nodiscard]] TensorLoader without_shuffle() const {
    TensorLoader out = *this;
    out.options_.shuffle = false;
    out.perm_ = torch::Tensor();
    out.shuffled_ = {};
    return out;
  }

  // Number of batches per epoch.
  [[nodiscard]] std::int64_t size() const noexcept {
    const std::int64_t n = num_examples(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  // Examples per epoch: all of them, or a shard's part (the total, padded, over count).
  [[nodiscard]] std::int64_t num_examples() const noexcept {
    const std::int64_t n = tensors_[0].size(0);
    return sharded() ? (n + shard_count_ - 1) / shard_count_ : n;
  }
  [[nodiscard]] const LoaderOptions& options() const noexcept { return options_; }

  // The shuffling generator's state (undefined without a seed: then the order follows
  // the global generator, which checkpoints save). Restoring it repeats the same orders.
  [[nodiscard]] torch::Tensor state_dict() const {
    return generator_ ? generator_->get_state() : torch::Tensor();
  }
  void load_state_dict(const torch::Tensor& state) {
    if (generator_ && state.defined()) generator_->set_state(state);
  }

  // The i-th batch of the current epoch.
  [[nodiscard]] batch_type batch(std::int64_t i) const {
    const std::int64_t start = i * options_.batch_size;
    const std::int64_t len = std::min(options_.batch_size, num_examples() - start);
    const auto& source = gathered() ? shuffled_ : tensors_;
    auto out = std::apply(
        [&](const auto&... t) {
          return batch_type{(t.defined() ? t.narrow(0, start, len) : torch::Tensor())...};
        },
        source);
    if (options_.normalize) std::get<0>(out) = normalized(start, len);
    return out;
  }

 private:
  // Rows [start, start + len) of the epoch's order of the first tensor, normalised.
  torch::Tensor normalized(std::int64_t start, std::int64_t len) const {
    const torch::Tensor& src = tensors_[0];
    const Normalize& n = *options_.normalize;
    const double a = n.scale / n.std, b = -n.mean / n.std;
    const bool shuffled = gathered();
    if (!src.device().is_cpu()) {
      auto rows = shuffled ? src.index_select(0, perm_.narrow(0, start, len).to(src.device()))
                           : src.narrow(0, start, len);
      return rows.to(torch::kFloat).mul_(a).add_(b);
    }
    auto sizes = src.sizes().vec();
    sizes[0] = len;
    torch::Tensor out = torch::empty(sizes, src.options().dtype(torch::kFloat));
    const std::int64_t row = src.size(0) == 0 ? 0 : src.numel() / src.size(0);
    const std::int64_t* order = shuffled ? perm_.data_ptr<std::int64_t>() + start : nullptr;
    float* dst = out.data_ptr<float>();
    AT_DISPATCH_ALL_TYPES(src.scalar_type(), "lightning::data::TensorLoader normalize", [&] {
      detail::normalize_rows(src.data_ptr<scalar_t>(), dst, order, start, len, row,
                             static_cast<float>(a), static_cast<float>(b));
    });
    return out;
  }

  void validate() const {
    if (options_.normalize && !(options_.normalize->std > 0.0))
      throw_bad_option("LoaderOptions", "normalize.std", std::to_string(options_.normalize->std),
                       "must be > 0");
    if (options_.batch_size <= 0)
      throw_bad_option("LoaderOptions", "batch_size", std::to_string(options_.batch_size),
                       "must be >= 1");
    detail::check_example_tensors("TensorLoader", tensors_);
  }

  [[nodiscard]] bool sharded() const noexcept { return shard_count_ > 1; }
  // Whether batches come from the epoch's gathered copy (perm_ order), not the tensors.
  [[nodiscard]] bool gathered() const noexcept {
    return (options_.shuffle || sharded()) && perm_.defined();
  }

  void reshuffle() {
    const auto n = num_examples();
    perm_ =
        generator_ ? RandomSampler::permutation(n, *generator_) : torch::randperm(n, torch::kLong);
    gather();
  }

  // DistributedSampler's order (drop_last=False), the sampler code DataLoader uses too.
  void reshard() {
    perm_ = DistributedSampler::order(tensors_[0].size(0),
                                      {.num_replicas = shard_count_,
                                       .rank = shard_rank_,
                                       .shuffle = options_.shuffle,
                                       .seed = options_.seed.value_or(0)},
                                      epoch_)
                .contiguous();
    ++epoch_;
    gather();
  }

  void gather() {
    // A normalised first tensor is gathered per batch, straight from its storage.
    for (std::size_t i = options_.normalize ? 1 : 0; i < N; ++i) {
      const auto index = perm_.to(tensors_[i].device());
      auto& buf = shuffled_[i];
      // Reuse last epoch's buffer only if no batch view of it is still alive.
      if (buf.defined() && buf.storage().use_count() == 1 && buf.size(0) == index.size(0) &&
          buf.sizes().slice(1) == tensors_[i].sizes().slice(1))
        torch::index_select_out(buf, tensors_[i], 0, index);
      else
        buf = tensors_[i].index_select(0, index);
    }
  }

  std::array<torch::Tensor, N> tensors_;
  std::array<torch::Tensor, N> shuffled_;
  torch::Tensor perm_;  // this epoch's order, when shuffling or sharded
  std::int64_t shard_rank_ = 0, shard_count_ = 1;
  std::int64_t epoch_ = 0;  // of a shard: seeds its shuffle
  LoaderOptions options_;
  std::optional<at::Generator> generator_;
};

template <std::size_t N>
TensorLoader(const torch::Tensor (&)[N], LoaderOptions) -> TensorLoader<N>;
template <std::size_t N>
TensorLoader(const torch::Tensor (&)[N]) -> TensorLoader<N>;

}  // namespace lightning::data
