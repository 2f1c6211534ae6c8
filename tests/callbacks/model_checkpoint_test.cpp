// ModelCheckpoint (file names, top k, triggers, last, weights only, state across a
// resume, ckpt_path "best"/"last"), OnExceptionCheckpoint and the Trainer's default
// checkpointing.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace L = lightning;
namespace fs = std::filesystem;
using lightning::testing::CpuTrainer;
using lightning::testing::expect_invalid_argument;
using lightning::testing::flat_parameters;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;
using ScriptedModel = lightning::testing::ScriptedValLossModel;
using lightning::testing::XY;

namespace {

// A fresh directory per test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() /
             ("lightning_ckpt_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  [[nodiscard]] std::set<std::string> files(const fs::path& sub = {}) const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(sub.empty() ? path : path / sub))
      out.insert(e.path().filename().string());
    return out;
  }
};

L::data::TensorLoader<2> loader(std::int64_t n = 40, std::int64_t batch = 10) {
  auto [X, y] = seed_data(n);
  return L::data::TensorLoader({X, y}, {.batch_size = batch});
}

// Records, at each save (before the new file is written), the files present then.
struct Watcher {
  fs::path dir;
  std::vector<std::set<std::string>>* seen;
  template <class T, class M>
  void on_save_checkpoint(T&, M&, L::CheckpointDict&) {
    std::set<std::string> now;
    // Committed files only: the previous save may still be written in the background.
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().find(".lightning-tmp-") == std::string::npos)
        now.insert(e.path().filename().string());
    seen->push_back(now);
  }
};

L::TrainerOptions quiet(std::int64_t epochs) {
  return {.max_epochs = epochs,
          .num_sanity_val_steps = 0,
          .enable_progress_bar = false,
          .enable_model_summary = false};
}

}  // namespace

TEST(CheckpointName, FormatsLightningTemplates) {
  const L::MetricMap m{{"val_loss", 0.1234}, {"acc", 0.5}, {"one", 1.0}};
  using L::callbacks::format_checkpoint_name;
  EXPECT_EQ(format_checkpoint_name("{epoch}-{val_loss:.2f}", m, 3, 40), "epoch=3-val_loss=0.12");
  EXPECT_EQ(format_checkpoint_name("", m, 3, 40), "epoch=3-step=40");
  EXPECT_EQ(format_checkpoint_name("run_{epoch:02d}", m, 3, 40, false), "run_03");
  EXPECT_EQ(format_checkpoint_name("{acc}-{one}", m, 0, 0), "acc=0.5-one=1.0");
  // Python's str(float) at the edges of its positional range (this printed "1e-04" and
  // "2.5e+15" before the formatter was shared with the loggers).
  const L::MetricMap edges{{"small", 0.0001}, {"large", 2.5e15}, {"tiny", 1e-5}};
  EXPECT_EQ(format_checkpoint_name("{small}-{large}-{tiny}", edges, 0, 0),
            "small=0.0001-large=2500000000000000.0-tiny=1e-05");
  EXPECT_EQ(format_checkpoint_name("{missing}", m, 0, 0), "missing=0");
  EXPECT_EQ(format_checkpoint_name("{acc:.1%}", m, 0, 0), "acc=50.0%");
  EXPECT_EQ(format_checkpoint_name("{val_loss:+.3e}", m, 0, 0), "val_loss=+1.234e-01");
  expect_invalid_argument([&] { (void)format_checkpoint_name("{val_loss:d}", m, 0, 0); },
                          "{val_loss:d}");
  expect_invalid_argument([&] { (void)format_checkpoint_name("{epoch", m, 0, 0); }, "never closed");
}

TEST(ModelCheckpoint, RejectsBadOptionsByName) {
  using L::callbacks::ModelCheckpoint;
  expect_invalid_argument([] { ModelCheckpoint({.save_top_k = -2}); }, "save_top_k = -2");
  expect_invalid_argument([] { ModelCheckpoint({.save_top_k = 3}); }, "needs a monitor");
  expect_invalid_argument([] { ModelCheckpoint({.every_n_train_steps = 5, .every_n_epochs = 2}); },
                          "mutually exclusive");
  expect_invalid_argument([] { ModelCheckpoint({.every_n_epochs = -1}); }, "every_n_epochs = -1");
}

