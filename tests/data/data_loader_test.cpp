// DataLoader: PyTorch's orders and worker seeds (checked against Python), batches in
// sampler order whatever the worker count, errors from workers, timeouts, joins, streams,
// and exact resume, alone and under the Trainer.
#include <gtest/gtest.h>

#include <lightning/data/data_loader.hpp>
#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace L = lightning;
namespace D = lightning::data;
using lightning::testing::expect_invalid_argument;

namespace {

// Example i: its index, the loading worker's seed, and a draw from its generator.
struct Probe {
  std::int64_t n = 23;
  std::int64_t size() const { return n; }
  std::tuple<std::int64_t, std::int64_t, double> get(std::int64_t i) const {
    const auto* w = D::worker_info();
    const double r = torch::rand({1}, D::worker_generator()).item<float>();
    return {i, w ? static_cast<std::int64_t>(w->seed) : -1, r};
  }
};

std::string join(const torch::Tensor& t) {
  std::string out;
  const auto c = t.contiguous();
  for (std::int64_t i = 0; i < c.numel(); ++i) {
    if (i) out += ' ';
    if (c.scalar_type() == torch::kDouble) {
      std::ostringstream s;
      s.precision(9);
      s << c[i].item<double>();
      out += s.str();
    } else {
      out += std::to_string(static_cast<std::uint64_t>(c[i].item<std::int64_t>()));
    }
  }
  return out;
}

// One line per batch: indices | seeds | draws (seeds and draws only with workers).
template <class Loader>
std::vector<std::string> probe_lines(Loader& loader, int epochs, bool with_workers) {
  std::vector<std::string> lines;
  for (int e = 0; e < epochs; ++e)
    for (auto& [i, seed, r] : loader)
      lines.push_back(join(i) + (with_workers ? " | " + join(seed) + " | " + join(r) : ""));
  return lines;
}

}  // namespace

