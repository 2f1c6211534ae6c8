// One checkpoint for both languages: runs started in PyTorch Lightning 2.6 resume here,
// runs started here resume in Lightning's Trainer.fit(ckpt_path=...), and each continues
// as the other language's uninterrupted run (tests/python/lightning_resume.py is the
// Lightning side).
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/python.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {
namespace L = lightning;
namespace fs = std::filesystem;
using lightning::testing::lines_of;
using lightning::testing::peer_script;
using lightning::testing::run_python;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

// The modules of lightning_resume.py, step for step.
template <class Derived>
struct RecordedSteps : L::LightningModule {
  std::vector<double> losses;
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    auto loss = self().loss_of(batch);
    losses.push_back(loss.template item<double>());  // test only: a sync per step
    log("train_loss", loss);
    return loss;
  }
  void validation_step(const XY& batch, std::int64_t) { log("val_loss", self().loss_of(batch)); }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

struct SeedNet : RecordedSteps<SeedNet> {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor loss_of(const XY& batch) {
    const auto& [x, y] = batch;
    return torch::mse_loss(linear(x).to(torch::kFloat), y);
  }
  auto configure_optimizers() {
    return L::optimizers(torch::optim::Adam(parameters(), torch::optim::AdamOptions(0.01)),
                         L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.7}));
  }
};

struct CnnNet : RecordedSteps<CnnNet> {
  torch::nn::Conv2d conv1{
      register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3)))};
  torch::nn::Conv2d conv2{
      register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)))};
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(64 * 5 * 5, 128))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(128, 10))};
  torch::Tensor loss_of(const XY& batch) {
    const auto& [x, y] = batch;
    auto h = torch::max_pool2d(torch::relu(conv1(x)), 2);
    h = torch::max_pool2d(torch::relu(conv2(h)), 2);
    return torch::cross_entropy_loss(fc2(torch::relu(fc1(h.flatten(1)))).to(torch::kFloat), y);
  }
  auto configure_optimizers() {
    return L::optimizers(
        torch::optim::SGD(parameters(), torch::optim::SGDOptions(0.05).momentum(0.9)),
        L::scheduler(L::lr::CosineAnnealingLR{.t_max = 5}));
  }
};

// bf16-mixed with a gradient scaler, on the CPU: the scaler's state is what crosses.
// Lightning's bf16-mixed refuses a scaler, so the Python side is its
// MixedPrecision("16-mixed", "cpu", scaler=GradScaler("cpu", ...)); LibTorch 1.13's CPU
// autocast has no float16 here.
struct ScaledBF16OnCpu : L::precision::MixedPrecision<c10::kBFloat16, true> {
  static constexpr std::string_view name = "bf16-mixed-scaled";
  ScaledBF16OnCpu()
      : MixedPrecision(L::GradScalerOptions{.init_scale = 1024.0, .growth_interval = 3}) {}
};

// The data of both languages: written here, read by the peer with torch.load.
L::CheckpointDict make_data(bool cnn) {
  torch::manual_seed(3);
  L::CheckpointDict d = L::make_checkpoint();
  if (!cnn) {
    const auto tx = torch::randn({64, 10}), w = torch::randn({10, 1});
    const auto ty = tx.mm(w) + 0.1 * torch::randn({64, 1});
    const auto vx = torch::randn({32, 10});
    const auto vy = vx.mm(w) + 0.1 * torch::randn({32, 1});
    d.insert("train_x", tx), d.insert("train_y", ty), d.insert("val_x", vx), d.insert("val_y", vy);
  } else {
    const auto templates = torch::randn({10, 1, 28, 28});
    const auto ty = torch::randint(0, 10, {64}), vy = torch::randint(0, 10, {32});
    const auto tx = 2 * torch::randn({64, 1, 28, 28}) + templates.index_select(0, ty);
    const auto vx = 2 * torch::randn({32, 1, 28, 28}) + templates.index_select(0, vy);
    d.insert("train_x", tx), d.insert("train_y", ty), d.insert("val_x", vx), d.insert("val_y", vy);
  }
  return d;
}

