// Must not compile: on_train_epoch_end takes a parameter Lightning does not pass; a
// near-miss hook is an error, never silently skipped.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& b, int64_t) {
    return torch::mse_loss(linear(std::get<0>(b)), std::get<1>(b));
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
  void on_train_epoch_end(int epoch) { (void)epoch; }
};
int main() {
  Model m;
  L::Trainer trainer;
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
