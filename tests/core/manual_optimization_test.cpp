// Manual optimization: the module steps its optimizers; the Trainer does no backward,
// step or zero_grad itself, counts each optimizer step in global_step, and runs the
// precision and the hooks inside manual_backward and opt.step().
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"

#include <string>
#include <vector>

namespace L = lightning;
using lightning::testing::CpuTrainer;
using lightning::testing::expect_invalid_argument;
using lightning::testing::flat_parameters;
using lightning::testing::ManualModel;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

static_assert(L::uses_manual_optimization<ManualModel>);
static_assert(!L::uses_manual_optimization<lightning::testing::SimpleModel>);
static_assert(L::TrainingModule<ManualModel, XY>);

TEST(ManualOptimization, SameParametersAsTheHandWrittenLoop) {
  auto [X, y] = seed_data(256);
  torch::manual_seed(3);
  ManualModel m;
  torch::manual_seed(3);
  ManualModel reference;

  CpuTrainer<> t({.max_epochs = 2, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(t.global_step, 16);

  torch::optim::Adam opt(reference.parameters(), 1e-3);
  for (int epoch = 0; epoch < 2; ++epoch)
    for (std::int64_t i = 0; i < 256; i += 32) {
      opt.zero_grad();
      auto loss = torch::mse_loss(reference.linear(X.slice(0, i, i + 32)),
                                  y.slice(0, i, i + 32).unsqueeze(1));
      loss.backward();
      opt.step();
    }
  EXPECT_TRUE(torch::equal(flat_parameters(m), flat_parameters(reference)));
}

// Returns nothing and steps nothing: the Trainer must not touch the parameters.
struct IdleModule : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  int steps = 0;
  void training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    ++steps;
    log("loss", torch::mse_loss(linear(x), y.unsqueeze(1)));
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.5); }
};

struct OutputProbe {
  int no_outputs = 0;
  void on_train_batch_end(auto&, auto&, const L::NoOutput&, const auto&, std::int64_t) {
    ++no_outputs;
  }
};

TEST(ManualOptimization, TrainerDoesNoBackwardStepOrZeroGrad) {
  auto [X, y] = seed_data(128);
  IdleModule m;
  const auto before = flat_parameters(m).clone();
  CpuTrainer<OutputProbe> t({.max_epochs = 3, .enable_progress_bar = false}, OutputProbe{});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(m.steps, 12);
  EXPECT_EQ(t.global_step, 0);  // no optimizer step was taken
  EXPECT_EQ(t.current_epoch, 3);
  EXPECT_EQ(t.callback<OutputProbe>().no_outputs, 12);  // void step -> NoOutput
  EXPECT_TRUE(torch::equal(flat_parameters(m), before));
  for (auto& p : m.parameters()) EXPECT_FALSE(p.grad().defined());
}

// Two sub-networks with an optimizer each, as a GAN: every step counts in global_step.
struct TwoOptimizers : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear a{register_module("a", torch::nn::Linear(10, 1))};
  torch::nn::Linear b{register_module("b", torch::nn::Linear(10, 1))};
  std::vector<std::string>* events = nullptr;
  bool b_frozen_during_a = false;
  bool concrete_type_reached = false;
  std::vector<double> b_lrs;

  void rec(const std::string& e) {
    if (events) events->push_back(e);
  }
  void training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto [opt_a, opt_b] = optimizers<2>();
    concrete_type_reached = &opt_a.as<torch::optim::SGD>() == &opt_a.optimizer();
    toggle_optimizer(opt_a);
    b_frozen_during_a = !b->weight.requires_grad() && a->weight.requires_grad();
    rec("step a");
    opt_a.zero_grad();
    manual_backward(torch::mse_loss(a(x), y.unsqueeze(1)));
    opt_a.step();
    untoggle_optimizer();
    rec("step b");
    opt_b.zero_grad();
    manual_backward(torch::mse_loss(b(x), y.unsqueeze(1)));
    opt_b.step();
    b_lrs.push_back(opt_b.lrs()[0]);
  }
  void on_before_backward(const torch::Tensor&) { rec("module on_before_backward"); }
  void on_after_backward() { rec("module on_after_backward"); }
  void on_before_optimizer_step(torch::optim::Optimizer&) {
    rec("module on_before_optimizer_step");
  }
  void on_before_zero_grad(torch::optim::Optimizer&) { rec("module on_before_zero_grad"); }
  auto configure_optimizers() {
    return std::tuple{torch::optim::SGD(a->parameters(), 0.1),
                      L::optimizers(torch::optim::SGD(b->parameters(), 0.2),
                                    L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.5}))};
  }
};

struct HookRecorder {
  std::vector<std::string>* events;
  void on_before_backward(auto&, auto&, const torch::Tensor&) {
    events->push_back("callback on_before_backward");
  }
  void on_after_backward(auto&, auto&) { events->push_back("callback on_after_backward"); }
  void on_before_optimizer_step(auto&, auto&, torch::optim::Optimizer&) {
    events->push_back("callback on_before_optimizer_step");
  }
};

