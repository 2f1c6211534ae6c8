// The learning rate finder against Lightning 2.6's Tuner.lr_find on the seed workload
// (the same weights, data and sweep), its suggestion against Lightning's on given curves,
// the weights it restores and the rate it writes.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/expect.hpp"
#include "support/models.hpp"
#include "support/python.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace L = lightning;

namespace lr_finder_test {

using lightning::testing::bare;
using lightning::testing::CpuTrainer;
using lightning::testing::flat_parameters;
using lightning::testing::numbers_of;
using lightning::testing::XY;

// The seed model with its learning rate in a member (Lightning's `self.lr`).
template <class Optimizer, class Options>
struct LrModelOf : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  double lr = 1e-3;

  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(linear(x), y.unsqueeze(1));
  }
  auto configure_optimizers() { return Optimizer(parameters(), Options(lr)); }
};
using LrModel = LrModelOf<torch::optim::Adam, torch::optim::AdamOptions>;
using SgdLrModel = LrModelOf<torch::optim::SGD, torch::optim::SGDOptions>;

// Runs Lightning's lr_find on the weights and data in "seed.ckpt" and prints its rates,
// losses and suggestion.
std::vector<std::string> lightning_lr_find(const std::string& optimizer, const std::string& args,
                                           int max_epochs, int accumulate) {
  const auto peer = lightning::testing::run_python_program(R"(
import logging, warnings, torch
import pytorch_lightning as pl
from pytorch_lightning.tuner import Tuner
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
c = torch.load("seed.ckpt", weights_only=False)
class M(pl.LightningModule):
    def __init__(s):
        super().__init__(); s.linear = torch.nn.Linear(10, 1); s.lr = 1e-3
    def training_step(s, b, i): return torch.nn.functional.mse_loss(s.linear(b[0]), b[1].unsqueeze(1))
    def configure_optimizers(s): return torch.optim.)" + optimizer +
                                                           R"((s.parameters(), lr=s.lr)
m = M(); m.load_state_dict(c["weights"])
t = pl.Trainer(max_epochs=)" + std::to_string(max_epochs) + R"(, accumulate_grad_batches=)" +
                                                           std::to_string(accumulate) + R"(,
               logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(c["X"], c["y"]), batch_size=32)
f = Tuner(t).lr_find(m, train_dataloaders=loader)" + args + R"()
print("lrs", " ".join(repr(v) for v in f.results["lr"]))
print("losses", " ".join(repr(v) for v in f.results["loss"]))
print("suggestion", f.suggestion(), f._optimal_idx)
print("lr", m.lr)
)");
  EXPECT_EQ(peer.status, 0) << peer.errors;
  return lightning::testing::lines_of(peer.output);
}

struct Case {
  L::LRFinderOptions options;
  std::string python_args;
  int max_epochs;
  int accumulate;
};

template <class Model>
void expect_same_sweep_as_lightning(const Case& c) {
  constexpr bool sgd = std::is_same_v<Model, SgdLrModel>;
  auto [X, y] = L::testing::seed_data();
  torch::manual_seed(1);
  Model model;
  auto saved = L::make_checkpoint();
  saved.insert("weights", L::module_state_dict(model));
  saved.insert("X", X);
  saved.insert("y", y);
  L::save_checkpoint_file("seed.ckpt", saved);
  const auto before = flat_parameters(model).clone();

  auto options = bare({.max_epochs = c.max_epochs, .accumulate_grad_batches = c.accumulate});
  CpuTrainer<> trainer(options);
  auto found = L::Tuner(trainer).lr_find(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
                                         c.options);
  ASSERT_TRUE(found.has_value());

  const auto lines =
      lightning_lr_find(sgd ? "SGD" : "Adam", c.python_args, c.max_epochs, c.accumulate);
  ASSERT_EQ(lines.size(), 4u);
  const auto lrs = numbers_of(lines[0]), losses = numbers_of(lines[1]);
  // The same number of points: the same steps, and the same divergence stop.
  ASSERT_EQ(found->lrs().size(), lrs.size());
  ASSERT_EQ(found->losses().size(), losses.size());
  for (std::size_t i = 0; i < lrs.size(); ++i)
    EXPECT_NEAR(found->lrs()[i], lrs[i], 1e-12 * lrs[i]) << i;
  for (std::size_t i = 0; i < losses.size(); ++i)
    EXPECT_NEAR(found->losses()[i], losses[i], 1e-4 * std::abs(losses[i])) << i;
  // The suggestion within one step of the sweep (in practice: the same).
  std::istringstream s(lines[2]);
  std::string label, lr_text;
  std::int64_t index = 0;
  s >> label >> lr_text >> index;
  const auto ours = found->optimal_index();
  ASSERT_TRUE(ours.has_value());
  EXPECT_LE(std::abs(static_cast<std::int64_t>(*ours) - index), 1) << lines[2];
  // The rate is written into the module, and its weights are back as they were.
  EXPECT_EQ(model.lr, *found->suggestion());
  EXPECT_TRUE(torch::equal(flat_parameters(model), before));
}

TEST(LRFinder, SweepsAsLightningDoesOnTheSeedWorkload) {
  expect_same_sweep_as_lightning<LrModel>({{}, "", 5, 1});
}

// SGD up to a rate of 10 diverges: both stop at the same step.
TEST(LRFinder, StopsWhereLightningStopsWhenTheLossDiverges) {
  expect_same_sweep_as_lightning<SgdLrModel>(
      {{.max_lr = 10.0, .num_training = 80}, ", max_lr=10.0, num_training=80", 5, 1});
}

