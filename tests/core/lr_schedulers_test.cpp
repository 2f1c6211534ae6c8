// Every schedule's learning rates over 100 steps against PyTorch's own schedulers
// (tests/data/expected/lr_schedules.txt, written by scripts/gen_lr_schedules.py).
#include <gtest/gtest.h>

#include <lightning/core/lr_schedulers.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace lr = lightning::lr;

namespace {

std::map<std::string, std::vector<double>> expected() {
  std::ifstream in(LIGHTNING_TEST_DATA_DIR "/expected/lr_schedules.txt");
  EXPECT_TRUE(in.good()) << "missing " LIGHTNING_TEST_DATA_DIR "/expected/lr_schedules.txt";
  std::map<std::string, std::vector<double>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    for (double v; fields >> v;) out[name].push_back(v);
  }
  return out;
}

struct Fixture {
  torch::Tensor w = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD opt{std::vector<torch::Tensor>{w}, torch::optim::SGDOptions(0.1).momentum(0.9)};
};

// The lr in effect for steps 0..99 of a scheduler (attach, then step after each).
template <class S>
std::vector<double> record(S s) {
  Fixture f;
  s.attach(f.opt);
  std::vector<double> lrs;
  for (int i = 0; i < 100; ++i) {
    lrs.push_back(lr::group_lrs(f.opt)[0]);
    s.step(f.opt);
  }
  return lrs;
}
template <class F>
std::vector<double> run(F formula) {
  return record(lr::Scheduler<F>(std::move(formula)));
}

void expect_same(const std::vector<double>& got, const std::vector<double>& want,
                 const std::string& name) {
  ASSERT_EQ(got.size(), 100u) << name;
  ASSERT_EQ(want.size(), 100u) << name;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-12 + 1e-10 * std::abs(want[i])) << name << " at step " << i;
}

}  // namespace

TEST(LrSchedulers, MatchPyTorchOver100Steps) {
  const auto e = expected();
  expect_same(run(lr::StepLR{.step_size = 7, .gamma = 0.5}), e.at("step"), "step");
  expect_same(run(lr::MultiStepLR{.milestones = {10, 25, 60}, .gamma = 0.3}), e.at("multistep"),
              "multistep");
  expect_same(run(lr::ExponentialLR{.gamma = 0.97}), e.at("exponential"), "exponential");
  expect_same(run(lr::CosineAnnealingLR{.t_max = 40, .eta_min = 0.001}), e.at("cosine"), "cosine");
  expect_same(run(lr::LinearLR{.start_factor = 0.2, .end_factor = 1.0, .total_iters = 30}),
              e.at("linear"), "linear");
  expect_same(run(lr::OneCycleLR{.max_lr = 0.5, .total_steps = 100, .pct_start = 0.3}),
              e.at("onecycle"), "onecycle");
  expect_same(run(lr::OneCycleLR{.max_lr = 0.5,
                                 .total_steps = 100,
                                 .pct_start = 0.25,
                                 .anneal_strategy = lr::OneCycleLR::Anneal::linear,
                                 .three_phase = true}),
              e.at("onecycle_linear3"), "onecycle_linear3");
  expect_same(run(lr::WarmupCosine{.warmup_steps = 10, .total_steps = 100}), e.at("warmup_cosine"),
              "warmup_cosine");
  expect_same(
      run(lr::LambdaLR{[](int64_t s) { return 1.0 / (1.0 + 0.05 * static_cast<double>(s)); }}),
      e.at("lambda"), "lambda");
  expect_same(run(lr::Chained{std::tuple{lr::LinearLR{.start_factor = 0.5, .total_iters = 10},
                                         lr::ExponentialLR{.gamma = 0.98}}}),
              e.at("chained"), "chained");
  expect_same(run(lr::Sequential{std::tuple{lr::LinearLR{.start_factor = 0.1, .total_iters = 10},
                                            lr::ExponentialLR{.gamma = 0.95}},
                                 {10}}),
              e.at("sequential"), "sequential");
}

