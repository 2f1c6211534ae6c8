// Must not compile: Python's `self.automatic_optimization = False` written as a data
// member. It is a compile-time property; a silent fallback to automatic would be a bug.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  bool automatic_optimization = false;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  void training_step(const L::Batch<torch::Tensor, torch::Tensor>&, int64_t) {}
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
int main() {
  Model m;
  L::Trainer trainer;
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
