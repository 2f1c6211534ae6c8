// Precision policies: full precision (conversions, every step taken, no state), true
// half, and mixed precision (autocast, the scaler's skipped steps and state), alone and
// through the Trainer.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <filesystem>
#include <limits>

namespace L = lightning;

namespace {
// A precision without state_dict/load_state_dict: a scaler's state would be lost on resume.
struct StatelessScaler {
  static constexpr std::string_view name = "x";
  static constexpr c10::ScalarType param_dtype = c10::kFloat;
  void convert_module(torch::nn::Module&) {}
  torch::Tensor convert_input(const torch::Tensor& t) const { return t; }
  L::NoScope autocast(c10::Device) const { return {}; }
  void backward(const torch::Tensor&) {}
  void unscale_gradients(torch::optim::Optimizer&) {}
  bool optimizer_step(torch::optim::Optimizer&) { return true; }
  torch::Tensor optimizer_step(torch::optim::Optimizer&,
                               const torch::optim::Optimizer::LossClosure&) {
    return {};
  }
};
struct WithState : StatelessScaler {
  L::CheckpointDict state_dict() const { return L::make_checkpoint(); }
  void load_state_dict(const L::CheckpointDict&) {}
};
}  // namespace
static_assert(L::Precision<L::precision::F32> && L::Precision<L::precision::F64>);
static_assert(L::Precision<L::precision::BF16True> && L::Precision<L::precision::F16True>);
static_assert(L::Precision<L::precision::BF16Mixed> && L::Precision<L::precision::F16Mixed>);
static_assert(L::precision::F16Mixed::supports(c10::kCUDA) &&
              !L::precision::F16Mixed::supports(c10::kCPU));
static_assert(L::precision::supports_device<L::precision::BF16Mixed>(c10::kCPU));
static_assert(L::Precision<WithState>);
static_assert(!L::Precision<StatelessScaler>);
static_assert(!L::Precision<L::strategies::SingleDevice>);

TEST(Precision, F64ConvertsModuleAndFloatingInputsOnly) {
  L::precision::F64 p;
  torch::nn::Linear lin(2, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(p.convert_input(torch::ones({2})).scalar_type(), torch::kDouble);
  EXPECT_EQ(p.convert_input(torch::ones({2}, torch::kLong)).scalar_type(), torch::kLong);
  auto b = p.convert_batch(std::make_tuple(torch::ones({1}), torch::ones({1}, torch::kInt)));
  EXPECT_EQ(std::get<0>(b).scalar_type(), torch::kDouble);
  EXPECT_EQ(std::get<1>(b).scalar_type(), torch::kInt);
}

TEST(Precision, F32LeavesEverythingAsIsAndAlwaysSteps) {
  L::precision::F32 p;
  torch::nn::Linear lin(2, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);
  auto x = torch::ones({2}, torch::kDouble);
  EXPECT_TRUE(p.convert_input(x).is_same(x));
  torch::optim::SGD opt(lin->parameters(), 0.1);
  auto loss = lin(torch::ones({1, 2})).sum();
  p.backward(loss);
  const auto before = lin->weight.clone();
  EXPECT_TRUE(p.optimizer_step(opt));
  EXPECT_FALSE(torch::equal(before, lin->weight));
}

TEST(Precision, FullPrecisionHasNoStateAndMovesBatchesThrough) {
  L::precision::F32 p;
  EXPECT_TRUE(p.state_dict().empty());
  p.load_state_dict(L::make_checkpoint());
  // A vector of tensors keeps its buffer when moved and gets a new one when copied.
  std::vector<torch::Tensor> batch{torch::ones({2}), torch::ones({2})};
  const auto* buffer = batch.data();
  const auto converted = p.convert_batch(std::move(batch));
  EXPECT_EQ(converted.data(), buffer);
}

namespace {
using lightning::testing::bare;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;
using lightning::testing::XY;

// Autocast to bfloat16 with a gradient scaler: F16Mixed's arithmetic, on the CPU.
using ScaledOnCpu = L::precision::MixedPrecision<c10::kBFloat16, true>;
struct ScaledOnCpuPolicy : ScaledOnCpu {
  static constexpr std::string_view name = "bf16-mixed-scaled";
};

template <class P>
using CpuTrainerWith = L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, P>;
}  // namespace

TEST(Precision, BF16MixedRunsMatmulsInBfloat16AndTheLossInFloat32) {
  L::precision::BF16Mixed p;
  torch::nn::Linear lin(10, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat);  // parameters stay float32
  const auto x = torch::randn({4, 10}), y = torch::randn({4, 1});
  EXPECT_TRUE(p.convert_input(x).is_same(x));
  torch::Tensor out, loss;
  {
    auto scope = p.autocast(c10::Device(c10::kCPU));
    out = lin(x);
    loss = torch::mse_loss(out, y);
  }
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);  // the scope has closed
  p.backward(loss);
  EXPECT_EQ(lin->weight.grad().scalar_type(), torch::kFloat);
  EXPECT_TRUE(p.state_dict().empty());  // no scaler, nothing to save
}

