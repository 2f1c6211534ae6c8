// validate / test / predict: their loops, hook order, limits and results; DataModules.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

namespace L = lightning;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

struct EvalModel : lightning::testing::SimpleModel {
  std::vector<std::string>* calls = nullptr;
  void rec(const std::string& s) {
    if (calls) calls->push_back(s);
  }
  void setup(L::Stage s) { rec("setup(" + std::string(L::to_string(s)) + ")"); }
  void teardown(L::Stage s) { rec("teardown(" + std::string(L::to_string(s)) + ")"); }
  void on_validation_start() { rec("on_validation_start"); }
  void on_validation_end() { rec("on_validation_end"); }
  void on_test_start() { rec("on_test_start"); }
  void on_test_epoch_start() { rec("on_test_epoch_start"); }
  void on_test_batch_start(const XY&, int64_t i) {
    rec("on_test_batch_start(" + std::to_string(i) + ")");
  }
  void on_test_batch_end(const torch::Tensor&, const XY&, int64_t i) {
    rec("on_test_batch_end(" + std::to_string(i) + ")");
  }
  void on_test_epoch_end() { rec("on_test_epoch_end"); }
  void on_test_end() { rec("on_test_end"); }
  void on_predict_start() { rec("on_predict_start"); }
  void on_predict_epoch_start() { rec("on_predict_epoch_start"); }
  void on_predict_batch_start(const XY&, int64_t i) {
    rec("on_predict_batch_start(" + std::to_string(i) + ")");
  }
  void on_predict_batch_end(const torch::Tensor&, const XY&, int64_t i) {
    rec("on_predict_batch_end(" + std::to_string(i) + ")");
  }
  void on_predict_epoch_end() { rec("on_predict_epoch_end"); }
  void on_predict_end() { rec("on_predict_end"); }

  void validation_step(const XY& b, int64_t i) {
    EXPECT_TRUE(c10::InferenceMode::is_enabled());
    EXPECT_FALSE(is_training());
    rec("validation_step(" + std::to_string(i) + ")");
    log("val_loss", torch::mse_loss(forward(std::get<0>(b)), std::get<1>(b).unsqueeze(1)));
  }
  torch::Tensor test_step(const XY& b, int64_t i) {
    EXPECT_TRUE(c10::InferenceMode::is_enabled());
    rec("test_step(" + std::to_string(i) + ")");
    auto loss = torch::mse_loss(forward(std::get<0>(b)), std::get<1>(b).unsqueeze(1));
    log("test_loss", loss);
    log("hidden", loss, {.logger = false});
    return loss;
  }
  torch::Tensor predict_step(const XY& b, int64_t i) {
    rec("predict_step(" + std::to_string(i) + ")");
    return forward(std::get<0>(b));
  }
};

// A DataModule recording its lifecycle.
struct SeedDataModule {
  std::vector<std::string>* calls;
  torch::Tensor X, y;
  void prepare_data() { calls->push_back("dm.prepare_data"); }
  void setup(L::Stage s) {
    calls->push_back("dm.setup(" + std::string(L::to_string(s)) + ")");
    std::tie(X, y) = seed_data(128);
  }
  void teardown(L::Stage s) {
    calls->push_back("dm.teardown(" + std::string(L::to_string(s)) + ")");
  }
  L::data::TensorLoader<2> train_dataloader() {
    return L::data::TensorLoader({X, y}, {.batch_size = 32});
  }
  L::data::TensorLoader<2> val_dataloader() {
    return L::data::TensorLoader({X, y}, {.batch_size = 64});
  }
  L::data::TensorLoader<2> test_dataloader() {
    return L::data::TensorLoader({X, y}, {.batch_size = 16});
  }
  L::data::TensorLoader<2> predict_dataloader() {
    return L::data::TensorLoader({X, y}, {.batch_size = 128});
  }
};

}  // namespace

