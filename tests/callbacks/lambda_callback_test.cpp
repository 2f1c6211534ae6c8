// LambdaCallback: the hooks the Trainer detects are exactly the closures given, and a
// run calls each of them as often as Lightning calls the hook.
#include <gtest/gtest.h>

#include <lightning/callbacks/lambda_callback.hpp>
#include <lightning/lightning.hpp>

#include <map>
#include <stdexcept>
#include <string>

#include "support/models.hpp"

namespace L = lightning;
namespace lambda = L::callbacks::lambda;
using L::callbacks::LambdaCallback;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

struct StandInTrainer {};
struct StandInModule {};

auto plain = [](auto&, auto&) {};
using EpochEndOnly = decltype(LambdaCallback{lambda::on_train_epoch_end(plain)});
using TwoHooks = decltype(LambdaCallback{
    lambda::on_fit_start(plain),
    lambda::on_train_batch_end([](auto&, auto&, const auto&, const auto&, std::int64_t) {})});

// Every hook of hooks.hpp that callbacks have: declared exactly when its closure is given.
template <class C, class... Given>
constexpr bool declares_exactly() {
  namespace H = L::hooks;
  auto given = [](auto hook) { return ((std::is_same_v<decltype(hook), Given>) || ...); };
  bool ok = true;
  auto check = [&](auto hook) { ok = ok && (decltype(hook)::template declared<C> == given(hook)); };
  check(H::setup{}), check(H::teardown{}), check(H::on_fit_start{}), check(H::on_fit_end{});
  check(H::on_sanity_check_start{}), check(H::on_sanity_check_end{});
  check(H::on_train_start{}), check(H::on_train_end{});
  check(H::on_train_epoch_start{}), check(H::on_train_epoch_end{});
  check(H::on_validation_start{}), check(H::on_validation_end{});
  check(H::on_validation_epoch_start{}), check(H::on_validation_epoch_end{});
  check(H::on_after_backward{}), check(H::on_train_batch_start{}), check(H::on_train_batch_end{});
  check(H::on_validation_batch_start{}), check(H::on_validation_batch_end{});
  check(H::on_before_backward{}), check(H::on_before_optimizer_step{});
  check(H::on_before_zero_grad{}), check(H::on_test_start{}), check(H::on_test_end{});
  check(H::on_test_epoch_start{}), check(H::on_test_epoch_end{});
  check(H::on_predict_start{}), check(H::on_predict_end{});
  check(H::on_predict_epoch_start{}), check(H::on_predict_epoch_end{});
  check(H::on_test_batch_start{}), check(H::on_test_batch_end{});
  check(H::on_predict_batch_start{}), check(H::on_predict_batch_end{});
  check(H::on_exception{}), check(H::log_metrics{}), check(H::configure_model{});
  return ok;
}

static_assert(declares_exactly<EpochEndOnly, L::hooks::on_train_epoch_end>());
static_assert(declares_exactly<TwoHooks, L::hooks::on_fit_start, L::hooks::on_train_batch_end>());
static_assert(declares_exactly<LambdaCallback<>>());
static_assert(!declares_exactly<TwoHooks, L::hooks::on_fit_start>());
static_assert(
    L::hooks::on_train_epoch_end::callable<EpochEndOnly, StandInTrainer&, StandInModule&>);
static_assert(!L::hooks::on_train_epoch_end::callable<EpochEndOnly, StandInTrainer&>);
static_assert(L::hooks::on_train_batch_end::callable<TwoHooks, StandInTrainer&, StandInModule&,
                                                     const int&, const int&, std::int64_t>);
// A closure without dataloader_idx: the Trainer's call with it is not viable, so it
// falls back to the call without (Lightning's optional last parameter).
static_assert(
    !L::hooks::on_train_batch_end::callable<TwoHooks, StandInTrainer&, StandInModule&, const int&,
                                            const int&, std::int64_t, std::int64_t>);
// The checkpoint hooks forward their dict.
using CheckpointHooks = decltype(LambdaCallback{
    lambda::on_save_checkpoint([](auto&, auto&, L::CheckpointDict& c) { c.insert("k", 1); }),
    lambda::on_load_checkpoint([](auto&, auto&, const L::CheckpointDict&) {})});
