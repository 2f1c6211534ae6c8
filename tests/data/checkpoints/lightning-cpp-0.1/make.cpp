// How seed_epoch1.ckpt and seed_epoch2.ckpt were made: this program, built against the
// headers of lightning-cpp 0.1 (commit c936999) and torch 2.11, run as `./make out`.
// tests/trainer/connectors/checkpoint_layout_test.cpp resumes seed_epoch1.ckpt (0.1's
// layout) with today's library and expects seed_epoch2.ckpt's weights bit for bit.
// Writes checkpoints in lightning-cpp 0.1's layout (run against the tree of c936999).
#include <filesystem>
#include <iostream>
#include <lightning/lightning.hpp>
namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;
struct SeedNet : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor loss_of(const XY& batch) {
    const auto& [x, y] = batch;
    return torch::mse_loss(linear(x), y);
  }
  torch::Tensor training_step(const XY& b, std::int64_t) {
    auto l = loss_of(b);
    log("train_loss", l);
    return l;
  }
  void validation_step(const XY& b, std::int64_t) { log("val_loss", loss_of(b)); }
  auto configure_optimizers() {
    return L::optimizers(torch::optim::Adam(parameters(), torch::optim::AdamOptions(0.01)),
                         L::scheduler(L::lr::StepLR{.step_size = 1, .gamma = 0.7}));
  }
};
int main(int, char** argv) {
  const std::filesystem::path out = argv[1];
  torch::manual_seed(3);
  const auto tx = torch::randn({64, 10}), w = torch::randn({10, 1});
  const auto ty = tx.mm(w) + 0.1 * torch::randn({64, 1});
  const auto vx = torch::randn({32, 10});
  const auto vy = vx.mm(w) + 0.1 * torch::randn({32, 1});
  for (int epochs : {1, 2}) {
    torch::manual_seed(0);
    SeedNet net;
    net.save_hyperparameters({{"lr", 0.01}, {"gamma", 0.7}});
    L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
               L::callbacks::ModelCheckpoint, L::callbacks::EarlyStopping>
        trainer({.max_epochs = epochs,
                 .enable_progress_bar = false,
                 .enable_model_summary = false,
                 .logger = false,
                 .deterministic = true},
                L::callbacks::ModelCheckpoint(
                    {.dirpath = out / "unused", .monitor = "val_loss", .save_top_k = 2}),
                L::callbacks::EarlyStopping({.monitor = "val_loss", .patience = 3}));
    trainer.fit(net, L::data::TensorLoader({tx, ty}, {.batch_size = 16}),
                L::data::TensorLoader({vx, vy}, {.batch_size = 16}));
    trainer.save_checkpoint(out / ("seed_epoch" + std::to_string(epochs) + ".ckpt"));
  }
}
