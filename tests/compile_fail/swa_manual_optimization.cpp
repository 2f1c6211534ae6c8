// Must not compile: StochasticWeightAveraging on a module that steps its optimizer itself
// (the callback's BatchNorm epoch and SWALR rely on the Trainer's steps).
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear a{register_module("a", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& batch, int64_t) {
    const auto& [x, y] = batch;
    auto opt = optimizer();
    opt.zero_grad();
    auto loss = torch::mse_loss(a(x), y);
    manual_backward(loss);
    opt.step();
    return loss;
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
int main() {
  Model m;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
             L::callbacks::StochasticWeightAveraging<>>
      trainer({}, L::callbacks::StochasticWeightAveraging<>({.swa_lrs = {0.01}}));
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
