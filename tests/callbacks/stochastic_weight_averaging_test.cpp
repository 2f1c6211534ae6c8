// StochasticWeightAveraging against Lightning 2.6's callback on the same weights and data
// (learning rates, weights per epoch, the average, BatchNorm's statistics, the SWALR's
// state), against torch.optim.swa_utils (AveragedModel and update_bn) on our own run,
// and its checkpoints: resumed exactly here (after an epoch, inside the BatchNorm epoch),
// by Lightning, and Lightning's resumed here.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace L = lightning;

namespace stochastic_weight_averaging_test {

using lightning::testing::bare;
using lightning::testing::CpuTrainer;
using lightning::testing::flat_parameters;
using lightning::testing::numbers_of;
using lightning::testing::XY;
using Swa = L::callbacks::StochasticWeightAveraging<>;

// Linear, BatchNorm, Linear with SGD (momentum) and a StepLR, which the SWALR replaces.
struct NormModel : L::testing::NormNet {
  auto configure_optimizers() {
    return L::optimizers(
        torch::optim::SGD(parameters(), torch::optim::SGDOptions(0.05).momentum(0.9)),
        L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.5}));
  }
};

// The same without BatchNorm: no extra epoch.
struct PlainModel : L::LightningModule {
  torch::nn::Linear a{register_module("a", torch::nn::Linear(10, 4))};
  torch::nn::Linear b{register_module("b", torch::nn::Linear(4, 1))};
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(b(torch::relu(a(x))), y.unsqueeze(1));
  }
  auto configure_optimizers() {
    return torch::optim::SGD(parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  }
};

// The module's state when each epoch starts (before the SWA callback after it acts) and
// the learning rate of each epoch's first batch.
struct Recorder {
  std::vector<c10::Dict<std::string, at::Tensor>>* states;
  std::vector<double>* lrs;
  void on_train_epoch_start(auto&, auto& module) {
    states->push_back(L::module_state_dict(module));
  }
  void on_train_batch_start(auto& trainer, auto&, const auto&, std::int64_t idx) {
    if (idx == 0) lrs->push_back(L::lr::group_lrs(*trainer.optimizer_infos().front().optimizer)[0]);
  }
};

// Saves "inside.ckpt" after batch `batch` of epoch `epoch`.
struct SaveInside {
  std::int64_t epoch, batch;
  void on_train_batch_end(auto& trainer, auto&, const auto&, const auto&, std::int64_t idx) {
    if (trainer.current_epoch == epoch && idx == batch) trainer.save_checkpoint("inside.ckpt");
  }
};

const Swa::Options swa_options{.swa_lrs = {0.02}, .swa_epoch_start = 2, .annealing_epochs = 2};
constexpr std::int64_t max_epochs = 5;

L::data::TensorLoader<2> loader_of(const torch::Tensor& X, const torch::Tensor& y) {
  return L::data::TensorLoader({X, y}, {.batch_size = 8});
}

NormModel initial_model() {
  torch::manual_seed(3);
  return NormModel{};
}

// Every parameter and buffer of a module (or the values a state_dict holds for them),
// flat, for exact comparisons.
torch::Tensor flat_state(torch::nn::Module& m, const c10::Dict<std::string, at::Tensor>& state) {
  std::vector<torch::Tensor> all;
  for (const auto& kv : L::module_state_dict(m))
    all.push_back(state.at(kv.key()).to(torch::kDouble).reshape({-1}));
  return torch::cat(all);
}
torch::Tensor flat_state(torch::nn::Module& m) {
  return flat_state(m, L::module_state_dict(m));
}

