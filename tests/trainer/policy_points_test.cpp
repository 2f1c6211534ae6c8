// The loops call the policies at every contract point (core/concepts.hpp), in order:
// a strategy and a precision defined here record each call.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace L = lightning;
using lightning::testing::XY;

namespace {

std::vector<std::string> calls;  // what the recording policies saw, in order

double gradient_norm(torch::optim::Optimizer& o) {
  double sum = 0;
  for (const auto& group : o.param_groups())
    for (const auto& p : group.params())
      if (p.grad().defined()) sum += p.grad().pow(2).sum().item<double>();
  return std::sqrt(sum);
}

struct RecordingStrategy : L::strategies::SingleDevice {
  static constexpr std::string_view name = "recording";
  void setup_environment() { calls.push_back("setup_environment"); }
  void setup_module(torch::nn::Module& m, c10::Device) {
    // After the precision converted it: the parameters are already in its dtype.
    calls.push_back(std::string("setup_module(") +
                    c10::toString(m.parameters().front().scalar_type()) + ")");
  }
  template <class Loader>
  Loader&& process_dataloader(Loader&& loader) {
    calls.push_back("process_dataloader");
    return std::forward<Loader>(loader);
  }
  void pre_forward(torch::nn::Module&) { calls.push_back("pre_forward"); }
  void zero_grad(torch::optim::Optimizer& o) {
    calls.push_back("zero_grad");
    o.zero_grad();
  }
  void pre_backward(const torch::Tensor&, bool sync) {
    calls.push_back(sync ? "pre_backward(sync)" : "pre_backward(local)");
  }
  void post_backward(const torch::Tensor&, bool sync) {
    calls.push_back(sync ? "post_backward(sync)" : "post_backward(local)");
  }
  template <class T>
  T broadcast(T value) const {
    if constexpr (std::is_same_v<T, bool>)
      calls.push_back(std::string("broadcast(bool ") + (value ? "true" : "false") + ")");
    else if constexpr (std::is_same_v<T, std::string>)
      calls.push_back("broadcast(path " + std::filesystem::path(value).filename().string() + ")");
    else
      calls.push_back("broadcast(other)");
    return value;
  }
  void teardown() { calls.push_back("teardown"); }
};
static_assert(L::Strategy<RecordingStrategy>);

// F64 that records backward, unscale and step, and skips the optimizer steps it is told
// to (as a gradient scaler does on non-finite gradients).
struct RecordingPrecision : L::precision::F64 {
  std::set<int> skip;  // optimizer_step calls to skip, counted from 1
  int steps = 0;
  void convert_module(torch::nn::Module& m) {
    calls.push_back("convert_module");
    F64::convert_module(m);
  }
  void backward(const torch::Tensor& loss) {
    calls.push_back("backward");
    loss.backward();
  }
  // Clipping to 0.1 follows unscale: unscale sees the raw gradients, the step clipped ones.
  // Recorded once per step: later calls in the step do nothing, as a scaler's do.
  bool unscaled = false;
  void unscale_gradients(torch::optim::Optimizer& o) {
    if (std::exchange(unscaled, true)) return;
    calls.push_back(gradient_norm(o) > 0.1 + 1e-9 ? "unscale(raw)" : "unscale(clipped)");
  }
  using F64::optimizer_step;  // the closure form
  bool optimizer_step(torch::optim::Optimizer& o) {
    unscaled = false;
    const bool take = !skip.contains(++steps);
    calls.push_back(std::string(take ? "step" : "step(skipped)") +
                    (gradient_norm(o) <= 0.1 + 1e-9 ? "(clipped)" : "(raw)"));
    if (take) o.step();
    return take;
  }
};
static_assert(L::Precision<RecordingPrecision>);

// SimpleModel with a StepLR stepped every optimizer step, and a validation step.
struct PolicyPointsModel : lightning::testing::SimpleModel {
  auto configure_optimizers() {
    return L::optimizers(
        torch::optim::SGD(parameters(), 1.0),
        L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.5}, {.interval = L::Interval::step}));
  }
  void validation_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    log("val_loss", torch::mse_loss(forward(x), y.unsqueeze(1)));
  }
  torch::Tensor predict_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return forward(x);
  }
};

std::vector<XY> batches(int n) {
  std::vector<XY> out;
  for (int i = 0; i < n; ++i) out.push_back({torch::randn({4, 10}) * 100, torch::randn({4}) * 100});
  return out;
}

std::vector<std::string> between(const std::vector<std::string>& all, const std::string& first,
                                 const std::string& last_exclusive) {
  auto b = std::find(all.begin(), all.end(), first);
  auto e = std::find(b, all.end(), last_exclusive);
  return {b, e};
}

}  // namespace