TEST(DataLoader, OrdersSeedsAndWorkerDrawsAreTorchs) {
  const std::string program = R"(
import torch
from torch.utils.data import (DataLoader, Dataset, IterableDataset, RandomSampler,
                              WeightedRandomSampler, BatchSampler, SequentialSampler,
                              get_worker_info)
class Probe(Dataset):
    def __len__(self): return 23
    def __getitem__(self, i):
        w = get_worker_info()
        return i, (w.seed if w else -1), float(torch.rand(1).item())
def g(s): return torch.Generator().manual_seed(s)
def show(b, workers):
    i, s, r = b
    line = ' '.join(str(v) for v in i.tolist())
    if workers:
        line += ' | ' + ' '.join(str(v % 2**64) for v in s.tolist())
        line += ' | ' + ' '.join('%.9g' % v for v in r.tolist())
    print(line)
for workers, persistent in [(0, False), (2, False), (2, True), (3, False)]:
    dl = DataLoader(Probe(), batch_size=4, shuffle=True, num_workers=workers,
                    persistent_workers=persistent, generator=g(5))
    for e in range(3):
        for b in dl: show(b, workers)
    print('--')
dl = DataLoader(Probe(), batch_size=8, sampler=RandomSampler(range(23), replacement=True,
                num_samples=40, generator=g(9)))
for e in range(2):
    for b in dl: show(b, 0)
print('--')
w = [float(k % 5 + 1) for k in range(23)]
for repl, n in [(True, 15), (False, 6)]:
    dl = DataLoader(Probe(), batch_size=5, sampler=WeightedRandomSampler(w, n, repl, generator=g(4)))
    for b in dl: show(b, 0)
print('--')
dl = DataLoader(Probe(), batch_sampler=BatchSampler(SequentialSampler(range(23)), 6, True))
for b in dl: show(b, 0)
print('--')
class Stream(IterableDataset):
    def __iter__(self):
        w = get_worker_info()
        return iter(range(w.id if w else 0, 11, w.num_workers if w else 1))
for workers in [0, 2, 3]:
    for b in DataLoader(Stream(), batch_size=2, num_workers=workers):
        print(' '.join(str(v) for v in b.tolist()))
    print('--')
)";
  const auto result = lightning::testing::run_python_program(program);
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto expected = lightning::testing::lines_of(result.output);

  std::vector<std::string> ours;
  const auto add = [&](std::vector<std::string> lines) {
    ours.insert(ours.end(), lines.begin(), lines.end());
    ours.push_back("--");
  };
  for (auto [workers, persistent] : {std::pair{0, false}, {2, false}, {2, true}, {3, false}}) {
    D::DataLoader loader(Probe{}, {.batch_size = 4,
                                   .shuffle = true,
                                   .num_workers = workers,
                                   .persistent_workers = persistent,
                                   .seed = 5});
    EXPECT_EQ(loader.size(), 6);
    add(probe_lines(loader, 3, workers > 0));
  }
  {
    D::DataLoader loader(Probe{},
                         {.batch_size = 8,
                          .sampler = std::make_shared<D::RandomSampler>(
                              23, D::RandomSamplerOptions{
                                      .replacement = true,
                                      .num_samples = 40,
                                      .generator = at::make_generator<at::CPUGeneratorImpl>(9)})});
    add(probe_lines(loader, 2, false));
  }
  {
    std::vector<std::string> lines;
    auto w = torch::empty({23}, torch::kDouble);
    for (int k = 0; k < 23; ++k) w[k] = static_cast<double>(k % 5 + 1);
    for (auto [replacement, n] : {std::pair{true, 15}, {false, 6}}) {
      D::DataLoader loader(Probe{},
                           {.batch_size = 5,
                            .sampler = std::make_shared<D::WeightedRandomSampler>(
                                w, n, replacement, at::make_generator<at::CPUGeneratorImpl>(4))});
      for (auto& line : probe_lines(loader, 1, false)) lines.push_back(line);
    }
    add(lines);
  }
  {
    D::DataLoader loader(Probe{}, {.batch_sampler = std::make_shared<D::BatchSampler>(
                                       std::make_shared<D::SequentialSampler>(23), 6, true)});
    EXPECT_EQ(loader.size(), 3);
    add(probe_lines(loader, 1, false));
  }
  struct Stream {
    std::int64_t at = -1, step = 1;
    std::optional<std::int64_t> next() {
      if (at < 0) {
        const auto* w = D::worker_info();
        at = w ? w->id : 0;
        step = w ? w->num_workers : 1;
      }
      if (at >= 11) return std::nullopt;
      const auto v = at;
      at += step;
      return v;
    }
  };
  for (int workers : {0, 2, 3}) {
    D::DataLoader loader(Stream{}, {.batch_size = 2, .num_workers = workers});
    std::vector<std::string> lines;
    for (auto& b : loader) lines.push_back(join(b));
    add(lines);
  }
  EXPECT_EQ(ours, expected);
}

namespace {
// Loads slowly and unevenly, so that workers finish out of order.
struct Jittery {
  std::int64_t size() const { return 40; }
  torch::Tensor get(std::int64_t i) const {
    std::this_thread::sleep_for(std::chrono::microseconds((i * 7919) % 13 * 150));
    return torch::full({2}, static_cast<double>(i), torch::kDouble);
  }
};
}  // namespace

TEST(DataLoader, BatchesComeInSamplerOrderWhateverTheWorkerCount) {
  std::vector<std::vector<double>> reference;
  for (int workers : {0, 1, 3, 4}) {
    D::DataLoader loader(
        Jittery{}, {.batch_size = 3,
                    .shuffle = true,
                    .num_workers = workers,
                    .prefetch_factor = workers ? std::optional<std::int64_t>(3) : std::nullopt,
                    .seed = 11});
    std::vector<std::vector<double>> seen;
    for (int epoch = 0; epoch < 2; ++epoch)
      for (auto& batch : loader) {
        ASSERT_EQ(batch.dim(), 2);
        auto first = batch.select(1, 0).contiguous();
        seen.emplace_back(first.data_ptr<double>(), first.data_ptr<double>() + first.numel());
      }
    if (reference.empty())
      reference = seen;
    else
      EXPECT_EQ(seen, reference) << workers << " workers";
  }
  ASSERT_EQ(reference.size(), 28u);  // 14 batches (13 of 3, one of 1) x 2 epochs
  std::vector<double> all;
  for (std::size_t b = 0; b < 14; ++b)
    all.insert(all.end(), reference[b].begin(), reference[b].end());
  std::sort(all.begin(), all.end());
  for (int i = 0; i < 40; ++i) EXPECT_EQ(all[static_cast<std::size_t>(i)], i);
}