// What a run did, in the peer's terms.
struct Run {
  std::vector<double> losses;
  std::map<std::string, std::string> facts;  // current_epoch, global_step, stopped_epoch, lr
  std::vector<std::string> kept;             // files left in the checkpoint directory
  std::string scaler_start, scaler_end;
  std::map<std::string, torch::Tensor> weights;  // the C++ side's, after fit
};

Run read_peer(const fs::path& out) {
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  Run r;
  for (const auto& line : lines_of(text.str())) {
    const auto space = line.find(' ');
    const auto key = line.substr(0, space), value = line.substr(space + 1);
    if (key == "loss")
      r.losses.push_back(std::stod(value));
    else if (key == "kept")
      r.kept.push_back(value);
    else if (key == "scaler_start")
      r.scaler_start = value;
    else if (key == "scaler_end")
      r.scaler_end = value;
    else
      r.facts[key] = value;
  }
  return r;
}

struct Workload {
  const char* model;
  double min_delta;
};

Run run_python_side(const Workload& w, const fs::path& data, const fs::path& dir,
                    std::int64_t epochs, const std::string& resume, const std::string& save,
                    bool scaled) {
  const auto out = dir.string() + ".txt";
  std::vector<std::string> args = {peer_script("lightning_resume.py"),
                                   "--model",
                                   w.model,
                                   "--data",
                                   data.string(),
                                   "--ckpt-dir",
                                   dir.string(),
                                   "--max-epochs",
                                   std::to_string(epochs),
                                   "--out",
                                   out,
                                   "--min-delta",
                                   L::python_float_repr(w.min_delta)};
  if (!resume.empty()) args.insert(args.end(), {"--resume", resume});
  if (!save.empty()) args.insert(args.end(), {"--save", save});
  if (scaled) args.push_back("--scaled-fp16");
  std::string command;
  for (const auto& a : args) command += (command.empty() ? "" : " ") + a;
  const auto result = run_python(args);
  EXPECT_EQ(result.status, 0) << command << "\n" << result.errors;
  return read_peer(out);
}

template <class Net, class P = L::precision::F32>
Run run_cpp_side(const Workload& w, const L::CheckpointDict& data, const fs::path& dir,
                 std::int64_t epochs, const std::string& resume, const std::string& save) {
  torch::manual_seed(0);
  Net net;
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, P, L::callbacks::ModelCheckpoint,
             L::callbacks::EarlyStopping>
      trainer(
          {.max_epochs = epochs,
           .enable_progress_bar = false,
           .enable_model_summary = false,
           .logger = false,
           .deterministic = true},
          L::callbacks::ModelCheckpoint({.dirpath = dir, .monitor = "val_loss", .save_top_k = 2}),
          L::callbacks::EarlyStopping(
              {.monitor = "val_loss", .min_delta = w.min_delta, .patience = 1}));
  const auto loader = [&](const char* x, const char* y) {
    return L::data::TensorLoader({data.at(x).toTensor(), data.at(y).toTensor()},
                                 {.batch_size = 16});
  };
  if (resume.empty())
    trainer.fit(net, loader("train_x", "train_y"), loader("val_x", "val_y"));
  else
    trainer.fit(net, loader("train_x", "train_y"), loader("val_x", "val_y"),
                L::CheckpointPath{resume});
  if (!save.empty()) trainer.save_checkpoint(save);
  Run r;
  r.losses = net.losses;
  for (const auto& p : net.named_parameters()) r.weights[p.key()] = p.value().detach().clone();
  r.facts["current_epoch"] = std::to_string(trainer.current_epoch);
  r.facts["global_step"] = std::to_string(trainer.global_step);
  r.facts["stopped_epoch"] =
      std::to_string(std::get<L::callbacks::EarlyStopping>(trainer.callbacks()).stopped_epoch());
  r.facts["lr"] =
      L::python_float_repr(L::lr::group_lrs(*trainer.optimizer_infos().at(0).optimizer).at(0));
  for (const auto& e : fs::directory_iterator(dir)) r.kept.push_back(e.path().filename().string());
  std::sort(r.kept.begin(), r.kept.end());
  if constexpr (requires { P::scaled; }) {
    if constexpr (P::scaled) {
      auto& s = trainer.fabric().precision().scaler();
      r.scaler_end = L::python_float_repr(s.get_scale()) + " " + std::to_string(s.growth_tracker());
    }
  }
  return r;
}

