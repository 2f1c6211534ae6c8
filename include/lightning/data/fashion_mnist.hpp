// FashionMNIST: a DataModule over Debian's dataset-fashion-mnist package
// (/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz): 60,000 training images split into
// train and validation with a seeded permutation, 10,000 test images, 28x28 grey levels
// normalised with the training set's mean and standard deviation (by the loaders, per
// batch: the images are kept as the file's uint8).
#pragma once

#include <lightning/core/bad_option.hpp>

#include <lightning/core/stage.hpp>
#include <lightning/data/idx.hpp>
#include <lightning/data/tensor_loader.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace lightning::data {

struct FashionMNISTOptions {
  std::filesystem::path root = "/usr/share/datasets/fashion-mnist";
  std::int64_t batch_size = 64;
  std::int64_t val_size = 5000;                      // taken from the 60,000 training images
  std::uint64_t seed = 42;                           // of the split and the training shuffle
  std::optional<std::int64_t> limit = std::nullopt;  // use only the first n images of each file
};

class FashionMNIST {
 public:
  // What LightningCLI's --data.* options fill (with FashionMNISTOptions adapted for
  // Boost.Hana, as examples/cli.cpp does).
  using Hyperparameters = FashionMNISTOptions;
  static constexpr double mean = 0.2860;  // of the training images, in [0, 1]
  static constexpr double stddev = 0.3530;
  static constexpr const char* classes[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                              "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};

  explicit FashionMNIST(FashionMNISTOptions options = {}) : o_(std::move(options)) {
    if (o_.batch_size < 1)
      throw_bad_option("FashionMNISTOptions", "batch_size", std::to_string(o_.batch_size),
                       "must be >= 1");
    if (o_.val_size < 0)
      throw_bad_option("FashionMNISTOptions", "val_size", std::to_string(o_.val_size),
                       "must be >= 0");
  }

  // Checks that the four files are there (Lightning's prepare_data: no download here).
  void prepare_data() const {
    for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
      if (!std::filesystem::exists(o_.root / name))
        throw std::runtime_error(
            "lightning: Fashion-MNIST file " + (o_.root / name).string() +
            " is missing; install it with `apt-get install dataset-fashion-mnist` "
            "(or point FashionMNISTOptions.root at a folder holding the four "
            "*-ubyte.gz files)");
  }

  void setup(Stage stage) {
    prepare_data();
    if ((stage == Stage::fit || stage == Stage::validate) && !train_x_.defined()) {
      auto [x, y] = load("train");
      if (o_.val_size >= x.size(0))
        throw_bad_option("FashionMNISTOptions", "val_size", std::to_string(o_.val_size),
                         "it leaves no training images out of " + std::to_string(x.size(0)));
      auto g = at::make_generator<at::CPUGeneratorImpl>(o_.seed);
      const auto perm = torch::randperm(x.size(0), g);
      const auto n_train = x.size(0) - o_.val_size;
      train_x_ = x.index_select(0, perm.narrow(0, 0, n_train));
      train_y_ = y.index_select(0, perm.narrow(0, 0, n_train));
      val_x_ = x.index_select(0, perm.narrow(0, n_train, o_.val_size));
      val_y_ = y.index_select(0, perm.narrow(0, n_train, o_.val_size));
    }
    if ((stage == Stage::test || stage == Stage::predict) && !test_x_.defined())
      std::tie(test_x_, test_y_) = load("t10k");
  }

  // The images stay uint8; the loaders yield them normalised, as float32 [b, 1, 28, 28].
  static constexpr Normalize normalization{.scale = 1.0 / 255, .mean = mean, .std = stddev};

  [[nodiscard]] TensorLoader<2> train_dataloader() const {
    return TensorLoader({require(train_x_, "fit"), train_y_}, {.batch_size = o_.batch_size,
                                                               .shuffle = true,
                                                               .seed = o_.seed,
                                                               .normalize = normalization});
  }
  [[nodiscard]] TensorLoader<2> val_dataloader() const {
    return TensorLoader({require(val_x_, "fit"), val_y_},
                        {.batch_size = o_.batch_size, .normalize = normalization});
  }
  [[nodiscard]] TensorLoader<2> test_dataloader() const {
    return TensorLoader({require(test_x_, "test"), test_y_},
                        {.batch_size = o_.batch_size, .normalize = normalization});
  }
  [[nodiscard]] TensorLoader<2> predict_dataloader() const { return test_dataloader(); }

  [[nodiscard]] const FashionMNISTOptions& options() const noexcept { return o_; }

 private:
  // Images as uint8 [n, 1, 28, 28] (a quarter of float's bytes: the loaders normalise
  // each batch as they gather it); labels as int64 [n].
  std::pair<torch::Tensor, torch::Tensor> load(const std::string& prefix) const {
    auto images = read_idx(o_.root / (prefix + "-images-idx3-ubyte.gz"));
    auto labels = read_idx(o_.root / (prefix + "-labels-idx1-ubyte.gz"));
    if (images.dim() != 3 || labels.dim() != 1 || images.size(0) != labels.size(0))
      throw std::runtime_error("lightning: Fashion-MNIST files under " + o_.root.string() +
                               " do not match: expected [n, 28, 28] images and [n] labels");
    if (o_.limit) {
      const auto n = std::min(*o_.limit, images.size(0));
      images = images.narrow(0, 0, n);
      labels = labels.narrow(0, 0, n);
    }
    return {images.unsqueeze(1).contiguous(), labels.to(torch::kLong)};
  }

  static const torch::Tensor& require(const torch::Tensor& t, const char* stage) {
    if (!t.defined())
      throw std::logic_error(std::string("lightning: FashionMNIST loaders need setup(Stage::") +
                             stage + ") first (the Trainer calls it)");
    return t;
  }

  FashionMNISTOptions o_;
  torch::Tensor train_x_, train_y_, val_x_, val_y_, test_x_, test_y_;
};

}  // namespace lightning::data
