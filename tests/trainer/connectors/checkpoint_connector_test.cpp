// trainer.save_checkpoint and fit(..., CheckpointPath): training N epochs straight, and
// K epochs, a checkpoint, then a resume to N, give bitwise-identical parameters and the
// same logged losses (CPU, seeded, deterministic).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"
#include "support/policies.hpp"
#include "support/python.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
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
  EXPECT_EQ(c.at("global_step").toInt(), 7);                // 200 examples, batch 32
  EXPECT_EQ(c.at("optimizer_states").toList().size(), 1u);  // Lightning's lists
  EXPECT_EQ(c.at("lr_schedulers").toList().size(), 2u);
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

namespace {

// Trains DropoutModel for 5 epochs (7 batches each) saving every 10 steps, or resumes.
Outcome train_with_step_checkpoints(bool seeded_loader, const std::filesystem::path& dir,
                                    const std::filesystem::path& resume_from = {}) {
  auto [X, y] = seed_data(200);
  torch::manual_seed(resume_from.empty() ? 1 : 99);
  DropoutModel model;
  Outcome run;
  CpuTrainer<RecordingLogger, L::callbacks::ModelCheckpoint> trainer(
      {.max_epochs = 5,
       .log_every_n_steps = 1,
       .enable_progress_bar = false,
       .enable_model_summary = false,
       .seed = 7,
       .deterministic = true},
      RecordingLogger{&run.rows},
      L::callbacks::ModelCheckpoint({.dirpath = dir, .save_top_k = -1, .every_n_train_steps = 10}));
  L::data::TensorLoader loader(
      {X, y}, {.batch_size = 32,
               .shuffle = true,
               .seed = seeded_loader ? std::optional<std::uint64_t>(5) : std::nullopt});
  if (resume_from.empty())
    trainer.fit(model, loader);
  else
    trainer.fit(model, loader, L::CheckpointPath{resume_from});
  run.params = flat_parameters(model).clone();
  return run;
}

}  // namespace

TEST_P(Resume, FromAMidEpochStepCheckpointIsBitwiseTheSame) {
  const bool seeded_loader = GetParam();
  const auto dir = temp_file(seeded_loader ? "steps_seeded" : "steps_global");
  std::filesystem::remove_all(dir);
  const Outcome straight = train_with_step_checkpoints(seeded_loader, dir);
  const auto ckpt = dir / "epoch=1-step=10.ckpt";  // batch 2 of epoch 1 (7 batches an epoch)
  ASSERT_TRUE(std::filesystem::exists(ckpt));
  const auto loops = L::checkpoint_dict(
      L::checkpoint_dict(L::load_checkpoint_file(ckpt).at("loops")).at("lightning_cpp"));
  ASSERT_TRUE(loops.at("mid_epoch").toBool());
  EXPECT_EQ(loops.at("epoch_batch_idx").toInt(), 3);
  const Outcome resumed = train_with_step_checkpoints(seeded_loader, dir, ckpt);
  EXPECT_TRUE(torch::equal(resumed.params, straight.params));
  // What the resumed run logged is what the straight run logged from step 10 on.
  ASSERT_LT(resumed.rows.size(), straight.rows.size());
  const auto offset = straight.rows.size() - resumed.rows.size();
  EXPECT_EQ(resumed.rows.front().step, 10);
  for (std::size_t i = 0; i < resumed.rows.size(); ++i) {
    EXPECT_EQ(resumed.rows[i].step, straight.rows[offset + i].step) << "row " << i;
    EXPECT_EQ(resumed.rows[i].metrics, straight.rows[offset + i].metrics) << "row " << i;
  }
  std::filesystem::remove_all(dir);
}

namespace {

// Keeps a count in checkpoints, and watches the checkpoint hooks.
struct CountingCallback {
  std::int64_t batches = 0;
  std::vector<std::string>* events;
  template <class T, class M, class O, class B>
  void on_train_batch_end(T&, M&, const O&, const B&, std::int64_t) {
    ++batches;
  }
  [[nodiscard]] std::string state_key() const { return "CountingCallback"; }
  [[nodiscard]] L::CheckpointDict state_dict() const {
    L::CheckpointDict s = L::make_checkpoint();
    s.insert("batches", batches);
    return s;
  }
  void load_state_dict(const L::CheckpointDict& s) {
    batches = s.at("batches").toInt();
    events->push_back("callback.load_state_dict");
  }
  template <class T, class M>
  void on_save_checkpoint(T&, M&, L::CheckpointDict& c) {
    c.insert("extra", std::string("from the callback"));
    events->push_back("callback.on_save_checkpoint");
  }
  template <class T, class M>
  void on_load_checkpoint(T&, M&, const L::CheckpointDict& c) {
    events->push_back("callback.on_load_checkpoint:" + c.at("extra").toStringRef());
  }
};

struct HParamsModel : lightning::testing::SimpleModel {
  std::vector<std::string>* events = nullptr;
  HParamsModel(double lr, std::int64_t hidden) {
    save_hyperparameters({{"lr", lr}, {"hidden", hidden}, {"optimizer", "adam"}, {"bn", false}});
  }
  void on_save_checkpoint(L::CheckpointDict& c) {
    c.insert("module_note", std::int64_t{42});
    events->push_back("module.on_save_checkpoint");
  }
  void on_load_checkpoint(const L::CheckpointDict& c) {
    events->push_back("module.on_load_checkpoint:" + std::to_string(c.at("module_note").toInt()));
  }
};

struct HParamsLogger {
  std::vector<L::HParams>* seen;
  void log_metrics(const L::MetricMap&, std::int64_t) {}
  void log_hyperparams(const L::HParams& h) { seen->push_back(h); }
};

}  // namespace

