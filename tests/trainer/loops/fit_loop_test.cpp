// The fit loop: stopping rules, limits, validation schedule, accumulation, clipping,
// stop requests, reproducibility, loaders of every kind, and laws against a hand loop.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"

#include <range/v3/view/iota.hpp>
#include <range/v3/view/take_while.hpp>
#include <range/v3/view/transform.hpp>

#include "support/models.hpp"

namespace L = lightning;
using lightning::testing::CpuTrainer;
using lightning::testing::expect_invalid_argument;
using lightning::testing::flat_parameters;
using lightning::testing::RecordingLogger;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;
using lightning::testing::ValidatedModel;
using lightning::testing::XY;

namespace {

L::TrainerOptions quiet(L::TrainerOptions o) {
  o.enable_progress_bar = false;
  return o;
}

// Counts train and validation batches seen, and validation runs (outside sanity checks).
struct Counter {
  int64_t train_batches = 0, val_batches = 0, val_runs = 0, sanity_runs = 0, epochs = 0;
  void on_train_batch_end(auto&, auto&, const auto&, const auto&, int64_t) { ++train_batches; }
  void on_validation_batch_end(auto&, auto&, const auto&, const auto&, int64_t) { ++val_batches; }
  void on_validation_end(auto& trainer, auto&) {
    trainer.sanity_checking ? ++sanity_runs : ++val_runs;
  }
  void on_train_epoch_end(auto&, auto&) { ++epochs; }
};

// Requests a stop at the end of a given epoch.
struct StopAtEpochEnd {
  int64_t epoch;
  void on_train_epoch_end(auto& trainer, auto&) {
    if (trainer.current_epoch == epoch) trainer.should_stop = true;
  }
};

// Records the message of the exception that ended a run.
struct Catch {
  std::string* seen;
  void on_exception(auto&, auto&, const std::exception& e) { *seen = e.what(); }
};

struct EmptyA {};
struct EmptyB {};
struct EmptyC {};

}  // namespace

TEST(FitLoop, SeedWorkloadTrainsThreeEpochs) {
  auto [X, y] = seed_data();
  SimpleModel model;
  CpuTrainer<Counter> trainer(quiet({.max_epochs = 3}), Counter{});
  auto before = torch::mse_loss(model.forward(X), y.unsqueeze(1)).item<double>();
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(trainer.current_epoch, 3);
  EXPECT_EQ(trainer.global_step, 96);  // 32 batches (31 full, one of 8) x 3
  EXPECT_EQ(trainer.callback<Counter>().train_batches, 96);
  EXPECT_EQ(trainer.num_training_batches, 32);
  EXPECT_LT(torch::mse_loss(model.forward(X), y.unsqueeze(1)).item<double>(), before);
  EXPECT_TRUE(model.is_training());
}

// Law: Trainer<CPU, SingleDevice, F32> is the hand-written LibTorch loop, bit for bit,
// and callbacks without hooks leave the trajectory bit-identical.
TEST(FitLoop, EqualsHandWrittenLoopAndEmptyCallbacksChangeNothing) {
  auto [X, y] = seed_data(320);
  auto hand = [&] {
    torch::manual_seed(5);
    SimpleModel m;
    auto opt = m.configure_optimizers();
    for (int e = 0; e < 2; ++e)
      for (int64_t i = 0; i < 320; i += 32) {
        auto x = X.narrow(0, i, 32), t = y.narrow(0, i, 32);
        opt.zero_grad();
        auto loss = torch::mse_loss(m.forward(x), t.unsqueeze(1));
        loss.backward();
        opt.step();
      }
    return flat_parameters(m);
  }();
  auto with = [&](auto trainer) {
    torch::manual_seed(5);
    SimpleModel m;
    trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    return flat_parameters(m);
  };
  EXPECT_TRUE(torch::equal(hand, with(CpuTrainer<>(quiet({.max_epochs = 2})))));
  EXPECT_TRUE(torch::equal(hand, with(CpuTrainer<EmptyA, EmptyB, EmptyC>(
                                     quiet({.max_epochs = 2}), EmptyA{}, EmptyB{}, EmptyC{}))));
  // accumulate_grad_batches = 1 is no accumulation at all
  EXPECT_TRUE(torch::equal(
      hand, with(CpuTrainer<>(quiet({.max_epochs = 2, .accumulate_grad_batches = 1})))));
}

