// ModelSummary: Lightning's table (rows to max_depth, abbreviated counts, totals, modes),
// printed once at fit start on rank zero only.
#include <gtest/gtest.h>

#include <lightning/callbacks/model_summary.hpp>
#include <lightning/lightning.hpp>

#include <sstream>

#include "support/models.hpp"

namespace L = lightning;
using L::callbacks::ModelSummary;
using L::callbacks::summarize;
using lightning::testing::CpuTrainer;
using lightning::testing::XY;

namespace {

// encoder: 352 + 0 + 528 = 880, head: 17, frozen (no gradients, eval mode): 10,100.
struct Net : L::LightningModule {
  torch::nn::Sequential encoder{
      register_module("encoder", torch::nn::Sequential(torch::nn::Linear(10, 32), torch::nn::ReLU(),
                                                       torch::nn::Linear(32, 16)))};
  torch::nn::Linear head{register_module("head", torch::nn::Linear(16, 1))};
  torch::nn::Linear frozen{register_module("frozen", torch::nn::Linear(100, 100))};

  Net() {
    for (auto& p : frozen->parameters()) p.set_requires_grad(false);
    frozen->eval();
  }
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(head(encoder->forward(x)), y.unsqueeze(1));
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};

// Records how much had been printed when the first batch started.
struct Probe {
  std::ostringstream* out;
  std::size_t* seen_at_first_batch;
  void on_train_batch_start(auto&, auto&, const auto&, std::int64_t) {
    if (*seen_at_first_batch == 0) *seen_at_first_batch = out->str().size();
  }
};

struct NotRankZero {
  bool is_global_zero() const { return false; }
};

}  // namespace

TEST(ModelSummary, HumanReadableCountsAsLightning) {
  using L::callbacks::human_readable_count;
  EXPECT_EQ(human_readable_count(0), "0  ");
  EXPECT_EQ(human_readable_count(66), "66  ");
  EXPECT_EQ(human_readable_count(999), "999  ");
  EXPECT_EQ(human_readable_count(1234), "1.2 K");
  EXPECT_EQ(human_readable_count(99999), "100.0 K");
  EXPECT_EQ(human_readable_count(123456), "123 K");
  EXPECT_EQ(human_readable_count(3'400'000), "3.4 M");
  EXPECT_EQ(human_readable_count(1'000'000'000), "1.0 B");
  EXPECT_EQ(human_readable_count(5'000'000'000'000'000), "5,000 T");
  EXPECT_THROW(human_readable_count(-1), std::invalid_argument);
}

TEST(ModelSummary, RowsAndTotals) {
  Net net;
  const auto s = summarize(net, 1);
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].name, "encoder");
  EXPECT_EQ(s.layers[0].type, "Sequential");
  EXPECT_EQ(s.layers[0].params, 880);
  EXPECT_EQ(s.layers[1].name, "head");
  EXPECT_EQ(s.layers[1].type, "Linear");
  EXPECT_EQ(s.layers[2].params, 10100);
  EXPECT_FALSE(s.layers[2].training);
  EXPECT_EQ(s.trainable_params, 897);
  EXPECT_EQ(s.non_trainable_params(), 10100);
  EXPECT_EQ(s.total_params, 10997);
  EXPECT_DOUBLE_EQ(s.params_size_mb, 10997 * 4 / 1e6);
  EXPECT_EQ(s.train_modules, 5);  // encoder, its three layers, head
  EXPECT_EQ(s.eval_modules, 1);

  const auto all = summarize(net, -1);
  ASSERT_EQ(all.layers.size(), 6u);
  EXPECT_EQ(all.layers[1].name, "encoder.0");
  EXPECT_EQ(all.layers[2].type, "ReLU");
  EXPECT_EQ(all.layers[2].params, 0);
  EXPECT_EQ(summarize(net, 2).layers.size(), 6u);
  EXPECT_TRUE(summarize(net, 0).layers.empty());

  net.to(torch::kFloat64);  // bytes per parameter follow the dtype
  EXPECT_DOUBLE_EQ(summarize(net).params_size_mb, 10997 * 8 / 1e6);
}

TEST(ModelSummary, TableAsLightning) {
  Net net;
  const std::string expected =
      "  | Name    | Type       | Params | Mode \n"
      "-----------------------------------------------\n"
      "0 | encoder | Sequential | 880    | train\n"
      "1 | head    | Linear     | 17     | train\n"
      "2 | frozen  | Linear     | 10.1 K | eval \n"
      "-----------------------------------------------\n"
      "897       Trainable params\n"
      "10.1 K    Non-trainable params\n"
      "11.0 K    Total params\n"
      "0.044     Total estimated model params size (MB)\n"
      "5         Modules in train mode\n"
      "1         Modules in eval mode\n";
  EXPECT_EQ(summarize(net).table(), expected);
}

TEST(ModelSummary, PrintedAtFitStartBeforeTraining) {
  std::ostringstream out;
  Net net;
  std::size_t seen = 0;
  const auto expected = summarize(net, -1).table();  // fit puts `frozen` in train mode
  CpuTrainer<ModelSummary, Probe> t({.max_epochs = 1, .enable_progress_bar = false},
                                    ModelSummary({.max_depth = -1, .stream = &out}),
                                    Probe{&out, &seen});
  auto X = torch::randn({64, 10}), y = torch::randn({64});
  t.fit(net, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(out.str(), expected);
  EXPECT_EQ(seen, out.str().size());
  EXPECT_NE(out.str().find("4 | head"), std::string::npos) << out.str();
}

TEST(ModelSummary, SilentOffRankZeroOrAtDepthZero) {
  std::ostringstream out;
  Net net;
  NotRankZero trainer;
  ModelSummary({.stream = &out}).on_fit_start(trainer, net);
  EXPECT_EQ(out.str(), "");
  struct RankZero {
    bool is_global_zero() const { return true; }
  } zero;
  ModelSummary({.max_depth = 0, .stream = &out}).on_fit_start(zero, net);
  EXPECT_EQ(out.str(), "");
  ModelSummary({.stream = &out}).on_fit_start(zero, net);
  EXPECT_EQ(out.str(), summarize(net).table());
}

TEST(ModelSummary, RejectsADepthBelowMinusOne) {
  try {
    ModelSummary({.max_depth = -2});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ModelSummaryOptions.max_depth = -2"), std::string::npos)
        << e.what();
  }
  Net net;
  EXPECT_THROW((void)summarize(net, -3), std::invalid_argument);
}