template <class C, class... A>
concept saves_with = requires(C c, A... a) {
  c.on_save_checkpoint(a...);
};
template <class C, class... A>
concept loads_with = requires(C c, A... a) {
  c.on_load_checkpoint(a...);
};
static_assert(saves_with<CheckpointHooks, StandInTrainer&, StandInModule&, L::CheckpointDict&>);
static_assert(
    loads_with<CheckpointHooks, StandInTrainer&, StandInModule&, const L::CheckpointDict&>);
static_assert(!saves_with<CheckpointHooks, StandInTrainer&, StandInModule&>);
static_assert(!loads_with<CheckpointHooks, StandInTrainer&, StandInModule&, int>);

struct Predicting : lightning::testing::ValidatedModel {
  torch::Tensor predict_step(const XY& batch, std::int64_t) { return forward(std::get<0>(batch)); }
  void test_step(const XY&, std::int64_t) {}
};

struct Failing : lightning::testing::SimpleModel {
  torch::Tensor training_step(const XY&, std::int64_t) { throw std::runtime_error("boom"); }
};

// One closure per hook, each counting its calls under the hook's name.
auto counting_callback(std::map<std::string, int>& n) {
  auto count = [&n](const char* name) { return [&n, name](auto&&...) { ++n[name]; }; };
  return LambdaCallback{lambda::setup(count("setup")),
                        lambda::teardown(count("teardown")),
                        lambda::on_fit_start(count("on_fit_start")),
                        lambda::on_fit_end(count("on_fit_end")),
                        lambda::on_sanity_check_start(count("on_sanity_check_start")),
                        lambda::on_sanity_check_end(count("on_sanity_check_end")),
                        lambda::on_train_start(count("on_train_start")),
                        lambda::on_train_end(count("on_train_end")),
                        lambda::on_train_epoch_start(count("on_train_epoch_start")),
                        lambda::on_train_epoch_end(count("on_train_epoch_end")),
                        lambda::on_validation_start(count("on_validation_start")),
                        lambda::on_validation_end(count("on_validation_end")),
                        lambda::on_validation_epoch_start(count("on_validation_epoch_start")),
                        lambda::on_validation_epoch_end(count("on_validation_epoch_end")),
                        lambda::on_test_start(count("on_test_start")),
                        lambda::on_test_end(count("on_test_end")),
                        lambda::on_test_epoch_start(count("on_test_epoch_start")),
                        lambda::on_test_epoch_end(count("on_test_epoch_end")),
                        lambda::on_predict_start(count("on_predict_start")),
                        lambda::on_predict_end(count("on_predict_end")),
                        lambda::on_predict_epoch_start(count("on_predict_epoch_start")),
                        lambda::on_predict_epoch_end(count("on_predict_epoch_end")),
                        lambda::on_train_batch_start(count("on_train_batch_start")),
                        lambda::on_train_batch_end(count("on_train_batch_end")),
                        lambda::on_validation_batch_start(count("on_validation_batch_start")),
                        lambda::on_validation_batch_end(count("on_validation_batch_end")),
                        lambda::on_test_batch_start(count("on_test_batch_start")),
                        lambda::on_test_batch_end(count("on_test_batch_end")),
                        lambda::on_predict_batch_start(count("on_predict_batch_start")),
                        lambda::on_predict_batch_end(count("on_predict_batch_end")),
                        lambda::on_before_backward(count("on_before_backward")),
                        lambda::on_after_backward(count("on_after_backward")),
                        lambda::on_before_optimizer_step(count("on_before_optimizer_step")),
                        lambda::on_before_zero_grad(count("on_before_zero_grad")),
                        lambda::on_exception(count("on_exception")),
                        lambda::on_save_checkpoint(count("on_save_checkpoint")),
                        lambda::on_load_checkpoint(count("on_load_checkpoint")),
                        lambda::log_metrics(count("log_metrics"))};
}

}  // namespace