TEST(ModelCheckpoint, KeepsTheTopKAndDeletesOnlyAfterTheNewFileIsCommitted) {
  TempDir dir("topk");
  std::vector<std::set<std::string>> seen;
  ScriptedModel model;
  model.val_losses = {0.5, 0.3, 0.4, 0.1, 0.6};
  auto train = loader();
  auto val = loader(20);
  CpuTrainer<Watcher, L::callbacks::ModelCheckpoint> trainer(
      quiet(5), Watcher{dir.path, &seen},
      L::callbacks::ModelCheckpoint({.dirpath = dir.path,
                                     .filename = "{epoch}-{val_loss:.2f}",
                                     .monitor = "val_loss",
                                     .save_top_k = 2}));
  trainer.fit(model, train, val);
  EXPECT_EQ(dir.files(),
            (std::set<std::string>{"epoch=1-val_loss=0.30.ckpt", "epoch=3-val_loss=0.10.ckpt"}));
  const auto& cb = trainer.callback<L::callbacks::ModelCheckpoint>();
  EXPECT_EQ(fs::path(cb.best_model_path()).filename(), "epoch=3-val_loss=0.10.ckpt");
  ASSERT_TRUE(cb.best_model_score());
  EXPECT_DOUBLE_EQ(*cb.best_model_score(), 0.1);
  EXPECT_EQ(fs::path(cb.kth_best_model_path()).filename(), "epoch=1-val_loss=0.30.ckpt");
  // Epoch 2 (0.4) entered the top 2 over epoch 0's 0.5: 0.5's file was still there while
  // 0.4's was being saved; epoch 4 (0.6) was never saved.
  // (Epoch 1's file may still be in flight then: saves are written in the background.)
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_TRUE(seen[2].contains("epoch=0-val_loss=0.50.ckpt"));
  for (const auto& name : dir.files()) {
    const auto c = L::load_checkpoint_file(dir.path / name);
    EXPECT_EQ(c.at("epoch").toInt(), name[6] - '0') << name;
  }
}

TEST(ModelCheckpoint, SaveTopKAllNoneAndLast) {
  TempDir all("all"), none("none");
  ScriptedModel model;
  model.val_losses = {0.5, 0.3, 0.4};
  auto train = loader();
  auto val = loader(20);
  CpuTrainer<L::callbacks::ModelCheckpoint> keep_all(
      quiet(3), L::callbacks::ModelCheckpoint({.dirpath = all.path, .save_top_k = -1}));
  keep_all.fit(model, train, val);
  EXPECT_EQ(all.files(), (std::set<std::string>{"epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt",
                                                "epoch=2-step=12.ckpt"}));
  CpuTrainer<L::callbacks::ModelCheckpoint> only_last(
      quiet(3),
      L::callbacks::ModelCheckpoint({.dirpath = none.path, .save_last = true, .save_top_k = 0}));
  only_last.fit(model, train, val);
  EXPECT_EQ(none.files(), (std::set<std::string>{"last.ckpt"}));
  EXPECT_EQ(L::load_checkpoint_file(none.path / "last.ckpt").at("global_step").toInt(), 12);
  EXPECT_EQ(only_last.callback<L::callbacks::ModelCheckpoint>().last_model_path(),
            (none.path / "last.ckpt").string());
}

TEST(ModelCheckpoint, EveryNTrainStepsAndEveryNEpochs) {
  TempDir steps("steps"), epochs("epochs");
  SimpleModel model;
  auto train = loader(100);  // 10 batches per epoch
  CpuTrainer<L::callbacks::ModelCheckpoint> by_steps(
      quiet(1), L::callbacks::ModelCheckpoint(
                    {.dirpath = steps.path, .save_top_k = -1, .every_n_train_steps = 3}));
  by_steps.fit(model, train);
  EXPECT_EQ(steps.files(), (std::set<std::string>{"epoch=0-step=3.ckpt", "epoch=0-step=6.ckpt",
                                                  "epoch=0-step=9.ckpt"}));
  for (const auto& name : steps.files())
    EXPECT_TRUE(L::checkpoint_dict(L::load_checkpoint_file(steps.path / name).at("loops"))
                    .at("mid_epoch")
                    .toBool());
  CpuTrainer<L::callbacks::ModelCheckpoint> by_epochs(
      quiet(5), L::callbacks::ModelCheckpoint(
                    {.dirpath = epochs.path, .save_top_k = -1, .every_n_epochs = 2}));
  by_epochs.fit(model, train);
  EXPECT_EQ(epochs.files(),
            (std::set<std::string>{"epoch=1-step=20.ckpt", "epoch=3-step=40.ckpt"}));
}

