// Full-precision policies: conversions, every step taken, no state to save.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

namespace L = lightning;

namespace {
// A precision without state_dict/load_state_dict: a scaler's state would be lost on resume.
struct StatelessScaler {
  static constexpr std::string_view name = "x";
  static constexpr c10::ScalarType param_dtype = c10::kFloat;
  void convert_module(torch::nn::Module&) {}
  torch::Tensor convert_input(const torch::Tensor& t) const { return t; }
  L::NoScope autocast(c10::Device) const { return {}; }
  void backward(const torch::Tensor&) {}
  void unscale_gradients(torch::optim::Optimizer&) {}
  bool optimizer_step(torch::optim::Optimizer&) { return true; }
  torch::Tensor optimizer_step(torch::optim::Optimizer&,
                               const torch::optim::Optimizer::LossClosure&) {
    return {};
  }
};
struct WithState : StatelessScaler {
  L::CheckpointDict state_dict() const { return L::make_checkpoint(); }
  void load_state_dict(const L::CheckpointDict&) {}
};
}  // namespace
static_assert(L::Precision<L::precision::F32> && L::Precision<L::precision::F64>);
static_assert(L::Precision<WithState>);
static_assert(!L::Precision<StatelessScaler>);
static_assert(!L::Precision<L::strategies::SingleDevice>);

TEST(Precision, F64ConvertsModuleAndFloatingInputsOnly) {
  L::precision::F64 p;
  torch::nn::Linear lin(2, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(p.convert_input(torch::ones({2})).scalar_type(), torch::kDouble);
  EXPECT_EQ(p.convert_input(torch::ones({2}, torch::kLong)).scalar_type(), torch::kLong);
  auto b = p.convert_batch(std::make_tuple(torch::ones({1}), torch::ones({1}, torch::kInt)));
  EXPECT_EQ(std::get<0>(b).scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<1>(b).scalar_type(), torch::kInt);
}

TEST(Precision, F32LeavesEverythingAsIsAndAlwaysSteps) {
  L::precision::F32 p;
  torch::nn::Linear lin(2, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);
  auto x = torch::ones({2}, torch::kDouble);
  EXPECT_TRUE(p.convert_input(x).is_same(x));
  torch::optim::SGD opt(lin->parameters(), 0.1);
  auto loss = lin(torch::ones({1, 2})).sum();
  p.backward(loss);
  const auto before = lin->weight.clone();
  EXPECT_TRUE(p.optimizer_step(opt));
  EXPECT_FALSE(torch::equal(before, lin->weight));
}

TEST(Precision, FullPrecisionHasNoStateAndMovesBatchesThrough) {
  L::precision::F32 p;
  EXPECT_TRUE(p.state_dict().empty());
  p.load_state_dict(L::make_checkpoint());
  // A vector of tensors keeps its buffer when moved and gets a new one when copied.
  std::vector<torch::Tensor> batch{torch::ones({2}), torch::ones({2})};
  const auto* buffer = batch.data();
  const auto converted = p.convert_batch(std::move(batch));
  EXPECT_EQ(converted.data(), buffer);
}
