// DataLoader: torch.utils.data.DataLoader for C++, with threads for workers. A batch is
// loaded by one worker (dataset.get for each of its indices, then collate) while the
// training thread runs; batches come out in the sampler's order whatever the worker count,
// and batch b is always loaded by worker b % num_workers, so each worker's generator (the
// one random transforms draw from) sees the same batches in every run.
//
// As Python's, with the same names and defaults: the order and each worker's seed
// (base seed + worker id, the base seed drawn from the loader's generator each epoch, or
// once with persistent workers) are the ones PyTorch draws for the same seed. What threads
// change: no pickling and no copies of the data set per worker (map-style datasets are
// shared, so get() must be safe to call concurrently), and workers start in microseconds.
//
// Exact resume: state_dict() is the loader as an epoch begins (its generator, whether
// persistent workers have started, their generators); worker_states(k) is what a run
// that has consumed k batches of the epoch needs to continue: begin_at(k, states) starts
// the epoch's batch k without loading the k before it, the workers' generators where
// they were. The Trainer saves and restores both.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/batch.hpp>
#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/data/collate.hpp>
#include <lightning/data/dataset.hpp>
#include <lightning/data/samplers.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning::data {

// An example that could not be loaded or a batch that could not be collated (the
// dataset's or the collate function's error, with where it happened), or a worker that
// took longer than the loader's timeout. Raised on the thread that iterates the loader.
class DataLoaderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// PyTorch's DataLoader arguments, in its order, with its defaults. `seed` stands for
// Python's `generator=torch.Generator().manual_seed(seed)`.
template <class Example, class Batch = default_collate_t<Example>>
struct DataLoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;
  std::shared_ptr<Sampler> sampler = nullptr;                 // mutually exclusive with shuffle
  std::shared_ptr<BatchSamplerBase> batch_sampler = nullptr;  // replaces batch_size, shuffle,
                                                              // sampler and drop_last
  std::int64_t num_workers = 0;                               // 0: load on the thread that iterates
  std::function<Batch(std::vector<Example>&&)> collate = nullptr;  // default_collate
  bool pin_memory = false;  // page-locked batches, for asynchronous copies to a GPU
  bool drop_last = false;
  double timeout = 0.0;  // seconds to wait for a worker's batch; 0: forever
  std::optional<std::int64_t> prefetch_factor = std::nullopt;  // batches per worker ahead: 2
  bool persistent_workers = false;  // keep the workers (and their generators) across epochs
  std::optional<std::uint64_t> seed = std::nullopt;  // the loader's own generator
};

namespace detail {

// 0.2, 1, 30 (not 0.200000): seconds as a user wrote them.
inline std::string seconds_text(double s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

// The workers: threads that each run the jobs posted to their own queue, in order.
// Everything they touch lives in State, shared with each job, so that a worker a
// loader had to abandon (hung past its timeout) can still finish safely.
class WorkerThreads {
 public:
  struct State {
    std::mutex m;
    std::condition_variable work, done;
    std::vector<std::deque<std::function<void()>>> queues;
    std::vector<char> busy, exited;
    std::uint64_t generation = 0;  // bumped when an epoch is abandoned: its results are dropped
    bool stop = false;
  };

  WorkerThreads(std::int64_t n, double timeout)
      : state_(std::make_shared<State>()), timeout_(timeout) {
    const auto count = static_cast<std::size_t>(n);
    state_->queues.resize(count);
    state_->busy.assign(count, 0);
    state_->exited.assign(count, 0);
    threads_.reserve(count);
    try {
      for (std::size_t w = 0; w < count; ++w) threads_.emplace_back(run, state_, w);
    } catch (const std::system_error& e) {
      shutdown();
      throw DataLoaderError(std::string("lightning: DataLoader could not start its worker "
                                        "threads (num_workers = ") +
                            std::to_string(n) + "): " + e.what());
    }
  }
  ~WorkerThreads() { shutdown(); }
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  [[nodiscard]] const std::shared_ptr<State>& state() const noexcept { return state_; }

  void post(std::size_t worker, std::function<void()> job) {
    {
      std::lock_guard lock(state_->m);
      state_->queues[worker].push_back(std::move(job));
    }
    state_->work.notify_all();
  }

  // Drops the queued jobs and waits for the running ones: afterwards no worker touches
  // the loader's generators until new jobs are posted. Results of the dropped epoch are
  // discarded (the generation changes).
  // With `finish_queued`, the queued jobs run first (their results are dropped all the
  // same): persistent workers' generators then advance by exactly the batches posted, as
  // Python's workers finish their queued tasks, whatever the threads' timing.
  void cancel(bool finish_queued = false) {
    std::unique_lock lock(state_->m);
    ++state_->generation;
    if (!finish_queued)
      for (auto& q : state_->queues) q.clear();
    const auto idle = [&] {
      for (std::size_t w = 0; w < state_->busy.size(); ++w)
        if (state_->busy[w] || !state_->queues[w].empty()) return false;
      return true;
    };
    if (timeout_ > 0.0) {
      if (!state_->done.wait_for(lock, std::chrono::duration<double>(timeout_), idle))
        throw DataLoaderError(
            "lightning: a DataLoader worker is still loading after the "
            "loader's timeout of " +
            seconds_text(timeout_) + " s; the epoch cannot be restarted");
    } else {
      state_->done.wait(lock, idle);
    }
  }

 private:
  static void run(std::shared_ptr<State> s, std::size_t w) {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(s->m);
        s->work.wait(lock, [&] { return s->stop || !s->queues[w].empty(); });
        if (s->stop) break;
        job = std::move(s->queues[w].front());
        s->queues[w].pop_front();
        s->busy[w] = 1;
      }
      job();  // jobs catch what they throw: a worker never dies
      {
        std::lock_guard lock(s->m);
        s->busy[w] = 0;
      }
      s->done.notify_all();
    }
    {
      std::lock_guard lock(s->m);
      s->exited[w] = 1;
    }
    s->done.notify_all();
  }

