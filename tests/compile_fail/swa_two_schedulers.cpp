// Must not compile: StochasticWeightAveraging puts its SWALR in place of one scheduler,
// as Lightning's; a module with two has no single one to replace.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  torch::nn::Linear a{register_module("a", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& batch, int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(a(x), y);
  }
  auto configure_optimizers() {
    return L::optimizers(torch::optim::SGD(parameters(), 0.1),
                         L::scheduler(L::lr::StepLR{.step_size = 1}),
                         L::scheduler(L::lr::ExponentialLR{.gamma = 0.9}));
  }
};
int main() {
  Model m;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
             L::callbacks::StochasticWeightAveraging<>>
      trainer({}, L::callbacks::StochasticWeightAveraging<>({.swa_lrs = {0.01}}));
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
