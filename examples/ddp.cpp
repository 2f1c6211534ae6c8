// Distributed data parallel on the CPU: the seed model on 2 local ranks (Gloo), started by
// this one command. Lightning's `Trainer(strategy="ddp", devices=2)`.
//
//   ./build/examples/ddp [devices]           # this process is rank 0 and starts the others
//   torchrun --nproc-per-node=2 ./build/examples/ddp    # or srun, or the variables by hand
//
// Each rank trains on its shard of the data (a DistributedSampler's), the Reducer averages
// the gradients during backward, and the logged loss is averaged over the ranks
// (sync_dist). Rank zero prints, logs and writes the checkpoints. Ctrl-C or SIGTERM stops
// every rank at the next step with the run saved in interrupted.ckpt; running the
// program again resumes it from there.
#include <lightning/lightning.hpp>
#include <lightning/policies/ddp.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

namespace L = lightning;

struct SimpleModel : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};

  torch::Tensor forward(const torch::Tensor& x) { return linear(x); }

  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& batch, int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(forward(x), y.unsqueeze(1));
    log("train_loss", loss, {.prog_bar = true, .on_epoch = true, .sync_dist = true});
    return loss;
  }

  auto configure_optimizers() { return torch::optim::Adam(parameters(), 5e-2); }
};

int main(int argc, char** argv) {
  const std::int64_t devices = argc > 1 ? std::stoll(argv[1]) : 2;
  torch::set_num_threads(1);  // one core per rank
  torch::manual_seed(0);      // the same data on every rank: each trains on its own shard
  const auto X = torch::randn({1024, 10});
  const auto y = X.matmul(torch::linspace(-1, 1, 10)) + 0.1 * torch::randn({1024});

  SimpleModel model;
  L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
      {.max_epochs = 5, .devices = devices, .default_root_dir = "ddp_run"});
  const auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32, .shuffle = true});
  const std::filesystem::path interrupted = "ddp_run/interrupted.ckpt";
  try {
    if (std::filesystem::exists(interrupted))
      trainer.fit(model, loader, L::CheckpointPath{interrupted});
    else
      trainer.fit(model, loader);
  } catch (const L::Interrupted& e) {
    if (trainer.is_global_zero()) std::cerr << e.what() << '\n';
    return 128 + e.signal;
  }
  if (trainer.is_global_zero()) {
    std::filesystem::remove(interrupted);
    std::cout << "trained on " << trainer.fabric().world_size() << " ranks: " << trainer.global_step
              << " steps of " << 32 * trainer.fabric().world_size() << " examples, train_loss "
              << trainer.metrics.callback_metrics().at("train_loss_epoch")
              << " (mean over the ranks)\n";
  }
}
