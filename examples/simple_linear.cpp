// The canonical PyTorch Lightning example, line for line (docs/getting-started.md).
//
//   class SimpleModel(pl.LightningModule):             -> struct SimpleModel : L::LightningModule
//       self.linear = nn.Linear(10, 1)                 -> linear member
//       def forward / training_step / configure_optimizers
//   X = torch.randn(1000, 10); y = torch.randn(1000)
//   dataloader = DataLoader(TensorDataset(X, y), batch_size=32)
//   trainer = pl.Trainer(max_epochs=3, accelerator='auto'); trainer.fit(SimpleModel(), dataloader)
#include <lightning/lightning.hpp>

namespace L = lightning;

struct SimpleModel : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};

  torch::Tensor forward(const torch::Tensor& x) { return linear(x); }

  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& batch, int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(forward(x), y.unsqueeze(1));
    log("train_loss", loss, {.prog_bar = true});  // prog_bar: show it on the progress bar
    return loss;
  }

  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

int main() {
  auto X = torch::randn({1000, 10});
  auto y = torch::randn({1000});
  auto dataloader = L::data::TensorLoader({X, y}, {.batch_size = 32});

  SimpleModel model;
  L::Trainer trainer({.max_epochs = 3});  // accelerator auto, single device, fp32
  trainer.fit(model, dataloader);
}