// A fit with ModelCheckpoint saving every epoch into ckpt/ ("epoch=N.ckpt"); `resume`
// continues a checkpoint.
template <class... Extra>
torch::Tensor fit(NormModel& model, const std::string& resume, Extra... extra) {
  auto [X, y] = L::testing::seed_data(40, 5);
  auto o = bare({.max_epochs = max_epochs});
  o.enable_checkpointing = true;
  CpuTrainer<Swa, L::callbacks::ModelCheckpoint, Extra...> trainer(
      o, Swa(swa_options),
      L::callbacks::ModelCheckpoint({.dirpath = "ckpt", .filename = "{epoch}", .save_top_k = -1}),
      extra...);
  if (resume.empty())
    trainer.fit(model, loader_of(X, y));
  else
    trainer.fit(model, loader_of(X, y), L::CheckpointPath{resume});
  return flat_state(model);
}

// Lightning's callback and swa_utils on the run recorded in "run.ckpt"; Lightning then
// resumes our "ckpt/epoch=2.ckpt" and saves its own checkpoints into pl/.
std::vector<std::string> lightning_peer() {
  const auto peer = lightning::testing::run_python_program(R"(
import logging, warnings, torch
import pytorch_lightning as pl
from pytorch_lightning.callbacks import StochasticWeightAveraging, ModelCheckpoint
from torch.optim.swa_utils import AveragedModel, update_bn
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
c = torch.load("run.ckpt", weights_only=False)
class M(pl.LightningModule):
    def __init__(s):
        super().__init__()
        s.a, s.bn, s.b = torch.nn.Linear(10, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    def forward(s, x): return s.b(s.bn(s.a(x)))
    def training_step(s, b, i): return torch.nn.functional.mse_loss(s(b[0]), b[1].unsqueeze(1))
    def configure_optimizers(s):
        o = torch.optim.SGD(s.parameters(), lr=0.05, momentum=0.9)
        return [o], [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)]
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(c["X"], c["y"]), batch_size=8)
PARAMS = [k for k, _ in M().named_parameters()]
BUFFERS = ["bn.running_mean", "bn.running_var"]
def diff(a, b, keys):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in keys)

m = M()
avg = AveragedModel(m)
for e in range(1, 5):
    m.load_state_dict(c["states"][e]); avg.update_parameters(m)
update_bn(loader, avg)
s = avg.module.state_dict()
print("replay", diff(s, c["final"], PARAMS), diff(s, c["final"], BUFFERS),
      int(s["bn.num_batches_tracked"]), int(c["final"]["bn.num_batches_tracked"]))

class Rec(pl.Callback):
    def __init__(s): s.states, s.lrs = [], []
    def on_train_epoch_start(s, t, m): s.states.append({k: v.clone() for k, v in m.state_dict().items()})
    def on_train_batch_start(s, t, m, b, i):
        if i == 0: s.lrs.append(t.optimizers[0].param_groups[0]["lr"])
def lightning(ckpt_path=None, dirpath=None):
    m = M(); m.load_state_dict(c["init"])
    rec = Rec()
    swa = StochasticWeightAveraging(swa_lrs=0.02, swa_epoch_start=2, annealing_epochs=2)
    cbs = [rec, swa] + ([ModelCheckpoint(dirpath=dirpath, filename="{epoch}", save_top_k=-1)] if dirpath else [])
    t = pl.Trainer(max_epochs=5, callbacks=cbs, logger=False, enable_checkpointing=bool(dirpath),
                   enable_progress_bar=False, enable_model_summary=False)
    t.fit(m, loader, ckpt_path=ckpt_path)
    return m, rec, swa, t

m, rec, swa, t = lightning(dirpath="pl")
average = swa._average_model.state_dict()
print("states", len(rec.states), max(diff(a, b, PARAMS + BUFFERS) for a, b in zip(rec.states, c["states"])))
print("lrs", *rec.lrs)
print("average", diff(average, c["final"], PARAMS))
print("batch_norm", diff(m.state_dict(), c["final"], BUFFERS), int(m.bn.num_batches_tracked), m.bn.momentum)
print("moved", diff(m.state_dict(), average, PARAMS))
st, ours = swa.state_dict(), c["swa"]
print("counts", st["n_averaged"], ours["n_averaged"], st["latest_update_epoch"], ours["latest_update_epoch"])
a, b = st["scheduler_state"], ours["scheduler_state"]
print("swalr", all(a[k] == b[k] for k in ("_anneal_strategy", "anneal_epochs", "last_epoch", "_step_count")),
      max(abs(x - y) for x, y in zip(a["base_lrs"] + a["_last_lr"], b["base_lrs"] + b["_last_lr"])))