TEST(ManualOptimization, TwoOptimizersHooksAndStepCount) {
  auto [X, y] = seed_data(64);
  std::vector<std::string> events;
  TwoOptimizers m;
  m.events = &events;
  const auto a_before = m.a->weight.clone();
  const auto b_before = m.b->weight.clone();
  CpuTrainer<HookRecorder> t({.max_epochs = 1, .enable_progress_bar = false},
                             HookRecorder{&events});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));

  EXPECT_EQ(t.global_step, 4);  // 2 batches x 2 optimizer steps
  EXPECT_TRUE(m.b_frozen_during_a);
  EXPECT_TRUE(m.concrete_type_reached);  // opt.as<SGD>() is the configured optimizer
  EXPECT_TRUE(m.a->weight.requires_grad() && m.b->weight.requires_grad());  // untoggled
  EXPECT_FALSE(torch::equal(m.a->weight, a_before));
  EXPECT_FALSE(torch::equal(m.b->weight, b_before));
  // The Trainer never steps schedulers in manual optimization (this module does not).
  EXPECT_EQ(m.b_lrs, (std::vector<double>{0.2, 0.2}));

  const std::vector<std::string> per_step = {
      "callback on_before_backward",       "module on_before_backward",
      "callback on_after_backward",        "module on_after_backward",
      "callback on_before_optimizer_step", "module on_before_optimizer_step"};
  std::vector<std::string> expected;
  for (int batch = 0; batch < 2; ++batch)
    for (const char* which : {"step a", "step b"}) {
      expected.push_back(which);
      expected.insert(expected.end(), per_step.begin(), per_step.end());
    }
  EXPECT_EQ(events, expected);  // no on_before_zero_grad: opt.zero_grad() is the user's
}

// Schedulers are the module's to step: step() for formulas, step(metric) for plateaus.
struct ScheduledManual : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear a{register_module("a", torch::nn::Linear(10, 1))};
  torch::nn::Linear b{register_module("b", torch::nn::Linear(10, 1))};
  std::vector<double> a_lrs, b_lrs;
  void training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto [opt_a, opt_b] = optimizers<2>();
    opt_a.zero_grad();
    opt_b.zero_grad();
    manual_backward(torch::mse_loss(a(x) + b(x), y.unsqueeze(1)));
    opt_a.step();
    opt_b.step();
    auto [exponential, plateau] = lr_schedulers<2>();
    exponential.step();
    plateau.step(1.0);  // a flat metric with patience 0: cut by 10 from the second step
    a_lrs.push_back(opt_a.lrs()[0]);
    b_lrs.push_back(opt_b.lrs()[0]);
  }
  auto configure_optimizers() {
    return std::tuple{
        L::optimizers(torch::optim::SGD(a->parameters(), 1.0),
                      L::scheduler(L::lr::ExponentialLR{.gamma = 0.5})),
        L::optimizers(torch::optim::SGD(b->parameters(), 1.0),
                      L::scheduler(L::lr::ReduceLROnPlateau({.factor = 0.1, .patience = 0})))};
  }
};

TEST(ManualOptimization, ModuleStepsItsSchedulers) {
  auto [X, y] = seed_data(96);
  ScheduledManual m;
  CpuTrainer<> t({.max_epochs = 1, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(t.global_step, 6);
  EXPECT_EQ(m.a_lrs, (std::vector<double>{0.5, 0.25, 0.125}));
  ASSERT_EQ(m.b_lrs.size(), 3u);
  EXPECT_DOUBLE_EQ(m.b_lrs[0], 1.0);
  EXPECT_DOUBLE_EQ(m.b_lrs[1], 0.1);
  EXPECT_DOUBLE_EQ(m.b_lrs[2], 0.01);
}

struct WrongSchedulerCall : ScheduledManual {
  void training_step(const XY&, std::int64_t) { lr_scheduler(1).step(); }
};
struct WrongArity : ScheduledManual {
  void training_step(const XY&, std::int64_t) { (void)optimizers<3>(); }
};

TEST(ManualOptimization, MisuseIsAClearError) {
  auto [X, y] = seed_data(64);
  auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32});
  {
    WrongSchedulerCall m;
    CpuTrainer<> t({.max_epochs = 1, .enable_progress_bar = false});
    expect_invalid_argument([&] { t.fit(m, loader); }, "ReduceLROnPlateau needs the monitored");
  }
  {
    WrongArity m;
    CpuTrainer<> t({.max_epochs = 1, .enable_progress_bar = false});
    expect_invalid_argument([&] { t.fit(m, loader); },
                            "optimizers<3>() asked for 3 optimizers, but configure_optimizers "
                            "returned 2");
  }
  {
    ManualModel m;
    CpuTrainer<> t({.max_epochs = 1, .accumulate_grad_batches = 2, .enable_progress_bar = false});
    expect_invalid_argument([&] { t.fit(m, loader); },
                            "TrainerOptions.accumulate_grad_batches = 2 is invalid: manual "
                            "optimization");
  }
  {
    ManualModel m;
    CpuTrainer<> t({.max_epochs = 1, .gradient_clip_val = 0.5, .enable_progress_bar = false});
    expect_invalid_argument([&] { t.fit(m, loader); }, "TrainerOptions.gradient_clip_val = 0.5");
  }
  // Outside fit (or in an automatic module) the manual API says what it is for.
  ManualModel m;
  try {
    m.manual_backward(torch::ones({}, torch::requires_grad()));
    FAIL() << "manual_backward outside fit must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("static constexpr bool automatic_optimization = false"),
              std::string::npos)
        << e.what();
  }
}

