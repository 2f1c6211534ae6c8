// Lightning's debugging and data flags in the fit loop: overfit_batches,
// reload_dataloaders_every_n_epochs (against Lightning 2.6 itself) and barebones.
#include <gtest/gtest.h>

#include <lightning/data/data_loader.hpp>
#include <lightning/lightning.hpp>

#include "support/models.hpp"
#include "support/python.hpp"

#include <array>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace L = lightning;

namespace fit_loop_flags_test {

using lightning::testing::bare;
using lightning::testing::CpuTrainer;
using lightning::testing::seed_data;
using lightning::testing::ValidatedModel;
using lightning::testing::XY;

// Records the first value of every batch it sees, per epoch, in training and validation.
struct BatchRecorder : ValidatedModel {
  std::map<std::int64_t, std::vector<float>> train_firsts, val_firsts;
  torch::Tensor training_step(const XY& batch, std::int64_t idx) {
    const auto& [x, y] = batch;
    train_firsts[current_epoch()].push_back(x[0][0].item<float>());
    return ValidatedModel::training_step(batch, idx);
  }
  void validation_step(const XY& batch, std::int64_t idx) {
    if (!trainer().sanity_checking)
      val_firsts[current_epoch()].push_back(std::get<0>(batch)[0][0].item<float>());
    ValidatedModel::validation_step(batch, idx);
  }
};

std::vector<float> firsts(const torch::Tensor& X, std::int64_t batches, std::int64_t size) {
  std::vector<float> out;
  for (std::int64_t b = 0; b < batches; ++b) out.push_back(X[b * size][0].item<float>());
  return out;
}

// overfit_batches = 2: every epoch trains and validates on the loaders' first two batches,
// in order, though both loaders shuffle; Lightning's two warnings say so. The loaders the
// user passed keep shuffling.
TEST(FitLoopFlags, OverfitBatchesTrainsAndValidatesOnTheSameFirstBatchesInOrder) {
  auto [X, y] = seed_data(64);
  L::data::TensorLoader train({X, y}, {.batch_size = 8, .shuffle = true, .seed = 1});
  L::data::DataLoader val(L::data::TensorDataset(X, y),
                          {.batch_size = 8, .shuffle = true, .seed = 2});
  struct Seen {
    std::map<std::int64_t, std::vector<float>> train, val;
    std::string errors;
  };
  const auto run = [&](L::BatchLimit overfit, L::BatchLimit limit) {
    BatchRecorder model;
    CpuTrainer<> trainer(bare({.max_epochs = 3,
                               .limit_train_batches = limit,
                               .limit_val_batches = limit,
                               .num_sanity_val_steps = 0,
                               .overfit_batches = overfit}));
    ::testing::internal::CaptureStderr();
    trainer.fit(model, train, val);
    return Seen{model.train_firsts, model.val_firsts, ::testing::internal::GetCapturedStderr()};
  };
  for (L::BatchLimit overfit : {L::BatchLimit(2), L::BatchLimit(0.25)}) {
    const auto [seen_train, seen_val, errors] = run(overfit, 1.0);
    const auto expected = firsts(X, 2, 8);
    ASSERT_EQ(seen_train.size(), 3u);
    ASSERT_EQ(seen_val.size(), 3u);
    for (const auto& [epoch, seen] : seen_train) {
      EXPECT_EQ(seen, expected) << "training, epoch " << epoch;
    }
    for (const auto& [epoch, seen] : seen_val) {
      EXPECT_EQ(seen, expected) << "validation, epoch " << epoch;
    }
    EXPECT_NE(errors.find("lightning: warning: You requested to overfit but enabled train "
                          "dataloader shuffling. We are turning off the train dataloader "
                          "shuffling for you."),
              std::string::npos)
        << errors;
    EXPECT_NE(errors.find("enabled val dataloader shuffling. We are turning off the val "),
              std::string::npos)
        << errors;
  }
  EXPECT_TRUE(train.shuffles());
  EXPECT_TRUE(val.shuffles());
  // The control: two batches an epoch by the limits alone are shuffled, other ones each epoch.
  const auto control = run(0.0, 2);
  EXPECT_NE(control.train.at(0), control.train.at(1));
  EXPECT_NE(control.train.at(0), firsts(X, 2, 8));
  EXPECT_EQ(control.errors.find("overfit"), std::string::npos);
}

// A DataModule that records when the Trainer asks for its loaders.
struct CountingDataModule {
  const L::TrainerState* trainer = nullptr;
  std::vector<std::int64_t> train_at, val_at;
  torch::Tensor X = torch::randn({8, 10}), y = torch::randn({8});
  L::data::TensorLoader<2> train_dataloader() {
    train_at.push_back(trainer->current_epoch);
    return L::data::TensorLoader({X, y}, {.batch_size = 4});
  }
  L::data::TensorLoader<2> val_dataloader() {
    val_at.push_back(trainer->current_epoch);
    return L::data::TensorLoader({X, y}, {.batch_size = 4});
  }
};

std::string joined(const std::vector<std::int64_t>& v) {
  std::ostringstream out;
  for (auto e : v) out << ' ' << e;
  return out.str();
}

// reload_dataloaders_every_n_epochs: the epochs at which the train and the validation
// loaders are asked for are Lightning's, for every n and validation interval tried.
TEST(FitLoopFlags, ReloadDataloadersEveryNEpochsAsksTheDataModuleWhenLightningDoes) {
  const auto peer = lightning::testing::run_python_program(R"(
import logging, warnings, torch
import pytorch_lightning as pl
from torch.utils.data import DataLoader, TensorDataset
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
class M(pl.LightningModule):
    def __init__(s): super().__init__(); s.l = torch.nn.Linear(10, 1)
    def training_step(s, b, i): return s.l(b[0]).pow(2).mean()
    def validation_step(s, b, i): pass
    def configure_optimizers(s): return torch.optim.SGD(s.parameters(), lr=0.1)
class D(pl.LightningDataModule):
    def __init__(s): super().__init__(); s.train_at, s.val_at = [], []
    def _dl(s): return DataLoader(TensorDataset(torch.randn(8, 10)), batch_size=4)
    def train_dataloader(s): s.train_at.append(s.trainer.current_epoch); return s._dl()
    def val_dataloader(s): s.val_at.append(s.trainer.current_epoch); return s._dl()
for n, every, sanity in [(1, 1, 2), (2, 1, 2), (1, 2, 2), (3, 2, 2), (2, 2, 0), (0, 1, 2)]:
    d = D()
    t = pl.Trainer(max_epochs=5, reload_dataloaders_every_n_epochs=n, check_val_every_n_epoch=every,
                   num_sanity_val_steps=sanity, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False)
    t.fit(M(), d)
    # Lightning asks for the validation loaders at their first use; lightning-cpp when
    # fit starts: the first load of each is left out of the comparison.
    print(n, every, sanity, "train" + "".join(f" {e}" for e in d.train_at[1:]),
          "val" + "".join(f" {e}" for e in d.val_at[1:]), sep="|")
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto expected = lightning::testing::lines_of(peer.output);
  ASSERT_EQ(expected.size(), 6u) << peer.output;
  std::vector<std::string> ours;
  for (const auto& [n, every, sanity] : std::vector<std::array<std::int64_t, 3>>{
           {1, 1, 2}, {2, 1, 2}, {1, 2, 2}, {3, 2, 2}, {2, 2, 0}, {0, 1, 2}}) {
    CountingDataModule dm;
    CpuTrainer<> trainer(bare({.max_epochs = 5,
                               .check_val_every_n_epoch = every,
                               .num_sanity_val_steps = sanity,
                               .reload_dataloaders_every_n_epochs = n}));
    dm.trainer = &trainer;
    struct WithValidation : lightning::testing::SimpleModel {
      void validation_step(const XY&, std::int64_t) {}
    } validated;
    trainer.fit(validated, dm);
    ASSERT_FALSE(dm.train_at.empty());
    ASSERT_FALSE(dm.val_at.empty());
    ours.push_back(std::to_string(n) + "|" + std::to_string(every) + "|" + std::to_string(sanity) +
                   "|train" + joined({dm.train_at.begin() + 1, dm.train_at.end()}) + "|val" +
                   joined({dm.val_at.begin() + 1, dm.val_at.end()}));
  }
  EXPECT_EQ(ours, expected);
}

// barebones: nothing written (no logs, no checkpoint), no sanity check, log() dropped
// with one warning, and a message that the run started without a progress bar.
TEST(FitLoopFlags, BarebonesTrainsWithoutWritingLoggingOrSanityChecking) {
  auto [X, y] = seed_data(64);
  ValidatedModel model;
  CpuTrainer<> trainer({.max_epochs = 2, .barebones = true});
  ::testing::internal::CaptureStderr();
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 16}),
              L::data::TensorLoader({X, y}, {.batch_size = 32}));
  const auto errors = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(trainer.global_step, 8);
  EXPECT_EQ(model.validation_steps, 4);  // 2 epochs x 2 batches, no sanity check
  EXPECT_TRUE(trainer.callback_metrics().empty());
  EXPECT_TRUE(std::filesystem::is_empty(std::filesystem::current_path()))
      << "barebones wrote " << std::filesystem::directory_iterator(".")->path();
  EXPECT_NE(errors.find("lightning: Trainer(barebones = true) started running"), std::string::npos)
      << errors;
  const std::string warning = "log() was called, but TrainerOptions.barebones = true";
  const auto first = errors.find(warning);
  EXPECT_NE(first, std::string::npos) << errors;
  EXPECT_EQ(errors.find(warning, first + 1), std::string::npos) << "warned more than once";

  // The same run without barebones logs and writes (the test can tell the two apart).
  ValidatedModel logged;
  CpuTrainer<> normal({.max_epochs = 2, .enable_progress_bar = false});
  ::testing::internal::CaptureStderr();
  normal.fit(logged, L::data::TensorLoader({X, y}, {.batch_size = 16}),
             L::data::TensorLoader({X, y}, {.batch_size = 32}));
  (void)::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(normal.callback_metrics().contains("val_loss"));
  EXPECT_FALSE(std::filesystem::is_empty(std::filesystem::current_path()));
}

}  // namespace fit_loop_flags_test