  // Joins every worker that finishes within the grace period (the loader's timeout, at
  // least Python's 5 s status interval); one still inside the dataset after it is
  // detached rather than waited for forever (it holds State, and exits when it returns).
  void shutdown() noexcept {
    {
      std::lock_guard lock(state_->m);
      state_->stop = true;
      ++state_->generation;  // a job still running leaves nothing behind
      for (auto& q : state_->queues) q.clear();
    }
    state_->work.notify_all();
    {
      std::unique_lock lock(state_->m);
      const double grace = std::max(timeout_, 5.0);
      state_->done.wait_for(lock, std::chrono::duration<double>(grace), [&] {
        for (std::size_t w = 0; w < threads_.size(); ++w)
          if (!state_->exited[w]) return false;
        return true;
      });
    }
    for (std::size_t w = 0; w < threads_.size(); ++w) {
      if (!threads_[w].joinable()) continue;
      bool exited = false;
      {
        std::lock_guard lock(state_->m);
        exited = state_->exited[w] != 0;
      }
      if (exited)
        threads_[w].join();
      else
        threads_[w].detach();
    }
    threads_.clear();
  }

  std::shared_ptr<State> state_;
  std::vector<std::thread> threads_;
  double timeout_;
};

// One batch as a worker left it for the iterating thread.
template <class B>
struct LoadedBatch {
  enum class Kind { none, batch, error, exhausted };
  std::int64_t task = -1;
  Kind kind = Kind::none;
  std::optional<B> batch;
  std::exception_ptr error;
  torch::Tensor rng_after;  // the worker's generator after it
  std::int64_t worker = 0;
};

inline std::string where_of(std::int64_t worker, std::int64_t num_workers) {
  return num_workers > 0 ? "DataLoader worker " + std::to_string(worker)
                         : std::string("DataLoader (num_workers = 0)");
}

}  // namespace detail

template <class D, class B = default_collate_t<example_t<D>>>
requires Dataset<D> || IterableDataset<D>
class DataLoader {
  static_assert(!std::is_same_v<B, NoDefaultCollate>,
                "lightning: DataLoader cannot collate these examples by default "
                "(default_collate stacks tensors and numbers, and collates strings and tuples "
                "of them); name the batch type and pass a collate function: "
                "DataLoader<MyDataset, MyBatch>(dataset, {.collate = ...})");

 public:
  static constexpr bool map_style = Dataset<D>;
  using dataset_type = D;
  using example_type = example_t<D>;
  using batch_type = B;
  using Options = DataLoaderOptions<example_type, B>;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = B;
    using difference_type = std::ptrdiff_t;
    using reference = B&;
    using pointer = void;

    iterator() = default;
    explicit iterator(DataLoader* loader) : loader_(loader), epoch_id_(loader->epoch_id_) {}

    // The current batch; valid until the iterator is incremented.
    B& operator*() const {
      check();
      return *loader_->current_;
    }
    iterator& operator++() {
      check();
      loader_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.at_end() == b.at_end();
    }