print("average_state", diff(st["average_model_state"], ours["average_model_state"], PARAMS))
print("epochs", t.current_epoch, t.global_step, t.max_epochs)

m2, _, swa2, _ = lightning(ckpt_path="ckpt/epoch=2.ckpt")
print("resumed_ours", diff(swa2._average_model.state_dict(), average, PARAMS),
      diff(m2.state_dict(), m.state_dict(), BUFFERS))
)");
  EXPECT_EQ(peer.status, 0) << peer.errors;
  return lightning::testing::lines_of(peer.output);
}

TEST(StochasticWeightAveraging, MatchesLightningAndSwaUtilsOnABatchNormModel) {
  auto [X, y] = L::testing::seed_data(40, 5);
  auto model = initial_model();
  const auto init = L::module_state_dict(model);
  std::vector<c10::Dict<std::string, at::Tensor>> states;
  std::vector<double> lrs;
  auto o = bare({.max_epochs = max_epochs});
  o.enable_checkpointing = true;
  CpuTrainer<Recorder, Swa, L::callbacks::ModelCheckpoint> trainer(
      o, Recorder{&states, &lrs}, Swa(swa_options),
      L::callbacks::ModelCheckpoint({.dirpath = "ckpt", .filename = "{epoch}", .save_top_k = -1}));
  trainer.fit(model, loader_of(X, y));
  const auto& swa = std::get<1>(trainer.callbacks());

  // Epoch 5 is the BatchNorm epoch: no optimizer step, max_epochs back as it was.
  EXPECT_EQ(trainer.current_epoch, 6);
  EXPECT_EQ(trainer.global_step, 25);
  EXPECT_EQ(trainer.max_epochs(), 5);
  EXPECT_EQ(swa.swa_start(), 1);
  EXPECT_EQ(swa.swa_end(), 4);
  ASSERT_TRUE(swa.average().has_value());
  EXPECT_EQ(swa.average()->n_averaged(), 4);
  // The momentum is BatchNorm's own again.
  EXPECT_EQ(model.bn->options.momentum(), 0.1);
  // ModelCheckpoint saved the BatchNorm epoch although global_step did not move: the
  // average with its statistics.
  const auto last =
      L::checkpoint_dict<at::Tensor>(L::load_checkpoint_file("ckpt/epoch=5.ckpt").at("state_dict"));
  EXPECT_TRUE(torch::equal(flat_state(model), flat_state(model, last)));

  auto out = L::make_checkpoint();
  c10::impl::GenericList s(c10::AnyType::get());
  for (const auto& each : states) s.push_back(each);
  out.insert("init", init);
  out.insert("X", X);
  out.insert("y", y);
  out.insert("states", s);
  out.insert("final", L::module_state_dict(model));
  out.insert("swa", swa.state_dict());
  L::save_checkpoint_file("run.ckpt", out);

  const auto lines = lightning_peer();
  for (const auto& line : lines) std::cout << "peer: " << line << '\n';
  ASSERT_EQ(lines.size(), 11u);
  // swa_utils: AveragedModel over the weights of epochs 1..4's starts, then update_bn.
  const auto replay = numbers_of(lines[0]);
  EXPECT_LE(replay.at(0), 1e-6) << lines[0];
  EXPECT_LE(replay.at(1), 1e-6) << lines[0];
  EXPECT_EQ(replay.at(2), replay.at(3)) << lines[0];
  // Lightning: the same weights when every epoch starts, the same learning rates.
  const auto same_states = numbers_of(lines[1]);
  EXPECT_EQ(same_states.at(0), 6.0) << lines[1];
  EXPECT_LE(same_states.at(1), 1e-6) << lines[1];
  const auto pl_lrs = numbers_of(lines[2]);
  ASSERT_EQ(pl_lrs.size(), lrs.size()) << lines[2];
  for (std::size_t i = 0; i < lrs.size(); ++i) EXPECT_DOUBLE_EQ(lrs[i], pl_lrs[i]) << i;
  EXPECT_DOUBLE_EQ(lrs.at(1), 0.025);  // StepLR's step, then SWALR from epoch 1
  EXPECT_DOUBLE_EQ(lrs.at(2), 0.0225);
  EXPECT_DOUBLE_EQ(lrs.at(3), 0.02);
  // Lightning's average is our module; its statistics are ours.
  EXPECT_LE(numbers_of(lines[3]).at(0), 1e-6) << lines[3];
  const auto bn = numbers_of(lines[4]);
  EXPECT_LE(bn.at(0), 1e-6) << lines[4];
  EXPECT_EQ(bn.at(1), 5.0) << lines[4];
  EXPECT_DOUBLE_EQ(bn.at(2), 0.1) << lines[4];
  // Lightning's module is not its average: the stale-gradient step of its BatchNorm epoch
  // (see stochastic_weight_averaging.hpp), which ours does not take.
  EXPECT_GT(numbers_of(lines[5]).at(0), 1e-4) << lines[5];
  const auto counts = numbers_of(lines[6]);
  EXPECT_EQ(counts.at(0), counts.at(1)) << lines[6];
  EXPECT_EQ(counts.at(2), counts.at(3)) << lines[6];
  const auto swalr = numbers_of(lines[7]);
  EXPECT_EQ(swalr.at(0), 1.0) << lines[7];
  EXPECT_LE(swalr.at(1), 1e-15) << lines[7];
  EXPECT_LE(numbers_of(lines[8]).at(0), 1e-6) << lines[8];
  // Lightning counted one step more (its BatchNorm epoch's).
  EXPECT_EQ(lines[9], "epochs 6 26 5");
  // Lightning resumed our checkpoint of epoch 2 to its own result.
  const auto resumed = numbers_of(lines[10]);
  EXPECT_LE(resumed.at(0), 1e-6) << lines[10];
  EXPECT_LE(resumed.at(1), 1e-6) << lines[10];

  // And ours resumes Lightning's checkpoint of epoch 2 to our result.
  auto from_lightning = initial_model();
  const auto resumed_here = fit(from_lightning, "pl/epoch=2.ckpt");
  EXPECT_LE((resumed_here - flat_state(model)).abs().max().item<double>(), 1e-6);
}

