// SimpleProfiler: the actions a Trainer reports, against Lightning 2.6's SimpleProfiler on
// the same run; the report's text, against Lightning's summary() of the same timings; the
// report's file; start/stop misuse.
#include <lightning/lightning.hpp>

#include <gtest/gtest.h>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace simple_profiler_test {

namespace L = lightning;
namespace fs = std::filesystem;
using lightning::testing::expect_error;
using lightning::testing::run_python_program;
using lightning::testing::SimpleModel;

// A module with hooks of each kind Lightning times: lifecycle, batch, optimization,
// transfer, a validation step.
struct HookedModel : SimpleModel {
  torch::Tensor validation_step(const lightning::testing::XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(forward(x), y.unsqueeze(1));
    log("val_loss", loss);
    return loss;
  }
  void on_train_epoch_start() {}
  void on_train_batch_end(const torch::Tensor&, const lightning::testing::XY&, std::int64_t) {}
  void on_before_backward(const torch::Tensor&) {}
  void on_validation_epoch_end() {}
};

// A callback with one hook, and one with a state key (Lightning profiles callbacks under
// their state_key).
struct Recorder {
  int calls = 0;
  void on_train_batch_end(auto&, auto&, const auto&, const auto&, std::int64_t) { ++calls; }
};
struct Keyed {
  void on_validation_end(auto&, auto&) {}
  std::string state_key() const { return "Keyed{'every': 1}"; }
};

auto loader(std::int64_t n) {
  torch::manual_seed(0);
  return L::data::TensorLoader({torch::randn({n, 10}), torch::randn({n})}, {.batch_size = 32});
}

std::map<std::string, std::int64_t> calls_of(const L::SimpleProfiler& p) {
  std::map<std::string, std::int64_t> calls;
  for (const auto& row : p.rows()) calls[row.action] = row.calls;
  return calls;
}

