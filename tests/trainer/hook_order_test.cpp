// The order of every hook call during fit, module and callback, against the order
// PyTorch Lightning 2.x uses (tests/tests_pytorch/models/test_hooks.py in Lightning).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <string>
#include <vector>

namespace L = lightning;
using lightning::testing::XY;

namespace {

// "name(i)". (Built with +=: GCC 12 at -O3 misreports `"literal" + std::string&&`.)
std::string indexed(const char* name, std::int64_t i) {
  std::string s = name;
  s += '(';
  s += std::to_string(i);
  s += ')';
  return s;
}

using Calls = std::vector<std::string>;

struct HookedModel : L::LightningModule {
  Calls* calls;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  explicit HookedModel(Calls* c) : calls(c) {}
  void rec(const std::string& s) { calls->push_back(s); }

  void setup(L::Stage s) { rec("setup(" + std::string(L::to_string(s)) + ")"); }
  void teardown(L::Stage s) { rec("teardown(" + std::string(L::to_string(s)) + ")"); }
  void configure_model() { rec("configure_model"); }
  auto configure_optimizers() {
    rec("configure_optimizers");
    return torch::optim::SGD(parameters(), 0.01);
  }
  void on_fit_start() { rec("on_fit_start"); }
  void on_fit_end() { rec("on_fit_end"); }
  void on_train_start() { rec("on_train_start"); }
  void on_train_end() { rec("on_train_end"); }
  void on_train_epoch_start() { rec("on_train_epoch_start"); }
  void on_train_epoch_end() { rec("on_train_epoch_end"); }
  void on_validation_start() { rec("on_validation_start"); }
  void on_validation_end() { rec("on_validation_end"); }
  void on_validation_epoch_start() { rec("on_validation_epoch_start"); }
  void on_validation_epoch_end() { rec("on_validation_epoch_end"); }
  XY on_before_batch_transfer(XY b, int64_t) {
    rec("on_before_batch_transfer");
    return b;
  }
  XY on_after_batch_transfer(XY b, int64_t) {
    rec("on_after_batch_transfer");
    return b;
  }
  void on_train_batch_start(const XY&, int64_t i) { rec(indexed("on_train_batch_start", i)); }
  void on_train_batch_end(const torch::Tensor& out, const XY&, int64_t i) {
    EXPECT_TRUE(out.defined());
    rec(indexed("on_train_batch_end", i));
  }
  void on_validation_batch_start(const XY&, int64_t i) {
    rec(indexed("on_validation_batch_start", i));
  }
  void on_validation_batch_end(const torch::Tensor&, const XY&, int64_t i) {
    rec(indexed("on_validation_batch_end", i));
  }
  void on_before_backward(const torch::Tensor&) { rec("on_before_backward"); }
  void on_after_backward() { rec("on_after_backward"); }
  void on_before_optimizer_step(torch::optim::Optimizer&) { rec("on_before_optimizer_step"); }
  void on_before_zero_grad(torch::optim::Optimizer&) { rec("on_before_zero_grad"); }