TEST(Evaluation, ValidateReturnsLoggedEpochMetricsAndRestoresTrainMode) {
  auto [X, y] = seed_data(100);
  EvalModel m;
  m.train();
  CpuTrainer<> t({.enable_progress_bar = false});
  const auto results = t.validate(m, L::data::TensorLoader({X, y}, {.batch_size = 25}));
  ASSERT_EQ(results.size(), 1u);
  const double expected =
      torch::mse_loss(m.forward(X), y.unsqueeze(1)).item<double>();  // equal batches: mean of means
  EXPECT_NEAR(results[0].at("val_loss"), expected, 1e-6);
  EXPECT_TRUE(m.is_training());
  EXPECT_EQ(t.stage, L::Stage::validate);
}

TEST(Evaluation, TestHookOrderLimitAndResults) {
  std::vector<std::string> calls;
  auto [X, y] = seed_data(64);
  EvalModel m;
  m.calls = &calls;
  CpuTrainer<> t({.limit_test_batches = 2, .enable_progress_bar = false});
  const auto results = t.test(m, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  const std::vector<std::string> expected = {"setup(test)",
                                             "on_test_start",
                                             "on_test_epoch_start",
                                             "on_test_batch_start(0)",
                                             "test_step(0)",
                                             "on_test_batch_end(0)",
                                             "on_test_batch_start(1)",
                                             "test_step(1)",
                                             "on_test_batch_end(1)",
                                             "on_test_epoch_end",
                                             "on_test_end",
                                             "teardown(test)"};
  EXPECT_EQ(calls, expected);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].count("test_loss"), 1u);
  EXPECT_EQ(results[0].count("hidden"), 0u);  // logger=false is not a logged metric
}

TEST(Evaluation, PredictCollectsOutputsInOrder) {
  std::vector<std::string> calls;
  auto [X, y] = seed_data(50);
  EvalModel m;
  m.calls = &calls;
  CpuTrainer<> t({.enable_progress_bar = false});
  const auto out = t.predict(m, L::data::TensorLoader({X, y}, {.batch_size = 20}));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].size(0), 10);
  EXPECT_TRUE(torch::allclose(torch::cat(out), m.forward(X)));
  EXPECT_EQ(calls.front(), "setup(predict)");
  EXPECT_EQ(calls[1], "on_predict_start");
  EXPECT_EQ(calls[2], "on_predict_epoch_start");
  EXPECT_EQ(calls[3], "on_predict_batch_start(0)");
  EXPECT_EQ(calls[4], "predict_step(0)");
  EXPECT_EQ(calls[5], "on_predict_batch_end(0)");
  EXPECT_EQ(calls[calls.size() - 3], "on_predict_epoch_end");
  EXPECT_EQ(calls[calls.size() - 2], "on_predict_end");
  EXPECT_EQ(calls.back(), "teardown(predict)");

  CpuTrainer<> limited({.limit_predict_batches = 1, .enable_progress_bar = false});
  EXPECT_EQ(limited.predict(m, L::data::TensorLoader({X, y}, {.batch_size = 20})).size(), 1u);
}

TEST(DataModule, FitValidateTestPredictThroughADataModule) {
  std::vector<std::string> calls;
  SeedDataModule dm{&calls, {}, {}};
  EvalModel m;
  CpuTrainer<> t({.max_epochs = 2, .num_sanity_val_steps = 0, .enable_progress_bar = false});
  t.fit(m, dm);
  EXPECT_EQ(t.global_step, 8);                            // train_dataloader: 4 batches of 32
  EXPECT_EQ(t.callback_metrics().count("val_loss"), 1u);  // val_dataloader was used
  const std::vector<std::string> fit_calls = {"dm.prepare_data", "dm.setup(fit)",
                                              "dm.teardown(fit)"};
  EXPECT_EQ(calls, fit_calls);
  EXPECT_EQ(t.test(m, dm)[0].count("test_loss"), 1u);
  EXPECT_EQ(t.validate(m, dm)[0].count("val_loss"), 1u);
  EXPECT_EQ(t.predict(m, dm).size(), 1u);
  EXPECT_EQ(calls[4], "dm.setup(test)");
}