TEST(SimpleProfiler, TimesTheActionsLightningTimesInTheSameRun) {
  const auto dir = fs::current_path() / "run";
  HookedModel model;
  auto train = loader(96), val = loader(64);
  L::Trainer trainer({.max_epochs = 2,
                      .num_sanity_val_steps = 0,
                      .enable_progress_bar = false,
                      .enable_checkpointing = false,
                      .enable_model_summary = false,
                      .logger = false,
                      .default_root_dir = dir},
                     Recorder{}, Keyed{}, L::SimpleProfiler({.filename = "perf"}));
  static_assert(decltype(trainer)::profiling);
  trainer.fit(model, train, val);
  const auto ours = calls_of(trainer.profiler());
  ASSERT_FALSE(ours.empty());
  EXPECT_EQ(trainer.callback<Recorder>().calls, 6);  // the profiler is not a callback

  // Lightning's run of the same shape: its rows and their counts.
  const auto result = run_python_program(R"(
import warnings, torch, pytorch_lightning as pl
warnings.filterwarnings("ignore")
from pytorch_lightning.profilers import SimpleProfiler
class HookedModel(pl.LightningModule):
    def __init__(self):
        super().__init__(); self.linear = torch.nn.Linear(10, 1)
    def training_step(self, b, i):
        x, y = b; loss = torch.nn.functional.mse_loss(self.linear(x), y.unsqueeze(1))
        self.log("train_loss", loss); return loss
    def validation_step(self, b, i):
        x, y = b; loss = torch.nn.functional.mse_loss(self.linear(x), y.unsqueeze(1))
        self.log("val_loss", loss); return loss
    def on_train_epoch_start(self): pass
    def on_train_batch_end(self, o, b, i): pass
    def on_before_backward(self, l): pass
    def on_validation_epoch_end(self): pass
    def configure_optimizers(self): return torch.optim.Adam(self.parameters(), 1e-3)
class Recorder(pl.Callback):
    def on_train_batch_end(self, t, m, o, b, i): pass
class Keyed(pl.Callback):
    def on_validation_end(self, t, m): pass
    @property
    def state_key(self): return "Keyed{'every': 1}"
def loader(n):
    ds = torch.utils.data.TensorDataset(torch.randn(n, 10), torch.randn(n))
    return torch.utils.data.DataLoader(ds, batch_size=32)
p = SimpleProfiler()
t = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, num_sanity_val_steps=0, profiler=p,
               callbacks=[Recorder(), Keyed()])
t.fit(HookedModel(), loader(96), loader(64))
for action, durations in p.recorded_durations.items():
    print(f"{len(durations)}\t{action}")
)");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  std::map<std::string, std::int64_t> theirs;
  for (const auto& line : lightning::testing::lines_of(result.output)) {
    const auto tab = line.find('\t');
    theirs[line.substr(tab + 1)] = std::stoll(line.substr(0, tab));
  }
  // Every action we time is one Lightning times, as often.
  for (const auto& [action, n] : ours) {
    const auto it = theirs.find(action);
    if (it == theirs.end()) {
      ADD_FAILURE() << action << " is not an action Lightning reports";
    } else {
      EXPECT_EQ(n, it->second) << action;
    }
  }
  // What Lightning times and we do not: hooks this module and these callbacks do not
  // declare (Lightning calls its base classes' empty ones), and Lightning's own steps
  // that have no counterpart here.
  const std::vector<std::string> not_here{
      "configure_gradient_clipping", "transfer_batch_to_device",
      "on_validation_model_eval",    "on_validation_model_zero_grad",
      "on_validation_model_train",   "configure_callbacks",
      "configure_sharded_model",     "prepare_data",
      "on_before_batch_transfer",    "on_after_batch_transfer"};
  for (const auto& [action, n] : theirs) {
    if (ours.contains(action)) continue;
    const auto dot = action.rfind('.');
    const auto hook = action.substr(dot + 1);
    const bool strategy_hook = action.starts_with("[Strategy]") && hook.starts_with("on_");
    const bool module_hook = action.starts_with("[LightningModule]");
    bool undeclared = std::find(not_here.begin(), not_here.end(), hook) != not_here.end();
    if (module_hook && !undeclared)
      undeclared = hook != "on_train_epoch_start" && hook != "on_train_batch_end" &&
                   hook != "on_before_backward" && hook != "on_validation_epoch_end";
    if (action.starts_with("[Callback]"))
      undeclared = action != "[Callback]Recorder.on_train_batch_end" &&
                   action != "[Callback]Keyed{'every': 1}.on_validation_end";
    EXPECT_TRUE(strategy_hook || undeclared)
        << action << " (" << n << " calls) is timed by Lightning but not here";
  }
  for (const char* action :
       {"run_training_epoch", "run_training_batch", "[_TrainingEpochLoop].train_dataloader_next",
        "[_EvaluationLoop].val_next", "[Strategy]SingleDeviceStrategy.training_step",
        "[Strategy]SingleDeviceStrategy.validation_step", "[Strategy]SingleDeviceStrategy.backward",
        "[Strategy]SingleDeviceStrategy.batch_to_device",
        "[LightningModule]HookedModel.optimizer_step",
        "[LightningModule]HookedModel.optimizer_zero_grad",
        "[LightningModule]HookedModel.configure_optimizers",
        "[LightningModule]HookedModel.on_before_backward", "[Callback]Recorder.on_train_batch_end",
        "[Callback]Keyed{'every': 1}.on_validation_end"})
    EXPECT_TRUE(ours.contains(action)) << action;

  // The report: appended to <log_dir>/fit-perf.txt (no logger: default_root_dir).
  const auto report = dir / "fit-perf.txt";
  ASSERT_TRUE(std::filesystem::exists(report));
  std::ifstream in(report);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(text.str().starts_with("FIT Profiler Report\n")) << text.str();
  EXPECT_NE(text.str().find("|  run_training_epoch "), std::string::npos) << text.str();
}

