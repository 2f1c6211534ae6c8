// LightningCLI builds the module from its hyperparameters: a module that declares none
// (no `using Hyperparameters = ...;`) is refused with a message saying what to add.
struct NoHyperparameters : lightning::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(2, 1))};
  torch::Tensor training_step(const lightning::Batch<torch::Tensor, torch::Tensor>& b, int64_t) {
    const auto& [x, y] = b;
    return torch::mse_loss(linear(x), y);
  }
  auto configure_optimizers() { return torch::optim::SGD(parameters(), 0.1); }
};
struct Data {
  struct Options {
    BOOST_HANA_DEFINE_STRUCT(Options, (std::int64_t, batch_size));
  };
  using Hyperparameters = Options;
  explicit Data(const Options&) {}
};
inline int run(int argc, char** argv) {
  return lightning::cli::LightningCLI<NoHyperparameters, Data>(argc, argv).run();
}