TEST(ModelCheckpoint, MissingMonitorAfterValidationIsAnErrorNamingIt) {
  TempDir dir("missing");
  ScriptedModel model;
  model.val_losses = {0.5};
  auto train = loader();
  auto val = loader(20);
  CpuTrainer<L::callbacks::ModelCheckpoint> trainer(
      quiet(1), L::callbacks::ModelCheckpoint({.dirpath = dir.path, .monitor = "val_acc"}));
  try {
    trainer.fit(model, train, val);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("monitor = \"val_acc\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("val_loss"), std::string::npos) << e.what();
  }
}

TEST(ModelCheckpoint, WeightsOnlyFilesLoadForEvaluationButCannotResume) {
  TempDir dir("weights");
  SimpleModel model;
  auto train = loader();
  CpuTrainer<L::callbacks::ModelCheckpoint> trainer(
      quiet(1), L::callbacks::ModelCheckpoint({.dirpath = dir.path, .save_weights_only = true}));
  trainer.fit(model, train);
  const auto path = dir.path / "epoch=0-step=4.ckpt";
  const auto c = L::load_checkpoint_file(path);
  EXPECT_TRUE(c.contains("state_dict"));
  EXPECT_FALSE(c.contains("optimizer_states"));
  EXPECT_FALSE(c.contains("callbacks"));
  CpuTrainer<> again(quiet(2));
  SimpleModel other;
  try {
    again.fit(other, train, L::CheckpointPath{path});
    FAIL() << "expected a CheckpointError";
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("only the module's weights"), std::string::npos);
  }
}

TEST(ModelCheckpoint, StateSurvivesAResumeAndBestAndLastResolve) {
  TempDir dir("resume");
  ScriptedModel model;
  model.val_losses = {0.5, 0.2, 0.4, 0.3};
  auto train = loader();
  auto val = loader(20);
  const L::callbacks::ModelCheckpointOptions options{
      .dirpath = dir.path, .monitor = "val_loss", .save_last = true, .save_top_k = 2};
  {
    CpuTrainer<L::callbacks::ModelCheckpoint> first(quiet(2),
                                                    L::callbacks::ModelCheckpoint(options));
    first.fit(model, train, val);
  }
  CpuTrainer<L::callbacks::ModelCheckpoint> second(quiet(4),
                                                   L::callbacks::ModelCheckpoint(options));
  second.fit(model, train, val, L::CheckpointPath{"last"});
  ASSERT_TRUE(second.ckpt_path());
  EXPECT_EQ(second.ckpt_path()->filename(), "last.ckpt");
  EXPECT_EQ(second.global_step, 16);  // resumed at epoch 2: two more epochs of 4 steps
  const auto& cb = second.callback<L::callbacks::ModelCheckpoint>();
  // The ranking carried over: epoch 1's 0.2 stays best, epoch 3's 0.3 joined, 0.5 and 0.4 went.
  EXPECT_EQ(fs::path(cb.best_model_path()).filename(), "epoch=1-step=8.ckpt");
  EXPECT_EQ(dir.files(),
            (std::set<std::string>{"epoch=1-step=8.ckpt", "epoch=3-step=16.ckpt", "last.ckpt"}));
  // validate(ckpt_path = "best") runs with the best file's weights.
  auto results = second.validate(model, val, L::CheckpointPath{"best"});
  EXPECT_EQ(second.ckpt_path()->filename(), "epoch=1-step=8.ckpt");
  const auto best = L::checkpoint_dict<at::Tensor>(
      L::load_checkpoint_file(cb.best_model_path()).at("state_dict"));
  EXPECT_TRUE(torch::equal(model.linear->weight, best.at("linear.weight")));
  EXPECT_EQ(results.size(), 1u);
}

TEST(ModelCheckpoint, BestWithoutACheckpointCallbackIsAClearError) {
  auto val = loader(20);
  CpuTrainer<> trainer({.enable_checkpointing = false});
  ScriptedModel m;
  m.val_losses = {0.5};
  expect_invalid_argument([&] { trainer.validate(m, val, L::CheckpointPath{"best"}); },
                          "ckpt_path = \"best\"");
}

