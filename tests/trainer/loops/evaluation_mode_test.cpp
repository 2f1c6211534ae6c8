// TrainerOptions.inference_mode: validation, the sanity check, test and predict run under
// torch.inference_mode by default and under torch.no_grad with inference_mode = false, so
// that what they make can enter autograd afterwards (Lightning's reason for the flag).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <string>
#include <vector>

namespace L = lightning;
using lightning::testing::bare;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

// Records the autograd mode each evaluation hook ran in ("inference", "no_grad", "grad"),
// and keeps the last validation output for a backward after the run.
struct ModeProbeModel : lightning::testing::SimpleModel {
  std::vector<std::string> modes;
  torch::Tensor kept;
  static std::string mode() {
    if (c10::InferenceMode::is_enabled()) return "inference";
    return torch::GradMode::is_enabled() ? "grad" : "no_grad";
  }
  void validation_step(const XY& batch, std::int64_t) {
    modes.push_back((sanity_checking ? "sanity " : "validation ") + mode());
    kept = forward(std::get<0>(batch)).mean();
  }
  void test_step(const XY&, std::int64_t) { modes.push_back("test " + mode()); }
  torch::Tensor predict_step(const XY& batch, std::int64_t) {
    modes.push_back("predict " + mode());
    return forward(std::get<0>(batch));
  }
  bool sanity_checking = false;
};

struct SanityFlag {
  void on_sanity_check_start(auto&, ModeProbeModel& m) { m.sanity_checking = true; }
  void on_sanity_check_end(auto&, ModeProbeModel& m) { m.sanity_checking = false; }
};

std::vector<std::string> run_all(bool inference_mode, ModeProbeModel& model) {
  auto [X, y] = seed_data(64);
  L::data::TensorLoader loader({X, y}, {.batch_size = 32});
  L::TrainerOptions o = bare({.max_epochs = 1, .num_sanity_val_steps = 1});
  o.inference_mode = inference_mode;
  CpuTrainer<SanityFlag> trainer(o, SanityFlag{});
  trainer.fit(model, loader, loader);
  (void)trainer.test(model, loader);
  (void)trainer.predict(model, loader);
  return model.modes;
}

}  // namespace

TEST(EvaluationMode, InferenceModeByDefault) {
  ModeProbeModel model;
  EXPECT_TRUE(L::TrainerOptions{}.inference_mode);
  const auto modes = run_all(true, model);
  const std::vector<std::string> expected{
      "sanity inference", "validation inference", "validation inference", "test inference",
      "test inference",   "predict inference",    "predict inference"};
  EXPECT_EQ(modes, expected);
  // An inference tensor cannot be saved for backward: what validation made stays out.
  auto w = torch::ones({1}, torch::requires_grad());
  EXPECT_THROW((w * model.kept).sum().backward(), c10::Error);
  EXPECT_TRUE(torch::GradMode::is_enabled());  // the mode ends with the run
}

TEST(EvaluationMode, NoGradWithInferenceModeOff) {
  ModeProbeModel model;
  const auto modes = run_all(false, model);
  const std::vector<std::string> expected{
      "sanity no_grad", "validation no_grad", "validation no_grad", "test no_grad",
      "test no_grad",   "predict no_grad",    "predict no_grad"};
  EXPECT_EQ(modes, expected);
  auto w = torch::ones({1}, torch::requires_grad());
  (w * model.kept).sum().backward();  // a no_grad tensor is a constant to autograd
  EXPECT_TRUE(torch::allclose(w.grad(), model.kept.reshape({1})));
  EXPECT_TRUE(torch::GradMode::is_enabled());
}
