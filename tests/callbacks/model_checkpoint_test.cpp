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
#include <fstream>
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
    EXPECT_TRUE(L::checkpoint_dict(
                    L::checkpoint_dict(L::load_checkpoint_file(steps.path / name).at("loops"))
                        .at("lightning_cpp"))
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
  const auto loops = L::checkpoint_dict(
      L::checkpoint_dict(L::load_checkpoint_file(saved).at("loops")).at("lightning_cpp"));
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

namespace {
// A checkpoint slow to write (a 32 MB buffer), and a score that improves at every step:
// -(global step when training_step ran), so the file saved after step s holds global_step
// s + 1 and the score -s.
struct SlowToSaveModel : SimpleModel {
  torch::Tensor padding = register_buffer("padding", torch::zeros({8 << 20}));
  torch::Tensor training_step(const XY& batch, std::int64_t idx) {
    log("score", -static_cast<double>(global_step()));
    return SimpleModel::training_step(batch, idx);
  }
};

// Validation logs "val/loss" (a metric name with a '/'), falling each epoch.
struct SlashMetricModel : SimpleModel {
  void validation_step(const XY&, std::int64_t) {
    log("val/loss", 1.0 / static_cast<double>(current_epoch() + 1));
  }
};

// The names ModelCheckpoint keeps, as the next step starts (after the previous step's save).
struct KeptNames {
  std::vector<std::vector<std::string>>* seen;
  template <class T, class M, class B>
  void on_train_batch_start(T& trainer, M&, const B&, std::int64_t) {
    std::vector<std::string> names;
    for (const auto& kept :
         trainer.template callback<L::callbacks::ModelCheckpoint>().best_k_models())
      names.push_back(kept.first);
    seen->push_back(std::move(names));
  }
};

std::size_t checkpoints_under(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().extension() == ".ckpt") ++n;
  return n;
}
}  // namespace

// A name whose previous save is still being written is taken: the version counter gives
// the next save "best-v1.ckpt" as Lightning's synchronous saves would, never the same
// file twice (which would make best_model_path name later, worse weights).
TEST(ModelCheckpoint, TheVersionCounterCountsSavesStillInFlight) {
  TempDir dir("inflight");
  SlowToSaveModel model;
  std::vector<std::vector<std::string>> kept;
  CpuTrainer<KeptNames, L::callbacks::ModelCheckpoint> trainer(
      quiet(1), KeptNames{&kept},
      L::callbacks::ModelCheckpoint({.dirpath = dir.path,
                                     .filename = "best",
                                     .monitor = "score",
                                     .save_top_k = 2,
                                     .every_n_train_steps = 1}));
  trainer.fit(model, loader(60));  // 6 steps, 6 saves
  // At every step, while the previous save may still be written, no two kept entries
  // share a file (before the fix, the second save reused "best.ckpt").
  ASSERT_EQ(kept.size(), 6u);
  for (std::size_t step = 0; step < kept.size(); ++step)
    EXPECT_EQ(std::set<std::string>(kept[step].begin(), kept[step].end()).size(), kept[step].size())
        << "step " << step;
  const auto& cb = trainer.callback<L::callbacks::ModelCheckpoint>();
  ASSERT_EQ(cb.best_k_models().size(), 2u);
  EXPECT_NE(cb.best_k_models()[0].first, cb.best_k_models()[1].first);
  EXPECT_EQ(dir.files(), (std::set<std::string>{"best.ckpt", "best-v1.ckpt"}));
  for (const auto& [path, score] : cb.best_k_models())
    EXPECT_EQ(L::load_checkpoint_file(path).at("global_step").toInt(),
              static_cast<std::int64_t>(-score) + 1)
        << path;
  EXPECT_DOUBLE_EQ(*cb.best_model_score(), -5.0);
  EXPECT_EQ(L::load_checkpoint_file(cb.best_model_path()).at("global_step").toInt(), 6);
}

// A metric named "val/loss" puts files in subfolders of dirpath ("epoch=0-val/..."), as in
// Lightning; those that fall out of the top k are deleted like any other.
TEST(ModelCheckpoint, TopKDeletesFilesInSubfoldersOfDirpath) {
  TempDir dir("subfolders");
  SlashMetricModel model;
  auto train = loader();
  auto val = loader(20);
  CpuTrainer<L::callbacks::ModelCheckpoint> trainer(
      quiet(3), L::callbacks::ModelCheckpoint({.dirpath = dir.path,
                                               .filename = "{epoch}-{val/loss:.2f}",
                                               .monitor = "val/loss",
                                               .save_top_k = 1}));
  trainer.fit(model, train, val);
  EXPECT_EQ(checkpoints_under(dir.path), 1u);
  EXPECT_EQ(trainer.callback<L::callbacks::ModelCheckpoint>().best_model_path(),
            (dir.path / "epoch=2-val" / "loss=0.33.ckpt").string());
  EXPECT_TRUE(fs::exists(dir.path / "epoch=2-val" / "loss=0.33.ckpt"));
}

