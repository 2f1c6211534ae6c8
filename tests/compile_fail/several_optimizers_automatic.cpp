// Must not compile: two optimizers under automatic optimization (Lightning 2.x refuses
// this too); the message says to declare manual optimization.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  torch::nn::Linear a{register_module("a", torch::nn::Linear(2, 1))};
  torch::nn::Linear b{register_module("b", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& batch, int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(a(x) + b(x), y);
  }
  auto configure_optimizers() {
    return std::tuple{torch::optim::SGD(a->parameters(), 0.1),
                      torch::optim::SGD(b->parameters(), 0.1)};
  }
};
int main() {
  Model m;
  L::Trainer trainer;
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