TEST(PolicyPoints, AccumulationClippingAndASkippedStepInFit) {
  calls.clear();
  torch::manual_seed(0);
  PolicyPointsModel model;
  L::Trainer<L::accelerators::CPU, RecordingStrategy, RecordingPrecision> trainer(
      {.max_epochs = 1,
       .num_sanity_val_steps = 0,
       .accumulate_grad_batches = 2,
       .gradient_clip_val = 0.1,
       .enable_progress_bar = false,
       .enable_model_summary = false,
       .logger = false});
  trainer.fabric().precision().skip = {2};  // the second optimizer step is skipped
  auto train = batches(4);
  auto val = batches(1);
  trainer.fit(model, train, val);

  const std::vector<std::string> setup(calls.begin(), calls.begin() + 3);
  EXPECT_EQ(setup, (std::vector<std::string>{"setup_environment", "convert_module",
                                             "setup_module(Double)"}));
  const std::vector<std::string> expected_steps{"pre_forward",
                                                "zero_grad",
                                                "pre_backward(local)",
                                                "backward",
                                                "post_backward(local)",
                                                "pre_forward",
                                                "pre_backward(sync)",
                                                "backward",
                                                "post_backward(sync)",
                                                "unscale(raw)",
                                                "step(clipped)",
                                                "pre_forward",
                                                "zero_grad",
                                                "pre_backward(local)",
                                                "backward",
                                                "post_backward(local)",
                                                "pre_forward",
                                                "pre_backward(sync)",
                                                "backward",
                                                "post_backward(sync)",
                                                "unscale(raw)",
                                                "step(skipped)(clipped)"};
  // The train loader, then the validation loader (a DDP rank validates its shard).
  auto it = std::find(calls.begin(), calls.end(), "process_dataloader");
  ASSERT_NE(it, calls.end());
  ASSERT_EQ(*++it, "process_dataloader");
  const std::vector<std::string> steps(it + 1, it + 1 + static_cast<long>(expected_steps.size()));
  EXPECT_EQ(steps, expected_steps);

  // The skipped step is not a step: global_step counts one, the step scheduler halved once.
  EXPECT_EQ(trainer.global_step, 1);
  ASSERT_EQ(trainer.optimizer_infos().size(), 1U);
  EXPECT_DOUBLE_EQ(L::lr::group_lrs(*trainer.optimizer_infos()[0].optimizer)[0], 0.5);

  // Decisions go through broadcast: the checkpoint path ModelCheckpoint chose, the stop
  // flag after validation and after the epoch's end hooks; teardown ends the run.
  const auto tail = between(calls, "step(skipped)(clipped)", "teardown");
  EXPECT_NE(
      std::find_if(tail.begin(), tail.end(),
                   [](const auto& c) { return c.starts_with("broadcast(path epoch=0-step=1"); }),
      tail.end());
  EXPECT_GE(std::count(tail.begin(), tail.end(), "broadcast(bool false)"), 2);
  EXPECT_EQ(calls.back(), "teardown");
}

namespace {
struct ManualSGD : lightning::testing::ManualModel {
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
}  // namespace

TEST(PolicyPoints, ManualOptimizationGoesThroughTheSamePoints) {
  calls.clear();
  ManualSGD model;
  L::Trainer<L::accelerators::CPU, RecordingStrategy, RecordingPrecision> trainer(
      {.max_epochs = 1,
       .enable_progress_bar = false,
       .enable_checkpointing = false,
       .enable_model_summary = false,
       .logger = false});
  trainer.fabric().precision().skip = {1};
  auto train = batches(2);
  trainer.fit(model, train);
  auto it = std::find(calls.begin(), calls.end(), "process_dataloader");
  ASSERT_NE(it, calls.end());
  const std::vector<std::string> steps(it + 1, it + 15);
  EXPECT_EQ(steps,
            (std::vector<std::string>{"pre_forward", "zero_grad", "pre_backward(sync)", "backward",
                                      "post_backward(sync)", "unscale(raw)", "step(skipped)(raw)",
                                      "pre_forward", "zero_grad", "pre_backward(sync)", "backward",
                                      "post_backward(sync)", "unscale(raw)", "step(raw)"}));
  EXPECT_EQ(trainer.global_step, 1);  // the skipped step is not counted
}

TEST(PolicyPoints, EvaluationAndPredictionSetUpAndTearDownThroughThePolicies) {
  torch::manual_seed(0);
  PolicyPointsModel model;
  L::Trainer<L::accelerators::CPU, RecordingStrategy, RecordingPrecision> trainer(
      {.enable_progress_bar = false, .enable_model_summary = false, .logger = false});
  auto val = batches(2);
  calls.clear();
  trainer.validate(model, val);  // the loader through the strategy (a DDP rank's shard)
  EXPECT_EQ(calls,
            (std::vector<std::string>{"setup_environment", "convert_module", "setup_module(Double)",
                                      "process_dataloader", "broadcast(bool false)", "teardown"}));
  calls.clear();
  trainer.validate(model, val);  // the process group is joined once per process
  EXPECT_EQ(calls.front(), "convert_module");
  calls.clear();
  const auto predictions = trainer.predict(model, val);
  EXPECT_EQ(predictions.size(), 2U);
  EXPECT_EQ(predictions.front().scalar_type(), torch::kDouble);  // the precision's cast
  EXPECT_EQ(calls,
            (std::vector<std::string>{"convert_module", "setup_module(Double)", "teardown"}));
}
