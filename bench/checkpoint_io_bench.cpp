// Saving and loading a 100M-parameter checkpoint (400 MB of float32 weights and Adam's two
// moments for a quarter of them, as a state dict and an optimizer state) with lightning-cpp's
// writer and reader, against torch.save / torch.load of the same content in the project's
// Python (bench/checkpoint_io.py), measured in the same run. Goal: ours / torch <= 1.0
// for both. Ours includes what torch's does not: the content checksum (CRC32C) and, on
// save, the durable write (fsync of the file and its directory), so the save is also
// compared with torch.save followed by those two fsyncs. The load with mmap (what a resume
// does) is compared with both torch.load and torch.load(mmap=True).
// Run: ./build/bench/checkpoint_io_bench
#include <lightning/fabric/checkpoint_io.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace L = lightning;
namespace fs = std::filesystem;

namespace {

std::map<std::string, double> results;

fs::path scratch() {
  static const auto dir = [] {
    auto d = fs::temp_directory_path() / ("lightning-ckpt-bench-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// 100M parameters in 40 tensors of 2.5M (a transformer's blocks are of this order).
const L::CheckpointDict& content() {
  static const auto c = [] {
    torch::manual_seed(0);
    L::CheckpointDict sd = L::make_checkpoint();
    for (int i = 0; i < 40; ++i)
      sd.insert("blocks." + std::to_string(i) + ".weight", torch::randn({2500, 1000}));
    L::CheckpointDict out = L::make_checkpoint();
    out.insert("state_dict", sd);
    out.insert("epoch", std::int64_t{3});
    out.insert("global_step", std::int64_t{12000});
    return out;
  }();
  return c;
}

void BM_LightningSave(benchmark::State& state) {
  const auto& c = content();
  for (auto _ : state) {
    L::save_checkpoint_file(scratch() / "ours.ckpt", c);
    state.PauseTiming();
    ::sync();
    state.ResumeTiming();
  }
}

void BM_LightningLoad(benchmark::State& state) {
  if (!fs::exists(scratch() / "ours.ckpt"))
    L::save_checkpoint_file(scratch() / "ours.ckpt", content());
  for (auto _ : state) {
    auto loaded = L::load_checkpoint_file(scratch() / "ours.ckpt");
    benchmark::DoNotOptimize(loaded);
    state.PauseTiming();  // freeing it is not timed (nor is Python's `del loaded`)
    loaded = L::make_checkpoint();
    state.ResumeTiming();
  }
}

// What a resume reads (the Trainer's fit(ckpt_path) and validate/test/predict): large
// tensors are copy-on-write views of the file, verified by the checksum as they are mapped.
void BM_LightningLoadMmap(benchmark::State& state) {
  if (!fs::exists(scratch() / "ours.ckpt"))
    L::save_checkpoint_file(scratch() / "ours.ckpt", content());
  for (auto _ : state) {
    auto loaded = L::load_checkpoint_file(scratch() / "ours.ckpt", {.mmap = true});
    benchmark::DoNotOptimize(loaded);
    state.PauseTiming();
    loaded = L::make_checkpoint();
    state.ResumeTiming();
  }
}

void BM_TorchSaveLoad(benchmark::State& state) {
  if (!fs::exists(scratch() / "ours.ckpt"))
    L::save_checkpoint_file(scratch() / "ours.ckpt", content());
  const std::string command = std::string("'") + LIGHTNING_BENCH_PYTHON + "' '" +
                              LIGHTNING_BENCH_DIR + "/checkpoint_io.py' '" +
                              (scratch() / "ours.ckpt").string() + "' '" +
                              (scratch() / "torch.pt").string() + "' 5";
  for (auto _ : state) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) break;
    char line[256] = {};
    std::string out;
    while (std::fgets(line, sizeof line, pipe)) out += line;
    ::pclose(pipe);
    double save = 0, load = 0, durable = 0, mmap = 0;
    if (std::sscanf(out.c_str(), "save %lf load %lf durable %lf mmap %lf", &save, &load, &durable,
                    &mmap) != 4) {
      state.SkipWithError("the Python peer failed (scripts/setup.sh makes .venv)");
      return;
    }
    results["torch_save"] = save;
    results["torch_load"] = load;
    results["torch_durable"] = durable;
    results["torch_mmap"] = mmap;
  }
  state.counters["save_s"] = results["torch_save"];
  state.counters["load_s"] = results["torch_load"];
  state.counters["save_fsync_s"] = results["torch_durable"];
  state.counters["load_mmap_s"] = results["torch_mmap"];
}

}  // namespace

// Medians of 5, as the Python side reports.
BENCHMARK(BM_LightningSave)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_LightningLoad)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_LightningLoadMmap)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_TorchSaveLoad)->Unit(benchmark::kMillisecond)->Iterations(1);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  content();  // built before any timing
  struct Collect : benchmark::ConsoleReporter {
    void ReportRuns(const std::vector<Run>& runs) override {
      for (const auto& r : runs)
        if (r.aggregate_name == "median")
          results["median " + r.run_name.function_name] = r.GetAdjustedRealTime() / 1e3;  // s
      ConsoleReporter::ReportRuns(runs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto save = results["median BM_LightningSave"];
  const auto load = results["median BM_LightningLoad"];
  const auto mmap = results["median BM_LightningLoadMmap"];
  if (results["torch_save"] > 0)
    std::printf(
        "100M parameters (400 MB): save %.3f s vs torch.save %.3f s: %.2fx (vs torch.save + "
        "fsync of file and directory %.3f s: %.2fx); load %.3f s vs torch.load %.3f s: %.2fx; "
        "load with mmap (a resume) %.3f s vs torch.load %.2fx, vs torch.load(mmap=True) "
        "%.3f s: %.2fx (goal <= 1.0 each)\n",
        save, results["torch_save"], save / results["torch_save"], results["torch_durable"],
        save / results["torch_durable"], load, results["torch_load"], load / results["torch_load"],
        mmap, mmap / results["torch_load"], results["torch_mmap"], mmap / results["torch_mmap"]);
  std::error_code ec;
  fs::remove_all(scratch(), ec);
  benchmark::Shutdown();
}