// The resumed run's steps equal the tail of the uninterrupted run's, to 1e-5 relative;
// it stops where that one stops and keeps the same checkpoints.
void expect_continues(const Run& straight, const Run& resumed, std::size_t steps_before) {
  ASSERT_GT(resumed.losses.size(), 0u);
  ASSERT_EQ(straight.losses.size(), steps_before + resumed.losses.size())
      << "the resumed run took another number of steps";
  for (std::size_t i = 0; i < resumed.losses.size(); ++i) {
    const double a = straight.losses[steps_before + i], b = resumed.losses[i];
    EXPECT_LE(std::abs(a - b), 1e-5 * std::abs(a)) << "step " << steps_before + i;
  }
  for (const char* key : {"current_epoch", "global_step", "stopped_epoch"})
    EXPECT_EQ(straight.facts.at(key), resumed.facts.at(key)) << key;
  const double lr_a = std::stod(straight.facts.at("lr")), lr_b = std::stod(resumed.facts.at("lr"));
  EXPECT_LE(std::abs(lr_a - lr_b), 1e-9 * std::abs(lr_a)) << "lr";
  EXPECT_EQ(straight.kept, resumed.kept);
}

template <class Net>
void python_to_cpp(const Workload& w) {
  const auto here = fs::canonical(fs::current_path());
  const auto d = make_data(std::string(w.model) == "cnn");
  L::save_checkpoint_file(here / "data.pt", d);
  const auto straight =
      run_python_side(w, here / "data.pt", here / "py_straight", 5, "", "", false);
  const auto first = run_python_side(w, here / "data.pt", here / "shared", 2, "",
                                     (here / "py_epoch2.ckpt").string(), false);
  ASSERT_EQ(first.losses.size(), 8u);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(first.losses[i], straight.losses[i]);
  const auto resumed =
      run_cpp_side<Net>(w, d, here / "shared", 5, (here / "py_epoch2.ckpt").string(), "");
  expect_continues(straight, resumed, 8);
}

template <class Net>
void cpp_to_python(const Workload& w) {
  const auto here = fs::canonical(fs::current_path());
  const auto d = make_data(std::string(w.model) == "cnn");
  L::save_checkpoint_file(here / "data.pt", d);
  const auto straight = run_cpp_side<Net>(w, d, here / "cpp_straight", 5, "", "");
  const auto first =
      run_cpp_side<Net>(w, d, here / "shared", 2, "", (here / "cpp_epoch2.ckpt").string());
  ASSERT_EQ(first.losses.size(), 8u);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(first.losses[i], straight.losses[i]);
  const auto resumed = run_python_side(w, here / "data.pt", here / "shared", 5,
                                       (here / "cpp_epoch2.ckpt").string(), "", false);
  expect_continues(straight, resumed, 8);
}

// min_delta 0.1 stops the seed run at epoch 3 (its val_loss improves by 0.21, 0.14,
// 0.094, ...); the CNN's val_loss rises at epoch 2 and stops it there.
constexpr Workload seed{"seed", 0.1};
constexpr Workload cnn{"cnn", 0.0};

}  // namespace

