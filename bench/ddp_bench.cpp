// strategies::DDP throughput: samples/s of 2 ranks (Gloo on 127.0.0.1, one thread each)
// against one process, global batch 256, on two models:
// - the Fashion-MNIST CNN of examples/fashion_mnist.cpp (225 k parameters, most of the
//   work in convolutions): compute-bound, where the goal applies;
// - the MLP 784-1024-1024-10 of the DDP notes (1.86 M parameters, 7.45 MB of gradients
//   per step): communication-heavy, where the Reducer's buckets overlapping backward
//   (bucket_cap_mb = 1: several buckets) are compared with one bucket reduced after it.
//
//   ./build/bench/ddp_bench
//
// Every fit runs in a fresh process (this program, started with LIGHTNING_DDP_BENCH set):
// the process that times does not train, and the ranks start as a user's would, through
// the launcher (devices = 2). Rank 0 times the steps after 2 warm-up steps. Each iteration
// runs the case and the one-rank, one-thread baseline back to back, alternating which
// goes first; "x_one_rank" is the median of those paired ratios (this VM drifts by tens of
// percent within seconds, docs/benchmarking.md). The goal: 2 ranks >= 1.7x one rank.
#include "support/fashion_net.hpp"

#include <lightning/lightning.hpp>
#include <lightning/policies/ddp.hpp>

#include <benchmark/benchmark.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

namespace {

constexpr std::int64_t global_batch = 256, steps = 20, warmup = 2;

struct MLP : L::LightningModule {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(784, 1024))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(1024, 1024))};
  torch::nn::Linear fc3{register_module("fc3", torch::nn::Linear(1024, 10))};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::cross_entropy_loss(fc3(torch::relu(fc2(torch::relu(fc1(x))))), y);
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.05); }
};

struct CNN : L::LightningModule {
  lightning::bench::FashionNet net{register_module("net", lightning::bench::FashionNet())};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::cross_entropy_loss(net(x), y);
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.05); }
};

// Rank 0's clock over the timed steps.
struct StepClock {
  std::chrono::steady_clock::time_point start, end;
  template <class T, class M, class B>
  void on_train_batch_start(T&, M&, const B&, std::int64_t idx) {
    if (idx == warmup) start = std::chrono::steady_clock::now();
  }
  template <class T, class M, class O, class B>
  void on_train_batch_end(T&, M&, const O&, const B&, std::int64_t) {
    end = std::chrono::steady_clock::now();
  }
};

// One fit, in this (fresh) process: "<model> single <threads>" or "<model> ddp <cap_mb>".
// Rank 0 writes the seconds of its timed steps to `out`.
template <class Model>
double timed_steps(const std::string& how, std::int64_t value) {
  torch::manual_seed(0);
  const auto X = torch::randn({global_batch * steps, 784});
  const auto y = torch::randint(0, 10, {global_batch * steps});
  Model model;
  auto options = L::TrainerOptions{.max_epochs = 1,
                                   .enable_progress_bar = false,
                                   .enable_checkpointing = false,
                                   .enable_model_summary = false,
                                   .logger = false};
  StepClock clock;
  const auto seconds = [](const StepClock& c) {
    return std::chrono::duration<double>(c.end - c.start).count();
  };
  if (how == "ddp-cuda") {  // NCCL: one GPU per rank
    options.devices = 2;
    L::Trainer<L::accelerators::CUDA, L::strategies::DDP, L::precision::F32, StepClock> trainer(
        options, L::strategies::DDP({.bucket_cap_mb = value}), clock);
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = global_batch / 2}));
    return trainer.is_global_zero() ? seconds(trainer.callback<StepClock>()) : -1.0;
  }
  if (how == "single-cuda") {
    L::Trainer<L::accelerators::CUDA, L::strategies::SingleDevice, L::precision::F32, StepClock>
        trainer(options, clock);
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = global_batch}));
    return seconds(trainer.callback<StepClock>());
  }
  if (how == "ddp") {
    options.devices = 2;
    L::Trainer<L::accelerators::CPU, L::strategies::DDP, L::precision::F32, StepClock> trainer(
        options, L::strategies::DDP({.bucket_cap_mb = value}), clock);
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = global_batch / 2}));
    return trainer.is_global_zero() ? seconds(trainer.callback<StepClock>()) : -1.0;
  }
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32, StepClock>
      trainer(options, clock);
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = global_batch}));
  return seconds(trainer.callback<StepClock>());
}