// A fit resumed from a checkpoint of an SWA epoch, or from inside the BatchNorm epoch,
// ends exactly where the uninterrupted one does.
TEST(StochasticWeightAveraging, ResumesExactlyFromItsCheckpoints) {
  auto whole_model = initial_model();
  const auto whole = fit(whole_model, "", SaveInside{.epoch = 5, .batch = 2});
  ASSERT_TRUE(std::filesystem::exists("inside.ckpt"));
  for (const std::string path : {"ckpt/epoch=2.ckpt", "ckpt/epoch=4.ckpt", "inside.ckpt"}) {
    auto model = initial_model();
    const auto resumed = fit(model, path);
    EXPECT_TRUE(torch::equal(resumed, whole)) << path;
  }
}

// NormModel with a validation loop.
struct ValidatedNormModel : NormModel {
  void validation_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    log("val_loss", torch::mse_loss(forward(x), y.unsqueeze(1)));
  }
};

// The BatchNorm epoch takes no step, yet ModelCheckpoint saves its result once, after its
// last batch (saves inside it are skipped, as Lightning's: they would hold part of the
// statistics). A checkpoint saved after fit and a validate resumes.
TEST(StochasticWeightAveraging, ModelCheckpointSavesTheBatchNormEpochOnce) {
  auto [X, y] = L::testing::seed_data(40, 5);
  torch::manual_seed(3);
  ValidatedNormModel model;
  auto o = bare({.max_epochs = max_epochs});
  o.enable_checkpointing = true;
  CpuTrainer<Swa, L::callbacks::ModelCheckpoint> trainer(
      o, Swa(swa_options),
      L::callbacks::ModelCheckpoint(
          {.dirpath = "step_ckpt", .save_top_k = -1, .every_n_train_steps = 1}));
  trainer.fit(model, loader_of(X, y), loader_of(X, y));
  std::vector<std::filesystem::path> saved;
  for (const auto& entry : std::filesystem::directory_iterator("step_ckpt"))
    if (entry.path().filename().string().starts_with("epoch=5")) saved.push_back(entry.path());
  ASSERT_EQ(saved.size(), 1u);
  EXPECT_EQ(saved[0].filename(), "epoch=5-step=25.ckpt");
  const auto last =
      L::checkpoint_dict<at::Tensor>(L::load_checkpoint_file(saved[0]).at("state_dict"));
  EXPECT_TRUE(torch::equal(flat_state(model), flat_state(model, last)));

  (void)trainer.validate(model, loader_of(X, y));
  trainer.save_checkpoint("after.ckpt");
  torch::manual_seed(3);
  ValidatedNormModel again;
  CpuTrainer<Swa> resumed(bare({.max_epochs = max_epochs}), Swa(swa_options));
  resumed.fit(again, loader_of(X, y), loader_of(X, y), L::CheckpointPath{"after.ckpt"});
  EXPECT_TRUE(torch::equal(flat_state(again), flat_state(model)));
  EXPECT_EQ(resumed.max_epochs(), max_epochs);
}

