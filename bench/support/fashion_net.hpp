// The network of examples/fashion_mnist.cpp (two 3x3 convolutions with pooling, two linear
// layers: 225 k parameters, most of the work in the convolutions), for the benchmarks
// that measure a real CNN. Takes 28 x 28 images, flat or not; returns logits.
#pragma once

#include <torch/torch.h>

namespace lightning::bench {

struct FashionNetImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{
      register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3)))};
  torch::nn::Conv2d conv2{
      register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)))};
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(64 * 5 * 5, 128))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(128, 10))};

  torch::Tensor forward(const torch::Tensor& images) {
    auto h = torch::max_pool2d(torch::relu(conv1(images.view({-1, 1, 28, 28}))), 2);
    h = torch::max_pool2d(torch::relu(conv2(h)), 2);  // 64 x 5 x 5
    return fc2(torch::relu(fc1(h.flatten(1))));
  }
};
TORCH_MODULE(FashionNet);

}  // namespace lightning::bench