int run_worker(const std::string& config, const std::string& out) {
  std::istringstream words(config);
  std::string model, how;
  std::int64_t value = 0;
  words >> model >> how >> value;
  torch::set_num_threads(how.starts_with("ddp") ? 1 : static_cast<int>(value));
  const double seconds =
      model == "cnn" ? timed_steps<CNN>(how, value) : timed_steps<MLP>(how, value);
  if (seconds >= 0) std::ofstream(out) << seconds << '\n';
  return 0;
}

// Runs one fit in a fresh process; the seconds of its timed steps.
double timed_fit(const std::string& config) {
  const auto out =
      std::filesystem::temp_directory_path() / ("ddp_bench_" + std::to_string(::getpid()) + ".txt");
  std::filesystem::remove(out);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.push_back("LIGHTNING_DDP_BENCH=" + config);
  env.push_back("LIGHTNING_DDP_BENCH_OUT=" + out.string());
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<char*> argv{self.data(), nullptr};
  pid_t pid = -1;
  int status = 0;
  if (::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0 ||
      ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("ddp_bench: the fit \"" + config + "\" failed");
  double seconds = 0;
  std::ifstream(out) >> seconds;
  std::filesystem::remove(out);
  return seconds;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The case and the one-rank baseline of its model (one thread; one GPU for a CUDA case).
void BM_Fit(benchmark::State& state, const std::string& config) {
  const bool cuda = config.find("cuda") != std::string::npos;
  const std::string baseline =
      config.substr(0, config.find(' ')) + (cuda ? " single-cuda 1" : " single 1");
  std::vector<double> ratios, rates;
  bool case_first = true;
  for (auto _ : state) {
    double mine = 0, base = 0;
    if (case_first) {
      mine = timed_fit(config);
      base = timed_fit(baseline);
    } else {
      base = timed_fit(baseline);
      mine = timed_fit(config);
    }
    case_first = !case_first;
    state.SetIterationTime(mine);
    ratios.push_back(base / mine);  // samples/s of the case over the baseline's
    rates.push_back(static_cast<double>(global_batch * (steps - warmup)) / mine);
  }
  state.counters["samples_per_s"] = median(rates);
  state.counters["x_one_rank"] = median(ratios);
}

}  // namespace

BENCHMARK_CAPTURE(BM_Fit, CNN_OneProcess_TwoThreads, std::string("cnn single 2"))
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fit, CNN_TwoRanks, std::string("cnn ddp 25"))
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fit, MLP_OneProcess_TwoThreads, std::string("mlp single 2"))
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fit, MLP_TwoRanks_BucketOverlap, std::string("mlp ddp 1"))
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fit, MLP_TwoRanks_OneBucket, std::string("mlp ddp 1000"))
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  if (const char* config = std::getenv("LIGHTNING_DDP_BENCH"))
    return run_worker(config, std::getenv("LIGHTNING_DDP_BENCH_OUT"));
  // NCCL between two GPUs, where there are two (scripts/gpu-check.sh runs these).
  if (torch::cuda::device_count() >= 2)
    for (const auto& [name, config] : {std::pair{"CNN_TwoRanks_Cuda", "cnn ddp-cuda 25"},
                                       std::pair{"MLP_TwoRanks_Cuda", "mlp ddp-cuda 25"}})
      benchmark::RegisterBenchmark((std::string("BM_Fit/") + name).c_str(), BM_Fit,
                                   std::string(config))
          ->Iterations(5)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