TEST(DataLoader, DefaultCollateStacksNumbersStringsAndTuples) {
  struct Mixed {
    std::int64_t size() const { return 5; }
    std::tuple<torch::Tensor, int, double, std::string, std::pair<bool, torch::Tensor>> get(
        std::int64_t i) const {
      return {torch::ones({2, 2}) * i,
              static_cast<int>(i),
              i / 2.0,
              "s" + std::to_string(i),
              {i % 2 == 1, torch::tensor(i)}};
    }
  };
  D::DataLoader loader(Mixed{}, {.batch_size = 3});
  auto it = loader.begin();
  auto& [t, n, x, s, p] = *it;
  EXPECT_EQ(t.sizes(), (torch::IntArrayRef{3, 2, 2}));
  EXPECT_EQ(n.scalar_type(), torch::kLong);
  EXPECT_EQ(x.scalar_type(), torch::kDouble);
  EXPECT_EQ(s, (std::vector<std::string>{"s0", "s1", "s2"}));
  EXPECT_TRUE(torch::equal(std::get<0>(p), torch::tensor({0, 1, 0})));
  EXPECT_TRUE(torch::equal(std::get<1>(p), torch::tensor({0, 1, 2}).to(std::get<1>(p).dtype())));
  ++it;
  EXPECT_EQ(std::get<0>(*it).size(0), 2);
  ++it;
  EXPECT_TRUE(it == loader.end());
}

TEST(DataLoader, ASharedDatasetIsNotCopied) {
  auto shared = std::make_shared<const Probe>();
  D::DataLoader a(shared, {.batch_size = 4});
  D::DataLoader b(std::make_shared<Probe>(), {.batch_size = 5});
  const auto copy = a;
  EXPECT_EQ(&a.dataset(), shared.get());
  EXPECT_EQ(&copy.dataset(), shared.get());
  EXPECT_EQ(a.size(), 6);
  EXPECT_EQ(b.size(), 5);
}

TEST(DataLoader, PinMemoryWithoutCudaWarnsAndLoads) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA: DataLoaderGpu.*";
  testing::internal::CaptureStderr();
  D::DataLoader loader(D::TensorDataset(torch::randn({8, 2})),
                       {.batch_size = 4, .num_workers = 2, .pin_memory = true});
  const auto warning = testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("pin_memory is set but no CUDA device"), std::string::npos) << warning;
  std::int64_t n = 0;
  for (auto& [x] : loader) n += x.size(0);
  EXPECT_EQ(n, 8);
}

TEST(DataLoaderGpu, PinMemoryPinsEveryBatch) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  D::DataLoader loader(D::TensorDataset(torch::randn({8, 2}), torch::arange(8)),
                       {.batch_size = 4, .num_workers = 2, .pin_memory = true});
  for (auto& [x, y] : loader) {
    EXPECT_TRUE(x.is_pinned());
    EXPECT_TRUE(y.is_pinned());
  }
}

TEST(DataLoader, ACustomCollateMakesAnyBatchType) {
  struct Words {
    std::int64_t size() const { return 4; }
    std::string get(std::int64_t i) const {
      return std::string(static_cast<std::size_t>(i + 1), 'a');
    }
  };
  struct Lengths {
    torch::Tensor lengths;
  };
  D::DataLoader<Words, Lengths> loader(
      Words{}, {.batch_size = 2, .num_workers = 2, .collate = [](std::vector<std::string>&& words) {
                  std::vector<std::int64_t> n;
                  for (auto& w : words) n.push_back(static_cast<std::int64_t>(w.size()));
                  return Lengths{torch::tensor(n)};
                }});
  std::vector<std::int64_t> all;
  for (auto& b : loader)
    for (std::int64_t i = 0; i < b.lengths.numel(); ++i)
      all.push_back(b.lengths[i].item<std::int64_t>());
  EXPECT_EQ(all, (std::vector<std::int64_t>{1, 2, 3, 4}));
}

namespace {
struct Failing {
  std::int64_t size() const { return 12; }
  torch::Tensor get(std::int64_t i) const {
    if (i == 7) throw std::runtime_error("corrupt record");
    return torch::zeros({1});
  }
  std::string describe(std::int64_t i) const { return "file data/" + std::to_string(i) + ".png"; }
};
}  // namespace

