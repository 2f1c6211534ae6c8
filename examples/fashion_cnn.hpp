// The Fashion-MNIST CNN of the examples: two conv blocks and two linear layers, Adam with
// a one-cycle schedule, train/val/test loss and accuracy logged.
#pragma once

#include <lightning/lightning.hpp>

#include <cstdint>
#include <string>

namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

// The steps of the examples' Fashion-MNIST classifiers (this CNN, examples/cli.cpp's):
// cross-entropy, and loss and accuracy logged per stage. Derived has forward() and log().
template <class Derived>
struct FashionSteps {
  torch::Tensor training_step(const XY& batch, int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::cross_entropy_loss(self().forward(x), y);
    self().log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  void evaluate(const XY& batch, const char* prefix) {
    const auto& [x, y] = batch;
    auto logits = self().forward(x);
    self().log(std::string(prefix) + "_loss", torch::cross_entropy_loss(logits, y),
               {.prog_bar = true});
    self().log(std::string(prefix) + "_acc", logits.argmax(1).eq(y).to(torch::kFloat).mean(),
               {.prog_bar = true});
  }
  void validation_step(const XY& batch, int64_t) { evaluate(batch, "val"); }
  void test_step(const XY& batch, int64_t) { evaluate(batch, "test"); }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

struct FashionCNN : L::LightningModule, FashionSteps<FashionCNN> {
  torch::nn::Conv2d conv1{
      register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3)))};
  torch::nn::Conv2d conv2{
      register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)))};
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(64 * 5 * 5, 128))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(128, 10))};
  std::int64_t total_steps;

  explicit FashionCNN(std::int64_t steps) : total_steps(steps) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);  // 32 x 13 x 13
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);  // 64 x 5 x 5
    return fc2(torch::relu(fc1(x.flatten(1))));
  }

  auto configure_optimizers() {
    return L::optimizers(torch::optim::Adam(parameters(), 1e-3),
                         L::scheduler(L::lr::OneCycleLR{.max_lr = 3e-3, .total_steps = total_steps},
                                      {.interval = L::Interval::step}));
  }
};
