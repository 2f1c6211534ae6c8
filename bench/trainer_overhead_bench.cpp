// The Trainer's overhead over a hand-written LibTorch loop, on the seed workload
// (Linear(10, 1), 1000 x 10 examples, batch 32, Adam, 3 epochs = 96 steps per fit).
//
// Measured in one run, each against the hand-written baseline of the same run:
//   Trainer, no callbacks                 goal: ratio <= 1.02
//   Trainer, 16 callback types, no hooks  goal: equal to no callbacks
//   Trainer, one callback with every hook as an empty function
// The progress bar, checkpointing, the model summary and the default logger are off:
// this is the bare loop (bench/default_trainer_bench.cpp measures the defaults).
// Each Trainer fit is paired with a hand-written fit (bench/support/seed_workload.hpp).
// Run: ./build/bench/trainer_overhead_bench  (ratios are printed at the end)
#include "support/seed_workload.hpp"

#include <utility>

namespace L = lightning;
namespace B = lightning::bench;
using B::XY;

namespace {

constexpr int kEpochs = 3;

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

void BM_HandWritten(benchmark::State& state) {
  B::BM_HandWritten(state, kEpochs);
}

template <class Model, class... Callbacks>
void BM_Trainer(benchmark::State& state) {
  auto& d = B::seed_data();
  L::data::TensorLoader loader({d.X, d.y}, {.batch_size = B::kBatch});
  B::paired_with_hand(state, kEpochs, [&] {
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
  });
}

template <int... I>
void trainer_with_empty_callbacks(benchmark::State& state, std::integer_sequence<int, I...>) {
  BM_Trainer<BareModel, NoHooks<I>...>(state);
}

void BM_Trainer_16EmptyCallbackTypes(benchmark::State& state) {
  trainer_with_empty_callbacks(state, std::make_integer_sequence<int, 16>{});
}

}  // namespace

BENCHMARK(BM_HandWritten)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Trainer, BareModel)
    ->Name("BM_Trainer_NoCallbacks")
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Trainer_16EmptyCallbackTypes)
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Trainer, BareModel, EveryHook)
    ->Name("BM_Trainer_EveryHookEmpty")
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Trainer, LoggingModel)
    ->Name("BM_Trainer_SeedModelWithLog")
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  return B::run_benchmarks(argc, argv, kEpochs, 15, "Goal: BM_Trainer_NoCallbacks <= 1.02.");
}