TEST(DataLoader, AWorkersErrorReachesTheTrainingThreadNamingTheExampleAndFile) {
  for (int workers : {0, 2}) {
    D::DataLoader loader(Failing{}, {.batch_size = 4, .num_workers = workers});
    std::int64_t batches = 0;
    try {
      for (auto& b : loader) {
        (void)b;
        ++batches;
      }
      FAIL() << "expected a DataLoaderError";
    } catch (const D::DataLoaderError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("example 7 (file data/7.png) of batch 1"), std::string::npos) << what;
      EXPECT_NE(what.find("corrupt record"), std::string::npos) << what;
      if (workers) {
        EXPECT_NE(what.find("worker 1"), std::string::npos) << what;
      }
    }
    EXPECT_EQ(batches, 1) << "batch 0 arrives, batch 1 fails";
    // The loader can start again, and fails the same way.
    EXPECT_THROW(
        {
          for (auto& b : loader) (void)b;
        },
        D::DataLoaderError);
  }
}

TEST(DataLoader, AWorkerSlowerThanTheTimeoutIsAnErrorNotAHang) {
  struct Stuck {
    std::int64_t size() const { return 8; }
    torch::Tensor get(std::int64_t i) const {
      if (i == 5) std::this_thread::sleep_for(std::chrono::seconds(4));
      return torch::zeros({1});
    }
  };
  D::DataLoader loader(Stuck{}, {.batch_size = 2, .num_workers = 2, .timeout = 1.0});
  try {
    for (auto& b : loader) (void)b;
    FAIL() << "expected a timeout";
  } catch (const D::DataLoaderError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("timed out after 1 s waiting"), std::string::npos) << what;
    EXPECT_NE(what.find("batch 2 from worker 0"), std::string::npos) << what;
    EXPECT_NE(what.find("DataLoaderOptions.timeout"), std::string::npos) << what;
  }
}

namespace {
std::size_t thread_count() {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}
}  // namespace

TEST(DataLoader, DestroyingALoaderMidEpochJoinsItsWorkers) {
  {  // Threads a runtime starts with the first thread it sees (ThreadSanitizer's) come first.
    D::DataLoader warm(Jittery{}, {.batch_size = 40, .num_workers = 1});
    for (auto& b : warm) (void)b;
  }
  const auto before = thread_count();
  for (bool persistent : {false, true}) {
    {
      D::DataLoader loader(Jittery{},
                           {.batch_size = 2, .num_workers = 3, .persistent_workers = persistent});
      auto it = loader.begin();
      ++it;
      EXPECT_EQ(thread_count(), before + 3);
    }
    EXPECT_EQ(thread_count(), before) << "persistent " << persistent;
  }
  // Without persistent workers an epoch that ends takes its workers with it.
  D::DataLoader loader(Jittery{}, {.batch_size = 8, .num_workers = 2});
  for (auto& b : loader) (void)b;
  EXPECT_EQ(thread_count(), before);
  D::DataLoader kept(Jittery{}, {.batch_size = 8, .num_workers = 2, .persistent_workers = true});
  for (auto& b : kept) (void)b;
  EXPECT_EQ(thread_count(), before + 2);
}

TEST(DataLoader, OptionsThatContradictPyTorchsRulesAreRefusedByName) {
  using O = D::DataLoaderOptions<torch::Tensor>;
  const auto make = [](O o) { return [o] { D::DataLoader loader(Jittery{}, o); }; };
  expect_invalid_argument(make({.num_workers = -1}), "DataLoaderOptions.num_workers = -1");
  expect_invalid_argument(make({.timeout = -1}), "DataLoaderOptions.timeout");
  expect_invalid_argument(make({.prefetch_factor = 2}),
                          "prefetch_factor = 2 is invalid: needs num_workers > 0");
  expect_invalid_argument(make({.persistent_workers = true}),
                          "persistent_workers = true is invalid");
  expect_invalid_argument(make({.batch_size = 0}), "batch_size = 0");
  expect_invalid_argument(
      make({.shuffle = true, .sampler = std::make_shared<D::SequentialSampler>(40)}),
      "mutually exclusive with sampler");
  expect_invalid_argument(make({.batch_size = 4,
                                .batch_sampler = std::make_shared<D::BatchSampler>(
                                    std::make_shared<D::SequentialSampler>(40), 4, false)}),
                          "mutually exclusive with batch_size");
  expect_invalid_argument([] { D::RandomSampler(4, {.num_samples = 0}); }, "num_samples = 0");
  expect_invalid_argument([] { D::WeightedRandomSampler(torch::ones({3}), 5, false); },
                          "cannot exceed the 3 weights");
}

