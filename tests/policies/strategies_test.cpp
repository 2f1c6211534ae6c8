// Strategies: SingleDevice makes every contract point an identity or a no-op.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

namespace L = lightning;

namespace {
// A strategy written before the contract had its forward/backward/zero_grad points (the
// shape the review found): not a Strategy any more.
struct ScopeOnlyStrategy {
  static constexpr std::string_view name = "old";
  void setup_module(torch::nn::Module&, c10::Device) {}
  torch::Tensor reduce(const torch::Tensor& t, L::Reduce) const { return t; }
  void barrier() const {}
  bool broadcast(bool b) const { return b; }
  std::int64_t rank() const { return 0; }
  std::int64_t world_size() const { return 1; }
  bool is_global_zero() const { return true; }
  L::NoScope no_backward_sync() const { return {}; }
};
}  // namespace
static_assert(L::Strategy<L::strategies::SingleDevice>);
static_assert(!L::Strategy<ScopeOnlyStrategy>);
static_assert(!L::Strategy<L::accelerators::CPU>);

TEST(Strategies, SingleDeviceCollectivesAreIdentities) {
  L::strategies::SingleDevice s;
  s.setup_environment();
  auto t = torch::arange(3.0);
  EXPECT_TRUE(s.reduce(t, L::Reduce::sum).is_same(t));
  EXPECT_TRUE(s.broadcast(true));
  EXPECT_FALSE(s.broadcast(false));
  EXPECT_EQ(s.broadcast(std::int64_t{42}), 42);
  EXPECT_EQ(s.broadcast(std::string("epoch=1.ckpt")), "epoch=1.ckpt");
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.local_rank(), 0);
  EXPECT_EQ(s.world_size(), 1);
  EXPECT_TRUE(s.is_global_zero());
  s.barrier();
  s.teardown();
}

TEST(Strategies, SingleDeviceHandsTheLoaderThroughAndClearsGradients) {
  L::strategies::SingleDevice s;
  std::vector<torch::Tensor> loader{torch::ones({1})};
  auto&& same = s.process_dataloader(loader);
  EXPECT_EQ(&same, &loader);
  torch::nn::Linear lin(2, 1);
  torch::optim::SGD opt(lin->parameters(), 0.1);
  lin(torch::ones({1, 2})).sum().backward();
  ASSERT_TRUE(lin->weight.grad().defined());
  s.zero_grad(opt);
  EXPECT_TRUE(!lin->weight.grad().defined() || lin->weight.grad().abs().sum().item<double>() == 0);
}
