// Samplers (torch.utils.data.sampler and DistributedSampler): the order in which a loader
// visits a dataset's examples, an epoch at a time, drawn with the same LibTorch calls as
// Python's so that the same seed gives the same order. TensorLoader and DataLoader share
// them. A sampler hands out a whole epoch's indices at once (a tensor): loaders gather or
// dispatch from it, and no per-index virtual call is made.
#pragma once

#include <lightning/core/bad_option.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lightning::data {

// What a sampler provides: the next epoch's indices (int64, one dimension) and how many
// that is. set_epoch is called before each epoch by the Trainer (DistributedSampler uses it).
class Sampler {
 public:
  virtual ~Sampler() = default;
  [[nodiscard]] virtual torch::Tensor indices() = 0;
  [[nodiscard]] virtual std::int64_t size() const = 0;
  virtual void set_epoch(std::int64_t) {}
};

// range(n).
class SequentialSampler final : public Sampler {
 public:
  explicit SequentialSampler(std::int64_t n) : n_(n) {}
  [[nodiscard]] torch::Tensor indices() override { return torch::arange(n_, torch::kLong); }
  [[nodiscard]] std::int64_t size() const override { return n_; }

 private:
  std::int64_t n_;
};

namespace detail {
// RandomSampler's generator when it has none: a fresh one seeded from LibTorch's default
// generator, as Python draws `torch.empty((), dtype=torch.int64).random_()`.
inline at::Generator generator_or_fresh(const std::optional<at::Generator>& g) {
  if (g) return *g;
  const auto seed = torch::empty({}, torch::kLong).random_().item<std::int64_t>();
  return at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(seed));
}
}  // namespace detail

struct RandomSamplerOptions {
  bool replacement = false;
  std::optional<std::int64_t> num_samples = std::nullopt;  // default: the data set's size
  std::optional<at::Generator> generator = std::nullopt;   // default: one per epoch, seeded
                                                           // from LibTorch's default generator
};

// Examples in random order: a permutation per pass over the data (num_samples may be
// larger than n), or num_samples independent draws with replacement.
class RandomSampler final : public Sampler {
 public:
  explicit RandomSampler(std::int64_t n, RandomSamplerOptions options = {})
      : n_(n), options_(std::move(options)) {
    if (n_ < 0) throw_bad_option("RandomSampler", "n", std::to_string(n_), "must be >= 0");
    if (options_.num_samples && *options_.num_samples <= 0)
      throw_bad_option("RandomSampler", "num_samples", std::to_string(*options_.num_samples),
                       "must be a positive integer");
  }
  [[nodiscard]] std::int64_t size() const override { return options_.num_samples.value_or(n_); }

  [[nodiscard]] torch::Tensor indices() override {
    auto g = detail::generator_or_fresh(options_.generator);
    const std::int64_t total = size();
    if (n_ == 0) return torch::empty({0}, torch::kLong);
    std::vector<torch::Tensor> parts;
    if (options_.replacement) {
      // Python draws 32 at a time, then the remainder: the same calls, the same numbers.
      for (std::int64_t k = 0; k < total / 32; ++k)
        parts.push_back(torch::randint(n_, {32}, g, torch::kLong));
      parts.push_back(torch::randint(n_, {total % 32}, g, torch::kLong));
    } else {
      for (std::int64_t k = 0; k < total / n_; ++k) parts.push_back(permutation(n_, g));
      parts.push_back(permutation(n_, g).narrow(0, 0, total % n_));
    }
    return parts.size() == 1 ? parts.front() : torch::cat(parts);
  }

  // torch.randperm(n, generator=g).
  static torch::Tensor permutation(std::int64_t n, at::Generator& g) {
    return torch::randperm(n, g, torch::kLong);
  }

 private:
  std::int64_t n_;
  RandomSamplerOptions options_;
};

// num_samples indices drawn with probability proportional to `weights`
// (torch.multinomial, with or without replacement).
class WeightedRandomSampler final : public Sampler {
 public:
  WeightedRandomSampler(torch::Tensor weights, std::int64_t num_samples, bool replacement = true,
                        std::optional<at::Generator> generator = std::nullopt)
      : weights_(weights.to(torch::kDouble).contiguous()),
        num_samples_(num_samples),
        replacement_(replacement),
        generator_(std::move(generator)) {
    if (num_samples_ <= 0)
      throw_bad_option("WeightedRandomSampler", "num_samples", std::to_string(num_samples_),
                       "must be a positive integer");
    if (weights_.dim() != 1)
      throw_bad_option("WeightedRandomSampler", "weights",
                       "a tensor of " + std::to_string(weights_.dim()) + " dimensions",
                       "must be one-dimensional (one weight per example)");
    if (!replacement_ && num_samples_ > weights_.size(0))
      throw_bad_option("WeightedRandomSampler", "num_samples", std::to_string(num_samples_),
                       "cannot exceed the " + std::to_string(weights_.size(0)) +
                           " weights when drawing without replacement");
  }
  [[nodiscard]] torch::Tensor indices() override {
    return generator_ ? torch::multinomial(weights_, num_samples_, replacement_, *generator_)
                      : torch::multinomial(weights_, num_samples_, replacement_);
  }
  [[nodiscard]] std::int64_t size() const override { return num_samples_; }

 private:
  torch::Tensor weights_;
  std::int64_t num_samples_;
  bool replacement_;
  std::optional<at::Generator> generator_;
};

