// trainer.save_checkpoint and fit(..., CheckpointPath): training N epochs straight, and
// K epochs, a checkpoint, then a resume to N, give bitwise-identical parameters and the
// same logged losses (CPU, seeded, deterministic).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace L = lightning;
using lightning::testing::CpuTrainer;
using lightning::testing::flat_parameters;
using lightning::testing::RecordingLogger;
using lightning::testing::seed_data;
using lightning::testing::XY;

namespace {

// Dropout (the global generator), Adam (moments), a step-interval and an epoch-interval
// scheduler: everything a resume has to restore.
struct DropoutModel : L::LightningModule {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(10, 16))};
  torch::nn::Dropout drop{register_module("drop", torch::nn::Dropout(0.3))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(16, 1))};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(fc2(drop(torch::relu(fc1(x)))), y.unsqueeze(1));
    log("train_loss", loss);
    return loss;
  }
  auto configure_optimizers() {
    return L::optimizers(
        torch::optim::Adam(parameters(), 1e-2),
        L::scheduler(L::lr::StepLR{.step_size = 5, .gamma = 0.7}, {.interval = L::Interval::step}),
        L::scheduler(L::lr::ExponentialLR{.gamma = 0.9}));
  }
};

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("lightning_resume_" + std::to_string(::getpid()) + "_" + name);
}

struct Outcome {
  torch::Tensor params;
  std::vector<RecordingLogger::Row> rows;
};

// `seeded_loader`: the loader shuffles with its own seeded generator; otherwise with the
// global one (seeded by TrainerOptions.seed).
Outcome train(std::int64_t epochs, bool seeded_loader, const std::filesystem::path& save_to = {},
              const std::filesystem::path& resume_from = {}) {
  auto [X, y] = seed_data(200);
  torch::manual_seed(resume_from.empty() ? 1 : 99);  // a resumed run starts from other weights
  DropoutModel model;
  Outcome run;
  CpuTrainer<RecordingLogger> trainer({.max_epochs = epochs,
                                       .log_every_n_steps = 1,
                                       .enable_progress_bar = false,
                                       .seed = 7,
                                       .deterministic = true},
                                      RecordingLogger{&run.rows});
  L::data::TensorLoader loader(
      {X, y}, {.batch_size = 32,
               .shuffle = true,
               .seed = seeded_loader ? std::optional<std::uint64_t>(5) : std::nullopt});
  if (resume_from.empty())
    trainer.fit(model, loader);
  else
    trainer.fit(model, loader, L::CheckpointPath{resume_from});
  if (!save_to.empty()) trainer.save_checkpoint(save_to);
  run.params = flat_parameters(model).clone();
  return run;
}

}  // namespace

class Resume : public ::testing::TestWithParam<bool> {};

TEST_P(Resume, KEpochsThenResumeToNIsBitwiseTheSameAsNStraight) {
  const bool seeded_loader = GetParam();
  const auto path = temp_file(seeded_loader ? "seeded.ckpt" : "global.ckpt");
  const Outcome straight = train(5, seeded_loader);
  const Outcome first = train(2, seeded_loader, path);
  const Outcome resumed = train(5, seeded_loader, {}, path);

  EXPECT_TRUE(torch::equal(resumed.params, straight.params));
  EXPECT_FALSE(torch::equal(first.params, straight.params));
  // Logged losses: the first run's rows, then the resumed run's, are the straight run's.
  std::vector<RecordingLogger::Row> joined = first.rows;
  joined.insert(joined.end(), resumed.rows.begin(), resumed.rows.end());
  ASSERT_EQ(joined.size(), straight.rows.size());
  for (std::size_t i = 0; i < joined.size(); ++i) {
    EXPECT_EQ(joined[i].step, straight.rows[i].step) << "row " << i;
    EXPECT_EQ(joined[i].metrics, straight.rows[i].metrics) << "row " << i;
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Loaders, Resume, ::testing::Values(true, false), [](const auto& info) {
  return info.param ? "SeededLoader" : "GlobalSeed";
});

TEST(Checkpoint, ContentAndErrors) {
  const auto path = temp_file("content.ckpt");
  (void)train(1, true, path);
  const auto c = L::load_checkpoint_file(path);
  EXPECT_EQ(c.at("epoch").toInt(), 1);
  EXPECT_EQ(c.at("global_step").toInt(), 7);  // 200 examples, batch 32
  EXPECT_EQ(L::checkpoint_dict(c.at("optimizer_states")).size(), 1u);
  EXPECT_EQ(L::checkpoint_dict(c.at("lr_schedulers")).size(), 2u);
  EXPECT_TRUE(L::checkpoint_dict<at::Tensor>(c.at("state_dict")).contains("fc1.weight"));

  // A checkpoint of another module is refused with the entry named.
  lightning::testing::SimpleModel other;
  CpuTrainer<> t({.max_epochs = 2, .enable_progress_bar = false});
  auto [X, y] = seed_data(64);
  try {
    t.fit(other, L::data::TensorLoader({X, y}, {.batch_size = 32}), L::CheckpointPath{path});
    FAIL() << "expected a CheckpointError";
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("has no entry \"linear.weight\""), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(t.fit(other, L::data::TensorLoader({X, y}, {.batch_size = 32}),
                     L::CheckpointPath{temp_file("missing.ckpt")}),
               L::CheckpointError);
  // Before any fit there is nothing to save.
  CpuTrainer<> fresh;
  EXPECT_THROW(fresh.save_checkpoint(temp_file("never.ckpt")), std::logic_error);
  std::filesystem::remove(path);
}
