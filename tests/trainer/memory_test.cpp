// The trainer keeps no per-step history: resident memory stays flat over a long run; and
// the memory a step frees is kept for the next step, not handed back to the OS and faulted
// in again (fabric/host_memory.hpp).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "support/models.hpp"

namespace L = lightning;

namespace {
// Resident set size in KiB, from /proc/self/statm.
int64_t rss_kib() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Minor page faults inside each training step (batch start to batch end).
struct FaultProbe {
  long at_start = 0;
  std::vector<long> per_step;
  void on_train_batch_start(auto&, auto&, const auto&, std::int64_t) { at_start = minor_faults(); }
  void on_train_batch_end(auto&, auto&, const auto&, const auto&, std::int64_t) {
    per_step.push_back(minor_faults() - at_start);
  }
};

// The Fashion-MNIST CNN of docs/performance.md: ~7,000 pages of activations and
// gradients per step at batch 64.
struct SmallCnn : L::LightningModule {
  torch::nn::Conv2d conv1{
      register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)))};
  torch::nn::Conv2d conv2{
      register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)))};
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(64 * 7 * 7, 128))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(128, 10))};
  torch::Tensor training_step(const lightning::testing::XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto h = torch::max_pool2d(torch::relu(conv1(x)), 2);
    h = torch::max_pool2d(torch::relu(conv2(h)), 2);
    return torch::cross_entropy_loss(fc2(torch::relu(fc1(h.flatten(1)))), y);
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

struct RssProbe {
  std::vector<int64_t>* samples;
  void on_train_epoch_end(auto& trainer, auto&) {
    if ((trainer.current_epoch + 1) % 100 == 0) samples->push_back(rss_kib());
  }
};
}  // namespace

TEST(Memory, ResidentMemoryIsFlatOverAThousandEpochs) {
  auto [X, y] = lightning::testing::seed_data();
  lightning::testing::SimpleModel model;
  std::vector<int64_t> samples;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32, RssProbe>
      trainer({.max_epochs = 1000,
               .enable_progress_bar = false,
               .enable_checkpointing = false,
               .enable_model_summary = false},
              RssProbe{&samples});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32, .shuffle = true}));
  ASSERT_EQ(samples.size(), 10u);
  EXPECT_EQ(trainer.global_step, 32000);
  // After warm-up (epoch 100), 28,800 more steps may not grow memory by more than 1 MiB:
  // keeping even 40 bytes per step would exceed that.
  const int64_t growth = samples.back() - samples.front();
  std::string trace;
  for (auto s : samples) trace += std::to_string(s) + " ";
  EXPECT_LT(growth, 1024) << "RSS (KiB) every 100 epochs: " << trace;
  RecordProperty("rss_kib_every_100_epochs", trace);
  std::cout << "RSS (KiB) every 100 epochs: " << trace << '\n';
}

TEST(Memory, TrainingStepsDoNotFaultTheirWorkingSetInAgain) {
  if (L::detail::malloc_tuned_by_environment())
    GTEST_SKIP() << "the environment sets malloc's thresholds (or opts out); nothing to check";
  torch::manual_seed(0);
  const auto x = torch::randn({64 * 12, 1, 28, 28});
  const auto y = torch::randint(10, {64 * 12});
  SmallCnn model;
  lightning::testing::CpuTrainer<FaultProbe> trainer({.max_epochs = 1,
                                                      .enable_progress_bar = false,
                                                      .enable_checkpointing = false,
                                                      .enable_model_summary = false},
                                                     FaultProbe{});
  trainer.fit(model, L::data::TensorLoader({x, y}, {.batch_size = 64}));
  auto faults = trainer.callback<FaultProbe>().per_step;
  ASSERT_EQ(faults.size(), 12u);
  // The first steps grow the heap to the working set (and the optimizer's state); from
  // then on a step reuses what the previous one freed. Without the retention every step
  // faults in its working set again: 3,000-7,000 pages (docs/performance.md). With it, a
  // step faults in a few dozen pages, or about 400 in some runs: under CTest from some
  // checkouts (9 of 12 runs from one path, none from another, the same binary never
  // when started by hand; seen before issue 21's changes as well), a layout effect not
  // pinned down. The bound sits between the two regimes with room on both sides.
  std::string trace;
  for (auto f : faults) trace += std::to_string(f) + " ";
  std::nth_element(faults.begin(), faults.begin() + 6, faults.end());
  EXPECT_LT(faults[6], 1000) << "median of the minor page faults per training step; per step: "
                             << trace;
}
