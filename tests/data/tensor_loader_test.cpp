// TensorLoader: batching, shuffling with its own generator, drop_last, views not copies.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"

namespace L = lightning;
using lightning::testing::expect_invalid_argument;

TEST(TensorLoader, BatchesAreContiguousViewsInOrder) {
  auto X = torch::arange(10).reshape({10, 1}).to(torch::kFloat);
  auto y = torch::arange(10);
  L::data::TensorLoader loader({X, y}, {.batch_size = 4});
  EXPECT_EQ(loader.size(), 3);
  std::vector<int64_t> sizes;
  int64_t expected_first = 0;
  for (auto [x, t] : loader) {
    sizes.push_back(x.size(0));
    EXPECT_EQ(t[0].item<int64_t>(), expected_first);
    EXPECT_EQ(x.data_ptr(), X[expected_first].data_ptr());  // a view into X, no copy
    expected_first += 4;
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
}

TEST(TensorLoader, DropLastDropsTheIncompleteBatch) {
  L::data::TensorLoader loader({torch::zeros({10, 2})}, {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(loader.size(), 2);
  int64_t n = 0;
  for (auto [x] : loader) n += x.size(0);
  EXPECT_EQ(n, 8);
}

TEST(TensorLoader, ShuffleIsAPermutationKeepsPairsAndIsSeeded) {
  auto X = torch::arange(100).to(torch::kFloat);
  auto y = torch::arange(100) * 2;
  auto epoch_order = [&](L::data::TensorLoader<2>& loader) {
    std::vector<torch::Tensor> xs;
    for (auto [x, t] : loader) {
      EXPECT_TRUE(torch::equal(t, (x * 2).to(torch::kLong)));  // pairs stay together
      xs.push_back(x.clone());
    }
    return torch::cat(xs);
  };
  L::data::TensorLoader a({X, y}, {.batch_size = 16, .shuffle = true, .seed = 5});
  L::data::TensorLoader b({X, y}, {.batch_size = 16, .shuffle = true, .seed = 5});
  auto a1 = epoch_order(a), a2 = epoch_order(a), b1 = epoch_order(b);
  EXPECT_TRUE(torch::equal(std::get<0>(a1.sort()), X));  // a permutation
  EXPECT_FALSE(torch::equal(a1, X));                     // actually shuffled
  EXPECT_FALSE(torch::equal(a1, a2));                    // a new order each epoch
  EXPECT_TRUE(torch::equal(a1, b1));                     // same seed, same order
}

TEST(TensorLoader, UnseededShuffleFollowsTheGlobalSeed) {
  auto X = torch::arange(50).to(torch::kFloat);
  auto first = [&] {
    L::data::TensorLoader l({X}, {.batch_size = 50, .shuffle = true});
    return std::get<0>(*l.begin()).clone();
  };
  torch::manual_seed(1);
  auto a = first();
  torch::manual_seed(1);
  EXPECT_TRUE(torch::equal(a, first()));
}

TEST(TensorLoader, HeldBatchesSurviveTheNextEpoch) {
  auto X = torch::arange(8).to(torch::kFloat);
  L::data::TensorLoader loader({X}, {.batch_size = 8, .shuffle = true, .seed = 1});
  auto held = std::get<0>(*loader.begin());
  auto copy = held.clone();
  for (int e = 0; e < 3; ++e)
    for (auto b : loader) (void)b;
  EXPECT_TRUE(torch::equal(held, copy));  // the buffer was not reused under it
}

TEST(TensorLoader, ClearErrorsForBadInput) {
  expect_invalid_argument([] { L::data::TensorLoader({torch::zeros({4})}, {.batch_size = 0}); },
                          "batch_size = 0");
  expect_invalid_argument(
      [] {
        L::data::TensorLoader({torch::zeros({4}), torch::zeros({5})});
      },
      "same number of examples");
  expect_invalid_argument([] { L::data::TensorLoader({torch::tensor(1.0)}); },
                          "first (example) dimension");
}
