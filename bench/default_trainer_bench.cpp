// The Trainer as users run it, against the hand-written loop: the seed workload
// (Linear(10, 1), 1000 x 10 examples, batch 32, Adam, train_loss logged every step) over
// 30 epochs = 960 steps per fit, with Lightning's defaults on: a progress bar (writing
// to a file, as in a job's log), a durable checkpoint every epoch, the model summary and
// a CSV logger. Goal: default Trainer / hand-written <= 1.05.
//
// Each benchmark reports host microseconds per step (`us/step`); the ratios of medians to
// the hand-written loop of the same run are printed at the end.
// Run: ./build/bench/default_trainer_bench
#include <benchmark/benchmark.h>

#include <lightning/lightning.hpp>

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

namespace {

constexpr int kEpochs = 30;
constexpr int64_t kBatch = 32;
constexpr int64_t kStepsPerEpoch = 32;  // 31 full batches and one of 8

struct Data {
  torch::Tensor X = torch::randn({1000, 10});
  torch::Tensor y = torch::randn({1000});
};
Data& data() {
  static Data d;
  return d;
}

// The seed example's module: logs train_loss every step (prog_bar, as Lightning's example).
struct SeedModel : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor training_step(const XY& batch, int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(linear(x), y.unsqueeze(1));
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

std::filesystem::path run_dir() {
  static const auto dir =
      std::filesystem::temp_directory_path() / ("lightning-bench-" + std::to_string(::getpid()));
  return dir;
}

void report(benchmark::State& state) {
  state.counters["us/step"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kEpochs * kStepsPerEpoch,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_HandWritten(benchmark::State& state) {
  auto& d = data();
  for (auto _ : state) {
    SeedModel model;
    auto optimizer = model.configure_optimizers();
    model.train();
    for (int epoch = 0; epoch < kEpochs; ++epoch)
      for (int64_t i = 0; i < d.X.size(0); i += kBatch) {
        const int64_t n = std::min(kBatch, d.X.size(0) - i);
        auto x = d.X.narrow(0, i, n), y = d.y.narrow(0, i, n);
        optimizer.zero_grad();
        auto loss = torch::mse_loss(model.linear(x), y.unsqueeze(1));
        loss.backward();
        optimizer.step();
      }
    benchmark::DoNotOptimize(model.linear->weight.data_ptr());
  }
  report(state);
}

// The defaults, configured as a user would for a job whose output goes to a file.
void run_default_trainer(benchmark::State& state, bool checkpointing) {
  auto& d = data();
  L::data::TensorLoader loader({d.X, d.y}, {.batch_size = kBatch});
  std::ofstream sink(run_dir() / "stdout.txt");
  for (auto _ : state) {
    SeedModel model;
    L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
               L::callbacks::ProgressBar, L::callbacks::ModelSummary, L::loggers::CSVLogger>
        trainer({.max_epochs = kEpochs,
                 .enable_checkpointing = checkpointing,
                 .default_root_dir = run_dir()},
                L::callbacks::ProgressBar({.stream = &sink}),
                L::callbacks::ModelSummary({.stream = &sink}),
                L::loggers::CSVLogger({.save_dir = run_dir()}));
    trainer.fit(model, loader);
    benchmark::DoNotOptimize(model.linear->weight.data_ptr());
  }
  report(state);
}
void BM_DefaultTrainer(benchmark::State& state) {
  run_default_trainer(state, true);
}
void BM_DefaultTrainer_NoCheckpointing(benchmark::State& state) {
  run_default_trainer(state, false);
}
// Every default off: the loop and the module's log() call alone.
void BM_Trainer_DefaultsOff(benchmark::State& state) {
  auto& d = data();
  L::data::TensorLoader loader({d.X, d.y}, {.batch_size = kBatch});
  for (auto _ : state) {
    SeedModel model;
    L::Trainer<L::accelerators::CPU> trainer({.max_epochs = kEpochs,
                                              .enable_progress_bar = false,
                                              .enable_checkpointing = false,
                                              .enable_model_summary = false,
                                              .logger = false});
    trainer.fit(model, loader);
    benchmark::DoNotOptimize(model.linear->weight.data_ptr());
  }
  report(state);
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(::isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}
  std::map<std::string, double> medians;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")
        medians[r.run_name.function_name] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

BENCHMARK(BM_HandWritten)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DefaultTrainer)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DefaultTrainer_NoCheckpointing)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Trainer_DefaultsOff)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // the workload is too small for intra-op threads; less noise
  std::filesystem::create_directories(run_dir());
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=7", agg = "--benchmark_report_aggregates_only=true",
              order = "--benchmark_enable_random_interleaving=true";
  args.push_back(reps.data());
  args.push_back(agg.data());
  args.push_back(order.data());
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double base = reporter.medians["BM_HandWritten"];
  constexpr double steps = kEpochs * kStepsPerEpoch;
  std::printf("\nMedians, host us per step, ratio to BM_HandWritten (same run; goal <= 1.05):\n");
  for (const auto& [name, t] : reporter.medians)
    std::printf("  %-36s %8.3f ms  %7.1f us/step  ratio %.3f\n", name.c_str(), t,
                t * 1000.0 / steps, base > 0 ? t / base : 0.0);
  std::filesystem::remove_all(run_dir());
  benchmark::Shutdown();
}