TEST(FitLoop, MaxStepsStopsMidEpoch) {
  auto [X, y] = seed_data();
  SimpleModel model;
  CpuTrainer<Counter> trainer(quiet({.max_steps = 10}), Counter{});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(trainer.global_step, 10);
  EXPECT_EQ(trainer.callback<Counter>().train_batches, 10);
  EXPECT_EQ(trainer.callback<Counter>().epochs, 1);
  EXPECT_EQ(trainer.max_epochs(), -1);  // max_steps set: no epoch limit
}

TEST(FitLoop, LimitTrainBatchesCountAndFraction) {
  auto [X, y] = seed_data();
  for (auto [limit, expected] :
       {std::pair<L::BatchLimit, int64_t>{5, 5}, {0.25, 8}, {1.0, 32}, {0, 0}}) {
    SimpleModel model;
    CpuTrainer<Counter> trainer(quiet({.max_epochs = 2, .limit_train_batches = limit}), Counter{});
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    EXPECT_EQ(trainer.callback<Counter>().train_batches, 2 * expected) << limit.str();
    EXPECT_EQ(trainer.global_step, 2 * expected) << limit.str();
  }
}

TEST(FitLoop, ValidationScheduleFollowsLightning) {
  auto [X, y] = seed_data();
  struct Case {
    L::TrainerOptions options;
    int64_t val_runs, val_batches_per_run, sanity_batches;
  };
  // 32 training batches per epoch, 8 validation batches (batch 128) unless limited.
  const std::vector<Case> cases = {
      {{.max_epochs = 3}, 3, 8, 2},                                // end of every epoch
      {{.max_epochs = 2, .val_check_interval = 0.25}, 8, 8, 2},    // 4 per epoch
      {{.max_epochs = 4, .check_val_every_n_epoch = 2}, 2, 8, 2},  // epochs 1 and 3
      {{.max_epochs = 3, .val_check_interval = 10, .check_val_every_n_epoch = std::nullopt},
       9,
       8,
       2},  // every 10 batches, across epochs
      {{.max_epochs = 2, .limit_val_batches = 3}, 2, 3, 2},
      {{.max_epochs = 1, .num_sanity_val_steps = 0}, 1, 8, 0},
      {{.max_epochs = 1, .num_sanity_val_steps = -1}, 1, 8, 8},
      {{.max_epochs = 2, .limit_val_batches = 0}, 0, 0, 0},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    ValidatedModel model;
    CpuTrainer<Counter> trainer(quiet(c.options), Counter{});
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
                L::data::TensorLoader({X, y}, {.batch_size = 128}));
    const auto& n = trainer.callback<Counter>();
    EXPECT_EQ(n.val_runs, c.val_runs) << "case " << i;
    EXPECT_EQ(n.val_batches, c.val_runs * c.val_batches_per_run + c.sanity_batches) << "case " << i;
    EXPECT_EQ(n.sanity_runs, c.sanity_batches > 0 ? 1 : 0) << "case " << i;
    if (c.val_runs > 0) {
      EXPECT_EQ(trainer.callback_metrics().count("val_loss"), 1u) << "case " << i;
    }
  }
}

TEST(FitLoop, SanityCheckMetricsAreDiscarded) {
  auto [X, y] = seed_data(64);
  ValidatedModel model;
  std::vector<RecordingLogger::Row> rows;
  CpuTrainer<RecordingLogger> trainer(quiet({.max_epochs = 1, .limit_train_batches = 0}),
                                      RecordingLogger{&rows});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
              L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(model.validation_steps, 2);  // the sanity run did happen
  EXPECT_EQ(trainer.callback_metrics().count("val_loss"), 0u);
  EXPECT_TRUE(rows.empty());
}

TEST(FitLoop, AccumulationStepsEveryNBatchesAndAtEpochEnd) {
  auto [X, y] = seed_data(960);  // 30 batches of 32
  SimpleModel model;
  CpuTrainer<> trainer(quiet({.max_epochs = 2, .accumulate_grad_batches = 4}));
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(trainer.global_step, 2 * 8);  // 7 full windows + the last 2 batches, per epoch
}

