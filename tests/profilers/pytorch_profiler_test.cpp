// PyTorchProfiler: the windows it records and the traces it writes, against Lightning 2.6's
// PyTorchProfiler on a run of the same shape; its operator table, against PyTorch's
// key_averages().table() of the same events; option errors.
#include <lightning/lightning.hpp>
#include <lightning/profilers/pytorch_profiler.hpp>

#include <gtest/gtest.h>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace pytorch_profiler_test {

namespace L = lightning;
namespace fs = std::filesystem;
using lightning::testing::expect_invalid_argument;
using lightning::testing::run_python_program;
using lightning::testing::XY;

struct EvaluatedModel : lightning::testing::ValidatedModel {
  void test_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    log("test_loss", torch::mse_loss(forward(x), y.unsqueeze(1)));
  }
};

auto loader(std::int64_t n) {
  return L::data::TensorLoader({torch::randn({n, 10}), torch::randn({n})}, {.batch_size = 8});
}

// One epoch with the profiler and nothing else that writes or prints.
auto profiled_trainer(const fs::path& root, L::PyTorchProfilerOptions options) {
  return L::Trainer({.max_epochs = 1,
                     .enable_progress_bar = false,
                     .enable_checkpointing = false,
                     .enable_model_summary = false,
                     .logger = false,
                     .default_root_dir = root},
                    L::PyTorchProfiler(std::move(options)));
}

// The same run in Lightning: its traces' names, the steps each recorded, the names of its
// scopes; then the same of ours (in `ours`), for the test to compare line by line.
std::string lightning_and_ours(const std::string& schedule, const fs::path& ours) {
  return R"py(
import glob, json, os, warnings, torch, pytorch_lightning as pl
warnings.filterwarnings("ignore")
from pytorch_lightning.profilers import PyTorchProfiler
class EvaluatedModel(pl.LightningModule):
    def __init__(self):
        super().__init__(); self.linear = torch.nn.Linear(10, 1)
    def loss(self, b):
        x, y = b; return torch.nn.functional.mse_loss(self.linear(x), y.unsqueeze(1))
    def training_step(self, b, i):
        loss = self.loss(b); self.log("train_loss", loss); return loss
    def validation_step(self, b, i): self.log("val_loss", self.loss(b))
    def test_step(self, b, i): self.log("test_loss", self.loss(b))
    def configure_optimizers(self): return torch.optim.Adam(self.parameters(), 1e-3)
def loader(n):
    ds = torch.utils.data.TensorDataset(torch.randn(n, 10), torch.randn(n))
    return torch.utils.data.DataLoader(ds, batch_size=8)
kwargs = dict()py" +
         schedule + R"py()
if kwargs: kwargs = {"schedule": torch.profiler.schedule(**kwargs)}
profiler = PyTorchProfiler(dirpath="theirs", filename="prof", **kwargs)
trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, profiler=profiler)
model = EvaluatedModel()
trainer.fit(model, loader(96), loader(64))
trainer.test(model, loader(48))
def describe(who, directory):
    for path in sorted(glob.glob(os.path.join(directory, "*.pt.trace.json"))):
        name = os.path.basename(path)
        prefix = name[: name.rindex(".", 0, len(name) - len(".pt.trace.json"))]
        with open(path) as f:
            trace = json.load(f)
        events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
        steps = sorted(int(e["name"][13:]) for e in events if e["name"].startswith("ProfilerStep#"))
        print(who, "trace", prefix, *steps, sep="\t")
        for scope in sorted({e["name"] for e in events if e["name"].startswith("[pl][profile]")}):
            print(who, "scope", prefix, scope, sep="\t")
        ops = {e["name"] for e in events if e.get("cat") == "cpu_op"}
        print(who, "framework", trace.get("Framework"), "aten::addmm" in ops, sep="\t")
describe("theirs", "theirs")
describe("ours", ")py" +
         ours.string() + R"py(")
)py";
}