// A fit that averages nothing (swa_epoch_start after the last epoch) adds no BatchNorm
// epoch and keeps its own weights; one stopped before swa_end keeps them too, and
// max_epochs is as it was.
TEST(StochasticWeightAveraging, AFitThatDoesNotReachTheEndKeepsItsWeights) {
  auto [X, y] = L::testing::seed_data(40, 5);
  {
    auto model = initial_model();
    CpuTrainer<Swa> trainer(bare({.max_epochs = 3}),
                            Swa({.swa_lrs = {0.02}, .swa_epoch_start = 7}));
    trainer.fit(model, loader_of(X, y));
    EXPECT_EQ(trainer.current_epoch, 3);
    EXPECT_EQ(std::get<0>(trainer.callbacks()).average()->n_averaged(), 0);
    auto untrained = initial_model();
    EXPECT_FALSE(torch::equal(flat_parameters(model), flat_parameters(untrained)));
  }
  {
    auto model = initial_model();
    L::callbacks::LambdaCallback stop{L::callbacks::lambda::on_train_epoch_end(
        [](auto& trainer, auto&) { trainer.should_stop = trainer.current_epoch == 2; })};
    CpuTrainer<Swa, decltype(stop)> trainer(bare({.max_epochs = max_epochs}), Swa(swa_options),
                                            stop);
    trainer.fit(model, loader_of(X, y));
    EXPECT_EQ(trainer.current_epoch, 3);
    EXPECT_EQ(trainer.max_epochs(), max_epochs);
    EXPECT_EQ(model.bn->options.momentum(), 0.1);
    // The module's own weights, not the average of epochs 1 and 2.
    EXPECT_EQ(std::get<0>(trainer.callbacks()).average()->n_averaged(), 2);
    auto average_model = initial_model();
    std::get<0>(trainer.callbacks()).average()->copy_to(average_model);
    EXPECT_FALSE(torch::equal(flat_parameters(model), flat_parameters(average_model)));
  }
}