TEST(Checkpoint, CallbackStatesHooksAndHyperparametersRoundTrip) {
  const auto path = temp_file("states.ckpt");
  std::vector<std::string> events;
  std::vector<L::HParams> logged;
  auto [X, y] = seed_data(64);
  L::data::TensorLoader loader({X, y}, {.batch_size = 16});
  {
    HParamsModel model(0.01, 32);
    model.events = &events;
    CpuTrainer<CountingCallback, HParamsLogger> trainer(
        {.max_epochs = 2, .enable_progress_bar = false, .enable_checkpointing = false},
        CountingCallback{0, &events}, HParamsLogger{&logged});
    trainer.fit(model, loader);
    trainer.save_checkpoint(path);
  }
  EXPECT_EQ(events,
            (std::vector<std::string>{"callback.on_save_checkpoint", "module.on_save_checkpoint"}));
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0],
            (L::HParams{{"lr", 0.01}, {"hidden", 32}, {"optimizer", "adam"}, {"bn", false}}));
  const auto c = L::load_checkpoint_file(path);
  EXPECT_EQ(c.at("extra").toStringRef(), "from the callback");
  const auto states = L::checkpoint_dict(c.at("callbacks"));
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(L::checkpoint_dict(states.begin()->value()).at("batches").toInt(), 8);
  // Hyperparameters come back from the file, and a resume restores them into the module.
  const auto hp = L::load_hyperparameters(path);
  EXPECT_EQ(hp.find("hidden")->get<std::int64_t>(), 32);
  EXPECT_EQ(hp.find("optimizer")->get<std::string>(), "adam");

  events.clear();
  logged.clear();
  HParamsModel resumed(0.5, 32);  // other hyperparameters: the checkpoint's win
  resumed.events = &events;
  CpuTrainer<CountingCallback, HParamsLogger> again(
      {.max_epochs = 3, .enable_progress_bar = false, .enable_checkpointing = false},
      CountingCallback{0, &events}, HParamsLogger{&logged});
  again.fit(resumed, loader, L::CheckpointPath{path});
  EXPECT_EQ(events, (std::vector<std::string>{"module.on_load_checkpoint:42",
                                              "callback.on_load_checkpoint:from the callback",
                                              "callback.load_state_dict"}));
  EXPECT_EQ(again.callback<CountingCallback>().batches, 12);  // 8 restored + 4 of epoch 2
  EXPECT_DOUBLE_EQ(resumed.hparams().find("lr")->get<double>(), 0.01);
  ASSERT_EQ(logged.size(), 1u);  // the loggers get the restored values
  EXPECT_DOUBLE_EQ(logged[0].find("lr")->get<double>(), 0.01);
  std::filesystem::remove(path);
}

using lightning::testing::NotRankZero;

TEST(Checkpoint, OnlyRankZeroWritesLogsAndCheckpoints) {
  const auto dir = temp_file("rank1");
  std::filesystem::remove_all(dir);
  std::vector<RecordingLogger::Row> rows;
  lightning::testing::SimpleModel model;
  auto [X, y] = seed_data(64);
  L::Trainer<L::accelerators::CPU, NotRankZero, L::precision::F32, RecordingLogger> trainer(
      {.max_epochs = 2,
       .log_every_n_steps = 1,
       .enable_progress_bar = false,
       .default_root_dir = dir},
      RecordingLogger{&rows});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 16}));
  trainer.save_checkpoint(dir / "explicit.ckpt");
  EXPECT_TRUE(rows.empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "explicit.ckpt"));
  EXPECT_FALSE(std::filesystem::exists(dir / "checkpoints"));
}

namespace {
struct CheckpointEvalModel : lightning::testing::SimpleModel {
  void test_step(const XY& b, std::int64_t) {
    log("test_loss", torch::mse_loss(forward(std::get<0>(b)), std::get<1>(b).unsqueeze(1)));
  }
  torch::Tensor predict_step(const XY& b, std::int64_t) { return forward(std::get<0>(b)); }
};
}  // namespace

