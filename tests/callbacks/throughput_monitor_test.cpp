// ThroughputMonitor and Fabric's Throughput: the same keys, values and steps as Lightning
// 2.6's for the same clock readings, batches and FLOPs.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace L = lightning;

namespace throughput_monitor_test {

using lightning::testing::CpuTrainer;
using lightning::testing::RecordingLogger;
using lightning::testing::XY;

// One line per logged row: "step key=value key=value ..." (keys sorted), values printed
// as Python's f"{v:.12g}" prints them.
std::string row_text(const L::MetricMap& metrics, std::int64_t step) {
  std::ostringstream out;
  out << step;
  for (const auto& [k, v] : metrics) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.12g", v);
    out << ' ' << k << '=' << buffer;
  }
  return out.str();
}

// Fabric's Throughput fed the same totals: every compute() equal, key for key.
TEST(Throughput, ComputesFabricsRatesFromTheSameTotals) {
  const auto peer = lightning::testing::run_python_program(R"(
from lightning_fabric.utilities.throughput import Throughput
for world, flops in [(1, None), (2, 1000.0)]:
    t = Throughput(available_flops=flops, world_size=world, window_size=3)
    for i in range(1, 7):
        t.update(time=0.5 * i + 0.01 * i * i, batches=i, samples=4 * i, lengths=10 * i, flops=100 * i)
        m = t.compute()
        print(0, " ".join(f"{k}={float(v):.12g}" for k, v in sorted(m.items())))
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  std::vector<std::string> ours;
  for (auto [world, flops] :
       {std::pair<std::int64_t, std::optional<double>>{1, std::nullopt}, {2, 1000.0}}) {
    L::Throughput t({.available_flops = flops, .world_size = world, .window_size = 3});
    for (int i = 1; i <= 6; ++i) {
      t.update(0.5 * i + 0.01 * i * i, i, 4 * i, 10 * i, 100.0 * i);
      ours.push_back(row_text(t.compute(), 0));
    }
  }
  EXPECT_EQ(ours, lightning::testing::lines_of(peer.output));
  lightning::testing::expect_invalid_argument([] { (void)L::Throughput({.window_size = 1}); },
                                              "ThroughputOptions.window_size = 1 is invalid");
  L::Throughput t;
  t.update(1.0, 1, 4);
  lightning::testing::expect_invalid_argument([&] { t.update(0.5, 2, 8); }, "time went back");
  lightning::testing::expect_invalid_argument([&] { t.update(2.0, 5, 4); },
                                              "samples (4) must be >= batches (5)");
}

// A module that tells its FLOPs per batch.
struct FlopsModel : lightning::testing::SimpleModel {
  double flops_per_batch = 100.0;
  void validation_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    (void)torch::mse_loss(forward(x), y.unsqueeze(1));
  }
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(forward(x), y.unsqueeze(1));
  }
};

