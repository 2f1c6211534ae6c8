// DeviceStatsMonitor: Lightning's rows (hooks, steps, key names) on the CPU, values from
// /proc that agree with the kernel's own figures, and the logger it needs.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace L = lightning;

namespace device_stats_monitor_test {

using lightning::testing::CpuTrainer;
using lightning::testing::RecordingLogger;
using lightning::testing::XY;

// Each row as "step key key ..." with the keys Lightning has (psutil's three); our own
// process_* keys are checked apart.
std::vector<std::string> lightning_keys_of(const std::vector<RecordingLogger::Row>& rows) {
  std::vector<std::string> out;
  for (const auto& row : rows) {
    std::string line = std::to_string(row.step);
    for (const auto& [k, v] : row.metrics)
      if (k.find("/process_") == std::string::npos) line += " " + k;
    out.push_back(line);
  }
  return out;
}

// The rows Lightning 2.6's DeviceStatsMonitor sends (psutil replaced by a stub, which
// Lightning needs on the CPU and this environment does not install): the same hooks,
// steps and key names, in order, with validation inside fit.
TEST(DeviceStatsMonitor, LogsLightningsRowsOnTheCpu) {
  const auto peer = lightning::testing::run_python_program(R"(
import logging, sys, types, warnings, torch
psutil = types.ModuleType("psutil")
psutil.virtual_memory = lambda: types.SimpleNamespace(percent=1.0)
psutil.swap_memory = lambda: types.SimpleNamespace(percent=2.0)
psutil.cpu_percent = lambda: 3.0
sys.modules["psutil"] = psutil
import pytorch_lightning as pl
import pytorch_lightning.accelerators.cpu as cpu
import pytorch_lightning.callbacks.device_stats_monitor as dsm
cpu._PSUTIL_AVAILABLE = True
dsm._PSUTIL_AVAILABLE = True
from pytorch_lightning.loggers.logger import Logger
from torch.utils.data import DataLoader, TensorDataset
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
class Rec(Logger):
    name, version = "rec", 0
    def log_metrics(self, metrics, step):
        print(step, " ".join(sorted(metrics)))
    def log_hyperparams(self, *a, **k): pass
class M(pl.LightningModule):
    def __init__(s): super().__init__(); s.l = torch.nn.Linear(10, 1)
    def training_step(s, b, i): return torch.nn.functional.mse_loss(s.l(b[0]), b[1].unsqueeze(1))
    def validation_step(s, b, i): pass
    def configure_optimizers(s): return torch.optim.SGD(s.parameters(), lr=0.01)
X, y = torch.randn(32, 10), torch.randn(32)
t = pl.Trainer(max_epochs=2, log_every_n_steps=3, logger=Rec(), callbacks=[pl.callbacks.DeviceStatsMonitor()],
               enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
               num_sanity_val_steps=1)
t.fit(M(), DataLoader(TensorDataset(X, y), batch_size=4), DataLoader(TensorDataset(X, y), batch_size=8))
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto expected = lightning::testing::lines_of(peer.output);
  ASSERT_GE(expected.size(), 6u) << peer.output;

  auto X = torch::randn({32, 10}), y = torch::randn({32});
  struct Validated : lightning::testing::SimpleModel {
    void validation_step(const XY&, std::int64_t) {}
  } model;
  std::vector<RecordingLogger::Row> rows;
  CpuTrainer<L::callbacks::DeviceStatsMonitor, RecordingLogger> trainer(
      {.max_epochs = 2,
       .num_sanity_val_steps = 1,
       .log_every_n_steps = 3,
       .enable_progress_bar = false,
       .enable_checkpointing = false,
       .enable_model_summary = false},
      L::callbacks::DeviceStatsMonitor(), RecordingLogger{&rows});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 4}),
              L::data::TensorLoader({X, y}, {.batch_size = 8}));
  // SimpleModel logs train_loss: those rows (the Trainer's own) are not the monitor's.
  std::vector<RecordingLogger::Row> monitor_rows;
  for (const auto& row : rows)
    if (row.metrics.begin()->first.starts_with("DeviceStatsMonitor.")) monitor_rows.push_back(row);
  EXPECT_EQ(lightning_keys_of(monitor_rows), expected);
}

// The values: percentages in [0, 100] agreeing with /proc/meminfo, the resident set near
// /proc/self/statm's, the process's CPU use visible after some work; cpu_stats = false on
// the CPU logs nothing.
TEST(DeviceStatsMonitor, CpuValuesAgreeWithTheKernelsFigures) {
  L::CpuStats cpu;
  volatile double sink = 0;
  for (int i = 0; i < 30'000'000; ++i) sink = sink + i * 0.5;
  const auto m = cpu.read();
  for (const char* k :
       {"cpu_vm_percent", "cpu_percent", "cpu_swap_percent", "process_cpu_percent"}) {
    ASSERT_TRUE(m.contains(k)) << k;
    EXPECT_GE(m.at(k), 0.0) << k;
  }
  EXPECT_LE(m.at("cpu_vm_percent"), 100.0);
  EXPECT_LE(m.at("cpu_percent"), 100.0);
  EXPECT_GT(m.at("process_cpu_percent"), 10.0);  // a busy loop on this thread
  std::ifstream meminfo("/proc/meminfo");
  double total = 0, available = 0;
  for (std::string key, unit; meminfo >> key;) {
    double v = 0;
    meminfo >> v;
    std::getline(meminfo, unit);
    if (key == "MemTotal:") total = v;
    if (key == "MemAvailable:") available = v;
  }
  EXPECT_NEAR(m.at("cpu_vm_percent"), (total - available) / total * 100.0, 2.0);
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  statm >> pages >> resident;
  EXPECT_NEAR(m.at("process_rss_bytes"), resident * static_cast<double>(::sysconf(_SC_PAGESIZE)),
              64.0 * 1024 * 1024);

  auto X = torch::randn({32, 10}), y = torch::randn({32});
  std::vector<RecordingLogger::Row> rows;
  lightning::testing::SimpleModel model;
  CpuTrainer<L::callbacks::DeviceStatsMonitor, RecordingLogger> off(
      {.max_epochs = 1,
       .log_every_n_steps = 1,
       .enable_progress_bar = false,
       .enable_checkpointing = false,
       .enable_model_summary = false},
      L::callbacks::DeviceStatsMonitor({.cpu_stats = false}), RecordingLogger{&rows});
  off.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 4}));
  for (const auto& row : rows)
    for (const auto& [k, v] : row.metrics) EXPECT_FALSE(k.starts_with("DeviceStatsMonitor")) << k;
}

TEST(DeviceStatsMonitor, NeedsALogger) {
  auto X = torch::randn({32, 10}), y = torch::randn({32});
  lightning::testing::SimpleModel model;
  CpuTrainer<L::callbacks::DeviceStatsMonitor> trainer(lightning::testing::bare({.max_epochs = 1}),
                                                       L::callbacks::DeviceStatsMonitor());
  lightning::testing::expect_invalid_argument(
      [&] {
        trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 4}));
      },
      "DeviceStatsMonitor needs a logger");
}

}  // namespace device_stats_monitor_test