struct DistributedSamplerOptions {
  std::int64_t num_replicas = 1;
  std::int64_t rank = 0;
  bool shuffle = true;
  std::uint64_t seed = 0;
  bool drop_last = false;
};

// The part of the data one of num_replicas processes visits (DistributedSampler): each
// epoch the indices are ordered (shuffled with a generator seeded seed + epoch, so every
// rank draws the same order), padded with the first ones to a multiple of num_replicas
// (or cut to one, with drop_last), and rank r takes positions r, r + num_replicas, ...
class DistributedSampler final : public Sampler {
 public:
  DistributedSampler(std::int64_t n, DistributedSamplerOptions options) : n_(n), options_(options) {
    if (options_.num_replicas < 1)
      throw_bad_option("DistributedSampler", "num_replicas", std::to_string(options_.num_replicas),
                       "must be >= 1");
    if (options_.rank < 0 || options_.rank >= options_.num_replicas)
      throw_bad_option("DistributedSampler", "rank", std::to_string(options_.rank),
                       "must be in [0, " + std::to_string(options_.num_replicas) + ")");
  }
  [[nodiscard]] torch::Tensor indices() override {
    return order(n_, options_, epoch_).contiguous();
  }
  [[nodiscard]] std::int64_t size() const override { return num_samples(n_, options_); }
  void set_epoch(std::int64_t epoch) override { epoch_ = epoch; }
  [[nodiscard]] const DistributedSamplerOptions& options() const noexcept { return options_; }

  static std::int64_t num_samples(std::int64_t n, const DistributedSamplerOptions& o) {
    const std::int64_t r = o.num_replicas;
    if (o.drop_last && n % r != 0) return (n - r + r - 1) / r;  // ceil((n - r) / r)
    return (n + r - 1) / r;
  }
  // This epoch's indices of rank o.rank (a strided view).
  static torch::Tensor order(std::int64_t n, const DistributedSamplerOptions& o,
                             std::int64_t epoch) {
    torch::Tensor all;
    if (o.shuffle) {
      auto g = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<std::uint64_t>(epoch));
      all = torch::randperm(n, g, torch::kLong);
    } else {
      all = torch::arange(n, torch::kLong);
    }
    const std::int64_t total = num_samples(n, o) * o.num_replicas;
    if (total > n && n > 0)  // pad with the first indices, repeated when the padding is longer
      all = all.repeat({(total + n - 1) / n}).narrow(0, 0, total);
    else
      all = all.narrow(0, 0, total);
    return all.slice(0, o.rank, total, o.num_replicas);
  }

 private:
  std::int64_t n_;
  DistributedSamplerOptions options_;
  std::int64_t epoch_ = 0;
};

// An epoch's batches: batch b holds indices[offsets[b], offsets[b + 1]).
struct BatchPlan {
  torch::Tensor indices;  // int64, contiguous
  std::vector<std::int64_t> offsets{0};
  [[nodiscard]] std::int64_t size() const noexcept {
    return static_cast<std::int64_t>(offsets.size()) - 1;
  }
  [[nodiscard]] std::int64_t batch_length(std::int64_t b) const {
    return offsets[static_cast<std::size_t>(b + 1)] - offsets[static_cast<std::size_t>(b)];
  }
  [[nodiscard]] const std::int64_t* batch_indices(std::int64_t b) const {
    return indices.data_ptr<std::int64_t>() + offsets[static_cast<std::size_t>(b)];
  }
};

// What a batch sampler provides (Python's batch_sampler= argument): the next epoch's
// batches of indices, and how many batches that is.
class BatchSamplerBase {
 public:
  virtual ~BatchSamplerBase() = default;
  [[nodiscard]] virtual BatchPlan batches() = 0;
  [[nodiscard]] virtual std::int64_t size() const = 0;
  virtual void set_epoch(std::int64_t) {}
};

// Groups a sampler's indices into batches of batch_size (the last one shorter, or
// dropped with drop_last), as torch.utils.data.BatchSampler.
class BatchSampler final : public BatchSamplerBase {
 public:
  BatchSampler(std::shared_ptr<Sampler> sampler, std::int64_t batch_size, bool drop_last)
      : sampler_(std::move(sampler)), batch_size_(batch_size), drop_last_(drop_last) {
    if (!sampler_) throw std::invalid_argument("lightning: BatchSampler needs a sampler");
    if (batch_size_ <= 0)
      throw_bad_option("BatchSampler", "batch_size", std::to_string(batch_size_),
                       "must be a positive integer");
  }
  [[nodiscard]] BatchPlan batches() override {
    BatchPlan plan;
    plan.indices = sampler_->indices().to(torch::kLong).contiguous();
    const std::int64_t n = plan.indices.size(0);
    const std::int64_t count = drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
    plan.offsets.reserve(static_cast<std::size_t>(count + 1));
    for (std::int64_t b = 1; b <= count; ++b) plan.offsets.push_back(std::min(n, b * batch_size_));
    return plan;
  }
  [[nodiscard]] std::int64_t size() const override {
    const std::int64_t n = sampler_->size();
    return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  }
  void set_epoch(std::int64_t epoch) override { sampler_->set_epoch(epoch); }
  [[nodiscard]] const std::shared_ptr<Sampler>& sampler() const noexcept { return sampler_; }

 private:
  std::shared_ptr<Sampler> sampler_;
  std::int64_t batch_size_;
  bool drop_last_;
};

}  // namespace lightning::data
