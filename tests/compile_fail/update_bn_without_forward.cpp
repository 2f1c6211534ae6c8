// Must not compile: update_bn(loader, model) on a model with no forward(tensor).
#include <lightning/lightning.hpp>
namespace L = lightning;
struct NoForward : torch::nn::Module {
  torch::nn::BatchNorm1d bn{register_module("bn", torch::nn::BatchNorm1d(4))};
};
int main() {
  NoForward model;
  auto x = torch::zeros({8, 4});
  L::update_bn(L::data::TensorLoader({x}, {.batch_size = 4}), model);
}