struct Lines {
  std::multiset<std::string> traces, scopes, frameworks;
};
std::map<std::string, Lines> by_side(const std::string& output) {
  std::map<std::string, Lines> sides;
  for (const auto& line : lightning::testing::lines_of(output)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const auto side = line.substr(0, tab);
    const auto rest = line.substr(tab + 1);
    const auto kind = rest.substr(0, rest.find('\t'));
    auto& l = sides[side];
    (kind == "trace" ? l.traces : kind == "scope" ? l.scopes : l.frameworks).insert(rest);
  }
  return sides;
}

void expect_windows_as_lightnings(const L::PyTorchProfilerOptions& options,
                                  const std::string& python_schedule) {
  const auto dir = fs::current_path() / "ours";
  auto opts = options;
  opts.dirpath = dir;
  opts.filename = "prof";
  torch::manual_seed(0);
  EvaluatedModel model;
  auto train = loader(96), val = loader(64), test = loader(48);
  auto trainer = profiled_trainer(fs::current_path() / "run", opts);
  trainer.fit(model, train, val);
  const auto fit_traces = trainer.profiler().traces();
  trainer.test(model, test);
  ASSERT_FALSE(fit_traces.empty());
  ASSERT_FALSE(trainer.profiler().traces().empty());

  const auto result = run_python_program(lightning_and_ours(python_schedule, dir));
  LIGHTNING_EXPECT_PYTHON_OK(result);
  auto sides = by_side(result.output);
  const auto& ours = sides["ours"];
  const auto& theirs = sides["theirs"];
  // The same traces (stage, file name, the step action that ended the window), each with
  // the same steps (ProfilerStep#N).
  EXPECT_EQ(ours.traces, theirs.traces) << result.output;
  // Every scope we record is one Lightning records in the same window (Lightning records
  // more: hooks of its base classes, which are not called here), and the steps' own.
  for (const auto& scope : ours.scopes)
    EXPECT_TRUE(theirs.scopes.contains(scope)) << scope << " is not in Lightning's trace";
  for (const auto& trace : ours.traces) {
    const auto prefix = trace.substr(6, trace.find('\t', 6) - 6);
    const bool training = prefix.ends_with("training_step");
    const std::string step = training ? "training_step" : prefix.substr(prefix.rfind('.') + 1);
    EXPECT_TRUE(ours.scopes.contains("scope\t" + prefix +
                                     "\t[pl][profile][Strategy]SingleDeviceStrategy." + step))
        << prefix;
    if (training) {
      EXPECT_TRUE(ours.scopes.contains("scope\t" + prefix +
                                       "\t[pl][profile][Strategy]SingleDeviceStrategy.backward"));
      EXPECT_TRUE(ours.scopes.contains("scope\t" + prefix + "\t[pl][profile]run_training_batch"));
    }
  }
  // Valid JSON that Chrome and Perfetto read, with the operators and our name in it.
  for (const auto& f : ours.frameworks) EXPECT_EQ(f, "framework\tlightning-cpp\tTrue");
  EXPECT_EQ(ours.frameworks.size(), ours.traces.size());
}

TEST(PyTorchProfiler, RecordsTheWindowsLightningRecordsInTheSameRun) {
  expect_windows_as_lightnings({}, "");
}

TEST(PyTorchProfiler, FollowsAScheduleOfYourOwnAsLightningDoes) {
  expect_windows_as_lightnings(
      {.schedule = {.wait = 2, .warmup = 1, .active = 2, .repeat = 1, .skip_first = 1}},
      "wait=2, warmup=1, active=2, repeat=1, skip_first=1");
}

