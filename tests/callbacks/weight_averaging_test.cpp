// WeightAveraging and EMAWeightAveraging against PyTorch's torch.optim.swa_utils and
// Lightning 2.6's schedule on the same run; update_bn against PyTorch's; validation on the
// average; checkpoints in Lightning's layout that resume exactly.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace L = lightning;

namespace weight_averaging_test {

using lightning::testing::bare;
using lightning::testing::CpuTrainer;
using lightning::testing::flat_parameters;
using lightning::testing::XY;

// Linear, BatchNorm, Linear: parameters, float buffers and an integer buffer
// (num_batches_tracked), which the averages treat as PyTorch does.
struct NormModel : L::testing::NormNet {
  auto configure_optimizers() {
    return torch::optim::SGD(parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  }
};

// NormModel in Python (torch.nn.Module), for the programs that replay our runs.
const std::string python_norm_model = R"(
class M(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.a, s.bn, s.b = torch.nn.Linear(10, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    def forward(s, x): return s.b(s.bn(s.a(x)))
)";

// The module's parameters and buffers after every training batch ("step", global_step)
// and epoch ("epoch", current_epoch), as the callback after it sees them.
struct Recorder {
  std::vector<std::string>* kinds;
  std::vector<std::int64_t>* indices;
  std::vector<c10::Dict<std::string, at::Tensor>>* states;
  void on_train_batch_end(auto& trainer, auto& module, const auto&, const auto&, std::int64_t) {
    add("step", trainer.global_step, module);
  }
  void on_train_epoch_end(auto& trainer, auto& module) {
    add("epoch", trainer.current_epoch, module);
  }
  void add(const char* kind, std::int64_t index, torch::nn::Module& module) {
    kinds->push_back(kind);
    indices->push_back(index);
    states->push_back(L::module_state_dict(module));
  }
};

// Trains NormModel with `averaging` (3 epochs of 5 batches, gradients accumulated over
// two, so every epoch ends on a step of one batch) and writes what Python needs to
// replay the run: every recorded state and the module after fit (the average).
template <class Averaging>
std::int64_t record_run(Averaging averaging, const std::filesystem::path& file) {
  torch::manual_seed(3);
  NormModel model;
  auto [X, y] = L::testing::seed_data(40, 5);
  std::vector<std::string> kinds;
  std::vector<std::int64_t> indices;
  std::vector<c10::Dict<std::string, at::Tensor>> states;
  auto o = bare({.max_epochs = 3, .accumulate_grad_batches = 2});
  CpuTrainer<Recorder, Averaging> trainer(o, Recorder{&kinds, &indices, &states},
                                          std::move(averaging));
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));

