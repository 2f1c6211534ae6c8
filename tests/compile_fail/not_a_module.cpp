// Must not compile: the model is not a torch::nn::Module.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct NotAModule {
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& b, int64_t) {
    return std::get<0>(b).sum();
  }
  auto configure_optimizers() {
    std::vector<torch::Tensor> none;
    return torch::optim::SGD(none, 0.1);
  }
};
int main() {
  NotAModule m;
  L::Trainer trainer;
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