// Law: accumulating 2 half-batches (loss / 2 each) equals one full batch, with SGD.
TEST(FitLoop, AccumulationEqualsTheLargerBatch) {
  auto [X, y] = seed_data(256);
  struct SgdModel : SimpleModel {
    auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
  };
  auto run = [&](int64_t batch, int64_t accumulate) {
    torch::manual_seed(2);
    SgdModel m;
    CpuTrainer<> t(quiet({.max_epochs = 2, .accumulate_grad_batches = accumulate}));
    t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = batch}));
    return flat_parameters(m);
  };
  EXPECT_TRUE(torch::allclose(run(32, 1), run(16, 2), 1e-5, 1e-6));
}

TEST(FitLoop, GradientClippingMatchesTorchClipping) {
  auto [X, y] = seed_data(128);
  for (auto algorithm : {L::GradClipAlgorithm::norm, L::GradClipAlgorithm::value}) {
    auto hand = [&] {
      torch::manual_seed(4);
      SimpleModel m;
      torch::optim::SGD opt(m.parameters(), 0.1);
      for (int64_t i = 0; i < 128; i += 32) {
        opt.zero_grad();
        torch::mse_loss(m.forward(X.narrow(0, i, 32)), y.narrow(0, i, 32).unsqueeze(1)).backward();
        if (algorithm == L::GradClipAlgorithm::norm)
          torch::nn::utils::clip_grad_norm_(m.parameters(), 0.05);
        else
          torch::nn::utils::clip_grad_value_(m.parameters(), 0.01);
        opt.step();
      }
      return flat_parameters(m);
    }();
    struct SgdModel : SimpleModel {
      auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
    };
    torch::manual_seed(4);
    SgdModel m;
    CpuTrainer<> t(
        quiet({.max_epochs = 1,
               .gradient_clip_val = algorithm == L::GradClipAlgorithm::norm ? 0.05 : 0.01,
               .gradient_clip_algorithm = algorithm}));
    t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    EXPECT_TRUE(torch::allclose(hand, flat_parameters(m), 1e-5, 1e-7));
    // and clipping really changed the trajectory
    torch::manual_seed(4);
    SgdModel unclipped;
    CpuTrainer<>(quiet({.max_epochs = 1}))
        .fit(unclipped, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    EXPECT_FALSE(torch::allclose(hand, flat_parameters(unclipped), 1e-5, 1e-7));
  }
}

TEST(FitLoop, ShouldStopFromACallbackRespectsMinEpochs) {
  auto [X, y] = seed_data(128);
  {
    SimpleModel model;
    CpuTrainer<StopAtEpochEnd, Counter> t(quiet({.max_epochs = 10}), StopAtEpochEnd{0}, Counter{});
    t.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    EXPECT_EQ(t.callback<Counter>().epochs, 1);
    EXPECT_EQ(t.current_epoch, 1);
  }
  {
    SimpleModel model;
    CpuTrainer<StopAtEpochEnd, Counter> t(quiet({.max_epochs = 10, .min_epochs = 3}),
                                          StopAtEpochEnd{0}, Counter{});
    t.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    EXPECT_EQ(t.callback<Counter>().epochs, 3);
  }
}

TEST(FitLoop, ShouldStopFromTheModuleMidEpochRespectsMinSteps) {
  auto [X, y] = seed_data(320);
  struct StoppingModel : ValidatedModel {
    torch::Tensor training_step(const XY& b, int64_t i) {
      if (global_step() >= 3) trainer().should_stop = true;
      return SimpleModel::training_step(b, i);
    }
  };
  {
    StoppingModel model;
    CpuTrainer<Counter> t(quiet({.max_epochs = 10, .num_sanity_val_steps = 0}), Counter{});
    t.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
          L::data::TensorLoader({X, y}, {.batch_size = 64}));
    EXPECT_EQ(t.global_step, 4);
    EXPECT_EQ(t.callback<Counter>().val_runs, 1);  // Lightning validates when stopping early
  }
  {
    StoppingModel model;
    CpuTrainer<Counter> t(quiet({.max_epochs = 10, .min_steps = 25, .num_sanity_val_steps = 0}),
                          Counter{});
    t.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
          L::data::TensorLoader({X, y}, {.batch_size = 64}));
    EXPECT_EQ(t.global_step, 25);
  }
}