// A linear sweep, gradients accumulated over three batches (rates recorded on the batches
// Lightning records them on), and max_epochs ending the sweep before num_training.
TEST(LRFinder, LinearModeWithAccumulationEndsWithMaxEpochsAsLightning) {
  expect_same_sweep_as_lightning<LrModel>(
      {{.min_lr = 1e-5, .max_lr = 0.1, .mode = L::LRFinderMode::linear},
       ", min_lr=1e-5, max_lr=0.1, mode='linear'",
       2,
       3});
}

// Lightning's suggestion on given curves: skips, NaN and infinite losses, too few points.
TEST(LRFinder, SuggestionEqualsLightningsOnTheSameCurves) {
  const auto peer = lightning::testing::run_python_program(R"(
import math, torch
from pytorch_lightning.tuner.lr_finder import _LRFinder
g = torch.Generator().manual_seed(0)
for n, skip_begin, skip_end in ((100, 10, 1), (40, 0, 5), (30, 3, 2), (12, 10, 1), (5, 10, 1)):
    lrs = [1e-6 * (1e6 ** (i / n)) for i in range(n)]
    losses = (torch.rand(n, generator=g, dtype=torch.float64) + torch.linspace(2, 0, n, dtype=torch.float64)).tolist()
    if n > 20: losses[7] = float("nan"); losses[15] = float("inf")
    f = _LRFinder("exponential", 1e-6, 1.0, n)
    f.results = {"lr": lrs, "loss": losses}
    f.suggestion(skip_begin, skip_end)
    print(n, skip_begin, skip_end, f._optimal_idx, " ".join(repr(v) for v in losses))
)");
  LIGHTNING_EXPECT_PYTHON_OK(peer);
  const auto lines = lightning::testing::lines_of(peer.output);
  ASSERT_EQ(lines.size(), 5u);
  for (const auto& line : lines) {
    std::istringstream in(line);
    std::int64_t n = 0, skip_begin = 0, skip_end = 0;
    std::string index;
    in >> n >> skip_begin >> skip_end >> index;
    std::vector<double> lrs, losses;
    for (std::string v; in >> v;)
      losses.push_back(v == "nan"   ? std::numeric_limits<double>::quiet_NaN()
                       : v == "inf" ? std::numeric_limits<double>::infinity()
                                    : std::stod(v));
    for (std::int64_t i = 0; i < n; ++i)
      lrs.push_back(1e-6 * std::pow(1e6, static_cast<double>(i) / static_cast<double>(n)));
    const L::LRFinder f({}, lrs, losses);
    const auto ours = f.optimal_index(skip_begin, skip_end);
    if (index == "None")
      EXPECT_FALSE(ours.has_value()) << line;
    else
      EXPECT_EQ(ours, std::optional<std::size_t>(std::stoul(index))) << line;
  }
}

TEST(LRFinder, RestoresTheWeightsAndWritesAHyperparameter) {
  struct HparamModel : L::testing::SimpleModel {
    HparamModel() { save_hyperparameters(L::HParams{{"learning_rate", 1e-3}, {"width", 10}}); }
  };
  auto [X, y] = L::testing::seed_data(320);
  HparamModel model;
  const auto before = flat_parameters(model).clone();
  CpuTrainer<> trainer(bare({.max_epochs = 10}));
  const auto found = L::Tuner(trainer).lr_find(
      model, L::data::TensorLoader({X, y}, {.batch_size = 32}), {.num_training = 30});
  ASSERT_TRUE(found && found->suggestion());
  EXPECT_EQ(found->lrs().size(), 30u);
  EXPECT_TRUE(torch::equal(flat_parameters(model), before));
  EXPECT_EQ(model.hparams().find("learning_rate")->get<double>(), *found->suggestion());
  // The trainer trains the module afterwards as if nothing had run.
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(trainer.global_step, 100);
}

TEST(LRFinder, MisuseIsAClearError) {
  auto [X, y] = L::testing::seed_data(64);
  L::testing::SimpleModel plain;  // no lr member, no hyperparameters
  CpuTrainer<> trainer(bare({.max_epochs = 1}));
  L::Tuner tuner(trainer);
  const auto loader = [&] { return L::data::TensorLoader({X, y}, {.batch_size = 32}); };
  lightning::testing::expect_invalid_argument([&] { (void)tuner.lr_find(plain, loader()); },
                                              "give the module a `double lr` or `double "
                                              "learning_rate` member");
  lightning::testing::expect_invalid_argument(
      [&] { (void)tuner.lr_find(plain, loader(), {.attr_name = "step_size"}); },
      "(attr_name = \"step_size\" is not a hyperparameter)");
  LrModel model;
  lightning::testing::expect_invalid_argument(
      [&] { (void)tuner.lr_find(model, loader(), {.min_lr = 0.0}); },
      "LRFinderOptions.min_lr = 0.000000 must be > 0");
  lightning::testing::expect_invalid_argument(
      [&] { (void)tuner.lr_find(model, loader(), {.min_lr = 1e-3, .max_lr = 1e-4}); },
      "LRFinderOptions.max_lr = 0.000100 must be > min_lr");
  lightning::testing::expect_invalid_argument(
      [&] { (void)tuner.lr_find(model, loader(), {.num_training = 0}); },
      "LRFinderOptions.num_training = 0 must be >= 1");

  // A development run skips the search, as Lightning does.
  auto dev = bare({.max_epochs = 1});
  dev.fast_dev_run = 2;
  CpuTrainer<> quick(dev);
  EXPECT_FALSE(L::Tuner(quick).lr_find(model, loader()).has_value());
  EXPECT_EQ(model.lr, 1e-3);
}

}  // namespace lr_finder_test
