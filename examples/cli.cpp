// The Fashion-MNIST CNN behind Lightning's command line (lightning/cli):
//
//   ./build/examples/cli fit --config examples/configs/fashion_mnist.yaml
//   ./build/examples/cli fit --config examples/configs/quick.yaml --model.lr 0.002
//   ./build/examples/cli fit --print_config                 # every option, resolved
//   ./build/examples/cli test --config lightning_logs/version_0/config.yaml
//       --ckpt_path lightning_logs/version_0/checkpoints/epoch=2-step=2580.ckpt
//   ./build/examples/cli fit --help
//
// The module declares its hyperparameters once (CNNHyperparameters): they are --model.*,
// what save_hyperparameters records and what hparams.yaml and checkpoints hold. The data
// module's are FashionMNISTOptions (--data.*). ModelCheckpoint and CSVLogger are always in
// the Trainer; their options are trainer.callbacks / trainer.logger entries.
#include <lightning/cli/lightning_cli.hpp>
#include <lightning/data/fashion_mnist.hpp>

#include "fashion_cnn.hpp"

#include <array>
#include <cstdint>
#include <string>

// A library struct the program did not write: adapted from outside.
BOOST_HANA_ADAPT_STRUCT(lightning::data::FashionMNISTOptions, root, batch_size, val_size, seed,
                        limit);
template <>
struct lightning::cli::FieldDocs<lightning::data::FashionMNISTOptions> {
  static constexpr std::array<Doc, 5> values{{
      {"root", "folder of the four IDX files"},
      {"batch_size", "examples per batch"},
      {"val_size", "training images held out for validation"},
      {"seed", "seed of the split and of the training shuffle"},
      {"limit", "use only the first n images of each file (null: all)"},
  }};
};

struct CNNHyperparameters {
  std::int64_t channels = 32;  // of the first convolution; the second has twice as many
  std::int64_t hidden = 128;
  double lr = 1e-3;
  static constexpr std::array<L::cli::Doc, 3> field_docs{{
      {"channels", "channels of the first convolution (the second has twice as many)"},
      {"hidden", "units of the hidden linear layer"},
      {"lr", "Adam's learning rate"},
  }};
};
BOOST_HANA_ADAPT_STRUCT(CNNHyperparameters, channels, hidden, lr);

struct FashionClassifier : L::LightningModule, FashionSteps<FashionClassifier> {
  using Hyperparameters = CNNHyperparameters;

  Hyperparameters h;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

  explicit FashionClassifier(const Hyperparameters& hparams) : h(hparams) {
    save_hyperparameters(h);
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, h.channels, 3)));
    conv2 = register_module(
        "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(h.channels, 2 * h.channels, 3)));
    fc1 = register_module("fc1", torch::nn::Linear(2 * h.channels * 5 * 5, h.hidden));
    fc2 = register_module("fc2", torch::nn::Linear(h.hidden, 10));
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);  // channels x 13 x 13
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);  // 2 channels x 5 x 5
    return fc2(torch::relu(fc1(x.flatten(1))));
  }

  torch::Tensor predict_step(const XY& batch, int64_t) {
    const auto& [x, y] = batch;
    return forward(x).argmax(1);
  }

  auto configure_optimizers() { return torch::optim::Adam(parameters(), h.lr); }
};

int main(int argc, char** argv) {
  return L::cli::LightningCLI<FashionClassifier, L::data::FashionMNIST,
                              L::callbacks::ModelCheckpoint, L::loggers::CSVLogger>(
             argc, argv,
             {.description = "A CNN on Fashion-MNIST, configured from the command line"})
      .run();
}