  auto out = L::make_checkpoint();
  c10::impl::GenericList k(c10::AnyType::get()), i(c10::AnyType::get()), s(c10::AnyType::get());
  for (std::size_t n = 0; n < kinds.size(); ++n) {
    k.push_back(kinds[n]);
    i.push_back(indices[n]);
    s.push_back(states[n]);
  }
  out.insert("kinds", k);
  out.insert("indices", i);
  out.insert("states", s);
  out.insert("final", L::module_state_dict(model));
  L::save_checkpoint_file(file, out);
  return std::get<1>(trainer.callbacks()).average()->n_averaged();
}

// Replays a recorded run with Lightning's own callback deciding when to update and
// torch.optim.swa_utils.AveragedModel averaging; prints the largest difference from our
// average, whether the integer buffers are equal, and the number of updates.
std::vector<std::string> replay(const std::string& callback) {
  const auto peer = lightning::testing::run_python_program(R"(
import torch
from torch.optim.swa_utils import AveragedModel
from pytorch_lightning.callbacks import WeightAveraging, EMAWeightAveraging
c = torch.load("run.ckpt", weights_only=False)
)" + python_norm_model + R"(
m = M()
cb = )" + callback + R"(
avg = AveragedModel(m, use_buffers=cb._use_buffers, **cb._kwargs)
latest_step, latest_epoch = 0, -1
for kind, i, state in zip(c["kinds"], c["indices"], c["states"]):
    if kind == "step" and i > latest_step and cb.should_update(step_idx=i - 1):
        m.load_state_dict(state); avg.update_parameters(m); latest_step = i
    if kind == "epoch" and i > latest_epoch and cb.should_update(epoch_idx=i):
        m.load_state_dict(state); avg.update_parameters(m); latest_epoch = i
diff, ints = 0.0, True
for name, t in avg.module.state_dict().items():
    ours = c["final"][name]
    if t.is_floating_point():
        diff = max(diff, (t.double() - ours.double()).abs().max().item())
    else:
        ints = ints and bool(torch.equal(t, ours))
print("max_diff", diff)
print("ints_equal", ints)
print("n_averaged", avg.n_averaged.item())
)");
  EXPECT_EQ(peer.status, 0) << peer.errors;
  return lightning::testing::lines_of(peer.output);
}

double max_diff_of(const std::vector<std::string>& lines) {
  return std::stod(lines.at(0).substr(std::string("max_diff ").size()));
}

TEST(WeightAveraging, SwaEqualsSwaUtilsOnTheSameRun) {
  const auto n = record_run(L::callbacks::WeightAveraging<>{}, "run.ckpt");
  const auto lines = replay("WeightAveraging()");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_LE(max_diff_of(lines), 1e-6) << lines[0];
  EXPECT_EQ(lines[1], "ints_equal True");
  // 3 epochs of 3 optimizer steps each, one update per step.
  EXPECT_EQ(n, 9);
  EXPECT_EQ(lines[2], "n_averaged 9");
}

TEST(WeightAveraging, EmaEqualsSwaUtilsWithLightningsSchedule) {
  // Every second step from step 1 on, and after every epoch from epoch 1 on.
  const auto n = record_run(L::callbacks::EMAWeightAveraging({.decay = 0.8,
                                                              .update_every_n_steps = 2,
                                                              .update_starting_at_step = 1,
                                                              .update_starting_at_epoch = 1}),
                            "run.ckpt");
  const auto lines = replay(
      "EMAWeightAveraging(decay=0.8, update_every_n_steps=2, update_starting_at_step=1, "
      "update_starting_at_epoch=1)");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_LE(max_diff_of(lines), 1e-6) << lines[0];
  EXPECT_EQ(lines[1], "ints_equal True");
  // Step indices 0..8: updates at 2, 4, 6, 8; epochs 1 and 2.
  EXPECT_EQ(n, 6);
  EXPECT_EQ(lines[2], "n_averaged 6");
}

// Without the buffers, the average keeps the module's latest statistics (PyTorch's
// use_buffers=False).
TEST(WeightAveraging, WithoutBuffersEqualsSwaUtils) {
  const auto n = record_run(L::callbacks::WeightAveraging<>({.use_buffers = false}), "run.ckpt");
  const auto lines = replay("WeightAveraging(use_buffers=False)");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_LE(max_diff_of(lines), 1e-6) << lines[0];
  EXPECT_EQ(lines[1], "ints_equal True");
  EXPECT_EQ(n, 9);
}

// Validation runs on the average, and training goes on from the module's own weights.
struct SwapCheck {
  std::vector<torch::Tensor>* averages;  // the average when each validation starts
  torch::Tensor own, average;            // after the last training batch
  int checked = 0;
  void on_train_batch_end(auto& trainer, auto& module, const auto&, const auto&, std::int64_t) {
    own = flat_parameters(module).clone();
    std::vector<torch::Tensor> ps;
    for (const auto& [name, t] : std::get<0>(trainer.callbacks()).average()->parameters())
      ps.push_back(t.reshape({-1}));
    average = torch::cat(ps);
  }
  void on_validation_epoch_start(auto&, auto&) { averages->push_back(average); }
  void on_validation_epoch_end(auto&, auto& module) {
    EXPECT_TRUE(torch::equal(flat_parameters(module), own));
    ++checked;
  }
};

struct ValidatedNormModel : NormModel {
  std::vector<torch::Tensor>* params;
  void validation_step(const XY&, std::int64_t) {
    params->push_back(flat_parameters(*this).clone());
  }
};

TEST(WeightAveraging, ValidationSeesTheAverageAndTrainingItsOwnWeights) {
  torch::manual_seed(5);
  std::vector<torch::Tensor> in_validation, averages;
  ValidatedNormModel model;
  model.params = &in_validation;
  auto [X, y] = L::testing::seed_data(40, 7);
  auto o = bare({.max_epochs = 2});
  o.num_sanity_val_steps = 0;
  CpuTrainer<L::callbacks::WeightAveraging<>, SwapCheck> trainer(
      o, L::callbacks::WeightAveraging<>{}, SwapCheck{&averages, {}, {}});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}),
              L::data::TensorLoader({X, y}, {.batch_size = 20}));
  ASSERT_EQ(averages.size(), 2u);
  ASSERT_EQ(in_validation.size(), 4u);  // two batches per validation
  for (std::size_t i = 0; i < in_validation.size(); ++i)
    EXPECT_TRUE(torch::equal(in_validation[i], averages[i / 2])) << i;
  EXPECT_EQ(std::get<1>(trainer.callbacks()).checked, 2);
  // The module's own weights differ from their average (the check above is not vacuous).
  EXPECT_FALSE(torch::allclose(std::get<1>(trainer.callbacks()).own, averages.back()));
  // After fit the module holds the average.
  EXPECT_TRUE(torch::equal(flat_parameters(model), std::get<1>(trainer.callbacks()).average));
}

