// The Trainer's overhead over a hand-written LibTorch loop, on the seed workload
// (Linear(10, 1), 1000 x 10 examples, batch 32, Adam, 3 epochs = 96 steps per fit).
//
// Measured in one run, each against the hand-written baseline of the same run:
//   Trainer, no callbacks                 goal: ratio <= 1.02
//   Trainer, 16 callback types, no hooks  goal: equal to no callbacks
//   Trainer, one callback with every hook as an empty function
// The progress bar, checkpointing, the model summary and the default logger are off:
// this is the bare loop (bench/default_trainer_bench.cpp measures the defaults).
// Run: ./build/bench/trainer_overhead_bench  (ratios of medians are printed at the end)
#include <benchmark/benchmark.h>

#include <lightning/lightning.hpp>

#include <unistd.h>
#include <cstdio>
#include <map>
#include <string>

namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

namespace {

constexpr int kEpochs = 3;
constexpr int64_t kBatch = 32;

struct Data {
  torch::Tensor X = torch::randn({1000, 10});
  torch::Tensor y = torch::randn({1000});
};
Data& data() {
  static Data d;
  return d;
}

// The seed module without log(): the same work as the hand-written loop.
struct BareModel : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor training_step(const XY& batch, int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(linear(x), y.unsqueeze(1));
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

// The seed module as written in examples/simple_linear.cpp: logs train_loss every step.
struct LoggingModel : BareModel {
  torch::Tensor training_step(const XY& batch, int64_t i) {
    auto loss = BareModel::training_step(batch, i);
    log("train_loss", loss);
    return loss;
  }
};

template <int>
struct NoHooks {};

struct EveryHook {
  void setup(auto&, auto&, L::Stage) {}
  void teardown(auto&, auto&, L::Stage) {}
  void on_fit_start(auto&, auto&) {}
  void on_fit_end(auto&, auto&) {}
  void on_sanity_check_start(auto&, auto&) {}
  void on_sanity_check_end(auto&, auto&) {}
  void on_train_start(auto&, auto&) {}
  void on_train_end(auto&, auto&) {}
  void on_train_epoch_start(auto&, auto&) {}
  void on_train_epoch_end(auto&, auto&) {}
  void on_validation_start(auto&, auto&) {}
  void on_validation_end(auto&, auto&) {}
  void on_validation_epoch_start(auto&, auto&) {}
  void on_validation_epoch_end(auto&, auto&) {}
  void on_train_batch_start(auto&, auto&, const auto&, int64_t) {}
  void on_train_batch_end(auto&, auto&, const auto&, const auto&, int64_t) {}
  void on_validation_batch_start(auto&, auto&, const auto&, int64_t) {}
  void on_validation_batch_end(auto&, auto&, const auto&, const auto&, int64_t) {}
  void on_before_backward(auto&, auto&, const torch::Tensor&) {}
  void on_after_backward(auto&, auto&) {}
  void on_before_optimizer_step(auto&, auto&, torch::optim::Optimizer&) {}
  void on_before_zero_grad(auto&, auto&, torch::optim::Optimizer&) {}
  void on_exception(auto&, auto&, const std::exception&) {}
};

void report(benchmark::State& state) {
  state.counters["steps/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kEpochs * 32, benchmark::Counter::kIsRate);
}

void BM_HandWritten(benchmark::State& state) {
  auto& d = data();
  for (auto _ : state) {
    BareModel model;
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

template <class Model, class... Callbacks>
void BM_Trainer(benchmark::State& state) {
  auto& d = data();
  L::data::TensorLoader loader({d.X, d.y}, {.batch_size = kBatch});
  for (auto _ : state) {
    Model model;
    L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32, Callbacks...>
        trainer({.max_epochs = kEpochs,
                 .enable_progress_bar = false,
                 .enable_checkpointing = false,
                 .enable_model_summary = false,
                 .logger = false},
                Callbacks{}...);
    trainer.fit(model, loader);
    benchmark::DoNotOptimize(model.linear->weight.data_ptr());
  }
  report(state);
}

template <int... I>
void trainer_with_empty_callbacks(benchmark::State& state, std::integer_sequence<int, I...>) {
  BM_Trainer<BareModel, NoHooks<I>...>(state);
}

void BM_Trainer_16EmptyCallbackTypes(benchmark::State& state) {
  trainer_with_empty_callbacks(state, std::make_integer_sequence<int, 16>{});
}

// Collects the median real time of each benchmark to print ratios at the end.
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
BENCHMARK_TEMPLATE(BM_Trainer, BareModel)
    ->Name("BM_Trainer_NoCallbacks")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Trainer_16EmptyCallbackTypes)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Trainer, BareModel, EveryHook)
    ->Name("BM_Trainer_EveryHookEmpty")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Trainer, LoggingModel)
    ->Name("BM_Trainer_SeedModelWithLog")
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // the workload is too small for intra-op threads; less noise
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=15", agg = "--benchmark_report_aggregates_only=true",
              order = "--benchmark_enable_random_interleaving=true";
  args.push_back(reps.data());
  args.push_back(agg.data());
  args.push_back(order.data());
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double base = reporter.medians["BM_HandWritten"];
  std::printf("\nRatios of median real time to BM_HandWritten (same run):\n");
  for (const auto& [name, t] : reporter.medians)
    std::printf("  %-36s %8.3f ms  ratio %.3f\n", name.c_str(), t, base > 0 ? t / base : 0.0);
  benchmark::Shutdown();
}