TEST(Precision, InsideTrainingStepUnderBF16MixedMatmulsAreBfloat16) {
  struct Probe : SimpleModel {
    c10::ScalarType out_dtype = c10::kDouble, loss_dtype = c10::kDouble;
    torch::Tensor training_step(const XY& batch, std::int64_t) {
      const auto& [x, y] = batch;
      auto out = forward(x);
      auto loss = torch::mse_loss(out, y.unsqueeze(1));
      out_dtype = out.scalar_type();
      loss_dtype = loss.scalar_type();
      return loss;
    }
  };
  auto [X, y] = seed_data(64);
  Probe m;
  CpuTrainerWith<L::precision::BF16Mixed> trainer(bare({.max_epochs = 1}));
  trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(m.out_dtype, torch::kBFloat16);
  EXPECT_EQ(m.loss_dtype, torch::kFloat);
  EXPECT_EQ(m.linear->weight.scalar_type(), torch::kFloat);
}

// Autocast opens around every step: validation and prediction too.
TEST(Precision, BF16MixedAutocastsValidationAndPredictionToo) {
  struct Probe : SimpleModel {
    c10::ScalarType val_dtype = c10::kDouble;
    void validation_step(const XY& batch, std::int64_t) {
      val_dtype = forward(std::get<0>(batch)).scalar_type();
    }
    torch::Tensor predict_step(const XY& batch, std::int64_t) {
      return forward(std::get<0>(batch));
    }
  };
  auto [X, y] = seed_data(64);
  Probe m;
  CpuTrainerWith<L::precision::BF16Mixed> trainer(bare({.max_epochs = 1}));
  L::data::TensorLoader loader({X, y}, {.batch_size = 32});
  trainer.validate(m, loader);
  EXPECT_EQ(m.val_dtype, torch::kBFloat16);
  const auto predictions = trainer.predict(m, loader);
  ASSERT_FALSE(predictions.empty());
  EXPECT_EQ(predictions.front().scalar_type(), torch::kBFloat16);
}

// The seed workload (Linear(10, 1), Adam 1e-3, 3 epochs) under BF16Mixed ends within
// 1% of float32 (bfloat16 keeps 8 bits of mantissa; the parameters stay float32).
TEST(Precision, TheSeedWorkloadUnderBF16MixedEndsNearFloat32) {
  auto [X, y] = seed_data();
  auto run = [&]<class P>(P) {
    torch::manual_seed(0);
    SimpleModel m;
    CpuTrainerWith<P> trainer(bare({.max_epochs = 3}));
    trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    torch::NoGradGuard no_grad;
    return std::pair(lightning::testing::flat_parameters(m),
                     torch::mse_loss(m.forward(X), y.unsqueeze(1)).item<double>());
  };
  const auto [p32, loss32] = run(L::precision::F32{});
  const auto [p16, loss16] = run(L::precision::BF16Mixed{});
  EXPECT_FALSE(torch::equal(p32, p16));  // bfloat16 did run
  EXPECT_LT((p32 - p16).abs().max().item<double>(), 1e-2);
  EXPECT_NEAR(loss16, loss32, 0.01 * loss32);
}