TEST(LrSchedulers, ReduceLROnPlateauMatchesPyTorch) {
  const auto e = expected();
  const auto& metric = e.at("plateau_metric");
  auto run_plateau = [&](lr::ReduceLROnPlateau::Options o, double sign) {
    Fixture f;
    lr::ReduceLROnPlateau s(o);
    s.attach(f.opt);
    std::vector<double> lrs;
    for (int i = 0; i < 100; ++i) {
      lrs.push_back(lr::group_lrs(f.opt)[0]);
      s.step(f.opt, sign * metric[static_cast<size_t>(i)]);
    }
    return lrs;
  };
  expect_same(run_plateau({.mode = lr::ReduceLROnPlateau::Mode::min,
                           .factor = 0.5,
                           .patience = 5,
                           .threshold = 1e-3,
                           .cooldown = 2,
                           .min_lr = 0.004},
                          1.0),
              e.at("plateau"), "plateau");
  expect_same(run_plateau({.mode = lr::ReduceLROnPlateau::Mode::max,
                           .factor = 0.2,
                           .patience = 3,
                           .threshold = 0.01,
                           .threshold_mode = lr::ReduceLROnPlateau::ThresholdMode::abs},
                          -1.0),
              e.at("plateau_abs_max"), "plateau_abs_max");
  EXPECT_THROW(lr::ReduceLROnPlateau({.factor = 1.0}), std::invalid_argument);
}

// SWALR anneals from the group's lr (cos, linear, or at once) as PyTorch's swa_utils.SWALR.
TEST(LrSchedulers, SwalrMatchesPyTorch) {
  const auto e = expected();
  const auto run_swalr = [](lr::SWALROptions o) { return record(lr::SWALR(std::move(o))); };
  expect_same(run_swalr({.swa_lrs = {0.02}, .anneal_epochs = 10}), e.at("swalr_cos"), "swalr_cos");
  expect_same(
      run_swalr(
          {.swa_lrs = {0.35}, .anneal_epochs = 30, .anneal_strategy = lr::SWALR::Anneal::linear}),
      e.at("swalr_linear"), "swalr_linear");
  expect_same(run_swalr({.swa_lrs = {0.02}, .anneal_epochs = 0}), e.at("swalr_no_annealing"),
              "swalr_no_annealing");
  EXPECT_THROW(lr::SWALR({.swa_lrs = {}}), std::invalid_argument);
  EXPECT_THROW(lr::SWALR({.swa_lrs = {0.1}, .anneal_epochs = -1}), std::invalid_argument);
  Fixture f;  // one param group
  lr::SWALR two({.swa_lrs = {0.1, 0.2}});
  EXPECT_THROW(two.attach(f.opt), std::invalid_argument);
  // Each group anneals to its own rate.
  auto a = torch::zeros({1}, torch::requires_grad()), b = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD groups(
      std::vector<torch::optim::OptimizerParamGroup>{
          torch::optim::OptimizerParamGroup({a}, std::make_unique<torch::optim::SGDOptions>(0.1)),
          torch::optim::OptimizerParamGroup({b}, std::make_unique<torch::optim::SGDOptions>(0.4))},
      torch::optim::SGDOptions(0.1));
  lr::SWALR each(
      {.swa_lrs = {0.01, 0.03}, .anneal_epochs = 2, .anneal_strategy = lr::SWALR::Anneal::linear});
  each.attach(groups);
  each.step(groups);  // halfway: (0.1 + 0.01) / 2 and (0.4 + 0.03) / 2
  EXPECT_DOUBLE_EQ(lr::group_lrs(groups)[0], 0.055);
  EXPECT_DOUBLE_EQ(lr::group_lrs(groups)[1], 0.215);
  each.step(groups);
  EXPECT_DOUBLE_EQ(lr::group_lrs(groups)[0], 0.01);
  EXPECT_DOUBLE_EQ(lr::group_lrs(groups)[1], 0.03);
}

TEST(LrSchedulers, EveryParamGroupKeepsItsOwnBaseLr) {
  auto a = torch::zeros({1}, torch::requires_grad()), b = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD opt(
      std::vector<torch::optim::OptimizerParamGroup>{
          torch::optim::OptimizerParamGroup({a}, std::make_unique<torch::optim::SGDOptions>(0.1)),
          torch::optim::OptimizerParamGroup({b}, std::make_unique<torch::optim::SGDOptions>(1.0))},
      torch::optim::SGDOptions(0.1));
  lr::Scheduler s(lr::StepLR{.step_size = 1, .gamma = 0.5});
  s.attach(opt);
  s.step(opt);
  EXPECT_DOUBLE_EQ(lr::group_lrs(opt)[0], 0.05);
  EXPECT_DOUBLE_EQ(lr::group_lrs(opt)[1], 0.5);
}