TEST(Checkpoint, TestAndPredictLoadTheWeightsOfACheckpointPath) {
  const auto path = temp_file("eval.ckpt");
  auto [X, y] = seed_data(64);
  L::data::TensorLoader loader({X, y}, {.batch_size = 16});
  const L::TrainerOptions options{.max_epochs = 2,
                                  .enable_progress_bar = false,
                                  .enable_checkpointing = false,
                                  .enable_model_summary = false};
  CheckpointEvalModel trained;
  CpuTrainer<> t(options);
  t.fit(trained, loader);
  t.save_checkpoint(path);
  CheckpointEvalModel tested, predicted;  // freshly initialised: other weights
  ASSERT_FALSE(torch::equal(tested.linear->weight, trained.linear->weight));
  (void)t.test(tested, loader, L::CheckpointPath{path});
  EXPECT_TRUE(torch::equal(tested.linear->weight, trained.linear->weight));
  ASSERT_TRUE(t.ckpt_path());
  EXPECT_EQ(*t.ckpt_path(), path);
  const auto predictions = t.predict(predicted, loader, L::CheckpointPath{path});
  EXPECT_TRUE(torch::equal(predicted.linear->weight, trained.linear->weight));
  ASSERT_EQ(predictions.size(), 4u);
  EXPECT_TRUE(torch::equal(predictions[0], trained.forward(X.narrow(0, 0, 16))));
  (void)t.test(tested, loader);  // without a path, nothing is loaded
  EXPECT_FALSE(t.ckpt_path());
  std::filesystem::remove(path);
}

// Real PyTorch Lightning reads what lightning-cpp writes: torch.load with torch 2.x's
// default weights_only=True loads every kind of checkpoint (regular, weights-only,
// mid-epoch), and LightningModule.load_from_checkpoint, on a module defined the same way in
// Python (tests/python/lightning_checkpoint.py: Linear(10, 1) as "linear"), predicts what
// the trained module predicts.
TEST(Checkpoint, LightningLoadsOurCheckpointsAndPredictsTheSame) {
  namespace fs = std::filesystem;
  using lightning::testing::peer_script;
  using lightning::testing::run_python;
  auto [X, y] = seed_data(128);  // 4 batches of 32 per epoch
  torch::manual_seed(3);
  lightning::testing::SimpleModel model;  // Linear(10, 1) registered as "linear"
  CpuTrainer<L::callbacks::ModelCheckpoint> trainer(
      {.max_epochs = 2, .enable_progress_bar = false, .enable_model_summary = false},
      L::callbacks::ModelCheckpoint(
          {.dirpath = fs::path("steps"), .save_top_k = -1, .every_n_train_steps = 3}));
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  trainer.save_checkpoint("regular.ckpt");
  trainer.save_checkpoint("weights.ckpt", /*weights_only=*/true);

  std::vector<std::string> files = {"regular.ckpt", "weights.ckpt"};
  bool mid_epoch = false;
  for (const auto& entry : fs::directory_iterator("steps")) {
    files.push_back(entry.path().string());
    mid_epoch |=
        L::checkpoint_dict(L::checkpoint_dict(L::load_checkpoint_file(entry.path()).at("loops"))
                               .at("lightning_cpp"))
            .at("mid_epoch")
            .toBool();
  }
  ASSERT_TRUE(mid_epoch) << "no step checkpoint was saved inside an epoch";
  ASSERT_EQ(files.size(), 4u);  // regular, weights-only, steps 3 and 6

  // One line "ok <path> <sorted keys>" per file.
  const auto loaded = run_python({peer_script("lightning_checkpoint.py"), "load-weights-only",
                                  files[0], files[1], files[2], files[3]});
  LIGHTNING_EXPECT_PYTHON_OK(loaded);
  const auto lines = lightning::testing::lines_of(loaded.output);
  ASSERT_EQ(lines.size(), 4u) << loaded.output;
  for (const auto& line : lines) {
    EXPECT_TRUE(line.starts_with("ok ")) << line;
    EXPECT_NE(line.find("pytorch-lightning_version"), std::string::npos) << line;
    EXPECT_NE(line.find("state_dict"), std::string::npos) << line;
  }

  const auto inputs = torch::randn({16, 10});
  torch::save(inputs, "inputs.pt");
  const auto predicted = run_python({peer_script("lightning_checkpoint.py"), "predict",
                                     "regular.ckpt", "inputs.pt", "outputs.txt"});
  LIGHTNING_EXPECT_PYTHON_OK(predicted);
  // outputs.txt: the shape on the first line, then one value per line (Python's repr).
  std::ifstream out("outputs.txt");
  std::int64_t rows = 0, cols = 0;
  out >> rows >> cols;
  ASSERT_EQ(rows, 16);
  ASSERT_EQ(cols, 1);
  std::vector<float> values(16);
  for (auto& v : values) out >> v;
  ASSERT_TRUE(out) << "outputs.txt is shorter than its shape";
  torch::NoGradGuard no_grad;
  model.eval();
  const auto expected = model.forward(inputs).contiguous();
  EXPECT_TRUE(torch::allclose(torch::from_blob(values.data(), {16, 1}), expected, 1e-6, 1e-6))
      << "Lightning: " << torch::from_blob(values.data(), {16, 1})
      << "\nlightning-cpp: " << expected;
}