TEST(FitLoop, FastDevRunRunsNBatchesOfEach) {
  auto [X, y] = seed_data();
  ValidatedModel model;
  CpuTrainer<Counter> t(quiet({.max_epochs = 5, .fast_dev_run = 2}), Counter{});
  t.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
        L::data::TensorLoader({X, y}, {.batch_size = 32}));
  const auto& n = t.callback<Counter>();
  EXPECT_EQ(n.train_batches, 2);
  EXPECT_EQ(n.val_batches, 2);
  EXPECT_EQ(n.sanity_runs, 0);
  EXPECT_EQ(t.global_step, 2);
}

TEST(FitLoop, OnTrainBatchStartReturningMinusOneEndsTheEpoch) {
  auto [X, y] = seed_data(320);
  struct SkippingModel : SimpleModel {
    int on_train_batch_start(const XY&, int64_t i) { return i == 3 ? -1 : 0; }
  };
  SkippingModel model;
  CpuTrainer<> t(quiet({.max_epochs = 2}));
  t.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(t.global_step, 6);
}

TEST(FitLoop, SeedAndDeterministicModeRepeatARun) {
  auto [X, y] = seed_data(256);
  auto run = [&](uint64_t seed) {
    SimpleModel m;  // initialised before the seed: reseed its parameters for the comparison
    {
      torch::NoGradGuard g;
      torch::manual_seed(9);
      for (auto& p : m.parameters()) p.copy_(torch::randn_like(p));
    }
    CpuTrainer<> t(quiet({.max_epochs = 2, .seed = seed, .deterministic = true}));
    t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32, .shuffle = true}));
    return flat_parameters(m);
  };
  const auto a = run(42), b = run(42), c = run(43);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_TRUE(at::globalContext().deterministicAlgorithms());
  at::globalContext().setDeterministicAlgorithms(false, false);
}

TEST(FitLoop, AnyRangeOfBatchesIsALoader) {
  auto [X, y] = seed_data(128);
  std::vector<XY> batches;
  for (int64_t i = 0; i < 128; i += 32)
    batches.emplace_back(X.narrow(0, i, 32), y.narrow(0, i, 32));
  {
    SimpleModel m;
    CpuTrainer<> t(quiet({.max_epochs = 2}));
    t.fit(m, batches);
    EXPECT_EQ(t.global_step, 8);
  }
  {
    SimpleModel m;
    auto view = ranges::views::iota(0, 4) | ranges::views::transform([&](int i) {
                  return XY{X.narrow(0, i * 32, 32), y.narrow(0, i * 32, 32)};
                });
    CpuTrainer<> t(quiet({.max_epochs = 2}));
    t.fit(m, view);
    EXPECT_EQ(t.global_step, 8);
  }
  {
    // LibTorch's own data loader, with Stack collation, yields torch::data::Example<>.
    struct ExampleModel : SimpleModel {
      torch::Tensor training_step(const torch::data::Example<>& b, int64_t) {
        return torch::mse_loss(forward(b.data), b.target.unsqueeze(1));
      }
    };
    struct Pairs : torch::data::datasets::Dataset<Pairs> {
      torch::Tensor x, y;
      Pairs(torch::Tensor a, torch::Tensor b) : x(std::move(a)), y(std::move(b)) {}
      torch::data::Example<> get(size_t i) override {
        return {x[static_cast<int64_t>(i)], y[static_cast<int64_t>(i)]};
      }
      torch::optional<size_t> size() const override { return static_cast<size_t>(x.size(0)); }
    };
    auto loader = torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
        Pairs(X, y).map(torch::data::transforms::Stack<>()), 32);
    ExampleModel m;
    CpuTrainer<> t(quiet({.max_epochs = 2}));
    t.fit(m, *loader);
    EXPECT_EQ(t.global_step, 8);
    EXPECT_FALSE(t.num_training_batches.has_value());  // unknown length: ends on exhaustion
  }
}

TEST(FitLoop, StepOutputStructWithLoss) {
  auto [X, y] = seed_data(64);
  struct Out {
    torch::Tensor loss;
    torch::Tensor prediction;
  };
  struct StructModel : SimpleModel {
    int64_t ends = 0;
    Out training_step(const XY& b, int64_t) {
      auto p = forward(std::get<0>(b));
      return {torch::mse_loss(p, std::get<1>(b).unsqueeze(1)), p.detach()};
    }
    void on_train_batch_end(const Out& out, const XY&, int64_t) {
      ends += out.prediction.size(0) > 0;
    }
  };
  StructModel m;
  CpuTrainer<> t(quiet({.max_epochs = 1}));
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  EXPECT_EQ(m.ends, 4);
}