TEST(LambdaCallback, TheTrainerCallsEveryGivenHookAsOftenAsLightning) {
  std::map<std::string, int> n;
  auto [X, y] = seed_data(128);
  auto train = L::data::TensorLoader({X, y}, {.batch_size = 32});  // 4 batches
  auto val = L::data::TensorLoader({X, y}, {.batch_size = 64});    // 2 batches
  Predicting m;
  CpuTrainer<decltype(counting_callback(n))> t(
      {.max_epochs = 2, .log_every_n_steps = 2, .enable_progress_bar = false},
      counting_callback(n));
  t.fit(m, train, val);
  const std::map<std::string, int> fit_counts{
      {"setup", 1},
      {"teardown", 1},
      {"on_fit_start", 1},
      {"on_fit_end", 1},
      {"on_sanity_check_start", 1},
      {"on_sanity_check_end", 1},
      {"on_train_start", 1},
      {"on_train_end", 1},
      {"on_train_epoch_start", 2},
      {"on_train_epoch_end", 2},
      {"on_validation_start", 3},  // the sanity check, then once per epoch
      {"on_validation_end", 3},
      {"on_validation_epoch_start", 3},
      {"on_validation_epoch_end", 3},
      {"on_validation_batch_start", 6},
      {"on_validation_batch_end", 6},
      {"on_train_batch_start", 8},
      {"on_train_batch_end", 8},
      {"on_before_zero_grad", 8},
      {"on_before_backward", 8},
      {"on_after_backward", 8},
      {"on_before_optimizer_step", 8},
      {"log_metrics", 4 + 2},     // every 2 steps, and val_loss after each validation
      {"on_save_checkpoint", 2},  // the default ModelCheckpoint, at each epoch's end
  };
  EXPECT_EQ(n, fit_counts);

  n.clear();
  t.validate(m, val);
  t.test(m, val);
  t.predict(m, val);
  const std::map<std::string, int> eval_counts{
      {"setup", 3},
      {"teardown", 3},
      {"on_validation_start", 1},
      {"on_validation_end", 1},
      {"on_validation_epoch_start", 1},
      {"on_validation_epoch_end", 1},
      {"on_validation_batch_start", 2},
      {"on_validation_batch_end", 2},
      {"on_test_start", 1},
      {"on_test_end", 1},
      {"on_test_epoch_start", 1},
      {"on_test_epoch_end", 1},
      {"on_test_batch_start", 2},
      {"on_test_batch_end", 2},
      {"on_predict_start", 1},
      {"on_predict_end", 1},
      {"on_predict_epoch_start", 1},
      {"on_predict_epoch_end", 1},
      {"on_predict_batch_start", 2},
      {"on_predict_batch_end", 2},
      {"log_metrics", 1},  // validate's val_loss; test_step logs nothing
  };
  EXPECT_EQ(n, eval_counts);
}

TEST(LambdaCallback, OnExceptionSeesTheError) {
  std::string seen;
  auto [X, y] = seed_data(64);
  Failing m;
  auto cb = LambdaCallback{
      lambda::on_exception([&seen](auto&, auto&, const std::exception& e) { seen = e.what(); })};
  CpuTrainer<decltype(cb)> t({.enable_progress_bar = false}, cb);
  EXPECT_THROW(t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32})), std::runtime_error);
  EXPECT_EQ(seen, "boom");
}

TEST(LambdaCallback, ClosuresGetTheHookArguments) {
  std::vector<std::int64_t> indices;
  std::vector<L::Stage> stages;
  double last_loss = -1;
  auto cb =
      LambdaCallback{lambda::setup([&](auto&, auto&, L::Stage s) { stages.push_back(s); }),
                     lambda::on_train_batch_end([&](auto& trainer, auto&, const torch::Tensor& loss,
                                                    const XY&, std::int64_t idx) {
                       indices.push_back(idx);
                       last_loss = loss.item<double>();
                       EXPECT_EQ(trainer.batch_idx, idx);
                     })};
  auto [X, y] = seed_data(96);
  lightning::testing::SimpleModel m;
  CpuTrainer<decltype(cb)> t({.max_epochs = 1, .enable_progress_bar = false}, cb);
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(indices, (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(stages, std::vector<L::Stage>{L::Stage::fit});
  EXPECT_GE(last_loss, 0.0);
}
