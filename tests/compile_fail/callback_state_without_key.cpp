// Must not compile: a callback saves state but names no stable key for it (a type name
// changes with the compiler or a rename, and a resume would silently drop the state).
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Counter {
  std::int64_t n = 0;
  L::CheckpointDict state_dict() const { return L::make_checkpoint(); }
  void load_state_dict(const L::CheckpointDict&) {}
};
using XY = L::Batch<torch::Tensor, torch::Tensor>;
struct Model : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const XY& batch, int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(linear(x), y);
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
int main() {
  Model m;
  L::Trainer trainer({}, Counter{});
  L::data::TensorLoader loader({torch::randn({8, 2}), torch::randn({8, 1})});
  trainer.fit(m, loader);
}