TEST(FitLoop, F64PrecisionTrainsInDouble) {
  auto [X, y] = seed_data(64);
  struct DoubleCheck : SimpleModel {
    torch::Tensor training_step(const XY& b, int64_t i) {
      EXPECT_EQ(std::get<0>(b).scalar_type(), torch::kDouble);
      return SimpleModel::training_step(b, i);
    }
  };
  DoubleCheck m;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F64> t(
      quiet({.max_epochs = 1}));
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  EXPECT_EQ(m.linear->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(t.global_step, 4);
}

TEST(FitLoop, LogEveryNStepsReachesLoggers) {
  auto [X, y] = seed_data(640);  // 20 batches of 32
  std::vector<RecordingLogger::Row> rows;
  SimpleModel m;
  CpuTrainer<RecordingLogger> t(quiet({.max_epochs = 2, .log_every_n_steps = 10}),
                                RecordingLogger{&rows});
  t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  std::vector<int64_t> steps;
  for (const auto& r : rows) {
    EXPECT_EQ(r.metrics.count("train_loss"), 1u);
    EXPECT_EQ(r.metrics.count("epoch"), 1u);
    steps.push_back(r.step);
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{9, 19, 29, 39}));
}

TEST(FitLoop, ClearErrorsForEmptyLoadersAndImpossibleLimits) {
  SimpleModel m;
  expect_invalid_argument(
      [&] {
        CpuTrainer<>(quiet({})).fit(
            m, L::data::TensorLoader({torch::zeros({0, 10}), torch::zeros({0})}));
      },
      "training loader is empty");
  expect_invalid_argument([&] { CpuTrainer<>(quiet({})).fit(m, std::vector<XY>{}); },
                          "training loader is empty");
  // A loader without size() that turns out empty (take_while is never sized).
  auto empty_view = ranges::views::iota(0) |
                    ranges::views::take_while([](int i) { return i < 0; }) |
                    ranges::views::transform([](int) { return XY{}; });
  expect_invalid_argument([&] { CpuTrainer<>(quiet({})).fit(m, empty_view); },
                          "yielded no batches");
  auto [X, y] = seed_data(64);
  expect_invalid_argument(
      [&] {
        CpuTrainer<>(quiet({.limit_train_batches = 0.01}))
            .fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
      },
      "less than one batch");
  ValidatedModel v;
  expect_invalid_argument(
      [&] {
        CpuTrainer<>(quiet({.val_check_interval = 5}))
            .fit(v, L::data::TensorLoader({X, y}, {.batch_size = 32}),
                 L::data::TensorLoader({X, y}, {.batch_size = 32}));
      },
      "val_check_interval = 5");
  EXPECT_FALSE(m.has_trainer());  // detached even after an error
}

TEST(FitLoop, ExceptionsReachOnExceptionAndPropagate) {
  struct Boom : SimpleModel {
    torch::Tensor training_step(const XY&, int64_t i) {
      if (i == 2) throw std::runtime_error("boom");
      return torch::zeros({}, torch::requires_grad());
    }
  };
  std::string seen;
  Boom m;
  auto [X, y] = seed_data(128);
  CpuTrainer<Catch> t(quiet({}), Catch{&seen});
  EXPECT_THROW(t.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32})), std::runtime_error);
  EXPECT_EQ(seen, "boom");
}