// A checkpoint holds the average as "state_dict" and the module's weights as
// "current_model_state" (Lightning's keys); a fit resumed from one ends where the
// uninterrupted run does, average included.
TEST(WeightAveraging, ResumesExactlyFromACheckpoint) {
  auto [X, y] = L::testing::seed_data(40, 8);
  const auto fit = [&](std::int64_t epochs, std::optional<std::filesystem::path> from,
                       const std::filesystem::path& dir) {
    torch::manual_seed(6);
    NormModel model;
    auto o = bare({.max_epochs = epochs});
    o.enable_checkpointing = std::nullopt;
    CpuTrainer<L::callbacks::EMAWeightAveraging, L::callbacks::ModelCheckpoint> trainer(
        o, L::callbacks::EMAWeightAveraging({.decay = 0.7}),
        L::callbacks::ModelCheckpoint({.dirpath = dir, .save_top_k = -1}));
    L::data::TensorLoader loader({X, y}, {.batch_size = 8});
    if (from)
      trainer.fit(model, loader, L::CheckpointPath{*from});
    else
      trainer.fit(model, loader);
    return std::pair{flat_parameters(model).clone(),
                     std::get<0>(trainer.callbacks()).average()->n_averaged()};
  };
  const auto [whole, whole_n] = fit(4, std::nullopt, "whole");
  const auto ckpt = std::filesystem::path("whole") / "epoch=1-step=10.ckpt";
  ASSERT_TRUE(std::filesystem::exists(ckpt));
  const auto [resumed, resumed_n] = fit(4, ckpt, "resumed");
  EXPECT_TRUE(torch::equal(whole, resumed));
  EXPECT_EQ(whole_n, 20);
  EXPECT_EQ(resumed_n, 20);

  const auto c = L::load_checkpoint_file(ckpt);
  for (const char* key : {"state_dict", "current_model_state", "averaging_state"})
    EXPECT_TRUE(c.contains(key)) << key;
  const auto averaging = L::checkpoint_dict<at::Tensor>(c.at("averaging_state"));
  EXPECT_EQ(averaging.at("n_averaged").item<std::int64_t>(), 10);
  const auto state = L::checkpoint_dict(c.at("callbacks"));
  EXPECT_EQ(L::checkpoint_dict(state.at("EMAWeightAveraging")).at("latest_update_step").toInt(),
            10);
  const auto average = L::checkpoint_dict<at::Tensor>(c.at("state_dict"));
  const auto own = L::checkpoint_dict<at::Tensor>(c.at("current_model_state"));
  EXPECT_FALSE(torch::equal(average.at("a.weight"), own.at("a.weight")));
}

