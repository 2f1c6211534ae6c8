// The seed workload for benchmarks (Linear(10, 1), 1000 x 10 examples, batch 32, Adam),
// its hand-written LibTorch loop, and how a Trainer variant is compared with it.
//
// A VM's speed drifts by tens of percent within seconds, so a ratio of two medians
// taken minutes apart measures the drift as much as the Trainer. A paired benchmark
// runs one hand-written fit and one fit of the variant back to back in every iteration
// (alternating which goes first) and reports the median of those pairs' ratios
// ("paired"); the ratio of medians is printed beside it.
#pragma once

#include <benchmark/benchmark.h>

#include <lightning/lightning.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace lightning::bench {

using XY = Batch<torch::Tensor, torch::Tensor>;
inline constexpr std::int64_t kBatch = 32;
inline constexpr std::int64_t kStepsPerEpoch = 32;  // 31 full batches and one of 8

struct SeedData {
  torch::Tensor X = torch::randn({1000, 10});
  torch::Tensor y = torch::randn({1000});
};
inline SeedData& seed_data() {
  static SeedData d;
  return d;
}

// The seed example's module: logs train_loss every step (prog_bar, as Lightning's example).
struct SeedModel : LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(linear(x), y.unsqueeze(1));
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

// The loop a LibTorch user writes by hand: what every Trainer variant is measured against.
inline void hand_written_fit(int epochs) {
  auto& d = seed_data();
  torch::nn::Linear linear(10, 1);
  torch::optim::Adam optimizer(linear->parameters(), 1e-3);
  linear->train();
  for (int epoch = 0; epoch < epochs; ++epoch)
    for (std::int64_t i = 0; i < d.X.size(0); i += kBatch) {
      const std::int64_t n = std::min(kBatch, d.X.size(0) - i);
      auto x = d.X.narrow(0, i, n), y = d.y.narrow(0, i, n);
      optimizer.zero_grad();
      auto loss = torch::mse_loss(linear(x), y.unsqueeze(1));
      loss.backward();
      optimizer.step();
    }
  benchmark::DoNotOptimize(linear->weight.data_ptr());
}

inline double seconds_of(auto&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Host microseconds per training step, from the benchmark's (manual or real) time.
inline void report_us_per_step(benchmark::State& state, int epochs) {
  state.counters["us/step"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * epochs * kStepsPerEpoch,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

inline void BM_HandWritten(benchmark::State& state, int epochs) {
  for (auto _ : state) hand_written_fit(epochs);
  report_us_per_step(state, epochs);
}

// Times `fit` (one fit of a variant) against a hand-written fit right beside it; the
// benchmark's time is the variant's alone. Register with ->UseManualTime().
inline void paired_with_hand(benchmark::State& state, int epochs, auto&& fit) {
  std::vector<double> ratios;
  bool hand_first = true;
  for (auto _ : state) {
    double hand = 0;
    if (hand_first) hand = seconds_of([&] { hand_written_fit(epochs); });
    const double own = seconds_of(fit);
    if (!hand_first) hand = seconds_of([&] { hand_written_fit(epochs); });
    hand_first = !hand_first;
    ratios.push_back(own / hand);
    state.SetIterationTime(own);
  }
  std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
  state.counters["paired"] = ratios.empty() ? 0.0 : ratios[ratios.size() / 2];
  report_us_per_step(state, epochs);
}

// Keeps each benchmark's median time and median paired ratio for the closing table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(::isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}
  std::map<std::string, double> medians, paired;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median") {
        const auto name = r.run_name.function_name;
        medians[name] = r.GetAdjustedRealTime();
        if (const auto p = r.counters.find("paired"); p != r.counters.end())
          paired[name] = p->second.value;
      }
    ConsoleReporter::ReportRuns(runs);
  }
};

// Runs the registered benchmarks (repeated, interleaved at random, aggregates only) and
// prints, per benchmark, us/step, the ratio of its median to BM_HandWritten's, and the
// median paired ratio.
inline int run_benchmarks(int argc, char** argv, int epochs, int repetitions, const char* goal) {
  torch::set_num_threads(1);  // the workload is too small for intra-op threads; less noise
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=" + std::to_string(repetitions),
              agg = "--benchmark_report_aggregates_only=true",
              order = "--benchmark_enable_random_interleaving=true";
  args.insert(args.begin() + 1, {reps.data(), agg.data(), order.data()});  // argv overrides
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double base = reporter.medians["BM_HandWritten"];
  const double steps = static_cast<double>(epochs * kStepsPerEpoch);
  std::printf(
      "\nMedians: host us per step; ratio of medians to BM_HandWritten; median of\n"
      "the paired ratios (each fit against a hand-written fit beside it). %s\n",
      goal);
  for (const auto& [name, t] : reporter.medians) {
    std::printf("  %-36s %7.1f us/step  ratio %.3f", name.c_str(), t * 1000.0 / steps,
                base > 0 ? t / base : 0.0);
    if (const auto p = reporter.paired.find(name); p != reporter.paired.end())
      std::printf("  paired %.3f", p->second);
    std::printf("\n");
  }
  benchmark::Shutdown();
  return 0;
}

}  // namespace lightning::bench