namespace {
// A random transform on every example: noise from the worker's generator.
struct Noisy {
  torch::Tensor x, y;
  std::int64_t size() const { return x.size(0); }
  std::tuple<torch::Tensor, torch::Tensor> get(std::int64_t i) const {
    return {x[i] + 0.1 * torch::randn({x.size(1)}, D::worker_generator()), y[i]};
  }
};
}  // namespace

TEST(DataLoader, BeginAtWithWorkerStatesContinuesAnEpochBitForBit) {
  auto [X, y] = lightning::testing::seed_data(50);
  for (bool persistent : {false, true}) {
    D::DataLoader a(Noisy{X, y}, {.batch_size = 4,
                                  .shuffle = true,
                                  .num_workers = 3,
                                  .persistent_workers = persistent,
                                  .seed = 3});
    for (auto& b : a) (void)b;  // epoch 0
    const auto epoch_start = a.state_dict();
    std::vector<torch::Tensor> straight;
    torch::Tensor workers;
    const std::int64_t k = 5;
    std::int64_t index = 0;
    for (auto& [x, t] : a) {
      if (index == k) workers = a.worker_states(k);  // the iterator is on batch k
      straight.push_back(x.clone());
      ++index;
    }
    D::DataLoader b(Noisy{X, y}, {.batch_size = 4,
                                  .shuffle = true,
                                  .num_workers = 3,
                                  .persistent_workers = persistent,
                                  .seed = 3});
    b.load_state_dict(epoch_start);
    std::vector<torch::Tensor> resumed;
    for (auto it = b.begin_at(k, workers); it != b.end(); ++it)
      resumed.push_back(std::get<0>(*it).clone());
    ASSERT_EQ(resumed.size() + k, straight.size());
    for (std::size_t i = 0; i < resumed.size(); ++i)
      EXPECT_TRUE(torch::equal(resumed[i], straight[i + k]))
          << "batch " << i + k << " persistent " << persistent;
    // Without the workers' states the batches after k differ: the draws are real.
    D::DataLoader c(Noisy{X, y}, {.batch_size = 4,
                                  .shuffle = true,
                                  .num_workers = 3,
                                  .persistent_workers = persistent,
                                  .seed = 3});
    c.load_state_dict(epoch_start);
    auto it = c.begin_at(k, torch::Tensor());
    EXPECT_FALSE(torch::equal(std::get<0>(*it), straight[k]));
  }
}

TEST(DataLoader, AStreamResumesByReplayingItsEpoch) {
  struct NoisyStream {
    std::int64_t at = 0;
    std::optional<torch::Tensor> next() {
      if (at >= 30) return std::nullopt;
      return torch::rand({2}, D::worker_generator()) + static_cast<double>(at++);
    }
  };
  for (bool persistent : {false, true}) {
    const D::DataLoaderOptions<torch::Tensor> options{
        .batch_size = 3, .num_workers = 2, .persistent_workers = persistent, .seed = 4};
    D::DataLoader a(NoisyStream{}, options);
    for (auto& b : a) (void)b;
    const auto epoch_start = a.state_dict();
    std::vector<torch::Tensor> straight;
    for (auto& b : a) straight.push_back(b.clone());
    D::DataLoader b(NoisyStream{}, options);
    b.load_state_dict(epoch_start);
    std::vector<torch::Tensor> resumed;
    for (auto it = b.begin_at(4, a.worker_states(4)); it != b.end(); ++it)
      resumed.push_back((*it).clone());
    ASSERT_EQ(resumed.size() + 4, straight.size());
    for (std::size_t i = 0; i < resumed.size(); ++i)
      EXPECT_TRUE(torch::equal(resumed[i], straight[i + 4])) << "batch " << i + 4;
  }
}