// As Lightning: under the default logger's version directory
// (default_root_dir/lightning_logs/version_0/checkpoints), or default_root_dir/checkpoints
// without a logger; nothing when checkpointing is off.
TEST(DefaultCheckpointing, SavesTheLastEpochUnderTheLogDirUnlessDisabled) {
  TempDir dir("default");
  SimpleModel model;
  auto train = loader();
  CpuTrainer<> trainer({.max_epochs = 3,
                        .enable_progress_bar = false,
                        .enable_model_summary = false,
                        .default_root_dir = dir.path});
  trainer.fit(model, train);
  EXPECT_EQ(trainer.log_dir(), dir.path / "lightning_logs" / "version_0");
  EXPECT_EQ(dir.files("lightning_logs/version_0/checkpoints"),
            (std::set<std::string>{"epoch=2-step=12.ckpt"}));

  TempDir bare("no_logger");
  CpuTrainer<> no_logger({.max_epochs = 3,
                          .enable_progress_bar = false,
                          .enable_model_summary = false,
                          .logger = false,
                          .default_root_dir = bare.path});
  no_logger.fit(model, train);
  EXPECT_EQ(bare.files("checkpoints"), (std::set<std::string>{"epoch=2-step=12.ckpt"}));

  TempDir off("off");
  CpuTrainer<> disabled({.max_epochs = 1,
                         .enable_progress_bar = false,
                         .enable_checkpointing = false,
                         .enable_model_summary = false,
                         .logger = false,
                         .default_root_dir = off.path});
  disabled.fit(model, train);
  EXPECT_TRUE(off.files().empty());

  expect_invalid_argument(
      [] {
        CpuTrainer<L::callbacks::ModelCheckpoint> both({.enable_checkpointing = false},
                                                       L::callbacks::ModelCheckpoint());
      },
      "enable_checkpointing = false");
}

// A module that fails once, in epoch 1 at batch 2, when asked to.
struct FailingModel : L::LightningModule {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(10, 8))};
  torch::nn::Dropout drop{register_module("drop", torch::nn::Dropout(0.2))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(8, 1))};
  bool fail = false;
  torch::Tensor training_step(const XY& batch, std::int64_t batch_idx) {
    if (fail && current_epoch() == 1 && batch_idx == 2) throw std::runtime_error("node lost");
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(fc2(drop(torch::relu(fc1(x)))), y.unsqueeze(1));
    log("train_loss", loss, {.on_epoch = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-2); }
};

TEST(OnExceptionCheckpoint, SavesWhereFitFailedAndTheResumeIsExact) {
  TempDir dir("exception");
  const auto run = [&](bool fail, std::optional<fs::path> from) {
    torch::manual_seed(3);
    FailingModel model;
    model.fail = fail;
    auto [X, y] = seed_data(60);
    L::data::TensorLoader train({X, y}, {.batch_size = 10, .shuffle = true});
    std::vector<lightning::testing::RecordingLogger::Row> rows;
    CpuTrainer<L::callbacks::OnExceptionCheckpoint, lightning::testing::RecordingLogger> trainer(
        {.max_epochs = 3,
         .log_every_n_steps = 1,
         .enable_progress_bar = false,
         .enable_checkpointing = false,
         .enable_model_summary = false,
         .seed = 11,
         .deterministic = true},
        L::callbacks::OnExceptionCheckpoint({.dirpath = dir.path}),
        lightning::testing::RecordingLogger{&rows});
    if (from)
      trainer.fit(model, train, L::CheckpointPath{*from});
    else
      trainer.fit(model, train);
    return std::pair{flat_parameters(model), rows};
  };
  const auto [straight, straight_rows] = run(false, std::nullopt);
  EXPECT_THROW(run(true, std::nullopt), std::runtime_error);
  const auto saved = dir.path / "on_exception.ckpt";
  ASSERT_TRUE(fs::exists(saved));
  const auto loops = L::checkpoint_dict(L::load_checkpoint_file(saved).at("loops"));
  EXPECT_TRUE(loops.at("mid_epoch").toBool());
  EXPECT_EQ(loops.at("epoch_batch_idx").toInt(), 2);  // batches 0 and 1 of epoch 1 done
  const auto [resumed, resumed_rows] = run(false, saved);
  EXPECT_TRUE(torch::equal(straight, resumed));
  // The resumed run logged exactly what the straight run logged from batch 2 of epoch 1 on,
  // the epoch mean of epoch 1 included (its accumulator was in the checkpoint).
  ASSERT_GE(straight_rows.size(), resumed_rows.size());
  const auto offset = straight_rows.size() - resumed_rows.size();
  for (std::size_t i = 0; i < resumed_rows.size(); ++i) {
    EXPECT_EQ(resumed_rows[i].step, straight_rows[offset + i].step);
    EXPECT_EQ(resumed_rows[i].metrics, straight_rows[offset + i].metrics) << "row " << i;
  }
  EXPECT_FALSE(fs::exists(saved));  // a run that ended well removed it
}