   private:
    friend class DataLoader;
    [[nodiscard]] bool at_end() const noexcept { return loader_ == nullptr || loader_->done_; }
    // The loader keeps one iteration: an iterator of an epoch it has restarted since (one
    // loader given as the train and the validation loader) is refused, not misread.
    void check() const {
      if (loader_->epoch_id_ != epoch_id_ || !loader_->current_)
        throw std::logic_error(
            "lightning: this DataLoader was restarted (begin() called again) while an "
            "iteration of it was running; give each loop its own DataLoader (the training "
            "and the validation loader cannot be the same object)");
    }
    DataLoader* loader_ = nullptr;
    std::uint64_t epoch_id_ = 0;
  };

  DataLoader(D dataset, Options options = {})
      : DataLoader(std::make_shared<const D>(std::move(dataset)), std::move(options)) {}
  DataLoader(std::shared_ptr<const D> dataset, Options options)
      : dataset_(std::move(dataset)), options_(std::move(options)) {
    if (!dataset_) throw std::invalid_argument("lightning: DataLoader needs a dataset");
    validate();
    if (options_.seed) generator_ = at::make_generator<at::CPUGeneratorImpl>(*options_.seed);
    if (!options_.collate) {
      if constexpr (std::is_same_v<B, default_collate_t<example_type>>)
        options_.collate = [](std::vector<example_type>&& e) {
          return default_collate(std::move(e));
        };
      else
        throw std::invalid_argument(
            "lightning: DataLoaderOptions.collate is required when the batch type is not "
            "default_collate's");
    }
    if constexpr (map_style) batch_sampler_ = make_batch_sampler();
    if (options_.pin_memory && !torch::cuda::is_available()) {
      std::cerr << "lightning: warning: DataLoaderOptions.pin_memory is set but no CUDA device "
                   "is available; batches are not pinned\n";
      options_.pin_memory = false;
    }
  }

  // A copy (made between epochs) shares the data set and the options, not the workers or
  // the iteration; its generators start where this one's are.
  DataLoader(const DataLoader& other)
      : dataset_(other.dataset_),
        options_(other.options_),
        started_(other.started_),
        base_seed_(other.base_seed_) {
    if (other.generator_) generator_ = other.generator_->clone();
    for (const auto& g : other.generators_) generators_.push_back(g.clone());
    if constexpr (map_style) batch_sampler_ = make_batch_sampler();
  }
  DataLoader(DataLoader&&) noexcept = default;
  DataLoader& operator=(const DataLoader&) = delete;
  DataLoader& operator=(DataLoader&&) = delete;
  // Joins the workers (waiting for a batch being loaded), mid-epoch or not.
  ~DataLoader() { pool_.reset(); }

  [[nodiscard]] iterator begin() { return begin_at(0, torch::Tensor()); }
  [[nodiscard]] iterator end() const { return iterator(); }

  // Starts the epoch at its batch `first`, the batches before it not loaded; `workers`
  // (from worker_states) puts the workers' generators where a run that had consumed them
  // left them. The sampler's order and the seeds are drawn as begin() draws them.
  [[nodiscard]] iterator begin_at(std::int64_t first,
                                  const torch::Tensor& workers) requires map_style {
    start_epoch(workers);
    if (first < 0 || first > plan_->size())
      throw_bad_option("DataLoader::begin_at", "first", std::to_string(first),
                       "must be in [0, " + std::to_string(plan_->size()) + "]");
    next_ = first;
    dispatched_ = first;
    dispatch_window(next_);
    fetch();
    return iterator(this);
  }
  [[nodiscard]] iterator begin_at(std::int64_t first,
                                  const torch::Tensor& /*workers*/) requires(!map_style) {
    // A stream has no index to start at: the epoch is replayed from its start (the
    // workers' generators as the epoch began) and the first batches are dropped.
    start_epoch(torch::Tensor());
    next_ = 0;
    dispatched_ = 0;
    dispatch_window(next_);
    fetch();
    for (std::int64_t k = 0; k < first && !done_; ++k) advance();
    return iterator(this);
  }

  // Batches per epoch (map-style datasets; a stream's length is unknown).
  [[nodiscard]] std::int64_t size() const requires map_style { return batch_sampler_->size(); }
  [[nodiscard]] const D& dataset() const noexcept { return *dataset_; }
  [[nodiscard]] const Options& options() const noexcept { return options_; }

  // Whether the order is drawn (shuffle, or a random sampler of the options), and a copy
  // that iterates in order, a SequentialSampler in their place (the Trainer's
  // overfit_batches uses it, as Lightning does). A batch sampler is left as it is.
  [[nodiscard]] bool shuffles() const noexcept {
    const Sampler* s = options_.sampler.get();
    return options_.shuffle || dynamic_cast<const RandomSampler*>(s) != nullptr ||
           dynamic_cast<const WeightedRandomSampler*>(s) != nullptr;
  }
  [[nodiscard]] DataLoader without_shuffle() const {
    DataLoader out = *this;
    if (shuffles()) {
      out.options_.shuffle = false;
      out.options_.sampler = nullptr;
      if constexpr (map_style) out.batch_sampler_ = out.make_batch_sampler();
    }
    return out;
  }

  // DistributedSampler's set_epoch; the Trainer calls it before each epoch.
  void set_epoch(std::int64_t epoch) {
    if (batch_sampler_) batch_sampler_->set_epoch(epoch);
  }

  // This rank's part of the data, as Lightning's DDP makes it: the sampler replaced by a
  // DistributedSampler (shuffle as the loader's, seed the loader's seed or 0). A loader
  // that already has one is kept; one with another custom sampler is an error (shard it
  // yourself). A stream is the user's to shard (worker_info(), the rank).
  [[nodiscard]] DataLoader shard(std::int64_t rank, std::int64_t count) const {
    DataLoader out = *this;
    if constexpr (map_style) {
      if (count <= 1) return out;
      const auto* bs = dynamic_cast<const BatchSampler*>(batch_sampler_.get());
      const bool plain =
          bs && !options_.batch_sampler &&
          (!options_.sampler || dynamic_cast<const DistributedSampler*>(options_.sampler.get()));
      if (!plain)
        throw std::invalid_argument(
            "lightning: DDP cannot shard a DataLoader that has a custom sampler or batch "
            "sampler; give it a DistributedSampler({.num_replicas = " +
            std::to_string(count) + ", .rank = " + std::to_string(rank) +
            "}) (wrapped in your sampling) yourself");
      if (options_.sampler) return out;  // already distributed
      out.batch_sampler_ = std::make_shared<BatchSampler>(
          std::make_shared<DistributedSampler>(
              dataset_size(), DistributedSamplerOptions{.num_replicas = count,
                                                        .rank = rank,
                                                        .shuffle = options_.shuffle,
                                                        .seed = options_.seed.value_or(0)}),
          options_.batch_size, options_.drop_last);
    }
    return out;
  }

  // The loader as an epoch begins (call it between epochs): its generator, whether
  // persistent workers have started, and their generators.
  [[nodiscard]] CheckpointDict state_dict() {
    quiesce();
    CheckpointDict s = make_checkpoint();
    s.insert("generator", generator_ ? c10::IValue(generator_->get_state()) : c10::IValue());
    s.insert("workers_started", started_);
    s.insert("base_seed", static_cast<std::int64_t>(base_seed_));
    s.insert("worker_generators", stacked_states(current_generators()));
    return s;
  }
  void load_state_dict(const CheckpointDict& s) {
    quiesce();
    if (generator_ && s.contains("generator") && s.at("generator").isTensor())
      generator_->set_state(s.at("generator").toTensor());
    started_ = s.contains("workers_started") && s.at("workers_started").toBool();
    if (s.contains("base_seed")) base_seed_ = static_cast<std::uint64_t>(s.at("base_seed").toInt());
    if (s.contains("worker_generators") && s.at("worker_generators").isTensor())
      set_generators(s.at("worker_generators").toTensor());
  }

  // The workers' generators as a run that consumed the epoch's first k batches has them:
  // each worker's after the last of those batches it loaded (uint8 [num_workers, state]).
  [[nodiscard]] torch::Tensor worker_states(std::int64_t k) const {
    const auto w = static_cast<std::size_t>(options_.num_workers);
    if (recent_.size() != w) return torch::Tensor();  // no epoch started yet
    std::vector<torch::Tensor> states(w);
    for (std::size_t i = 0; i < w; ++i) {
      states[i] = epoch_start_states_.size() > i ? epoch_start_states_[i] : torch::Tensor();
      std::int64_t best = -1;
      for (const auto& [batch, state] : recent_[i].entries)
        if (batch < k && batch > best) {
          best = batch;
          states[i] = state;
        }
    }
    auto stacked = stacked_states(states);
    return stacked.isTensor() ? stacked.toTensor() : torch::Tensor();
  }

 private:
  void validate() {
    const char* o = "DataLoaderOptions";
    if (options_.num_workers < 0)
      throw_bad_option(o, "num_workers", std::to_string(options_.num_workers),
                       "must be >= 0 (0 loads on the calling thread)");
    if (options_.timeout < 0)
      throw_bad_option(o, "timeout", detail::seconds_text(options_.timeout),
                       "must be >= 0 seconds (0: no timeout)");
    if (options_.num_workers == 0 && options_.prefetch_factor)
      throw_bad_option(o, "prefetch_factor", std::to_string(*options_.prefetch_factor),
                       "needs num_workers > 0 (with num_workers = 0 leave it unset)");
    if (options_.prefetch_factor && *options_.prefetch_factor < 1)
      throw_bad_option(o, "prefetch_factor", std::to_string(*options_.prefetch_factor),
                       "must be >= 1");
    if (options_.num_workers == 0 && options_.persistent_workers)
      throw_bad_option(o, "persistent_workers", "true", "needs num_workers > 0");
    if (options_.batch_size < 1)
      throw_bad_option(o, "batch_size", std::to_string(options_.batch_size), "must be >= 1");
    if (options_.batch_sampler &&
        (options_.batch_size != 1 || options_.shuffle || options_.sampler || options_.drop_last))
      throw_bad_option(o, "batch_sampler", "a batch sampler",
                       "is mutually exclusive with batch_size, shuffle, sampler and drop_last "
                       "(leave them at their defaults)");
    if (options_.sampler && options_.shuffle)
      throw_bad_option(o, "shuffle", "true",
                       "is mutually exclusive with sampler (the sampler decides the order)");
    if constexpr (!map_style) {
      if (options_.shuffle || options_.sampler || options_.batch_sampler)
        throw_bad_option(o, options_.shuffle ? "shuffle" : "sampler", "set",
                         "does not apply to an IterableDataset (a stream has no indices to "
                         "order); leave it unset");
    }
  }

  // The batch sampler of the options, or one over the sampler of the options, a
  // RandomSampler on the loader's generator (shuffle) or a SequentialSampler.
  std::shared_ptr<BatchSamplerBase> make_batch_sampler() const requires map_style {
    if (options_.batch_sampler) return options_.batch_sampler;
    auto sampler = options_.sampler;
    if (!sampler && options_.shuffle)
      sampler = std::make_shared<RandomSampler>(dataset_size(),
                                                RandomSamplerOptions{.generator = generator_});
    else if (!sampler)
      sampler = std::make_shared<SequentialSampler>(dataset_size());
    return std::make_shared<BatchSampler>(std::move(sampler), options_.batch_size,
                                          options_.drop_last);
  }

  [[nodiscard]] std::int64_t dataset_size() const requires map_style {
    return static_cast<std::int64_t>(dataset_->size());
  }
  [[nodiscard]] std::int64_t window() const noexcept {
    return options_.num_workers * options_.prefetch_factor.value_or(2);
  }

  // Waits for whatever the workers are doing (an abandoned epoch's batches) and drops it.
  void quiesce() {
    if (pool_) pool_->cancel(/*finish_queued=*/options_.persistent_workers);
  }

  std::vector<torch::Tensor> current_generators() const {
    std::vector<torch::Tensor> out;
    for (const auto& g : generators_) out.push_back(g.get_state());
    return out;
  }
  static c10::IValue stacked_states(const std::vector<torch::Tensor>& states) {
    if (states.empty()) return c10::IValue();
    for (const auto& s : states)
      if (!s.defined()) return c10::IValue();
    return torch::stack(states);
  }
  void set_generators(const torch::Tensor& states) {
    if (!states.defined()) return;
    if (states.size(0) != options_.num_workers) {
      std::cerr << "lightning: warning: the checkpoint's DataLoader had " << states.size(0)
                << " workers and this one has " << options_.num_workers
                << "; the workers' random streams start afresh\n";
      return;
    }
    generators_.clear();
    for (std::int64_t w = 0; w < states.size(0); ++w) {
      auto g = at::make_generator<at::CPUGeneratorImpl>(0);
      g.set_state(states[w].clone());
      generators_.push_back(g);
    }
  }

  // Python's iterator start: the base seed (each epoch, or once with persistent workers)
  // from the loader's generator, then, lazily in Python but in the same order, the
  // sampler's draws.
  void start_epoch(const torch::Tensor& workers) {
    quiesce();
    ++epoch_id_;
    if (!options_.persistent_workers) pool_.reset();
    done_ = false;
    current_.reset();
    const std::int64_t nw = options_.num_workers;
    if (nw == 0 || !options_.persistent_workers || !started_) {
      const auto base =
          generator_
              ? torch::empty({}, torch::kLong).random_(*generator_).template item<std::int64_t>()
              : torch::empty({}, torch::kLong).random_().template item<std::int64_t>();
      if (nw > 0) {
        generators_.clear();
        for (std::int64_t w = 0; w < nw; ++w)
          generators_.push_back(at::make_generator<at::CPUGeneratorImpl>(
              static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(w)));
      }
      base_seed_ = static_cast<std::uint64_t>(base);
      started_ = true;
    }
    if (workers.defined()) set_generators(workers);
    if constexpr (map_style) plan_ = std::make_shared<const BatchPlan>(batch_sampler_->batches());
    if (nw > 0) {
      epoch_start_states_ = current_generators();
      recent_.assign(static_cast<std::size_t>(nw), {});
      slots_ =
          std::make_shared<std::vector<detail::LoadedBatch<B>>>(static_cast<std::size_t>(window()));
      if (!pool_) pool_ = std::make_unique<detail::WorkerThreads>(nw, options_.timeout);
      if constexpr (!map_style) {
        auto streams = std::make_shared<std::vector<Stream>>();
        for (std::int64_t w = 0; w < nw; ++w) streams->push_back(Stream{*dataset_});
        streams_ = std::move(streams);
        active_.assign(static_cast<std::size_t>(nw), 1);
        turn_ = 0;
      }
    } else if constexpr (!map_style) {
      stream_.emplace(Stream{*dataset_});
    }
  }

  // Keeps the window() batches from `wanted` on (the next the iterating thread will wait
  // for) posted.
  void dispatch_window(std::int64_t wanted) {
    if (options_.num_workers == 0) return;
    while (dispatched_ < wanted + window()) {
      if constexpr (map_style) {
        if (dispatched_ >= plan_->size()) return;
        post_map(dispatched_);
      } else {
        if (!post_stream(dispatched_)) return;
      }
      ++dispatched_;
    }
  }

  // Posts task `task` to worker w: load(w, num_workers), the batch or nothing at the end
  // of a stream, runs there as that worker (its info and generator set), and the result
  // lands in the task's slot.
  template <class Load>
  void post(std::int64_t task, std::int64_t w, Load load) {
    auto state = pool_->state();
    pool_->post(static_cast<std::size_t>(w),
                [state, generation = state->generation, task, w, nw = options_.num_workers,
                 seed = base_seed_ + static_cast<std::uint64_t>(w),
                 gen = generators_[static_cast<std::size_t>(w)], slots = slots_, window = window(),
                 load = std::move(load)]() mutable {
                  WorkerInfo info{w, nw, seed, gen};
                  detail::WorkerScope scope(info);
                  detail::LoadedBatch<B> r;
                  r.task = task;
                  r.worker = w;
                  try {
                    if (std::optional<B> batch = load(w, nw)) {
                      r.batch.emplace(std::move(*batch));
                      r.kind = detail::LoadedBatch<B>::Kind::batch;
                    } else {
                      r.kind = detail::LoadedBatch<B>::Kind::exhausted;
                    }
                  } catch (...) {
                    r.error = std::current_exception();
                    r.kind = detail::LoadedBatch<B>::Kind::error;
                  }
                  deliver(*state, generation, gen, *slots, window, std::move(r));
                });
  }

  void post_map(std::int64_t b) requires map_style {
    post(b, b % options_.num_workers,
         [dataset = dataset_, plan = plan_, collate = options_.collate, pin = options_.pin_memory,
          b](std::int64_t w, std::int64_t nw) mutable {
           return std::optional<B>(load(*dataset, *plan, b, collate, pin, w, nw));
         });
  }

  // A stream's task goes to the next worker whose stream has not ended (Python's cycle
  // over active workers). Returns false when every stream has ended.
  bool post_stream(std::int64_t task) requires(!map_style) {
    const auto nw = options_.num_workers;
    std::int64_t w = -1;
    for (std::int64_t k = 0; k < nw; ++k) {
      const auto c = (turn_ + k) % nw;
      if (active_[static_cast<std::size_t>(c)]) {
        w = c;
        break;
      }
    }
    if (w < 0) return false;
    turn_ = (w + 1) % nw;
    task_worker_.resize(static_cast<std::size_t>(std::max<std::int64_t>(task + 1, 1)));
    task_worker_[static_cast<std::size_t>(task)] = w;
    post(task, w,
         [streams = streams_, collate = options_.collate, pin = options_.pin_memory,
          batch_size = options_.batch_size,
          drop_last = options_.drop_last](std::int64_t worker, std::int64_t nw) mutable {
           return load_stream((*streams)[static_cast<std::size_t>(worker)], batch_size, drop_last,
                              collate, pin, worker, nw);
         });
    return true;
  }

  // A worker's result, with its generator after it, into its slot (task % window), unless
  // the epoch it belongs to was abandoned meanwhile.
  static void deliver(detail::WorkerThreads::State& state, std::uint64_t generation,
                      at::Generator& gen, std::vector<detail::LoadedBatch<B>>& slots,
                      std::int64_t window, detail::LoadedBatch<B>&& r) {
    r.rng_after = gen.get_state();
    std::lock_guard lock(state.m);
    if (state.generation == generation)
      slots[static_cast<std::size_t>(r.task % window)] = std::move(r);
  }

  static std::string describe(const D& dataset, std::int64_t index) {
    if constexpr (requires { dataset.describe(index); })
      return " (" + std::string(dataset.describe(index)) + ")";
    else
      return "";
  }

  static B finish(std::function<B(std::vector<example_type>&&)>& collate,
                  std::vector<example_type>&& examples, bool pin, const std::string& what,
                  const std::string& where) {
    try {
      B batch = collate(std::move(examples));
      if (pin) batch = map_tensors(batch, [](const torch::Tensor& t) { return t.pin_memory(); });
      return batch;
    } catch (const std::exception& e) {
      throw DataLoaderError("lightning: " + where + " could not collate " + what + ": " + e.what());
    }
  }

  static B load(const D& dataset, const BatchPlan& plan, std::int64_t b,
                std::function<B(std::vector<example_type>&&)>& collate, bool pin,
                std::int64_t worker, std::int64_t num_workers) requires map_style {
    const auto len = plan.batch_length(b);
    const std::int64_t* idx = plan.batch_indices(b);
    const auto n = static_cast<std::int64_t>(dataset.size());
    const auto where = detail::where_of(worker, num_workers);
    std::vector<example_type> examples;
    examples.reserve(static_cast<std::size_t>(len));
    for (std::int64_t k = 0; k < len; ++k) {
      if (idx[k] < 0 || idx[k] >= n)
        throw DataLoaderError("lightning: " + where + ": the sampler gave index " +
                              std::to_string(idx[k]) + " in batch " + std::to_string(b) +
                              ", outside the dataset of " + std::to_string(n) + " examples");
      try {
        examples.push_back(dataset.get(idx[k]));
      } catch (const std::exception& e) {
        throw DataLoaderError("lightning: " + where + " could not load example " +
                              std::to_string(idx[k]) + describe(dataset, idx[k]) + " of batch " +
                              std::to_string(b) + ": " + e.what());
      }
    }
    return finish(collate, std::move(examples), pin, "batch " + std::to_string(b), where);
  }

  // A stream that ended is not asked again (Python's fetcher remembers it too).
  struct Stream {
    D dataset;
    bool ended = false;
  };

  static std::optional<B> load_stream(Stream& stream, std::int64_t batch_size, bool drop_last,
                                      std::function<B(std::vector<example_type>&&)>& collate,
                                      bool pin, std::int64_t worker,
                                      std::int64_t num_workers) requires(!map_style) {
    const auto where = detail::where_of(worker, num_workers);
    std::vector<example_type> examples;
    examples.reserve(static_cast<std::size_t>(batch_size));
    while (static_cast<std::int64_t>(examples.size()) < batch_size) {
      try {
        if (stream.ended) break;
        auto e = stream.dataset.next();
        if (!e) {
          stream.ended = true;
          break;
        }
        examples.push_back(std::move(*e));
      } catch (const std::exception& e) {
        throw DataLoaderError("lightning: " + where +
                              " could not read the next example of its "
                              "stream: " +
                              e.what());
      }
    }
    if (examples.empty() || (drop_last && static_cast<std::int64_t>(examples.size()) < batch_size))
      return std::nullopt;
    return finish(collate, std::move(examples), pin, "a batch of its stream", where);
  }

  // Makes batch next_ the current one (or ends the epoch).
  void fetch() {
    current_.reset();
    if (options_.num_workers == 0) {
      if constexpr (map_style) {
        if (next_ >= plan_->size()) return end_epoch();
        current_.emplace(
            load(*dataset_, *plan_, next_, options_.collate, options_.pin_memory, 0, 0));
      } else {
        auto batch = load_stream(*stream_, options_.batch_size, options_.drop_last,
                                 options_.collate, options_.pin_memory, 0, 0);
        if (!batch) return end_epoch();
        current_.emplace(std::move(*batch));
      }
      return;
    }
    for (;;) {
      if (next_ >= dispatched_) return end_epoch();  // nothing left to wait for
      detail::LoadedBatch<B> r;
      {
        auto state = pool_->state();
        std::unique_lock lock(state->m);
        auto& slot = (*slots_)[static_cast<std::size_t>(next_ % window())];
        const auto ready = [&] {
          return slot.task == next_ && slot.kind != decltype(r)::Kind::none;
        };
        if (options_.timeout > 0.0) {
          if (!state->done.wait_for(lock, std::chrono::duration<double>(options_.timeout), ready))
            throw DataLoaderError(
                "lightning: DataLoader timed out after " + detail::seconds_text(options_.timeout) +
                " s waiting for batch " + std::to_string(next_) + " from worker " +
                std::to_string(worker_of(next_)) +
                " (DataLoaderOptions.timeout; the dataset's get or the collate function is "
                "taking longer, or is stuck)");
        } else {
          state->done.wait(lock, ready);
        }
        r = std::move(slot);
        slot = {};
      }
      if (r.kind == decltype(r)::Kind::error) std::rethrow_exception(r.error);
      auto& recent = recent_[static_cast<std::size_t>(r.worker)];
      recent.entries[static_cast<std::size_t>(recent.next)] = {next_, std::move(r.rng_after)};
      recent.next = (recent.next + 1) % 3;
      if constexpr (!map_style) {
        if (r.kind == decltype(r)::Kind::exhausted) {
          active_[static_cast<std::size_t>(r.worker)] = 0;
          ++next_;
          dispatch_window(next_);
          continue;
        }
      }
      dispatch_window(next_ + 1);  // next_ stays the current batch's index until advance()
      current_.emplace(std::move(*r.batch));
      return;
    }
  }

  void advance() {
    ++next_;
    fetch();
  }

  void end_epoch() {
    done_ = true;
    current_.reset();
    if (!options_.persistent_workers) pool_.reset();
  }

  [[nodiscard]] std::int64_t worker_of(std::int64_t task) const {
    if constexpr (map_style)
      return task % options_.num_workers;
    else
      return task_worker_[static_cast<std::size_t>(task)];
  }

  // Each worker's last three consumed batches and its generator after each: enough for any
  // k the iterating thread can ask about (it is at most one batch ahead of its consumer,
  // and k may be the batch being trained on).
  struct Recent {
    std::array<std::pair<std::int64_t, torch::Tensor>, 3> entries{
        {{-1, torch::Tensor()}, {-1, torch::Tensor()}, {-1, torch::Tensor()}}};
    int next = 0;
  };

  std::shared_ptr<const D> dataset_;
  Options options_;
  std::shared_ptr<BatchSamplerBase> batch_sampler_;
  std::optional<at::Generator> generator_;
  bool started_ = false;  // persistent workers have been seeded
  std::uint64_t base_seed_ = 0;
  std::vector<at::Generator> generators_;  // one per worker
  std::vector<torch::Tensor> epoch_start_states_;
  std::vector<Recent> recent_;

  // The running epoch.
  std::shared_ptr<const BatchPlan> plan_;
  std::optional<Stream> stream_;                  // num_workers = 0, a stream
  std::shared_ptr<std::vector<Stream>> streams_;  // a stream per worker
  std::vector<char> active_;                      // streams not yet ended
  std::vector<std::int64_t> task_worker_;
  std::int64_t turn_ = 0;
  std::uint64_t epoch_id_ = 0;  // the running iteration (iterators check it)
  std::int64_t next_ = 0, dispatched_ = 0;
  bool done_ = true;
  std::optional<B> current_;
  // Where workers leave batches (slot = task % window), under the workers' mutex.
  std::shared_ptr<std::vector<detail::LoadedBatch<B>>> slots_;
  std::unique_ptr<detail::WorkerThreads> pool_;  // last: joined first
};

template <class D>
DataLoader(D, DataLoaderOptions<example_t<D>>) -> DataLoader<D>;
template <class D>
DataLoader(D) -> DataLoader<D>;
// A dataset shared with other loaders (or the caller), not copied.
template <class D>
DataLoader(std::shared_ptr<const D>, DataLoaderOptions<example_t<D>>) -> DataLoader<D>;
template <class D>
DataLoader(std::shared_ptr<D>, DataLoaderOptions<example_t<D>>) -> DataLoader<D>;

}  // namespace lightning::data