TEST(DataLoader, AStreamIsNotAskedAgainAfterItsEnd) {
  struct Cycling {  // starts over after its end, as some readers do
    std::int64_t at = 0;
    std::optional<std::int64_t> next() {
      if (at == 5) {
        at = 0;
        return std::nullopt;
      }
      return at++;
    }
  };
  for (int workers : {0, 2}) {
    D::DataLoader loader(Cycling{}, {.batch_size = 2, .num_workers = workers});
    std::int64_t batches = 0, examples = 0;
    for (auto& b : loader) {
      ++batches;
      examples += b.numel();
      ASSERT_LT(batches, 20) << "the stream was read past its end";
    }
    EXPECT_EQ(batches, workers == 0 ? 3 : 6) << workers << " workers";  // 5 per stream
    EXPECT_EQ(examples, workers == 0 ? 5 : 10);
  }
}

TEST(DataLoader, PersistentWorkersAfterAnEpochCutShortDrawTheSameInEveryRun) {
  struct Slow {
    std::int64_t size() const { return 24; }
    torch::Tensor get(std::int64_t i) const {
      std::this_thread::sleep_for(std::chrono::microseconds((i * 7919) % 11 * 300));
      return torch::rand({1}, D::worker_generator());
    }
  };
  std::vector<torch::Tensor> first;
  for (int run = 0; run < 4; ++run) {
    D::DataLoader loader(Slow{}, {.batch_size = 2,
                                  .num_workers = 2,
                                  .prefetch_factor = 3,
                                  .persistent_workers = true,
                                  .seed = 1});
    {
      auto it = loader.begin();  // an epoch cut short after one batch
      (void)*it;
    }
    std::vector<torch::Tensor> draws;
    for (auto& b : loader) draws.push_back(b.clone());
    if (run == 0)
      first = draws;
    else
      for (std::size_t i = 0; i < draws.size(); ++i)
        EXPECT_TRUE(torch::equal(draws[i], first[i])) << "run " << run << " batch " << i;
  }
}

TEST(DataLoader, PersistentWorkersKeepTheirSeedAcrossAResume) {
  const D::DataLoaderOptions<std::tuple<std::int64_t, std::int64_t, double>> options{
      .batch_size = 4, .num_workers = 2, .persistent_workers = true, .seed = 7};
  D::DataLoader a(Probe{}, options);
  EXPECT_FALSE(a.worker_states(0).defined());  // no epoch yet: nothing to save
  for (auto& b : a) (void)b;
  const auto state = a.state_dict();
  const auto seeds = std::get<1>(*a.begin()).clone();
  D::DataLoader b(Probe{}, options);
  b.load_state_dict(state);
  EXPECT_TRUE(torch::equal(std::get<1>(*b.begin()), seeds));
}

TEST(DataLoader, OneLoaderRestartedUnderARunningIterationIsAClearError) {
  D::DataLoader loader(Probe{}, {.batch_size = 4, .num_workers = 2});
  auto outer = loader.begin();
  for (auto& b : loader) (void)b;  // a second loop over the same loader
  lightning::testing::expect_error<std::logic_error>([&] { (void)*outer; },
                                                     "give each loop its own DataLoader");
}

namespace {
struct Row {
  std::int64_t step;
  L::MetricMap metrics;
};
struct RecordingLogger {
  std::vector<Row>* rows;
  void log_metrics(const L::MetricMap& m, std::int64_t step) { rows->push_back({step, m}); }
};

struct NoisyData {
  torch::Tensor x, y;
  std::int64_t workers = 2;
  auto train_dataloader() {
    return D::DataLoader(Noisy{x, y}, {.batch_size = 16,
                                       .shuffle = true,
                                       .num_workers = workers,
                                       .persistent_workers = true,
                                       .seed = 21});
  }
  auto val_dataloader() {
    return D::DataLoader(D::TensorDataset(x.narrow(0, 0, 64), y.narrow(0, 0, 64)),
                         {.batch_size = 32, .num_workers = workers});
  }
};

struct FitRun {
  std::vector<Row> rows;
  torch::Tensor params;
};

FitRun fit_noisy(const std::filesystem::path& dir, const std::filesystem::path& resume = {}) {
  auto [X, y] = lightning::testing::seed_data(200);
  lightning::testing::SimpleModel model;
  FitRun run;
  lightning::testing::CpuTrainer<RecordingLogger, L::callbacks::ModelCheckpoint> trainer(
      {.max_epochs = 3,
       .log_every_n_steps = 1,
       .enable_progress_bar = false,
       .enable_model_summary = false,
       .seed = 7,
       .deterministic = true},
      RecordingLogger{&run.rows},
      L::callbacks::ModelCheckpoint({.dirpath = dir, .save_top_k = -1, .every_n_train_steps = 5}));
  NoisyData data{X, y};
  if (resume.empty())
    trainer.fit(model, data);
  else
    trainer.fit(model, data, L::CheckpointPath{resume});
  run.params = lightning::testing::flat_parameters(model).clone();
  return run;
}
}  // namespace