TEST(PyTorchProfiler, ReportsTheOperatorTableOfTheLastWindow) {
  const auto dir = fs::current_path() / "run";
  torch::manual_seed(0);
  EvaluatedModel model;
  auto train = loader(96), val = loader(64);
  auto trainer = profiled_trainer(dir, {.filename = "perf", .row_limit = 5});
  trainer.fit(model, train, val);
  // The report goes beside the traces, in the Trainer's log_dir (Lightning's dirpath=None).
  const auto report = trainer.profiler().report_path();
  EXPECT_EQ(report, trainer.log_dir() / "fit-perf.txt");
  std::ifstream in(report);
  std::stringstream text;
  text << in.rdbuf();
  const auto lines = lightning::testing::lines_of(text.str());
  ASSERT_EQ(lines.size(), 2u + 3u + 5u + 2u) << text.str();  // row_limit = 5
  EXPECT_EQ(lines[0], "FIT Profiler Report");
  EXPECT_EQ(lines[1], "Profile stats for: records");
  EXPECT_NE(lines[3].find("Self CPU %"), std::string::npos);
  EXPECT_TRUE(lines.back().starts_with("Self CPU time total: ")) << lines.back();
  for (const auto& t : trainer.profiler().traces()) EXPECT_EQ(t.parent_path(), trainer.log_dir());
}

// Lightning replaces its default schedule when a stage has under 5 steps; here the schedule
// stays, and what it recorded until the stage ended is reported, without a trace.
TEST(PyTorchProfiler, AFitTooShortForAWindowWritesNoTraceButReportsWhatItRecorded) {
  const auto dir = fs::current_path() / "run";
  torch::manual_seed(0);
  lightning::testing::SimpleModel model;
  auto train =
      L::data::TensorLoader({torch::randn({16, 10}), torch::randn({16})}, {.batch_size = 8});
  auto trainer = profiled_trainer(dir, {.dirpath = dir / "prof", .filename = "perf"});
  trainer.fit(model, train);  // two steps: one waited, one warmed up, the end recorded
  EXPECT_TRUE(trainer.profiler().traces().empty());
  std::ifstream in(dir / "prof" / "fit-perf.txt");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("ProfilerStep*"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("[pl][profile][Strategy]SingleDeviceStrategy.backward"),
            std::string::npos);
  fs::remove(dir / "prof" / "fit-perf.txt");
  // The profiler let go of Kineto: a profiler of our own can start.
  auto again = profiled_trainer(dir, {.dirpath = dir / "prof",
                                      .filename = "perf",
                                      .schedule = {.wait = 0, .warmup = 0, .active = 1}});
  again.fit(model, train);
  EXPECT_EQ(again.profiler().traces().size(), 1u);
  EXPECT_TRUE(fs::exists(dir / "prof" / "fit-perf.txt"));
}

struct ThrowingModel : lightning::testing::SimpleModel {
  int steps = 0;
  torch::Tensor training_step(const XY& batch, std::int64_t i) {
    if (++steps == 3) throw std::runtime_error("step 3 fails");
    return SimpleModel::training_step(batch, i);
  }
};

// A step that throws while Kineto records: the error goes on, the schedule does not move,
// and the next entry point profiles afresh.
TEST(PyTorchProfiler, AFailedStepLeavesTheProfilerUsable) {
  const auto dir = fs::current_path() / "run";
  torch::manual_seed(0);
  ThrowingModel model;
  auto train =
      L::data::TensorLoader({torch::randn({64, 10}), torch::randn({64})}, {.batch_size = 8});
  auto trainer = profiled_trainer(
      dir, {.dirpath = dir / "prof", .schedule = {.wait = 0, .warmup = 1, .active = 4}});
  lightning::testing::expect_error<std::runtime_error>([&] { trainer.fit(model, train); },
                                                       "step 3 fails");
  EXPECT_TRUE(trainer.profiler().traces().empty());
  EXPECT_FALSE(torch::profiler::impl::profilerEnabled());  // Kineto let go at the failure
  trainer.fit(model, train);  // steps 4 to 11: warm-up, then four recorded
  ASSERT_EQ(trainer.profiler().traces().size(), 1u);
  EXPECT_NE(trainer.profiler().operator_table().find("ProfilerStep*"), std::string::npos);
}

