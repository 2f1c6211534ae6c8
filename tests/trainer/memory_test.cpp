// The trainer keeps no per-step history: resident memory stays flat over a long run.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include <unistd.h>
#include <fstream>

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