TEST(DataLoader, TheTrainerResumesAMidEpochCheckpointBitForBitWithWorkersOn) {
  const auto dir = std::filesystem::absolute("ckpts");
  const FitRun straight = fit_noisy(dir);
  const auto ckpt = dir / "epoch=1-step=20.ckpt";  // batch 7 of epoch 1 (13 batches an epoch)
  ASSERT_TRUE(std::filesystem::exists(ckpt));
  const auto c = L::load_checkpoint_file(ckpt);
  const auto loops = L::checkpoint_dict(L::checkpoint_dict(c.at("loops")).at("lightning_cpp"));
  ASSERT_TRUE(loops.at("mid_epoch").toBool());
  ASSERT_TRUE(loops.contains("train_loader_workers"));
  EXPECT_EQ(loops.at("train_loader_workers").toTensor().size(0), 2);
  ASSERT_TRUE(c.at("train_loader").isGenericDict());
  const FitRun resumed = fit_noisy(dir, ckpt);
  EXPECT_TRUE(torch::equal(resumed.params, straight.params));
  ASSERT_LT(resumed.rows.size(), straight.rows.size());
  const auto offset = straight.rows.size() - resumed.rows.size();
  EXPECT_EQ(resumed.rows.front().step, 20);
  for (std::size_t i = 0; i < resumed.rows.size(); ++i) {
    EXPECT_EQ(resumed.rows[i].step, straight.rows[offset + i].step) << "row " << i;
    EXPECT_EQ(resumed.rows[i].metrics, straight.rows[offset + i].metrics) << "row " << i;
  }
}

TEST(DataLoader, PredictAndValidateIterateIt) {
  struct Predictor : lightning::testing::SimpleModel {
    torch::Tensor predict_step(const lightning::testing::XY& batch, std::int64_t) {
      return forward(std::get<0>(batch));
    }
  };
  auto [X, y] = lightning::testing::seed_data(70);
  Predictor model;
  lightning::testing::CpuTrainer<> trainer(lightning::testing::bare({}));
  D::DataLoader loader(D::TensorDataset(X, y), {.batch_size = 32, .num_workers = 2});
  const auto predictions = trainer.predict(model, loader);
  ASSERT_EQ(predictions.size(), 3u);
  EXPECT_TRUE(torch::allclose(torch::cat(predictions), model.forward(X)));
}

TEST(DataLoader, ShardIsDistributedSamplersPart) {
  D::DataLoader loader(Probe{}, {.batch_size = 4, .shuffle = true, .seed = 2});
  std::vector<std::int64_t> seen;
  for (std::int64_t rank = 0; rank < 3; ++rank) {
    auto shard = loader.shard(rank, 3);
    shard.set_epoch(1);
    EXPECT_EQ(shard.size(), 2);  // 8 of 23 (padded to 24) in batches of 4
    std::vector<std::int64_t> mine;
    for (auto& [i, s, r] : shard)
      for (std::int64_t k = 0; k < i.numel(); ++k) mine.push_back(i[k].item<std::int64_t>());
    const auto expected = D::DistributedSampler::order(
                              23, {.num_replicas = 3, .rank = rank, .shuffle = true, .seed = 2}, 1)
                              .contiguous();
    EXPECT_EQ(mine, std::vector<std::int64_t>(expected.data_ptr<std::int64_t>(),
                                              expected.data_ptr<std::int64_t>() + 8));
    seen.insert(seen.end(), mine.begin(), mine.end());
  }
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(seen.size(), 23u);
  D::DataLoader custom(Probe{}, {.sampler = std::make_shared<D::SequentialSampler>(23)});
  expect_invalid_argument([&] { (void)custom.shard(0, 2); }, "give it a DistributedSampler");
}
