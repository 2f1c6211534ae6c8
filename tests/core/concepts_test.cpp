// Positive and negative static checks of every concept in core/concepts.hpp.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include <range/v3/view/iota.hpp>
#include <range/v3/view/transform.hpp>

#include "support/models.hpp"

namespace L = lightning;
using lightning::testing::SimpleModel;
using lightning::testing::ValidatedModel;
using lightning::testing::XY;

namespace {

struct LossStruct {
  torch::Tensor loss;
  torch::Tensor extra;
};
struct NoLoss {
  torch::Tensor value;
};
struct StructOutputModel : L::LightningModule {
  LossStruct training_step(const XY&, int64_t) { return {}; }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
struct WrongOutputModel : L::LightningModule {
  NoLoss training_step(const XY&, int64_t) { return {}; }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
struct NoOptimizerModel : L::LightningModule {
  torch::Tensor training_step(const XY&, int64_t) { return {}; }
};
struct PlainStruct {
  torch::Tensor training_step(const XY&, int64_t) { return {}; }
  auto configure_optimizers() { return torch::optim::SGD(std::vector<torch::Tensor>{}, 0.1); }
};

struct EmptyCallback {};
struct NotMovable {
  NotMovable() = default;
  NotMovable(NotMovable&&) = delete;
};

}  // namespace

// StepOutput
static_assert(L::StepOutput<torch::Tensor>);
static_assert(L::StepOutput<LossStruct>);
static_assert(!L::StepOutput<NoLoss>);
static_assert(!L::StepOutput<double>);

// ConfiguredOptimizers
static_assert(L::ConfiguredOptimizers<torch::optim::Adam>);
static_assert(L::ConfiguredOptimizers<torch::optim::SGD>);
static_assert(L::ConfiguredOptimizers<L::OptimizerConfig<
                  torch::optim::SGD, L::lr::Scheduler<L::lr::StepLR>, L::lr::ReduceLROnPlateau>>);
static_assert(!L::ConfiguredOptimizers<int>);

// DataModule
namespace {
struct DM {
  L::data::TensorLoader<2> train_dataloader();
};
struct NotDM {
  int train_dataloader();
};
}  // namespace
static_assert(L::DataModule<DM>);
static_assert(!L::DataModule<NotDM>);
static_assert(!L::DataModule<std::vector<XY>>);

// TrainingModule
static_assert(L::TrainingModule<SimpleModel, XY>);
static_assert(L::TrainingModule<StructOutputModel, XY>);
static_assert(!L::TrainingModule<SimpleModel, L::Batch<torch::Tensor>>);  // wrong batch
static_assert(!L::TrainingModule<WrongOutputModel, XY>);
static_assert(!L::TrainingModule<NoOptimizerModel, XY>);
static_assert(!L::TrainingModule<PlainStruct, XY>);  // not a torch::nn::Module
static_assert(L::ValidationModule<ValidatedModel, XY>);
static_assert(!L::ValidationModule<SimpleModel, XY>);

// BatchLoader: ours, containers, range-v3 views, torch::data loaders.
static_assert(L::BatchLoader<L::data::TensorLoader<2>>);
static_assert(L::SizedLoader<L::data::TensorLoader<2>>);
static_assert(L::BatchLoader<std::vector<XY>>);
static_assert(L::SizedLoader<std::vector<XY>>);
static_assert(std::is_same_v<L::loader_batch_t<std::vector<XY>>, XY>);
static_assert(std::is_same_v<L::loader_batch_t<L::data::TensorLoader<2>>, XY>);
using IotaView =
    decltype(ranges::views::iota(0, 3) | ranges::views::transform([](int) { return XY{}; }));
static_assert(L::BatchLoader<IotaView>);
static_assert(std::is_same_v<L::loader_batch_t<IotaView>, XY>);
static_assert(!L::BatchLoader<int>);
static_assert(!L::BatchLoader<torch::Tensor>);

// Policies
static_assert(L::Accelerator<L::accelerators::CPU> && L::Accelerator<L::accelerators::Auto>);
static_assert(!L::Accelerator<L::strategies::SingleDevice> && !L::Accelerator<L::precision::F32>);
static_assert(L::Strategy<L::strategies::SingleDevice>);
static_assert(!L::Strategy<L::accelerators::CPU> && !L::Strategy<L::precision::F64>);
static_assert(L::Precision<L::precision::F32> && L::Precision<L::precision::F64>);
static_assert(!L::Precision<L::accelerators::CPU> && !L::Precision<L::strategies::SingleDevice>);

// Callback: any movable class that is not a policy.
static_assert(L::Callback<EmptyCallback>);
static_assert(L::Callback<L::callbacks::ProgressBar>);
static_assert(!L::Callback<int>);
static_assert(!L::Callback<NotMovable>);
static_assert(!L::Callback<L::accelerators::CPU>);
static_assert(!L::Callback<L::precision::F32>);

TEST(Concepts, TrainerDefaultsAreAutoSingleDeviceF32) {
  L::Trainer trainer({.max_epochs = 3});
  static_assert(std::is_same_v<decltype(trainer), L::Trainer<>>);
  static_assert(std::is_same_v<decltype(trainer)::accelerator_type, L::accelerators::Auto>);
  static_assert(std::is_same_v<decltype(trainer)::strategy_type, L::strategies::SingleDevice>);
  static_assert(std::is_same_v<decltype(trainer)::precision_type, L::precision::F32>);
  EXPECT_EQ(trainer.options().max_epochs, 3);
}

// The Trainer deduces its callbacks and adds the default ones (Lightning's order): the
// user's, then progress bar, summary, logger and the max_time Timer, then checkpoint
// callbacks last. The user's own ones replace the defaults; a profiler is not a callback.
namespace trainer_callbacks {
using L::callbacks::DefaultLogger, L::callbacks::ModelCheckpoint, L::callbacks::ModelSummary,
    L::callbacks::ProgressBar, L::callbacks::Timer;
using Deduced = decltype(L::Trainer({}, EmptyCallback{}));
static_assert(
    std::is_same_v<Deduced::callback_tuple, std::tuple<EmptyCallback, ProgressBar, ModelSummary,
                                                       DefaultLogger, Timer, ModelCheckpoint>>);
using Own = L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
                       ModelCheckpoint, ProgressBar, EmptyCallback, Timer, ModelSummary,
                       L::loggers::CSVLogger, L::SimpleProfiler>;
static_assert(
    std::is_same_v<Own::callback_tuple, std::tuple<ProgressBar, EmptyCallback, Timer, ModelSummary,
                                                   L::loggers::CSVLogger, ModelCheckpoint>>);
static_assert(std::is_same_v<Own::profiler_type, L::SimpleProfiler> && Own::profiling);
// Loops and connectors hold references to their Trainer: it is neither copied nor moved.
static_assert(!std::is_copy_constructible_v<Deduced> && !std::is_move_constructible_v<Deduced>);
static_assert(!std::is_copy_assignable_v<Deduced> && !std::is_move_assignable_v<Deduced>);
}  // namespace trainer_callbacks
