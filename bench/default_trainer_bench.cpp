// The Trainer as users run it, against the hand-written loop: the seed workload
// (Linear(10, 1), 1000 x 10 examples, batch 32, Adam, train_loss logged every step) over
// 30 epochs = 960 steps per fit, with Lightning's defaults on: a progress bar (writing
// to a file, as in a job's log), a durable checkpoint every epoch, the model summary and
// a CSV logger. Goal: default Trainer / hand-written <= 1.05.
//
// Each Trainer variant is paired with hand-written fits (bench/support/seed_workload.hpp);
// us/step is host microseconds per step. Ratios are printed at the end.
// Run: ./build/bench/default_trainer_bench
#include "support/seed_workload.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace L = lightning;
namespace B = lightning::bench;

namespace {

constexpr int kEpochs = 30;

using B::SeedModel;

std::filesystem::path run_dir() {
  static const auto dir =
      std::filesystem::temp_directory_path() / ("lightning-bench-" + std::to_string(::getpid()));
  return dir;
}

// The defaults, configured as a user would for a job whose output goes to a file.
void default_trainer(benchmark::State& state, bool checkpointing) {
  auto& d = B::seed_data();
  L::data::TensorLoader loader({d.X, d.y}, {.batch_size = B::kBatch});
  std::ofstream sink(run_dir() / "stdout.txt");
  B::paired_with_hand(state, kEpochs, [&] {
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
  });
}
void BM_HandWritten(benchmark::State& state) {
  B::BM_HandWritten(state, kEpochs);
}
void BM_DefaultTrainer(benchmark::State& state) {
  default_trainer(state, true);
}
void BM_DefaultTrainer_NoCheckpointing(benchmark::State& state) {
  default_trainer(state, false);
}
// Every default off: the loop and the module's log() call alone.
void BM_Trainer_DefaultsOff(benchmark::State& state) {
  auto& d = B::seed_data();
  L::data::TensorLoader loader({d.X, d.y}, {.batch_size = B::kBatch});
  B::paired_with_hand(state, kEpochs, [&] {
    SeedModel model;
    L::Trainer<L::accelerators::CPU> trainer({.max_epochs = kEpochs,
                                              .enable_progress_bar = false,
                                              .enable_checkpointing = false,
                                              .enable_model_summary = false,
                                              .logger = false});
    trainer.fit(model, loader);
    benchmark::DoNotOptimize(model.linear->weight.data_ptr());
  });
}

}  // namespace

BENCHMARK(BM_HandWritten)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DefaultTrainer)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DefaultTrainer_NoCheckpointing)
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Trainer_DefaultsOff)->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  std::filesystem::create_directories(run_dir());
  B::run_benchmarks(argc, argv, kEpochs, 7, "Goal: BM_DefaultTrainer <= 1.05.");
  std::filesystem::remove_all(run_dir());
}