// A name made from the template and the metric names never leaves dirpath: an absolute
// template or a ".." that climbs out is an error naming the option, and nothing is
// written outside.
TEST(ModelCheckpoint, ACheckpointNameCannotLeaveDirpath) {
  TempDir dir("escape");
  const auto inside = dir.path / "ckpts";
  L::callbacks::ModelCheckpoint climbing({.dirpath = inside, .filename = "../{epoch}"});
  L::callbacks::ModelCheckpoint absolute({.dirpath = inside, .filename = "/tmp/x-{epoch}"});
  L::callbacks::ModelCheckpoint by_metric({.dirpath = inside, .filename = "{a/../../../b}"});
  const L::MetricMap m{{"a/../../../b", 1.0}};
  for (const auto* cb : {&climbing, &absolute, &by_metric})
    expect_invalid_argument([&] { (void)cb->format_checkpoint_name(m, 0, 0); },
                            "leaves the checkpoint directory");
  // Subfolders stay allowed, and a ".." that stays inside is harmless.
  L::callbacks::ModelCheckpoint sub({.dirpath = inside, .filename = "run/x/../{epoch}"});
  (void)sub.format_checkpoint_name(m, 0, 0);

  SimpleModel model;
  CpuTrainer<L::callbacks::ModelCheckpoint> trainer(
      quiet(1), L::callbacks::ModelCheckpoint({.dirpath = inside, .filename = "../{epoch}"}));
  expect_invalid_argument([&] { trainer.fit(model, loader()); }, "ModelCheckpointOptions.filename");
  EXPECT_FALSE(fs::exists(dir.path / "epoch=0.ckpt"));
}

// Where the run's folders should be, a file (or a file among their parents) is an error
// naming the option, the path and the fix, raised when fit starts; the checkpoints of an
// earlier run stay as they were.
TEST(ModelCheckpoint, AFileWhereARunsFolderShouldBeIsAClearError) {
  TempDir dir("file_in_the_way");
  SimpleModel model;
  CpuTrainer<L::callbacks::ModelCheckpoint> first(
      quiet(1), L::callbacks::ModelCheckpoint({.dirpath = dir.path / "ckpts"}));
  first.fit(model, loader());
  const auto kept = first.callback<L::callbacks::ModelCheckpoint>().best_model_path();
  std::ofstream(dir.path / "a_file") << "not a directory\n";
  const auto expect_misconfigured = [&](auto&& fit, const std::vector<std::string>& parts) {
    try {
      fit();
      ADD_FAILURE() << "expected MisconfigurationError";
    } catch (const L::MisconfigurationError& e) {
      for (const auto& part : parts)
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  const auto file = (dir.path / "a_file").string();
  for (const auto& root : {dir.path / "a_file", dir.path / "a_file" / "sub"}) {
    CpuTrainer<> trainer({.enable_progress_bar = false, .default_root_dir = root});
    expect_misconfigured([&] { trainer.fit(model, loader()); },
                         {"TrainerOptions.default_root_dir = \"" + root.string() + "\"",
                          "a file stands", "set TrainerOptions.default_root_dir"});
  }
  // A directory no process may create (root included: /proc takes no new folders).
  {
    const std::filesystem::path uncreatable = "/proc/lightning-cannot-create-this";
    CpuTrainer<> trainer({.enable_progress_bar = false, .default_root_dir = uncreatable});
    expect_misconfigured([&] { trainer.fit(model, loader()); },
                         {"TrainerOptions.default_root_dir = \"" + uncreatable.string() + "\"",
                          "the directory cannot be created"});
  }
  // The default checkpoint folder (<default_root_dir>/checkpoints without a logger).
  fs::create_directories(dir.path / "root");
  std::ofstream(dir.path / "root" / "checkpoints") << "not a directory\n";
  CpuTrainer<> no_logger(
      {.enable_progress_bar = false, .logger = false, .default_root_dir = dir.path / "root"});
  expect_misconfigured(
      [&] { no_logger.fit(model, loader()); },
      {"the checkpoint directory = \"" + (dir.path / "root" / "checkpoints").string(),
       "a file stands there"});
  CpuTrainer<L::callbacks::ModelCheckpoint> with_dirpath(
      quiet(1), L::callbacks::ModelCheckpoint({.dirpath = dir.path / "a_file" / "ckpts"}));
  expect_misconfigured([&] { with_dirpath.fit(model, loader()); },
                       {"ModelCheckpointOptions.dirpath", "a file stands at " + file});
  EXPECT_NO_THROW((void)L::load_checkpoint_file(kept));
}
