// validate / test / predict: their loops, hook order, limits and results; DataModules.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

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

namespace {

// Several validation/test loaders: dataloader_idx reaches the steps and batch hooks that
// take it, metrics get Lightning's "/dataloader_idx_N" suffix, results come per loader.
struct MultiLoaderModel : lightning::testing::SimpleModel {
  std::vector<std::string> calls;
  void validation_step(const XY& b, int64_t i, int64_t dataloader_idx) {
    calls.push_back("validation_step(" + std::to_string(i) + ", " + std::to_string(dataloader_idx) +
                    ")");
    log("val_loss", torch::mse_loss(forward(std::get<0>(b)), std::get<1>(b).unsqueeze(1)));
    log("batches", 1.0, {.reduce = L::Reduce::sum, .add_dataloader_idx = false});
  }
  void test_step(const XY& b, int64_t, int64_t dataloader_idx) {
    log("test_size", static_cast<double>(std::get<0>(b).size(0)), {.reduce = L::Reduce::sum});
    log("dl", static_cast<double>(dataloader_idx), {.reduce = L::Reduce::max});
  }
  void on_validation_batch_start(const XY&, int64_t i, int64_t dataloader_idx) {
    calls.push_back("on_validation_batch_start(" + std::to_string(i) + ", " +
                    std::to_string(dataloader_idx) + ")");
  }
  void on_validation_batch_end(const L::NoOutput&, const XY&, int64_t i) {  // without the idx
    calls.push_back("on_validation_batch_end(" + std::to_string(i) + ")");
  }
  void on_validation_epoch_end() {
    calls.push_back("on_validation_epoch_end");
    log("epoch_level", 7.0);  // outside a loader's batches: no suffix
  }
};

struct DataloaderIdxCallback {
  std::vector<std::int64_t>* seen;
  void on_validation_batch_end(auto&, auto&, const auto&, const auto&, int64_t,
                               int64_t dataloader_idx) {
    seen->push_back(dataloader_idx);
  }
};

TEST(Evaluation, SeveralValidationLoadersWithDataloaderIdx) {
  auto [X, y] = seed_data(96);
  L::data::TensorLoader a({X, y}, {.batch_size = 32});                                  // 3 batches
  L::data::TensorLoader b({X.slice(0, 0, 40), y.slice(0, 0, 40)}, {.batch_size = 32});  // 2
  MultiLoaderModel m;
  std::vector<std::int64_t> seen;
  CpuTrainer<DataloaderIdxCallback> t({.enable_progress_bar = false}, DataloaderIdxCallback{&seen});
  const auto results = t.validate(m, std::tie(a, b));

  const std::vector<std::string> expected = {
      "on_validation_batch_start(0, 0)", "validation_step(0, 0)", "on_validation_batch_end(0)",
      "on_validation_batch_start(1, 0)", "validation_step(1, 0)", "on_validation_batch_end(1)",
      "on_validation_batch_start(2, 0)", "validation_step(2, 0)", "on_validation_batch_end(2)",
      "on_validation_batch_start(0, 1)", "validation_step(0, 1)", "on_validation_batch_end(0)",
      "on_validation_batch_start(1, 1)", "validation_step(1, 1)", "on_validation_batch_end(1)",
      "on_validation_epoch_end"};
  EXPECT_EQ(m.calls, expected);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 0, 0, 1, 1}));

  ASSERT_EQ(results.size(), 2u);
  // Each loader's own metrics, plus those logged without a loader suffix.
  const auto keys = [](const L::MetricMap& m) {
    std::vector<std::string> k;
    for (const auto& [name, value] : m) k.push_back(name);
    return k;
  };
  EXPECT_EQ(keys(results[0]),
            (std::vector<std::string>{"batches", "epoch_level", "val_loss/dataloader_idx_0"}));
  EXPECT_EQ(keys(results[1]),
            (std::vector<std::string>{"batches", "epoch_level", "val_loss/dataloader_idx_1"}));
  EXPECT_DOUBLE_EQ(results[0].at("batches"), 5.0);  // summed over both loaders' batches
  // Loader 0's mean loss is the mean over all 96 examples.
  torch::NoGradGuard no_grad;
  const double full = torch::mse_loss(m.forward(X), y.unsqueeze(1)).item<double>();
  EXPECT_NEAR(results[0].at("val_loss/dataloader_idx_0"), full, 1e-5);
  EXPECT_EQ(t.callback_metrics().count("val_loss/dataloader_idx_1"), 1u);
}

TEST(Evaluation, SeveralTestLoadersAndASingleLoaderWithADataloaderIdxStep) {
  auto [X, y] = seed_data(64);
  MultiLoaderModel m;
  CpuTrainer<> t({.enable_progress_bar = false});
  const auto results = t.test(m, std::tuple{L::data::TensorLoader({X, y}, {.batch_size = 16}),
                                            L::data::TensorLoader({X, y}, {.batch_size = 64}),
                                            std::vector<XY>{{X.slice(0, 0, 5), y.slice(0, 0, 5)}}});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_DOUBLE_EQ(results[0].at("test_size/dataloader_idx_0"), 64.0);
  EXPECT_DOUBLE_EQ(results[1].at("test_size/dataloader_idx_1"), 64.0);
  EXPECT_DOUBLE_EQ(results[2].at("test_size/dataloader_idx_2"), 5.0);
  EXPECT_DOUBLE_EQ(results[2].at("dl/dataloader_idx_2"), 2.0);
  EXPECT_EQ(results[0].count("test_size/dataloader_idx_1"), 0u);

  // One loader: the step still gets dataloader_idx 0, and names carry no suffix.
  const auto single = t.test(m, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  ASSERT_EQ(single.size(), 1u);
  EXPECT_DOUBLE_EQ(single[0].at("test_size"), 64.0);
  EXPECT_DOUBLE_EQ(single[0].at("dl"), 0.0);
}

TEST(Evaluation, SeveralValidationLoadersDuringFit) {
  auto [X, y] = seed_data(64);
  MultiLoaderModel m;
  std::vector<lightning::testing::RecordingLogger::Row> rows;
  CpuTrainer<lightning::testing::RecordingLogger> t(
      {.max_epochs = 2, .num_sanity_val_steps = 1, .enable_progress_bar = false},
      lightning::testing::RecordingLogger{&rows});
  auto train = L::data::TensorLoader({X, y}, {.batch_size = 32});
  t.fit(m, train,
        std::tuple{L::data::TensorLoader({X, y}, {.batch_size = 32}),
                   L::data::TensorLoader({X, y}, {.batch_size = 16})});
  // Sanity check: one batch of each loader; then 2 + 4 batches per epoch.
  const auto steps = std::count_if(m.calls.begin(), m.calls.end(), [](const std::string& c) {
    return c.starts_with("validation_step");
  });
  EXPECT_EQ(steps, 2 + 2 * 6);
  // The epoch-end log rows of validation hold both loaders' losses.
  int with_both = 0;
  for (const auto& row : rows)
    if (row.metrics.count("val_loss/dataloader_idx_0") &&
        row.metrics.count("val_loss/dataloader_idx_1"))
      ++with_both;
  EXPECT_EQ(with_both, 2);
}

}  // namespace