TEST(Precision, BF16TrueHoldsEverythingInBfloat16IncludingWhatTheForwardCreates) {
  L::precision::BF16True p;
  torch::nn::Linear lin(3, 1);
  p.convert_module(*lin);
  EXPECT_EQ(lin->weight.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(p.convert_input(torch::ones({2})).scalar_type(), torch::kBFloat16);
  EXPECT_EQ(p.convert_input(torch::ones({2}, torch::kLong)).scalar_type(), torch::kLong);
  {
    auto scope = p.autocast(c10::Device(c10::kCPU));
    EXPECT_EQ(torch::zeros({2}).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(torch::zeros({2}).scalar_type(), torch::kFloat);  // restored
  EXPECT_EQ(L::precision::F16True::param_dtype, torch::kHalf);
}

TEST(Precision, AScaledPrecisionUnscalesOnceAndSkipsANonFiniteStep) {
  ScaledOnCpu p(L::GradScalerOptions{.init_scale = 8.0});
  torch::nn::Linear lin(2, 1);
  torch::optim::SGD opt(lin->parameters(), 0.1);
  auto loss = lin(torch::ones({1, 2})).sum();
  p.backward(loss);
  EXPECT_TRUE(torch::equal(lin->weight.grad(), torch::full({1, 2}, 8.0)));  // scaled
  p.unscale_gradients(opt);
  p.unscale_gradients(opt);  // the second call of a step does nothing
  EXPECT_TRUE(torch::equal(lin->weight.grad(), torch::ones({1, 2})));
  EXPECT_TRUE(p.optimizer_step(opt));
  EXPECT_EQ(p.scaler().get_scale(), 8.0);

  opt.zero_grad();
  p.backward(lin(torch::ones({1, 2})).sum());
  lin->weight.mutable_grad()[0][0] = std::numeric_limits<float>::infinity();
  const auto before = lin->weight.detach().clone();
  EXPECT_FALSE(p.optimizer_step(opt));  // skipped: the weights are as they were
  EXPECT_TRUE(torch::equal(before, lin->weight));
  EXPECT_EQ(p.scaler().get_scale(), 4.0);  // backed off

  const auto state = p.state_dict();
  EXPECT_EQ(state.at("scale").toDouble(), 4.0);
  ScaledOnCpu q;
  q.load_state_dict(state);
  EXPECT_EQ(q.scaler().get_scale(), 4.0);
  EXPECT_THROW(p.optimizer_step(opt, [] { return torch::zeros({}); }), std::invalid_argument);

  // Clipping unscales; a backward before the step would mix scaled and unscaled values.
  opt.zero_grad();
  p.backward(lin(torch::ones({1, 2})).sum());
  p.unscale_gradients(opt);
  EXPECT_THROW(p.backward(lin(torch::ones({1, 2})).sum()), std::logic_error);
  EXPECT_TRUE(p.optimizer_step(opt));
  p.backward(lin(torch::ones({1, 2})).sum());  // after the step, backward is fine again
}

// Through the Trainer: a step the scaler skips is not a step (global_step, a per-step
// scheduler), hooks and clipping see unscaled gradients, and the scaler's state goes into
// the checkpoint and comes back on resume.
TEST(Precision, TheTrainerHonoursAScalersSkippedStepAndCheckpointsItsState) {
  struct Injecting : SimpleModel {
    std::int64_t batches = 0;
    std::vector<double> grad_norms;  // what on_before_optimizer_step sees
    void on_after_backward() {
      if (++batches == 3) linear->weight.mutable_grad()[0][0] = NAN;
    }
    void on_before_optimizer_step(torch::optim::Optimizer&) {
      grad_norms.push_back(linear->bias.grad().abs().item<double>());
    }
    auto configure_optimizers() {
      return L::optimizers(torch::optim::SGD(parameters(), 0.1),
                           L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.5},
                                        {.interval = L::Interval::step}));
    }
  };
  auto [X, y] = seed_data(128);
  torch::manual_seed(1);
  Injecting m;
  CpuTrainerWith<ScaledOnCpuPolicy> trainer(
      bare({.max_epochs = 1, .gradient_clip_val = 1e6}));  // clipping on, never binding
  trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(trainer.global_step, 3);  // 4 batches, one skipped
  // 3 scheduler steps, not 4
  EXPECT_DOUBLE_EQ(L::lr::group_lrs(*trainer.optimizer_infos()[0].optimizer)[0], 0.1 / 8);
  EXPECT_EQ(trainer.fabric().precision().scaler().get_scale(), 32768.0);
  ASSERT_EQ(m.grad_norms.size(), 4U);                 // the skipped step's hooks ran too
  for (double g : m.grad_norms) EXPECT_LT(g, 100.0);  // unscaled (a scaled one is ~1e4+)

  trainer.save_checkpoint("scaled.ckpt");
  const auto saved = L::load_checkpoint_file("scaled.ckpt");
  ASSERT_TRUE(saved.contains("MixedPrecision"));  // where Lightning's plugin keeps it
  EXPECT_EQ(L::checkpoint_dict(saved.at("MixedPrecision")).at("scale").toDouble(), 32768.0);
  Injecting resumed;
  CpuTrainerWith<ScaledOnCpuPolicy> again(bare({.max_epochs = 1}));
  again.fit(resumed, L::data::TensorLoader({X, y}, {.batch_size = 32}),
            L::CheckpointPath{"scaled.ckpt"});
  EXPECT_EQ(again.fabric().precision().scaler().get_scale(), 32768.0);
  EXPECT_EQ(again.fabric().precision().scaler().growth_tracker(), 1);  // one good step since
}

TEST(Precision, AutoWithF16MixedOnAMachineWithoutAGpuIsAnErrorNamingBoth) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has a GPU: Auto takes it";
  auto [X, y] = seed_data(64);
  SimpleModel m;
  L::Trainer<L::accelerators::Auto, L::strategies::SingleDevice, L::precision::F16Mixed> trainer(
      bare({.max_epochs = 1}));
  try {
    trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("\"16-mixed\""), std::string::npos) << what;
    EXPECT_NE(what.find("accelerator \"auto\""), std::string::npos) << what;
    EXPECT_NE(what.find("use BF16Mixed on the CPU"), std::string::npos) << what;
  }
  EXPECT_EQ(trainer.global_step, 0);  // before any work
}

