// A small CNN on Fashion-MNIST (Debian's dataset-fashion-mnist): two conv blocks and two
// linear layers, validation every epoch, then the test set.
//
//   ./build/examples/fashion_mnist [epochs=3] [images per file=all] [simple]
//
// The second argument trains on a subset (CI runs it that way, in seconds); `simple` adds
// a SimpleProfiler, whose report of fit and of test is printed at the end of each
// (docs/profiling.md).
#include <lightning/data/fashion_mnist.hpp>
#include <lightning/lightning.hpp>

#include "fashion_cnn.hpp"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

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
  trainer.fit(model, data);
  const double fit_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto results = trainer.test(model, data);
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
  if (argc > 3) {
    std::cerr << "fashion_mnist: the third argument is `simple` (a SimpleProfiler) or nothing, not "
              << argv[3] << '\n';
    return 2;
  }
  return train(epochs, limit);
}
