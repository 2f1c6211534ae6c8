// The Fashion-MNIST CNN trained from a folder of PNG files, as a Python user trains from
// torchvision's ImageFolder through DataLoader(num_workers=...): the images are decoded
// and transformed by the loader's worker threads while the model trains.
//
//   ./build/examples/image_folder [epochs=3] [images per split=all] [num_workers=2]
//
// On its first run it writes the PNG files from Debian's dataset-fashion-mnist into
// fashion-mnist-png/ beside the executable (train/ and test/, a folder per class).
#include <lightning/data/data_loader.hpp>
#include <lightning/data/fashion_mnist.hpp>
#include <lightning/data/image_folder.hpp>
#include <lightning/data/transforms.hpp>
#include <lightning/lightning.hpp>

#include "fashion_cnn.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

namespace fs = std::filesystem;
namespace T = lightning::data::transforms;

const std::vector<std::string> class_names{"0-tshirt", "1-trouser",   "2-pullover", "3-dress",
                                           "4-coat",   "5-sandal",    "6-shirt",    "7-sneaker",
                                           "8-bag",    "9-ankle-boot"};

// Writes the PNG tree once; a marker file says it is complete.
fs::path png_folder(std::optional<std::int64_t> limit) {
  const auto root = fs::canonical("/proc/self/exe").parent_path() /
                    ("fashion-mnist-png" + (limit ? "-" + std::to_string(*limit) : ""));
  if (fs::exists(root / "complete")) return root;
  const fs::path idx = "/usr/share/datasets/fashion-mnist";
  std::cout << "writing Fashion-MNIST as PNG files into " << root << "\n";
  for (const std::string split : {"train", "t10k"}) {
    auto images = L::data::read_idx(idx / (split + "-images-idx3-ubyte.gz"));
    auto labels = L::data::read_idx(idx / (split + "-labels-idx1-ubyte.gz"));
    if (limit) {
      images = images.narrow(0, 0, std::min(*limit, images.size(0)));
      labels = labels.narrow(0, 0, images.size(0));
    }
    L::data::write_image_folder(root / (split == "train" ? "train" : "test"), images.unsqueeze(1),
                                labels, class_names);
  }
  std::ofstream(root / "complete") << "ok\n";
  return root;
}

// ToTensor + Normalize with the training set's mean and std, one channel.
auto fashion_transform() {
  return T::Compose(T::ToTensor{}, T::Normalize({0.2860}, {0.3530}));
}
using Images = L::data::ImageFolder<decltype(fashion_transform())>;

struct PngData {
  fs::path root;
  std::int64_t workers = 2;
  auto loader(const char* split, bool shuffle) const {
    return L::data::DataLoader(
        Images(root / split, fashion_transform(), {.mode = L::data::ImageMode::gray}),
        {.batch_size = 64,
         .shuffle = shuffle,
         .num_workers = workers,
         .persistent_workers = workers > 0,
         .seed = 0});
  }
  auto train_dataloader() const { return loader("train", true); }
  auto val_dataloader() const { return loader("test", false); }
  auto test_dataloader() const { return loader("test", false); }
};

int main(int argc, char** argv) {
  const std::int64_t epochs = argc > 1 ? std::atoll(argv[1]) : 3;
  std::optional<std::int64_t> limit;
  if (argc > 2) limit = std::atoll(argv[2]);
  const std::int64_t workers = argc > 3 ? std::atoll(argv[3]) : 2;

  PngData data{png_folder(limit), workers};
  const std::int64_t steps = epochs * data.train_dataloader().size();
  L::seed_everything(0);
  FashionCNN model(steps);
  L::Trainer trainer({.max_epochs = epochs, .seed = 0});
  const auto start = std::chrono::steady_clock::now();
  trainer.fit(model, data);
  const double fit_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto results = trainer.test(model, data);
  std::cout << "test accuracy " << results.at(0).at("test_acc") * 100.0 << "% after " << epochs
            << " epochs from PNG files (" << workers << " workers); fit took " << fit_s << " s\n";
  return 0;
}