// fit with validation: the rows Lightning's ThroughputMonitor sends to its logger (its
// clock replaced by one that advances 0.25 s a reading, on both sides), in order, with
// their steps: train rows after the logging steps that step the optimizer, validation
// rows counted across the fit's validation batches, the training clock paused while it
// validates.
TEST(ThroughputMonitor, LogsLightningsRowsForTheSameClock) {
  const auto peer = lightning::testing::run_python_program(R"(
import logging, warnings, torch
import pytorch_lightning as pl
import pytorch_lightning.callbacks.throughput_monitor as tm
from pytorch_lightning.loggers.logger import Logger
from torch.utils.data import DataLoader, TensorDataset
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
class Clock:
    t = 0.0
    def perf_counter(self):
        Clock.t += 0.25
        return Clock.t
tm.time = Clock()
class Rec(Logger):
    name, version = "rec", 0
    def log_metrics(self, metrics, step):
        print(step, " ".join(f"{k}={float(v):.12g}" for k, v in sorted(metrics.items())))
    def log_hyperparams(self, *a, **k): pass
    @property
    def experiment(self): return None
class M(pl.LightningModule):
    flops_per_batch = 100
    def __init__(s): super().__init__(); s.l = torch.nn.Linear(10, 1)
    def training_step(s, b, i): return torch.nn.functional.mse_loss(s.l(b[0]), b[1].unsqueeze(1))
    def validation_step(s, b, i): torch.nn.functional.mse_loss(s.l(b[0]), b[1].unsqueeze(1))
    def configure_optimizers(s): return torch.optim.SGD(s.parameters(), lr=0.01)
X, y = torch.randn(32, 10), torch.randn(32)
monitor = pl.callbacks.ThroughputMonitor(batch_size_fn=lambda b: b[0].size(0),
                                         length_fn=lambda b: 3 * b[0].size(0),
                                         window_size=3)
t = pl.Trainer(max_epochs=2, log_every_n_steps=2, accumulate_grad_batches=1, logger=Rec(),
               callbacks=[monitor], enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, num_sanity_val_steps=1)
t.fit(M(), DataLoader(TensorDataset(X, y), batch_size=4), DataLoader(TensorDataset(X, y), batch_size=8))
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto expected = lightning::testing::lines_of(peer.output);
  ASSERT_GE(expected.size(), 8u) << peer.output;

  auto X = torch::randn({32, 10}), y = torch::randn({32});
  double now = 0.0;
  L::callbacks::ThroughputMonitor monitor(
      {.window_size = 3, .clock = [&now] { return now += 0.25; }},
      [](const XY& b) { return std::get<0>(b).size(0); },
      [](const XY& b) { return 3 * std::get<0>(b).size(0); });
  std::vector<RecordingLogger::Row> rows;
  FlopsModel model;
  CpuTrainer<decltype(monitor), RecordingLogger> trainer({.max_epochs = 2,
                                                          .num_sanity_val_steps = 1,
                                                          .log_every_n_steps = 2,
                                                          .enable_progress_bar = false,
                                                          .enable_checkpointing = false,
                                                          .enable_model_summary = false},
                                                         monitor, RecordingLogger{&rows});
  ::testing::internal::CaptureStderr();
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 4}),
              L::data::TensorLoader({X, y}, {.batch_size = 8}));
  (void)::testing::internal::GetCapturedStderr();
  std::vector<std::string> ours;
  for (const auto& row : rows) ours.push_back(row_text(row.metrics, row.step));
  EXPECT_EQ(ours, expected);
}

// Without flops_per_batch: one warning naming the module, and no FLOP keys; test and
// predict rows under their own prefixes.
TEST(ThroughputMonitor, WarnsOnceWithoutFlopsAndMeasuresTestAndPredict) {
  auto X = torch::randn({32, 10}), y = torch::randn({32});
  double now = 0.0;
  L::callbacks::ThroughputMonitor monitor({.window_size = 2, .clock = [&now] { return now += 1; }});
  std::vector<RecordingLogger::Row> rows;
  struct Plain : lightning::testing::SimpleModel {
    void test_step(const XY&, std::int64_t) {}
    torch::Tensor predict_step(const XY& b, std::int64_t) { return forward(std::get<0>(b)); }
  } model;
  CpuTrainer<decltype(monitor), RecordingLogger> trainer({.max_epochs = 1,
                                                          .log_every_n_steps = 1,
                                                          .enable_progress_bar = false,
                                                          .enable_checkpointing = false,
                                                          .enable_model_summary = false},
                                                         monitor, RecordingLogger{&rows});
  ::testing::internal::CaptureStderr();
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
  trainer.test(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
  (void)trainer.predict(model, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  const auto errors = ::testing::internal::GetCapturedStderr();
  const std::string warning = "ThroughputMonitor: define a `flops_per_batch` member in";
  ASSERT_NE(errors.find(warning), std::string::npos) << errors;
  EXPECT_EQ(errors.find(warning, errors.find(warning) + 1), std::string::npos) << errors;
  bool train = false, test = false, predict = false;
  for (const auto& row : rows) {
    for (const auto& [k, v] : row.metrics) {
      EXPECT_EQ(k.find("flops"), std::string::npos) << k;
      train |= k == "train/device/samples_per_sec";
      test |= k == "test/device/samples_per_sec";
      predict |= k == "predict/samples";
    }
  }
  EXPECT_TRUE(train && test && predict);
  const auto last = trainer.callback<decltype(monitor)>().compute(L::Stage::test);
  EXPECT_EQ(last.at("samples"), 32.0);  // not prefixed: compute() is Throughput's
}

}  // namespace throughput_monitor_test