// Gradient clipping by the module, and max_steps counting optimizer steps.
struct ClippingManual : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  std::vector<double> norms_before, norms_after;
  void training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto opt = optimizer();
    opt.zero_grad();
    manual_backward(1000.0 * torch::mse_loss(linear(x), y.unsqueeze(1)));
    norms_before.push_back(clip_gradients(opt, 0.25).item<double>());
    double sq = 0;
    for (auto& p : parameters()) sq += p.grad().pow(2).sum().item<double>();
    norms_after.push_back(std::sqrt(sq));
    opt.step();
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.01); }
};

TEST(ManualOptimization, ClipGradientsAndMaxStepsCountOptimizerSteps) {
  auto [X, y] = seed_data(320);
  ClippingManual m;
  CpuTrainer<> t({.max_epochs = 5, .max_steps = 3, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(t.global_step, 3);
  ASSERT_EQ(m.norms_after.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_GT(m.norms_before[i], 0.25);
    EXPECT_NEAR(m.norms_after[i], 0.25, 1e-4);
  }
}

// LBFGS needs a closure; the step hooks run after each closure evaluation.
struct LbfgsManual : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  int closures = 0, before_step = 0;
  std::vector<double> losses;
  void training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto opt = optimizer();
    auto loss = opt.step([&] {
      ++closures;
      opt.zero_grad();
      auto l = torch::mse_loss(linear(x), y.unsqueeze(1));
      manual_backward(l);
      return l;
    });
    losses.push_back(loss.item<double>());
  }
  void on_before_optimizer_step(torch::optim::Optimizer&) { ++before_step; }
  auto configure_optimizers() {
    return torch::optim::LBFGS(parameters(), torch::optim::LBFGSOptions(0.5).max_iter(5));
  }
};

TEST(ManualOptimization, ClosureStepForLbfgs) {
  auto [X, y] = seed_data(64);
  LbfgsManual m;
  CpuTrainer<> t({.max_epochs = 3, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 64}));
  EXPECT_EQ(t.global_step, 3);  // one per opt.step(closure), however many evaluations
  EXPECT_GT(m.closures, 3);
  EXPECT_EQ(m.before_step, m.closures);
  ASSERT_EQ(m.losses.size(), 3u);
  EXPECT_LT(m.losses[2], m.losses[0]);
}

// F64: manual_backward and step go through the precision policy (double parameters).
// (That manual_backward and opt.step() go through the precision is policy_points_test's.)
TEST(ManualOptimization, F64ConvertsAManualModuleAndItsGradients) {
  auto [X, y] = seed_data(64);
  ManualModel m;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F64> t(
      {.max_epochs = 1, .enable_progress_bar = false});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(t.global_step, 2);
  EXPECT_EQ(m.linear->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(m.linear->weight.grad().scalar_type(), torch::kDouble);
}

// An exception inside a toggled step leaves every parameter as it was.
struct ThrowsWhileToggled : TwoOptimizers {
  void training_step(const XY&, std::int64_t) {
    auto [opt_a, opt_b] = optimizers<2>();
    toggle_optimizer(opt_b);
    throw std::runtime_error("boom");
  }
};

TEST(ManualOptimization, ToggleIsUndoneWhenFitThrows) {
  auto [X, y] = seed_data(64);
  ThrowsWhileToggled m;
  m.b->bias.set_requires_grad(false);  // a user's frozen parameter stays frozen
  CpuTrainer<> t({.max_epochs = 1, .enable_progress_bar = false});
  EXPECT_THROW(t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32})), std::runtime_error);
  EXPECT_TRUE(m.a->weight.requires_grad());
  EXPECT_TRUE(m.a->bias.requires_grad());
  EXPECT_TRUE(m.b->weight.requires_grad());
  EXPECT_FALSE(m.b->bias.requires_grad());
  EXPECT_THROW((void)m.optimizer(), std::logic_error);  // detached after fit
}

}  // namespace