// Scaling by a power of two and dividing by it again is exact in floating point, so a
// scaled run equals the same run without a scaler bit for bit, as long as every
// gradient is divided exactly once per step: under accumulation with clipping, and in
// manual optimization with clip_gradients. One division too many or too few, or one
// taken before the accumulation window closed, breaks the equality by orders of
// magnitude.
namespace {
struct AccumulatingModel : SimpleModel {
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
struct ManualScaledModel : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto opt = optimizer();
    opt.zero_grad();
    auto loss = torch::mse_loss(linear(x), y.unsqueeze(1));
    manual_backward(loss);
    clip_gradients(opt, 0.05);  // unscales; the step then does not again
    opt.step();
    return loss;
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
template <class Model, class P>
torch::Tensor parameters_after(L::TrainerOptions options) {
  auto [X, y] = seed_data(256);
  torch::manual_seed(3);
  Model m;
  CpuTrainerWith<P> trainer(bare(options));
  trainer.fit(m, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  return lightning::testing::flat_parameters(m);
}
}  // namespace

TEST(Precision, AScaledRunEqualsTheUnscaledRunUnderAccumulationAndClipping) {
  const L::TrainerOptions options{
      .max_epochs = 2, .accumulate_grad_batches = 3, .gradient_clip_val = 0.05};
  const auto plain = parameters_after<AccumulatingModel, L::precision::BF16Mixed>(options);
  const auto scaled = parameters_after<AccumulatingModel, ScaledOnCpuPolicy>(options);
  EXPECT_TRUE(torch::equal(plain, scaled)) << plain << "\n" << scaled;
  auto unclipped = options;
  unclipped.gradient_clip_val = std::nullopt;
  EXPECT_FALSE(torch::equal(plain, parameters_after<AccumulatingModel, ScaledOnCpuPolicy>(
                                       unclipped)));  // the clipping did bind
}

TEST(Precision, AScaledRunEqualsTheUnscaledRunInManualOptimization) {
  const L::TrainerOptions options{.max_epochs = 2};
  const auto plain = parameters_after<ManualScaledModel, L::precision::BF16Mixed>(options);
  const auto scaled = parameters_after<ManualScaledModel, ScaledOnCpuPolicy>(options);
  EXPECT_TRUE(torch::equal(plain, scaled)) << plain << "\n" << scaled;
}