// Lightning 2.6 resumes from our checkpoint: its WeightAveraging takes the average from
// "state_dict" and "averaging_state" and the module from "current_model_state".
TEST(WeightAveraging, LightningReadsTheAverageFromOurCheckpoint) {
  auto [X, y] = L::testing::seed_data(40, 9);
  torch::manual_seed(7);
  NormModel model;
  auto o = bare({.max_epochs = 2});
  o.enable_checkpointing = std::nullopt;
  CpuTrainer<L::callbacks::WeightAveraging<>, L::callbacks::ModelCheckpoint> trainer(
      o, L::callbacks::WeightAveraging<>{},
      L::callbacks::ModelCheckpoint({.dirpath = std::filesystem::path("ckpts"), .save_top_k = -1}));
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
  const auto ckpt = L::load_checkpoint_file("ckpts/epoch=0-step=5.ckpt");
  const auto average = L::checkpoint_dict<at::Tensor>(ckpt.at("state_dict"));
  const auto own = L::checkpoint_dict<at::Tensor>(ckpt.at("current_model_state"));

  const auto peer = lightning::testing::run_python_program(R"(
import logging, warnings, torch
import pytorch_lightning as pl
from pytorch_lightning.callbacks import WeightAveraging
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
class M(pl.LightningModule):
    def __init__(s):
        super().__init__()
        s.a, s.bn, s.b = torch.nn.Linear(10, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    def training_step(s, b, i): return torch.nn.functional.mse_loss(s.b(s.bn(s.a(b[0]))), b[1].unsqueeze(1))
    def configure_optimizers(s): return torch.optim.SGD(s.parameters(), lr=0.05, momentum=0.9)
class Peek(pl.Callback):
    def on_train_start(s, trainer, m):
        wa = trainer.callbacks[0]
        print("module", " ".join(f"{v:.7f}" for v in m.a.weight.flatten()[:4].tolist()))
        print("average", " ".join(f"{v:.7f}" for v in wa._average_model.module.a.weight.flatten()[:4].tolist()))
        print("n_averaged", wa._average_model.n_averaged.item(), "latest", wa._latest_update_step)
        import os, sys; sys.stdout.flush(); os._exit(0)
t = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[WeightAveraging(), Peek()])
X = torch.randn(40, 10); y = torch.randn(40)
t.fit(M(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8),
      ckpt_path="ckpts/epoch=0-step=5.ckpt")
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto lines = lightning::testing::lines_of(peer.output);
  ASSERT_EQ(lines.size(), 3u) << peer.output;
  const auto first4 = [](const at::Tensor& t) {
    std::string s;
    for (int i = 0; i < 4; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.7f", i ? " " : "", t.flatten()[i].item<float>());
      s += buf;
    }
    return s;
  };
  EXPECT_EQ(lines[0], "module " + first4(own.at("a.weight")));
  EXPECT_EQ(lines[1], "average " + first4(average.at("a.weight")));
  EXPECT_EQ(lines[2], "n_averaged 5 latest 5");
}

// We resume Lightning 2.6's checkpoint: the average from its "state_dict" and
// "averaging_state", the module from "current_model_state".
struct PeekAtStart {
  torch::Tensor module, average;
  std::int64_t n_averaged = -1;
  void on_train_start(auto& trainer, auto& m) {
    module = flat_parameters(m).clone();
    std::vector<torch::Tensor> ps;
    const auto& avg = *std::get<0>(trainer.callbacks()).average();
    for (const auto& [name, t] : avg.parameters()) ps.push_back(t.reshape({-1}));
    average = torch::cat(ps);
    n_averaged = avg.n_averaged();
  }
};

TEST(WeightAveraging, ResumesLightningsCheckpoint) {
  const auto peer = lightning::testing::run_python_program(R"(
import logging, warnings, torch
import pytorch_lightning as pl
from pytorch_lightning.callbacks import WeightAveraging, ModelCheckpoint
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
torch.manual_seed(0)
class M(pl.LightningModule):
    def __init__(s):
        super().__init__()
        s.a, s.bn, s.b = torch.nn.Linear(10, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    def training_step(s, b, i): return torch.nn.functional.mse_loss(s.b(s.bn(s.a(b[0]))), b[1].unsqueeze(1))
    def configure_optimizers(s): return torch.optim.SGD(s.parameters(), lr=0.05, momentum=0.9)
t = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
               callbacks=[WeightAveraging(), ModelCheckpoint(dirpath="py", filename="last")])
X = torch.randn(40, 10); y = torch.randn(40)
t.fit(M(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8))
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto c = L::load_checkpoint_file("py/last.ckpt");
  const auto flat = [](const c10::Dict<std::string, at::Tensor>& state) {
    std::vector<torch::Tensor> ps;
    for (const char* name : {"a.weight", "a.bias", "bn.weight", "bn.bias", "b.weight", "b.bias"})
      ps.push_back(state.at(name).reshape({-1}));
    return torch::cat(ps);
  };
  auto [X, y] = L::testing::seed_data(40, 11);
  NormModel model;
  auto o = bare({.max_epochs = 2});
  CpuTrainer<L::callbacks::WeightAveraging<>, PeekAtStart> trainer(
      o, L::callbacks::WeightAveraging<>{}, PeekAtStart{});
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}),
              L::CheckpointPath{"py/last.ckpt"});
  const auto& peek = std::get<1>(trainer.callbacks());
  EXPECT_TRUE(
      torch::equal(peek.module, flat(L::checkpoint_dict<at::Tensor>(c.at("current_model_state")))));
  EXPECT_TRUE(torch::equal(peek.average, flat(L::checkpoint_dict<at::Tensor>(c.at("state_dict")))));
  EXPECT_FALSE(torch::equal(peek.module, peek.average));
  EXPECT_EQ(peek.n_averaged, 5);
  EXPECT_EQ(trainer.global_step, 10);
}

