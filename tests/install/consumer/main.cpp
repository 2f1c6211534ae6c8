#include <lightning/lightning.hpp>

#include <iostream>

namespace L = lightning;

struct Model : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(4, 1))};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& b, int64_t) {
    const auto& [x, y] = b;
    return torch::mse_loss(linear(x), y);
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};

int main() {
  torch::manual_seed(0);
  auto x = torch::randn({256, 4});
  auto y = x.sum(1, true);
  Model model;
  auto before = torch::mse_loss(model.linear(x), y).item<double>();
  L::Trainer trainer({.max_epochs = 5, .enable_progress_bar = false});
  trainer.fit(model, L::data::TensorLoader({x, y}, {.batch_size = 32}));
  auto after = torch::mse_loss(model.linear(x), y).item<double>();
  std::cout << "loss " << before << " -> " << after << '\n';
  if (!(after < before * 0.5)) return 1;
  std::cout << "consumer trained: ok\n";
}
