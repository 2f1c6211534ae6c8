// Must not compile: the closure for on_train_batch_end lacks the outputs and batch.
#include <lightning/callbacks/lambda_callback.hpp>
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
  L::callbacks::LambdaCallback cb{
      L::callbacks::lambda::on_train_batch_end([](auto& trainer, auto& module, int64_t batch_idx) {
        (void)trainer, (void)module, (void)batch_idx;
      })};
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32, decltype(cb)>
      trainer({}, cb);
  trainer.fit(m, L::data::TensorLoader({torch::randn({8, 2}), torch::randn({8, 1})}));
}
