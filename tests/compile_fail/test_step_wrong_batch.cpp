// Must not compile: test_step takes another batch type than the test loader yields.
#include <lightning/lightning.hpp>
namespace L = lightning;
struct Model : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  void test_step(const torch::Tensor&, int64_t) {}
};
int main() {
  Model m;
  L::Trainer trainer;
  L::data::TensorLoader loader({torch::randn({8, 2}), torch::randn({8, 1})});
  trainer.test(m, loader);
}
