// Must not compile: a LearningRateMonitor with no logger to send the rates to.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& b, int64_t) {
    return torch::mse_loss(linear(std::get<0>(b)), std::get<1>(b));
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
int main() {
  Model m;
  L::Trainer trainer({}, L::callbacks::LearningRateMonitor());
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
