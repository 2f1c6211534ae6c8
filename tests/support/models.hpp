// Modules and callbacks shared by the tests.
#pragma once

#include <lightning/lightning.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace lightning::testing {

namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

// A CPU trainer with the given callbacks (tests pin the accelerator: no GPU surprises).
template <class... C>
using CpuTrainer =
    L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32, C...>;

// The seed workload: Linear(10, 1), MSE, Adam(1e-3), train_loss logged per step.
struct SimpleModel : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};

  torch::Tensor forward(const torch::Tensor& x) { return linear(x); }

  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(forward(x), y.unsqueeze(1));
    log("train_loss", loss);
    return loss;
  }

  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

// SimpleModel's workload optimized by hand (automatic_optimization = false): zero_grad,
// manual_backward and step in training_step, train_loss logged per step.
struct ManualModel : L::LightningModule {
  static constexpr bool automatic_optimization = false;
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};

  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto opt = optimizer();
    opt.zero_grad();
    auto loss = torch::mse_loss(linear(x), y.unsqueeze(1));
    manual_backward(loss);
    opt.step();
    log("train_loss", loss);
    return loss;
  }

  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

// Linear(10, 4), BatchNorm1d, Linear(4, 1) with MSE: parameters, float buffers and an
// integer buffer (num_batches_tracked); the weight-averaging tests add their optimizers.
struct NormNet : L::LightningModule {
  torch::nn::Linear a{register_module("a", torch::nn::Linear(10, 4))};
  torch::nn::BatchNorm1d bn{register_module("bn", torch::nn::BatchNorm1d(4))};
  torch::nn::Linear b{register_module("b", torch::nn::Linear(4, 1))};

  torch::Tensor forward(const torch::Tensor& x) { return b(bn(a(x))); }
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    return torch::mse_loss(forward(x), y.unsqueeze(1));
  }
};

// SimpleModel with a validation_step logging val_loss.
struct ValidatedModel : SimpleModel {
  std::int64_t validation_steps = 0;
  void validation_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    ++validation_steps;
    log("val_loss", torch::mse_loss(forward(x), y.unsqueeze(1)));
  }
};

// SimpleModel whose validation logs a scripted "val_loss" per epoch (the last value
// repeats), so callbacks that rank or watch it see known values.
struct ScriptedValLossModel : SimpleModel {
  std::vector<double> val_losses;
  void validation_step(const XY&, std::int64_t) {
    const auto e = static_cast<std::size_t>(current_epoch());
    log("val_loss", val_losses.at(std::min(e, val_losses.size() - 1)));
  }
};

// 1000 x 10 inputs and 1000 targets, deterministic.
inline std::pair<torch::Tensor, torch::Tensor> seed_data(std::int64_t n = 1000,
                                                         std::uint64_t seed = 0) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return {torch::randn({n, 10}, g), torch::randn({n}, g)};
}

// Options with every default callback off (progress bar, checkpointing, summary, logger):
// the loop and the policies alone.
inline L::TrainerOptions bare(L::TrainerOptions o) {
  o.enable_progress_bar = false;
  o.enable_checkpointing = false;
  o.enable_model_summary = false;
  o.logger = false;
  return o;
}

// All parameters of a module flattened into one tensor (for bitwise comparisons).
inline torch::Tensor flat_parameters(torch::nn::Module& m) {
  std::vector<torch::Tensor> ps;
  for (auto& p : m.parameters()) ps.push_back(p.detach().reshape({-1}));
  return torch::cat(ps);
}

// A logger callback that keeps every log_metrics call.
struct RecordingLogger {
  struct Row {
    L::MetricMap metrics;
    std::int64_t step;
  };
  std::vector<Row>* rows;
  void log_metrics(const L::MetricMap& metrics, std::int64_t step) {
    rows->push_back({metrics, step});
  }
};

}  // namespace lightning::testing
