// TrainerOptions.detect_anomaly: autograd's anomaly detection for the fit. A backward that
// makes NaN fails at that batch, the error naming the operation, epoch, batch and step;
// without it the same run goes on with NaN weights, as in Lightning.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <string>

namespace L = lightning;
using lightning::testing::bare;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

// At batch 2 the loss goes through sqrt of a negative number: NaN forward and backward.
struct NanAtBatchTwo : lightning::testing::SimpleModel {
  torch::Tensor training_step(const XY& batch, std::int64_t idx) {
    auto loss = SimpleModel::training_step(batch, idx);
    return idx == 2 ? torch::sqrt(loss - 1e6) : loss;
  }
};

struct ManualNanAtBatchTwo : lightning::testing::ManualModel {
  torch::Tensor training_step(const XY& batch, std::int64_t idx) {
    const auto& [x, y] = batch;
    auto opt = optimizer();
    opt.zero_grad();
    auto loss = torch::mse_loss(linear(x), y.unsqueeze(1));
    if (idx == 2) loss = torch::sqrt(loss - 1e6);
    manual_backward(loss);
    opt.step();
    return loss;
  }
};

template <class M>
std::string fit_error(bool detect_anomaly, M& model) {
  auto [X, y] = seed_data(160);
  L::TrainerOptions o = bare({.max_epochs = 1});
  o.detect_anomaly = detect_anomaly;
  CpuTrainer<> trainer(o);
  try {
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(DetectAnomaly, ABackwardThatMakesNanFailsNamingWhereAndWhat) {
  NanAtBatchTwo model;
  const auto error = fit_error(true, model);
  EXPECT_NE(error.find("lightning: detect_anomaly: the backward of training_step's loss at "
                       "epoch 0, batch 2 (global step 2) failed: Function 'SqrtBackward0' "
                       "returned nan values"),
            std::string::npos)
      << error;
  EXPECT_FALSE(torch::autograd::AnomalyMode::is_enabled());  // off again after the fit
}

TEST(DetectAnomaly, ManualBackwardIsCheckedToo) {
  ManualNanAtBatchTwo model;
  const auto error = fit_error(true, model);
  EXPECT_NE(error.find("lightning: detect_anomaly: manual_backward in training_step at epoch 0 "
                       "(global step 2) failed: Function 'SqrtBackward0' returned nan values"),
            std::string::npos)
      << error;
}

TEST(DetectAnomaly, OffByDefaultTheRunGoesOnWithNan) {
  EXPECT_FALSE(L::TrainerOptions{}.detect_anomaly);
  NanAtBatchTwo model;
  EXPECT_EQ(fit_error(false, model), "(no error)");
  EXPECT_TRUE(torch::isnan(lightning::testing::flat_parameters(model)).any().item<bool>());
}