// Our events, in a file PyTorch's FunctionEvent is built from.
void write_events(const std::vector<L::profilers::ProfiledEvent>& events, const fs::path& path) {
  std::ofstream out(path);
  for (const auto& e : events)
    out << e.name << '\t' << e.thread << '\t' << e.start_ns << '\t' << e.end_ns << '\t'
        << (e.device == L::profilers::ProfiledEvent::Device::cpu ? "cpu" : "cuda") << '\t'
        << e.is_async << '\t' << e.is_user_annotation << '\t' << e.correlation_id << '\t'
        << e.linked_correlation_id << '\n';
}

// PyTorch's table of those events: FunctionEvents as _parse_kineto_results makes them
// (kernels joined to their operators by correlation id), then its own tree, averages and
// table.
constexpr const char* pytorch_table = R"py(
import sys, torch
from torch.autograd.profiler_util import EventList, FunctionEvent, _filter_name
from torch.autograd import DeviceType
path, sort_by, row_limit, use_device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] or None
events, frontend, linked = [], [], {}
for line in open(path):
    name, thread, start, end, device, is_async, annotation, corr, linked_corr = line.rstrip("\n").split("\t")
    if _filter_name(name): continue
    fe = FunctionEvent(id=int(corr), name="ProfilerStep*" if name.startswith("ProfilerStep#") else name,
                       thread=int(thread), start_us=int(start) / 1000, end_us=int(end) / 1000,
                       use_device=use_device, is_async=is_async == "1",
                       device_type=DeviceType.CPU if device == "cpu" else DeviceType.CUDA,
                       is_user_annotation=annotation == "1", stack=[], input_shapes=[])
    events.append(fe)
    if int(linked_corr) > 0: linked.setdefault(int(linked_corr), []).append(fe)
    else: frontend.append(fe)
for fe in frontend:
    if fe.device_type == DeviceType.CPU and not fe.is_async:
        for k in linked.get(fe.id, []):
            if k.device_type == DeviceType.CUDA:
                fe.append_kernel(k.name, k.device_index, k.time_range.end - k.time_range.start)
            else:
                k.thread = fe.thread
events.sort(key=lambda e: [e.time_range.start, -e.time_range.end])
table = EventList(events, use_device=use_device)
table._build_tree()
sys.stdout.write(table.key_averages().table(sort_by=sort_by or None, row_limit=row_limit))
)py";

std::string pytorch_table_of(const std::vector<L::profilers::ProfiledEvent>& events,
                             const L::profilers::OperatorTableOptions& options) {
  write_events(events, "events.tsv");
  std::ofstream("table.py") << pytorch_table;
  const auto result =
      lightning::testing::run_python({"table.py", "events.tsv", options.sort_by,
                                      std::to_string(options.row_limit), options.device_name});
  EXPECT_EQ(result.status, 0) << result.errors;
  return result.output;
}

TEST(OperatorTable, IsPyTorchsTableOfTheSameEvents) {
  torch::manual_seed(0);
  EvaluatedModel model;
  auto train = loader(96), val = loader(64);
  auto trainer = profiled_trainer(fs::current_path() / "run", {.export_to_chrome = false});
  trainer.fit(model, train, val);
  const auto events = trainer.profiler().events();
  ASSERT_GT(events.size(), 20u);
  for (const L::profilers::OperatorTableOptions& options :
       {L::profilers::OperatorTableOptions{},
        L::profilers::OperatorTableOptions{.sort_by = "self_cpu_time_total", .row_limit = -1},
        L::profilers::OperatorTableOptions{.sort_by = "count", .row_limit = 7},
        L::profilers::OperatorTableOptions{.sort_by = "", .row_limit = 12}}) {
    const auto ours =
        L::profilers::operator_table(L::profilers::key_averages(events, false), options);
    EXPECT_EQ(ours, pytorch_table_of(events, options)) << "sort_by " << options.sort_by;
  }
  EXPECT_EQ(trainer.profiler().operator_table(),
            L::profilers::operator_table(L::profilers::key_averages(events, false), {}));
}