  torch::Tensor training_step(const XY& b, int64_t i) {
    rec(indexed("training_step", i));
    return torch::mse_loss(linear(std::get<0>(b)), std::get<1>(b).unsqueeze(1));
  }
  torch::Tensor validation_step(const XY& b, int64_t i) {
    rec(indexed("validation_step", i));
    return torch::mse_loss(linear(std::get<0>(b)), std::get<1>(b).unsqueeze(1));
  }
};

struct HookedCallback {
  Calls* calls;
  const void* trainer = nullptr;
  const void* module = nullptr;
  void rec(const std::string& s, const void* t, const void* m) {
    // Every callback hook receives the same trainer and module.
    if (trainer == nullptr) trainer = t, module = m;
    EXPECT_EQ(trainer, t);
    EXPECT_EQ(module, m);
    calls->push_back("Callback." + s);
  }
#define LIGHTNING_TEST_PLAIN(NAME) \
  void NAME(auto& t, auto& m) {    \
    rec(#NAME, &t, &m);            \
  }
  LIGHTNING_TEST_PLAIN(on_fit_start)
  LIGHTNING_TEST_PLAIN(on_fit_end)
  LIGHTNING_TEST_PLAIN(on_sanity_check_start)
  LIGHTNING_TEST_PLAIN(on_sanity_check_end)
  LIGHTNING_TEST_PLAIN(on_train_start)
  LIGHTNING_TEST_PLAIN(on_train_end)
  LIGHTNING_TEST_PLAIN(on_train_epoch_start)
  LIGHTNING_TEST_PLAIN(on_train_epoch_end)
  LIGHTNING_TEST_PLAIN(on_validation_start)
  LIGHTNING_TEST_PLAIN(on_validation_end)
  LIGHTNING_TEST_PLAIN(on_validation_epoch_start)
  LIGHTNING_TEST_PLAIN(on_validation_epoch_end)
  LIGHTNING_TEST_PLAIN(on_after_backward)
#undef LIGHTNING_TEST_PLAIN
  void setup(auto& t, auto& m, L::Stage s) {
    rec("setup(" + std::string(L::to_string(s)) + ")", &t, &m);
  }
  void teardown(auto& t, auto& m, L::Stage s) {
    rec("teardown(" + std::string(L::to_string(s)) + ")", &t, &m);
  }
  void on_train_batch_start(auto& t, auto& m, const XY&, int64_t i) {
    rec(indexed("on_train_batch_start", i), &t, &m);
  }
  void on_train_batch_end(auto& t, auto& m, const torch::Tensor&, const XY&, int64_t i) {
    rec(indexed("on_train_batch_end", i), &t, &m);
  }
  void on_validation_batch_start(auto& t, auto& m, const XY&, int64_t i) {
    rec(indexed("on_validation_batch_start", i), &t, &m);
  }
  void on_validation_batch_end(auto& t, auto& m, const torch::Tensor&, const XY&, int64_t i) {
    rec(indexed("on_validation_batch_end", i), &t, &m);
  }
  void on_before_backward(auto& t, auto& m, const torch::Tensor&) {
    rec("on_before_backward", &t, &m);
  }
  void on_before_optimizer_step(auto& t, auto& m, torch::optim::Optimizer&) {
    rec("on_before_optimizer_step", &t, &m);
  }
  void on_before_zero_grad(auto& t, auto& m, torch::optim::Optimizer&) {
    rec("on_before_zero_grad", &t, &m);
  }
};

void both(Calls& e, const std::string& hook) {
  e.push_back("Callback." + hook);
  e.push_back(hook);
}

void validation_epoch(Calls& e, int batches) {
  both(e, "on_validation_start");
  both(e, "on_validation_epoch_start");
  for (int i = 0; i < batches; ++i) {
    const auto idx = indexed("", i);
    e.push_back("on_before_batch_transfer");
    e.push_back("on_after_batch_transfer");
    both(e, "on_validation_batch_start" + idx);
    e.push_back("validation_step" + idx);
    both(e, "on_validation_batch_end" + idx);
  }
  both(e, "on_validation_epoch_end");
  both(e, "on_validation_end");
}

void train_batches(Calls& e, int batches) {
  for (int i = 0; i < batches; ++i) {
    const auto idx = indexed("", i);
    e.push_back("on_before_batch_transfer");
    e.push_back("on_after_batch_transfer");
    both(e, "on_train_batch_start" + idx);
    e.push_back("training_step" + idx);
    both(e, "on_before_zero_grad");
    both(e, "on_before_backward");
    both(e, "on_after_backward");
    both(e, "on_before_optimizer_step");
    both(e, "on_train_batch_end" + idx);
  }
}

}  // namespace

TEST(HookOrder, FitWithValidationMatchesLightningForTwoEpochs) {
  Calls calls;
  HookedModel model(&calls);
  auto X = torch::randn({64, 10}), y = torch::randn({64});
  L::Trainer trainer({.max_epochs = 2,
                      .limit_train_batches = 2,
                      .limit_val_batches = 2,
                      .enable_progress_bar = false},
                     HookedCallback{&calls});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}),
              L::data::TensorLoader({X, y}, {.batch_size = 8}));

  Calls e;
  both(e, "setup(fit)");
  e.push_back("configure_model");
  e.push_back("configure_optimizers");
  both(e, "on_fit_start");
  e.push_back("Callback.on_sanity_check_start");
  validation_epoch(e, 2);
  e.push_back("Callback.on_sanity_check_end");
  both(e, "on_train_start");
  for (int epoch = 0; epoch < 2; ++epoch) {
    both(e, "on_train_epoch_start");
    train_batches(e, 2);
    validation_epoch(e, 2);
    both(e, "on_train_epoch_end");
  }
  both(e, "on_train_end");
  both(e, "on_fit_end");
  both(e, "teardown(fit)");

  ASSERT_EQ(calls.size(), e.size());
  for (size_t i = 0; i < e.size(); ++i) ASSERT_EQ(calls[i], e[i]) << "at call #" << i;
  const auto& cb = trainer.callback<HookedCallback>();
  EXPECT_EQ(cb.trainer, static_cast<const void*>(&trainer));
  EXPECT_EQ(cb.module, static_cast<const void*>(&model));
}

TEST(HookOrder, AccumulationZeroesOncePerWindowAndStepsOncePerWindow) {
  Calls calls;
  HookedModel model(&calls);
  auto X = torch::randn({32, 10}), y = torch::randn({32});
  L::Trainer trainer({.max_epochs = 1, .accumulate_grad_batches = 2, .enable_progress_bar = false});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
  auto count = [&](const std::string& s) { return std::count(calls.begin(), calls.end(), s); };
  EXPECT_EQ(count("on_before_zero_grad"), 2);
  EXPECT_EQ(count("on_before_optimizer_step"), 2);
  EXPECT_EQ(count("on_before_backward"), 4);
  EXPECT_EQ(trainer.global_step, 2);
}
