// A small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist): two conv blocks and two
// linear layers, validation every epoch, then the test set.
//
//   ./build/examples/fashion_mnist [epochs=3] [images per file=all] [simple|pytorch]
//
// The second argument trains on a subset (CI runs it that way, in seconds); `simple` adds
// a SimpleProfiler, whose report of fit and of test is printed at the end of each;
// `pytorch` a PyTorchProfiler (LibTorch 2.x): PyTorch's operator table of each, and a
// Chrome trace of a few steps of each in the log directory (docs/profiling.md).
#include <lightning/data/fashion_mnist.hpp>
#include <lightning/lightning.hpp>
#include <lightning/profilers/pytorch_profiler.hpp>

#include "fashion_cnn.hpp"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <type_traits>

template <class... Profiler>
int train(std::int64_t epochs, std::optional<std::int64_t> limit, Profiler... profiler) {
  L::data::FashionMNIST data(
      {.batch_size = 64, .val_size = limit ? *limit / 10 : 5000, .limit = limit});
  data.prepare_data();
  data.setup(L::Stage::fit);
  const std::int64_t steps = epochs * data.train_dataloader().size();

  L::seed_everything(0);
  FashionCNN model(steps);
  L::Trainer trainer({.max_epochs = epochs, .seed = 0}, profiler...);
  const auto start = std::chrono::steady_clock::now();
  const auto list_traces = [&] {
    if constexpr ((std::is_same_v<Profiler, L::PyTorchProfiler> || ...))
      for (const auto& trace : trainer.profiler().traces())
        std::cout << "trace: " << trace.string() << '\n';
  };
  trainer.fit(model, data);
  const double fit_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  list_traces();
  const auto results = trainer.test(model, data);
  list_traces();
  const double acc = results.at(0).at("test_acc");
  std::cout << "test accuracy " << acc * 100.0 << "% after " << epochs << " epochs; fit took "
            << fit_s << " s\n";
  return 0;
}

int main(int argc, char** argv) {
  const std::int64_t epochs = argc > 1 ? std::atoll(argv[1]) : 3;
  std::optional<std::int64_t> limit;
  if (argc > 2 && std::atoll(argv[2]) > 0) limit = std::atoll(argv[2]);
  if (argc > 3 && std::string(argv[3]) == "simple")
    return train(epochs, limit, L::SimpleProfiler());
#if LIGHTNING_TORCH_AT_LEAST(2, 0)
  if (argc > 3 && std::string(argv[3]) == "pytorch")
    return train(epochs, limit, L::PyTorchProfiler());
#endif
  if (argc > 3) {
    std::cerr << "fashion_mnist: the third argument is `simple` (a SimpleProfiler), `pytorch` (a "
                 "PyTorchProfiler, LibTorch 2.x) or nothing, not "
              << argv[3] << '\n';
    return 2;
  }
  return train(epochs, limit);
}
