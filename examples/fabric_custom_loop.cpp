// A hand-written loop on Fabric: the same policies as the Trainer (device placement,
// precision, clipping), the loop itself in the user's hands. Here: fp64 on the CPU,
// gradient clipping by norm, and a loss printed once per epoch (one host read per epoch).
#include <lightning/lightning.hpp>

#include <iostream>

namespace L = lightning;

int main() {
  L::seed_everything(7);
  L::Fabric<L::accelerators::Auto, L::strategies::SingleDevice, L::precision::F64> fabric;
  fabric.launch();

  torch::nn::Sequential model(torch::nn::Linear(10, 32), torch::nn::ReLU(),
                              torch::nn::Linear(32, 1));
  fabric.setup_module(*model);  // to the device and to float64, before the optimizer
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));

  auto X = torch::randn({512, 10});
  auto y = X.sum(1, /*keepdim=*/true) * 0.5;  // a learnable target
  L::data::TensorLoader loader({X, y}, {.batch_size = 64, .shuffle = true, .seed = 7});

  for (int epoch = 0; epoch < 5; ++epoch) {
    auto epoch_loss = torch::zeros({}, torch::dtype(torch::kDouble).device(fabric.device()));
    for (auto raw : loader) {
      auto [x, target] = fabric.to_device(raw);
      optimizer.zero_grad();
      torch::Tensor loss;
      {
        auto autocast = fabric.autocast();
        loss = torch::mse_loss(model->forward(x), target);
      }
      fabric.backward(loss);
      fabric.clip_gradients(optimizer, {.max_norm = 1.0});
      fabric.step(optimizer);
      epoch_loss += loss.detach();
    }
    std::cout << "epoch " << epoch << " mean loss "
              << (epoch_loss / static_cast<double>(loader.size())).item<double>() << '\n';
  }
}
