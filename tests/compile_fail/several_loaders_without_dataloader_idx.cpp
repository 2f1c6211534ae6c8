// Must not compile: two validation loaders, but validation_step cannot tell them apart
// (Lightning refuses this too); the message says to add dataloader_idx.
#include <lightning/lightning.hpp>
namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;
struct Model : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const XY& batch, int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(linear(x), y);
  }
  void validation_step(const XY&, int64_t) {}
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
int main() {
  Model m;
  L::Trainer trainer;
  L::data::TensorLoader loader({torch::randn({8, 2}), torch::randn({8, 1})});
  trainer.validate(m, std::tie(loader, loader));
}
