// TensorLoader: batching, shuffling with its own generator, drop_last, views not copies.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/python.hpp"

#include <algorithm>
#include <string>
#include <vector>

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

// normalize: the first tensor stays compact (uint8) and each batch is yielded as
// (x * scale - mean) / std in float32, rows in the epoch's order, pairs kept.
TEST(TensorLoader, NormalizeConvertsEachBatchOfTheFirstTensor) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  auto pixels = torch::randint(256, {50, 1, 4, 3}, g, torch::kUInt8);
  auto ids = torch::arange(50);
  const L::data::Normalize n{.scale = 1.0 / 255, .mean = 0.3, .std = 0.4};
  const auto expected = [&](const torch::Tensor& rows) {
    return (pixels.index_select(0, rows).to(torch::kFloat) / 255.0 - 0.3) / 0.4;
  };
  for (const bool shuffle : {false, true}) {
    L::data::TensorLoader loader({pixels, ids},
                                 {.batch_size = 16, .shuffle = shuffle, .seed = 3, .normalize = n});
    std::vector<std::int64_t> seen;
    for (int epoch = 0; epoch < 2; ++epoch)
      for (auto [x, id] : loader) {
        EXPECT_EQ(x.scalar_type(), torch::kFloat);
        EXPECT_EQ(x.sizes(), (std::vector<std::int64_t>{id.size(0), 1, 4, 3}));
        EXPECT_TRUE(torch::allclose(x, expected(id), 1e-5, 1e-6)) << "shuffle " << shuffle;
        for (std::int64_t i = 0; i < id.size(0); ++i) seen.push_back(id[i].item<std::int64_t>());
      }
    ASSERT_EQ(seen.size(), 100u);
    EXPECT_EQ(std::is_sorted(seen.begin(), seen.begin() + 50), !shuffle);
  }
  // Any real or integral storage type; a zero std is refused with the option named.
  L::data::TensorLoader doubles({pixels.to(torch::kDouble)}, {.batch_size = 50, .normalize = n});
  EXPECT_TRUE(torch::allclose(std::get<0>(*doubles.begin()), expected(ids), 1e-5, 1e-6));
  expect_invalid_argument(
      [&] { L::data::TensorLoader({pixels}, {.normalize = L::data::Normalize{.std = 0.0}}); },
      "LoaderOptions.normalize.std = 0");
}

// Shards: what torch's DistributedSampler gives each rank (Lightning's DDP replaces a
// loader's sampler with it), checked against the real one for several sizes, world
// sizes, shuffling and epochs.
namespace {
std::vector<std::int64_t> shard_labels(L::data::TensorLoader<2>& shard) {
  std::vector<std::int64_t> seen;
  for (auto [x, t] : shard)
    for (std::int64_t i = 0; i < t.size(0); ++i) seen.push_back(t[i].item<std::int64_t>());
  return seen;
}
}  // namespace

TEST(TensorLoader, ShardsAreTorchsDistributedSamplerAndCoverTheData) {
  std::string program =
      "import torch\n"
      "from torch.utils.data import DistributedSampler\n"
      "for n, world, shuffle, seed in [(10, 2, False, 0), (10, 3, False, 0), (11, 4, True, 0),\n"
      "                                (7, 3, True, 5), (2, 3, False, 0), (64, 2, True, 42)]:\n"
      "    for rank in range(world):\n"
      "        s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle,\n"
      "                               seed=seed)\n"
      "        for epoch in range(2):\n"
      "            s.set_epoch(epoch)\n"
      "            print(' '.join(str(i) for i in s))\n";
  const auto result = lightning::testing::run_python_program(program);
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto lines = lightning::testing::lines_of(result.output);
  std::size_t line = 0;
  struct Case {
    std::int64_t n, world;
    bool shuffle;
    std::uint64_t seed;
  };
  for (const Case c : {Case{10, 2, false, 0}, Case{10, 3, false, 0}, Case{11, 4, true, 0},
                       Case{7, 3, true, 5}, Case{2, 3, false, 0}, Case{64, 2, true, 42}}) {
    const auto X = torch::zeros({c.n, 1}), y = torch::arange(c.n);
    L::data::TensorLoader loader({X, y}, {.batch_size = 3, .shuffle = c.shuffle, .seed = c.seed});
    std::vector<std::int64_t> count(static_cast<std::size_t>(c.n), 0);
    for (std::int64_t rank = 0; rank < c.world; ++rank) {
      auto shard = loader.shard(rank, c.world);
      EXPECT_EQ(shard.num_examples(), (c.n + c.world - 1) / c.world);
      for (int epoch = 0; epoch < 2; ++epoch) {
        const auto seen = shard_labels(shard);
        std::string ours;
        for (auto i : seen) ours += (ours.empty() ? "" : " ") + std::to_string(i);
        ASSERT_LT(line, lines.size());
        EXPECT_EQ(ours, lines[line++])
            << "n " << c.n << " world " << c.world << " rank " << rank << " epoch " << epoch;
        if (epoch == 0)
          for (auto i : seen) ++count[static_cast<std::size_t>(i)];
      }
    }
    // Every example is on some rank; only the padding (the first ones) appears twice.
    const std::int64_t padding = (c.n + c.world - 1) / c.world * c.world - c.n;
    std::int64_t extra = 0;
    for (auto k : count) {
      EXPECT_GE(k, 1);
      extra += k - 1;
    }
    EXPECT_EQ(extra, padding);
  }
}

TEST(TensorLoader, EveryShardHasTheSameNumberOfBatchesAndSetEpochRepeatsAnOrder) {
  const auto X = torch::zeros({13, 1}), y = torch::arange(13);
  L::data::TensorLoader loader({X, y}, {.batch_size = 2, .shuffle = true});
  auto a = loader.shard(0, 3), b = loader.shard(2, 3);
  EXPECT_EQ(a.size(), b.size());  // 5 examples each (13 padded to 15): 3 batches
  EXPECT_EQ(a.size(), 3);
  const auto first = shard_labels(a), second = shard_labels(a);
  EXPECT_NE(first, second);  // the next epoch, another order
  a.set_epoch(0);
  EXPECT_EQ(shard_labels(a), first);  // epoch 0 again (a resumed run)
  EXPECT_THROW((void)loader.shard(3, 3), std::invalid_argument);
  EXPECT_THROW((void)loader.shard(0, 0), std::invalid_argument);
}