TEST(SimpleProfiler, ReportIsLightningsTextForTheSameTimings) {
  L::SimpleProfiler extended, short_form({.extended = false});
  for (auto* p : {&extended, &short_form}) {
    p->setup(L::Stage::fit, std::nullopt, {});
    for (int i = 0; i < 3; ++i) {
      p->start("run_training_batch");
      { auto s = p->scope("[Strategy]SingleDeviceStrategy.training_step"); }
      p->stop("run_training_batch");
    }
    p->start("[LightningModule]Ünïcode.on_fit_start");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    p->stop("[LightningModule]Ünïcode.on_fit_start");
    { auto s = p->scope("run_training_epoch"); }
  }
  const double wall = 0.0123456789;
  // Lightning's summary() of the same durations (each row: its total, then zeros, so that
  // fsum and the mean are the same numbers ours computes) and the same wall time.
  std::string rows;
  char number[64];
  for (const auto& r : extended.rows()) {
    std::snprintf(number, sizeof number, "%.17g", r.total_s());
    rows += "    (" + std::string("\"") + r.action + "\", " + number + ", " +
            std::to_string(r.calls) + "),\n";
  }
  std::snprintf(number, sizeof number, "%.17g", wall);
  const auto program = std::string(R"(
import time
from pytorch_lightning.profilers import SimpleProfiler
rows = [
)") + rows + R"(]
def report(extended):
    p = SimpleProfiler(extended=extended)
    p._stage = "fit"
    for action, total, calls in rows:
        p.recorded_durations[action] = [total] + [0.0] * (calls - 1)
    p.start_time = 0.0
    real = time.perf_counter
    time.perf_counter = lambda: )" +
                       number + R"(
    try:
        return p.summary()
    finally:
        time.perf_counter = real
import sys
sys.stdout.write(report(True) + "\x00" + report(False))
)";
  // The short form's rows are the same actions with their own timings: give Python those.
  const auto result = run_python_program(program);
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto zero = result.output.find('\0');
  ASSERT_NE(zero, std::string::npos);
  EXPECT_EQ(extended.summary(wall), result.output.substr(0, zero));

  std::string short_rows;
  for (const auto& r : short_form.rows()) {
    std::snprintf(number, sizeof number, "%.17g", r.total_s());
    short_rows += "    (\"" + r.action + "\", " + number + ", " + std::to_string(r.calls) + "),\n";
  }
  const auto short_program = program.substr(0, program.find("rows = [")) + "rows = [\n" +
                             short_rows + program.substr(program.find("]\ndef report"));
  const auto short_result = run_python_program(short_program);
  LIGHTNING_EXPECT_PYTHON_OK(short_result);
  EXPECT_EQ(short_form.summary(wall),
            short_result.output.substr(short_result.output.find('\0') + 1));
  EXPECT_EQ(extended.rows().size(), 4u);
  EXPECT_EQ(extended.rows()[0].calls, 3);
}

TEST(SimpleProfiler, StartAndStopMisuseIsAnErrorNamingTheAction) {
  L::SimpleProfiler p;
  p.start("a");
  expect_error<std::logic_error>([&] { p.start("a"); },
                                 "attempted to start a which has already started");
  expect_error<std::logic_error>([&] { p.stop("b"); }, "(b) which was never started");
  p.stop("a");
  EXPECT_EQ(p.rows().size(), 1u);
}

TEST(SimpleProfiler, EachEntryPointReportsItsOwnActionsToItsOwnFile) {
  const auto dir = fs::current_path() / "run";
  HookedModel model;
  auto train = loader(64), val = loader(32);
  L::Trainer trainer({.max_epochs = 1,
                      .enable_progress_bar = false,
                      .enable_checkpointing = false,
                      .enable_model_summary = false,
                      .logger = false,
                      .default_root_dir = dir},
                     L::SimpleProfiler({.dirpath = dir / "profiles", .filename = "p/q"}));
  trainer.fit(model, train, val);
  trainer.validate(model, val);
  const auto calls = calls_of(trainer.profiler());
  EXPECT_FALSE(calls.contains("run_training_epoch"));
  EXPECT_EQ(calls.at("[Strategy]SingleDeviceStrategy.validation_step"), 1);
  // Lightning's file name: the stage, the filename (path-unsafe characters replaced).
  EXPECT_TRUE(std::filesystem::exists(dir / "profiles" / "fit-p_q.txt"));
  EXPECT_TRUE(std::filesystem::exists(dir / "profiles" / "validate-p_q.txt"));
}

TEST(SimpleProfiler, WithoutAFileTheReportGoesToStdout) {
  const auto dir = fs::current_path() / "run";
  HookedModel model;
  auto val = loader(32);
  L::Trainer trainer({.enable_progress_bar = false,
                      .enable_checkpointing = false,
                      .enable_model_summary = false,
                      .logger = false,
                      .default_root_dir = dir},
                     L::SimpleProfiler({.extended = false}));
  ::testing::internal::CaptureStdout();
  trainer.validate(model, val);
  const auto out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("VALIDATE Profiler Report\n"), std::string::npos) << out;
  EXPECT_NE(out.find("|  Action"), std::string::npos) << out;
  EXPECT_EQ(out.find("Num calls"), std::string::npos) << out;
}

TEST(SimpleProfiler, WithoutAProfilerNothingIsTimed) {
  using Plain = L::Trainer<>;
  using PassThrough = L::Trainer<L::accelerators::Auto, L::strategies::SingleDevice,
                                 L::precision::F32, L::PassThroughProfiler>;
  static_assert(!Plain::profiling && !PassThrough::profiling);
  static_assert(std::is_same_v<Plain::callback_tuple, PassThrough::callback_tuple>);
}

}  // namespace simple_profiler_test