TEST(CheckpointLayout, LightningSeedRunResumesInCpp) {
  python_to_cpp<SeedNet>(seed);
}
TEST(CheckpointLayout, LightningCnnRunResumesInCpp) {
  python_to_cpp<CnnNet>(cnn);
}
TEST(CheckpointLayout, CppSeedRunResumesInLightning) {
  cpp_to_python<SeedNet>(seed);
}
TEST(CheckpointLayout, CppCnnRunResumesInLightning) {
  cpp_to_python<CnnNet>(cnn);
}

// The gradient scaler's scale and growth tracker cross both ways where Lightning's
// MixedPrecision plugin keeps them: a bf16-mixed run with a scaler here, a 16-mixed one
// with a CPU GradScaler in Lightning.
TEST(CheckpointLayout, GradScalerStateCrossesBothWays) {
  const auto here = fs::canonical(fs::current_path());
  const auto d = make_data(false);
  L::save_checkpoint_file(here / "data.pt", d);
  // C++ to Python: the scaler Lightning starts its resumed run with is the one saved here.
  const auto cpp = run_cpp_side<SeedNet, ScaledBF16OnCpu>(seed, d, here / "a", 2, "",
                                                         (here / "cpp.ckpt").string());
  const auto saved = L::load_checkpoint_file(here / "cpp.ckpt");
  ASSERT_TRUE(saved.contains("MixedPrecision"));
  EXPECT_NE(cpp.scaler_end, "1024.0 0");  // it has grown: 8 steps, growth_interval 3
  const auto py = run_python_side(seed, here / "data.pt", here / "b", 3,
                                  (here / "cpp.ckpt").string(), (here / "py.ckpt").string(), true);
  EXPECT_EQ(py.scaler_start, cpp.scaler_end);
  // Python to C++: the scaler restored here is the one Lightning saved.
  const auto again = run_cpp_side<SeedNet, ScaledBF16OnCpu>(seed, d, here / "b", 3,
                                                           (here / "py.ckpt").string(), "");
  EXPECT_TRUE(again.losses.empty());  // nothing left to train: the state is as saved
  EXPECT_EQ(again.scaler_end, py.scaler_end);
}

// A checkpoint of lightning-cpp 0.1's own layout (optimizer and scheduler states keyed
// "0", flat loop counters, scores as floats; tests/data/checkpoints/lightning-cpp-0.1,
// made by make.cpp there) resumes, and the run ends with the weights 0.1's own
// uninterrupted run reached, bit for bit.
TEST(CheckpointLayout, CheckpointsOfLightningCpp01StillResume) {
  const auto old = fs::path(LIGHTNING_TEST_DATA_DIR) / "checkpoints" / "lightning-cpp-0.1";
  const auto before = L::load_checkpoint_file(old / "seed_epoch1.ckpt");
  ASSERT_TRUE(before.at("optimizer_states").isGenericDict());  // the old layout indeed
  ASSERT_TRUE(L::checkpoint_dict(before.at("loops")).contains("mid_epoch"));
  const auto d = make_data(false);
  const auto resumed = run_cpp_side<SeedNet>({"seed", 0.0}, d, fs::current_path() / "ckpts", 2,
                                             (old / "seed_epoch1.ckpt").string(), "");
  EXPECT_EQ(resumed.losses.size(), 4u);  // epoch 1 only
  EXPECT_EQ(resumed.facts.at("global_step"), "8");
  const auto expected = L::checkpoint_dict<at::Tensor>(
      L::load_checkpoint_file(old / "seed_epoch2.ckpt").at("state_dict"));
  ASSERT_EQ(resumed.weights.size(), expected.size());
  for (const auto& [name, w] : resumed.weights) {
    // Bit for bit on the LibTorch that wrote the files (2.x); Debian's 1.13 (the compat
    // build) has other kernels.
    if (LIGHTNING_TORCH_AT_LEAST(2, 0))
      EXPECT_TRUE(torch::equal(w, expected.at(name))) << name;
    else
      EXPECT_TRUE(torch::allclose(w, expected.at(name), 1e-5, 1e-7)) << name;
  }
}
