// What profiling costs (issue 24, item 3). Three questions, each answered by paired runs
// (the two fits of a pair back to back, alternating which goes first; the median of the
// pairs' ratios is reported, as bench/support/seed_workload.hpp explains):
//   1. Off: the default Trainer against the same Trainer given PassThroughProfiler, whose
//      actions compile to nothing. Goal: <= 1.01, read beside the noise floor measured in
//      the same run (the same Trainer on both sides of each pair). The exact answer is
//      callgrind's instruction count (docs/profiling.md): the code is the same.
//   2. On: the default Trainer with SimpleProfiler against it without; the difference per
//      timed action is SimpleProfiler's own cost per hook.
//   3. The same on the Fashion-MNIST CNN, where a step is milliseconds, not microseconds.
// And SimpleProfiler's scope() alone, per action, without a Trainer around it.
// Run: ./build/bench/profiler_bench
#include "support/fashion_net.hpp"
#include "support/seed_workload.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace L = lightning;
namespace B = lightning::bench;

namespace {

constexpr int kEpochs = 10;

using B::SeedModel;

struct CnnModel : L::LightningModule {
  B::FashionNet net{register_module("net", B::FashionNet())};
  torch::Tensor training_step(const B::XY& batch, int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::cross_entropy_loss(net(x), y);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.01); }
};

std::filesystem::path run_dir() {
  static const auto dir = std::filesystem::temp_directory_path() /
                          ("lightning-profiler-bench-" + std::to_string(::getpid()));
  return dir;
}

// Lightning's defaults as a job whose output goes to a file has them (progress bar,
// summary, CSV logger, a checkpoint every epoch), plus `extra` among the callbacks.
template <class Model, class... Extra>
std::int64_t fit_default(auto& loader, int epochs, Extra... extra) {
  std::ofstream sink(run_dir() / "stdout.txt");
  Model model;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
             L::callbacks::ProgressBar, L::callbacks::ModelSummary, L::loggers::CSVLogger, Extra...>
      trainer({.max_epochs = epochs, .default_root_dir = run_dir()},
              L::callbacks::ProgressBar({.stream = &sink}),
              L::callbacks::ModelSummary({.stream = &sink}),
              L::loggers::CSVLogger({.save_dir = run_dir()}), std::move(extra)...);
  trainer.fit(model, loader);
  benchmark::ClobberMemory();
  std::int64_t actions = 0;
  if constexpr (requires { trainer.profiler().rows(); })
    for (const auto& row : trainer.profiler().rows()) actions += row.calls;
  return actions;
}

// Median of the paired ratios variant/baseline; the benchmark's time is the variant's.
void paired(benchmark::State& state, auto&& baseline, auto&& variant) {
  std::vector<double> ratios, extra_ns;
  bool base_first = true;
  for (auto _ : state) {
    double base = 0, own = 0;
    std::int64_t actions = 0;
    if (base_first) base = B::seconds_of(baseline);
    own = B::seconds_of([&] { actions = variant(); });
    if (!base_first) base = B::seconds_of(baseline);
    base_first = !base_first;
    ratios.push_back(own / base);
    if (actions > 0) extra_ns.push_back((own - base) * 1e9 / static_cast<double>(actions));
    state.SetIterationTime(own);
  }
  const auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  state.counters["paired"] = median(ratios);
  if (!extra_ns.empty()) state.counters["ns/action"] = median(extra_ns);
}

auto& seed_loader() {
  static auto& d = B::seed_data();
  static L::data::TensorLoader loader({d.X, d.y}, {.batch_size = B::kBatch});
  return loader;
}
auto& cnn_loader() {
  static auto data = [] {
    torch::manual_seed(0);
    return std::pair{torch::rand({2048, 1, 28, 28}), torch::randint(0, 10, {2048})};
  }();
  static L::data::TensorLoader loader({data.first, data.second}, {.batch_size = 64});
  return loader;
}

// The noise floor: the same default Trainer on both sides of every pair.
void BM_Seed_SameTrainerTwice(benchmark::State& state) {
  paired(
      state, [] { fit_default<SeedModel>(seed_loader(), kEpochs); },
      [] { return fit_default<SeedModel>(seed_loader(), kEpochs); });
}
void BM_Seed_PassThroughProfiler(benchmark::State& state) {
  paired(
      state, [] { fit_default<SeedModel>(seed_loader(), kEpochs); },
      [] { return fit_default<SeedModel>(seed_loader(), kEpochs, L::PassThroughProfiler{}); });
}
void BM_Seed_SimpleProfiler(benchmark::State& state) {
  paired(
      state, [] { fit_default<SeedModel>(seed_loader(), kEpochs); },
      [] {
        return fit_default<SeedModel>(seed_loader(), kEpochs,
                                      L::SimpleProfiler({.filename = "perf"}));
      });
}
void BM_Cnn_SameTrainerTwice(benchmark::State& state) {
  paired(
      state, [] { fit_default<CnnModel>(cnn_loader(), 1); },
      [] { return fit_default<CnnModel>(cnn_loader(), 1); });
}
void BM_Cnn_PassThroughProfiler(benchmark::State& state) {
  paired(
      state, [] { fit_default<CnnModel>(cnn_loader(), 1); },
      [] { return fit_default<CnnModel>(cnn_loader(), 1, L::PassThroughProfiler{}); });
}
void BM_Cnn_SimpleProfiler(benchmark::State& state) {
  paired(
      state, [] { fit_default<CnnModel>(cnn_loader(), 1); },
      [] {
        return fit_default<CnnModel>(cnn_loader(), 1, L::SimpleProfiler({.filename = "perf"}));
      });
}

// One action through SimpleProfiler: a name looked up, two clock reads, a sum.
void BM_SimpleProfiler_Scope(benchmark::State& state) {
  L::SimpleProfiler p;
  p.setup(L::Stage::fit, std::nullopt, {});
  const std::string action = "[LightningModule]SeedModel.on_train_batch_end";
  for (auto _ : state) {
    auto scope = p.scope(action);
    benchmark::DoNotOptimize(&scope);
  }
}
void BM_SimpleProfiler_StartStop(benchmark::State& state) {
  L::SimpleProfiler p;
  p.setup(L::Stage::fit, std::nullopt, {});
  const std::string action = "[LightningModule]SeedModel.on_train_batch_end";
  for (auto _ : state) {
    p.start(action);
    p.stop(action);
  }
}

}  // namespace

BENCHMARK(BM_Seed_SameTrainerTwice)->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Seed_PassThroughProfiler)
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Seed_SimpleProfiler)->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Cnn_SameTrainerTwice)->Iterations(4)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Cnn_PassThroughProfiler)
    ->Iterations(4)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Cnn_SimpleProfiler)->Iterations(4)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SimpleProfiler_Scope);
BENCHMARK(BM_SimpleProfiler_StartStop);

int main(int argc, char** argv) {
  std::filesystem::create_directories(run_dir());
  torch::set_num_threads(1);
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5", agg = "--benchmark_report_aggregates_only=true";
  args.insert(args.begin() + 1, {reps.data(), agg.data()});
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  std::printf(
      "Goal: BM_*_PassThroughProfiler paired <= 1.01 (a profiler that is off costs nothing)\n");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(run_dir());
}