TEST(WeightAveraging, EmaOptionsAreChecked) {
  lightning::testing::expect_invalid_argument(
      [] { L::callbacks::EMAWeightAveraging({.decay = 1.5}); },
      "EMAWeightAveragingOptions.decay = 1.5");
  lightning::testing::expect_invalid_argument(
      [] { L::callbacks::EMAWeightAveraging({.update_every_n_steps = -1}); },
      "update_every_n_steps = -1");
}

// update_bn recomputes BatchNorm's statistics as torch.optim.swa_utils.update_bn does, and
// leaves momentum and the train/eval mode as they were.
TEST(UpdateBn, EqualsPyTorchsUpdateBn) {
  torch::manual_seed(8);
  NormModel model;
  model.eval();
  auto [X, y] = L::testing::seed_data(37, 10);
  auto out = L::make_checkpoint();
  out.insert("before", L::module_state_dict(model));
  out.insert("X", X);
  L::update_bn(L::data::TensorLoader({X, y}, {.batch_size = 8}), model);
  EXPECT_FALSE(model.is_training());
  ASSERT_TRUE(model.bn->options.momentum().has_value());
  EXPECT_EQ(*model.bn->options.momentum(), 0.1);
  out.insert("after", L::module_state_dict(model));
  L::save_checkpoint_file("bn.ckpt", out);

  const auto peer = lightning::testing::run_python_program(R"(
import torch
from torch.optim.swa_utils import update_bn
c = torch.load("bn.ckpt", weights_only=False)
)" + python_norm_model + R"(
m = M(); m.load_state_dict(c["before"]); m.eval()
update_bn(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(c["X"]), batch_size=8), m)
sd = m.state_dict()
print("max_diff", max((sd[k].double() - c["after"][k].double()).abs().max().item() for k in ("bn.running_mean", "bn.running_var")))
print("tracked", sd["bn.num_batches_tracked"].item(), c["after"]["bn.num_batches_tracked"].item())
print("changed", not torch.equal(c["before"]["bn.running_var"], c["after"]["bn.running_var"]))
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto lines = lightning::testing::lines_of(peer.output);
  ASSERT_EQ(lines.size(), 3u) << peer.output;
  EXPECT_LE(max_diff_of(lines), 1e-6) << lines[0];
  EXPECT_EQ(lines[1], "tracked 5 5");
  EXPECT_EQ(lines[2], "changed True");
}

}  // namespace weight_averaging_test