// Without BatchNorm: no extra epoch; the module takes the average of the weights at the
// start of epochs swa_start..swa_end when training ends (swa_epoch_start as a fraction).
TEST(StochasticWeightAveraging, AveragesAModelWithoutBatchNorm) {
  auto [X, y] = L::testing::seed_data(40, 5);
  torch::manual_seed(4);
  PlainModel model;
  std::vector<c10::Dict<std::string, at::Tensor>> states;
  std::vector<double> lrs;
  CpuTrainer<Recorder, Swa> trainer(bare({.max_epochs = 4}), Recorder{&states, &lrs},
                                    Swa({.swa_lrs = {0.01}, .swa_epoch_start = 0.5}));
  trainer.fit(model, loader_of(X, y));
  EXPECT_EQ(trainer.current_epoch, 4);
  EXPECT_EQ(trainer.global_step, 20);
  // int(4 * 0.5) = 2: epochs 1, 2 and 3 are averaged.
  EXPECT_EQ(std::get<1>(trainer.callbacks()).swa_start(), 1);
  ASSERT_EQ(states.size(), 4u);
  for (const auto& kv : L::module_state_dict(model)) {
    const auto& name = kv.key();
    auto mean = states[1].at(name).clone();
    for (std::int64_t n = 1; n < 3; ++n) {
      const auto& next = states[static_cast<std::size_t>(n + 1)].at(name);
      mean = mean + (next - mean) / (n + 1);  // swa_utils' running mean
    }
    EXPECT_LE((kv.value() - mean).abs().max().item<double>(), 1e-7) << name;
  }
}

// A checkpoint whose scheduler is the SWALR cannot resume without the callback: the
// error names it, instead of the module's StepLR taking the SWALR's state.
TEST(StochasticWeightAveraging, ItsCheckpointNeedsItToResume) {
  auto model = initial_model();
  (void)fit(model, "");
  auto [X, y] = L::testing::seed_data(40, 5);
  auto again = initial_model();
  CpuTrainer<> trainer(bare({.max_epochs = max_epochs}));
  L::testing::expect_error<L::CheckpointError>(
      [&] { trainer.fit(again, loader_of(X, y), L::CheckpointPath{"ckpt/epoch=2.ckpt"}); },
      "resume with lightning::callbacks::StochasticWeightAveraging");
}

TEST(StochasticWeightAveraging, RejectsBadOptions) {
  using L::testing::expect_invalid_argument;
  expect_invalid_argument([] { Swa s({}); }, "StochasticWeightAveragingOptions.swa_lrs = {}");
  expect_invalid_argument([] { Swa s({.swa_lrs = {0.1, -0.5}}); }, "must be a positive number");
  expect_invalid_argument([] { Swa s({.swa_lrs = {0.1}, .swa_epoch_start = 0}); },
                          "StochasticWeightAveragingOptions.swa_epoch_start = 0");
  expect_invalid_argument([] { Swa s({.swa_lrs = {0.1}, .swa_epoch_start = 1.5}); },
                          "swa_epoch_start = 1.5 is invalid");
  expect_invalid_argument([] { Swa s({.swa_lrs = {0.1}, .annealing_epochs = -1}); },
                          "annealing_epochs = -1");

  auto [X, y] = L::testing::seed_data(40, 5);
  // A fraction of max_epochs needs max_epochs.
  {
    PlainModel model;
    CpuTrainer<Swa> trainer(bare({.max_epochs = -1, .max_steps = 3}), Swa({.swa_lrs = {0.1}}));
    expect_invalid_argument([&] { trainer.fit(model, loader_of(X, y)); },
                            "a fraction of max_epochs needs max_epochs");
  }
  // Two rates for an optimizer with one param group.
  {
    PlainModel model;
    CpuTrainer<Swa> trainer(bare({.max_epochs = 2}),
                            Swa({.swa_lrs = {0.1, 0.2}, .swa_epoch_start = 1}));
    expect_invalid_argument([&] { trainer.fit(model, loader_of(X, y)); },
                            "the optimizer has 1 param groups");
  }
}

}  // namespace stochastic_weight_averaging_test