// Kernels on a device, as a GPU's profile has them: each joined to the operator that
// launched it; device columns; nested operators of one name merged as PyTorch merges them.
TEST(OperatorTable, IsPyTorchsTableForDeviceKernels) {
  using E = L::profilers::ProfiledEvent;
  const auto cpu = [](std::string name, std::int64_t s, std::int64_t e, std::uint64_t corr,
                      std::uint64_t thread = 1) {
    return E{.name = std::move(name),
             .thread = thread,
             .start_ns = s,
             .end_ns = e,
             .correlation_id = corr};
  };
  const auto kernel = [](std::string name, std::int64_t s, std::int64_t e, std::uint64_t launcher) {
    return E{.name = std::move(name),
             .thread = 7,
             .start_ns = s,
             .end_ns = e,
             .device = E::Device::accelerator,
             .correlation_id = 900 + launcher,
             .linked_correlation_id = launcher};
  };
  std::vector<E> events{cpu("ProfilerStep#3", 0, 100'000, 1),
                        E{.name = "[pl][profile]run_training_batch",
                          .thread = 1,
                          .start_ns = 1'000,
                          .end_ns = 90'000,
                          .is_user_annotation = true,
                          .correlation_id = 2},
                        cpu("aten::linear", 2'000, 30'000, 3),
                        cpu("aten::addmm", 3'000, 20'500, 4),
                        cpu("aten::addmm", 3'500, 20'000, 5),  // the same name nested: merged
                        cpu("aten::relu", 31'000, 40'000, 6),
                        cpu("aten::mm", 41'000, 60'000, 7),
                        cpu("aten::is_leaf", 61'000, 61'500, 8),   // left out, as PyTorch does
                        cpu("aten::copy_", 62'000, 70'000, 9, 2),  // another thread
                        E{.name = "cudaStreamWaitEvent",
                          .thread = 1,
                          .start_ns = 70'500,
                          .end_ns = 75'000,
                          .is_async = true,
                          .correlation_id = 10},
                        kernel("gemm_kernel", 25'000, 45'333, 5),
                        kernel("relu_kernel", 46'000, 50'001, 6),
                        kernel("gemm_kernel", 61'000, 80'777, 7),
                        kernel("copy_kernel", 81'000, 82'000, 9),
                        cpu("ProfilerStep#4", 100'000, 150'000, 11)};
  for (const auto& options :
       {L::profilers::OperatorTableOptions{.sort_by = "cuda_time_total", .device_name = "cuda"},
        L::profilers::OperatorTableOptions{
            .sort_by = "self_cuda_time_total", .row_limit = -1, .device_name = "cuda"},
        L::profilers::OperatorTableOptions{.sort_by = "cpu_time_total", .device_name = "cuda"}}) {
    const auto ours =
        L::profilers::operator_table(L::profilers::key_averages(events, true), options);
    EXPECT_NE(ours.find("Self CUDA time total"), std::string::npos);
    EXPECT_EQ(ours, pytorch_table_of(events, options)) << "sort_by " << options.sort_by;
  }
}

TEST(PyTorchProfiler, BadOptionsAreErrorsThatNameThem) {
  expect_invalid_argument([] { L::PyTorchProfiler({.schedule = {.active = 0}}); },
                          "PyTorchProfilerOptions.schedule = {.wait = 1, .warmup = 1, .active = 0, "
                          ".repeat = 0, .skip_first = 0} is not a schedule: active must be at "
                          "least 1, the others at least 0");
  expect_invalid_argument([] { L::PyTorchProfiler({.schedule = {.wait = -1}}); },
                          "{.wait = -1, .warmup = 1, .active = 3");
  expect_invalid_argument([] { L::PyTorchProfiler({.row_limit = -2}); },
                          "PyTorchProfilerOptions.row_limit = -2 must be -1");
  expect_invalid_argument(
      [] { L::PyTorchProfiler({.sort_by_key = "cpu_time_totl"}); },
      "PyTorchProfilerOptions.sort_by_key = \"cpu_time_totl\" is not a column of the operator "
      "table; use cpu_time_total");
}

}  // namespace pytorch_profiler_test