// A distributed shard is told each epoch's number (Lightning's sampler.set_epoch), so the
// order of epoch e is the same in a straight run and in one resumed at epoch e.
TEST(FitLoop, AShardedLoaderIsToldTheEpochAndAResumeContinuesItsOrder) {
  struct LabelRecorder : SimpleModel {
    std::vector<std::vector<std::int64_t>> epochs;
    void on_train_epoch_start() { epochs.emplace_back(); }
    torch::Tensor training_step(const XY& batch, std::int64_t idx) {
      const auto& y = std::get<1>(batch);
      for (std::int64_t i = 0; i < y.size(0); ++i)
        epochs.back().push_back(static_cast<std::int64_t>(y[i].item<float>()));
      return SimpleModel::training_step(batch, idx);
    }
  };
  auto X = torch::randn({22, 10});
  auto y = torch::arange(22).to(torch::kFloat);
  L::data::TensorLoader loader({X, y}, {.batch_size = 4, .shuffle = true, .seed = 3});
  auto expected = [&](std::int64_t epoch) {
    auto shard = loader.shard(1, 2);
    shard.set_epoch(epoch);
    std::vector<std::int64_t> out;
    for (auto [x, t] : shard)
      for (std::int64_t i = 0; i < t.size(0); ++i)
        out.push_back(static_cast<std::int64_t>(t[i].item<float>()));
    return out;
  };
  auto options = [](std::int64_t epochs) {
    return lightning::testing::bare({.max_epochs = epochs});
  };
  LabelRecorder straight;
  auto shard = loader.shard(1, 2);
  CpuTrainer<> first(options(3));
  first.fit(straight, shard);
  ASSERT_EQ(straight.epochs.size(), 3U);
  for (std::int64_t e = 0; e < 3; ++e) EXPECT_EQ(straight.epochs[e], expected(e)) << e;

  LabelRecorder part;
  auto shard2 = loader.shard(1, 2);
  CpuTrainer<> two(options(2));
  two.fit(part, shard2);
  two.save_checkpoint("epoch2.ckpt");
  LabelRecorder resumed;
  auto shard3 = loader.shard(1, 2);
  CpuTrainer<> again(options(3));
  again.fit(resumed, shard3, L::CheckpointPath{"epoch2.ckpt"});
  ASSERT_EQ(resumed.epochs.size(), 1U);
  EXPECT_EQ(resumed.epochs[0], expected(2));
}

// SIGTERM (or SIGINT) during fit: the handler only records it; at the end of that step
// the run is saved as <default_root_dir>/interrupted.ckpt and fit throws Interrupted.
// The handlers are fit's only: the previous ones are back afterwards. Resuming from the
// checkpoint ends bit for bit as the uninterrupted run.
struct SignalledModel : ValidatedModel {
  std::int64_t at_step = -1;
  int signal_number = SIGTERM;
  torch::Tensor training_step(const XY& batch, std::int64_t idx) {
    if (global_step() == at_step) ::raise(signal_number);  // handled: the step goes on
    return ValidatedModel::training_step(batch, idx);
  }
};

TEST(FitLoop, ASignalSavesTheRunAtTheStepBoundaryAndItResumesExactly) {
  for (const int signal_number : {SIGTERM, SIGINT}) {
    auto [X, y] = seed_data(96, 4);
    auto train = [&](std::int64_t at_step, std::optional<L::CheckpointPath> resume) {
      torch::manual_seed(0);
      SignalledModel model;
      model.at_step = at_step;
      model.signal_number = signal_number;
      CpuTrainer<> trainer(quiet({.max_epochs = 3,
                                  .enable_checkpointing = false,
                                  .logger = false,
                                  .default_root_dir = "run"}));
      L::data::TensorLoader loader({X, y}, {.batch_size = 16, .shuffle = true, .seed = 5});
      L::data::TensorLoader val({X, y}, {.batch_size = 48});
      if (resume)
        trainer.fit(model, loader, val, *resume);
      else
        trainer.fit(model, loader, val);
      return std::pair{flat_parameters(model).detach().clone(), trainer.global_step};
    };
    const auto [straight, steps] = train(-1, std::nullopt);
    EXPECT_EQ(steps, 18);
    try {
      train(8, std::nullopt);
      ADD_FAILURE() << "fit did not stop for the signal";
    } catch (const L::Interrupted& e) {
      EXPECT_EQ(e.signal, signal_number);
      EXPECT_EQ(e.checkpoint, std::filesystem::path("run") / "interrupted.ckpt");
      EXPECT_NE(std::string(e.what()).find(signal_number == SIGINT ? "stopped by SIGINT"
                                                                   : "stopped by SIGTERM"),
                std::string::npos)
          << e.what();
    }
    struct sigaction now {};
    ::sigaction(signal_number, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_DFL);  // fit's handler is gone
    const auto saved = L::load_checkpoint_file("run/interrupted.ckpt");
    EXPECT_EQ(saved.at("global_step").toInt(), 9);  // the step that saw the signal finished
    const auto [resumed, resumed_steps] = train(-1, L::CheckpointPath{"run/interrupted.ckpt"});
    EXPECT_EQ(resumed_steps, 18);
    EXPECT_TRUE(torch::equal(resumed, straight));
    std::filesystem::remove_all("run");
  }
}
