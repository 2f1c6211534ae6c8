// A GAN on a 2-D toy distribution, with manual optimization and two optimizers
// (Lightning's "Use Multiple Optimizers (like GANs)", docs/manual-optimization.md).
//
// The target is a correlated Gaussian centred at (2, -1); the generator maps 4-D noise
// to the plane. Before and after training the program measures how far generated
// samples are from the target (sliced Wasserstein-1 distance over 32 directions, and
// the distance between means) and says whether the generator moved toward the target.
//
//   ./build/examples/gan [epochs=100]
#include <lightning/lightning.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <string>

namespace L = lightning;

constexpr std::int64_t latent_dim = 4;

// Samples of the target: mean (2, -1), standard deviations 0.5 and 0.3, correlation 0.8.
torch::Tensor sample_target(std::int64_t n, torch::Generator& g) {
  auto z = torch::randn({n, 2}, g);
  const double rho = 0.8, sx = 0.5, sy = 0.3;
  auto x = 2.0 + sx * z.select(1, 0);
  auto y = -1.0 + sy * (rho * z.select(1, 0) + std::sqrt(1 - rho * rho) * z.select(1, 1));
  return torch::stack({x, y}, 1);
}

torch::nn::Sequential mlp(std::int64_t in, std::int64_t out) {
  return torch::nn::Sequential(
      torch::nn::Linear(in, 64),
      torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)),
      torch::nn::Linear(64, 64),
      torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)),
      torch::nn::Linear(64, out));
}

struct GAN : L::LightningModule {
  // Lightning's `self.automatic_optimization = False`, known at compile time.
  static constexpr bool automatic_optimization = false;

  torch::nn::Sequential generator{register_module("generator", mlp(latent_dim, 2))};
  torch::nn::Sequential discriminator{register_module("discriminator", mlp(2, 1))};

  torch::Tensor sample(std::int64_t n) { return generator->forward(torch::randn({n, latent_dim})); }

  void training_step(const L::Batch<torch::Tensor>& batch, std::int64_t) {
    const auto& [real] = batch;
    auto [g_opt, d_opt] = optimizers<2>();
    auto fake = generator->forward(torch::randn({real.size(0), latent_dim}, real.options()));

    // Discriminator: tell real from generated samples.
    toggle_optimizer(d_opt);
    auto d_real = discriminator->forward(real);
    auto d_fake = discriminator->forward(fake.detach());
    auto d_loss = torch::binary_cross_entropy_with_logits(d_real, torch::ones_like(d_real)) +
                  torch::binary_cross_entropy_with_logits(d_fake, torch::zeros_like(d_fake));
    d_opt.zero_grad();
    manual_backward(d_loss);
    d_opt.step();
    untoggle_optimizer();

    // Generator: make the discriminator call its samples real.
    toggle_optimizer(g_opt);
    auto d_on_fake = discriminator->forward(fake);
    auto g_loss = torch::binary_cross_entropy_with_logits(d_on_fake, torch::ones_like(d_on_fake));
    g_opt.zero_grad();
    manual_backward(g_loss);
    g_opt.step();
    untoggle_optimizer();

    log("d_loss", d_loss, {.prog_bar = true});
    log("g_loss", g_loss, {.prog_bar = true});
  }

  auto configure_optimizers() {
    auto adam = [](auto params) {
      return torch::optim::Adam(params, torch::optim::AdamOptions(1e-3).betas({0.5, 0.999}));
    };
    return std::tuple{adam(generator->parameters()), adam(discriminator->parameters())};
  }
};

// Sliced Wasserstein-1 distance between two equally sized 2-D samples: the mean, over
// fixed directions, of the 1-D W1 distance of the projections (sorted differences).
double sliced_w1(const torch::Tensor& a, const torch::Tensor& b, std::int64_t directions = 32) {
  auto angles = torch::arange(directions, torch::kDouble) *
                (std::numbers::pi / static_cast<double>(directions));
  auto dirs = torch::stack({torch::cos(angles), torch::sin(angles)}, 0);  // 2 x D
  auto pa = std::get<0>(torch::sort(a.to(torch::kDouble).matmul(dirs), 0));
  auto pb = std::get<0>(torch::sort(b.to(torch::kDouble).matmul(dirs), 0));
  return (pa - pb).abs().mean().item<double>();
}

struct Report {
  double w1, mean_error;
};

Report measure(GAN& gan, torch::Generator& g) {
  torch::NoGradGuard no_grad;
  const std::int64_t n = 4096;
  auto generated = gan.sample(n);
  auto target = sample_target(n, g);
  return {sliced_w1(generated, target), (generated.mean(0) - target.mean(0)).norm().item<double>()};
}

int main(int argc, char** argv) {
  const std::int64_t epochs = argc > 1 ? std::atoll(argv[1]) : 100;
  L::seed_everything(7);
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);

  auto data = sample_target(8192, g);
  auto loader = L::data::TensorLoader({data}, {.batch_size = 256, .shuffle = true});

  GAN gan;
  const Report before = measure(gan, g);
  L::Trainer trainer({.max_epochs = epochs});
  const auto start = std::chrono::steady_clock::now();
  trainer.fit(gan, loader);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Report after = measure(gan, g);

  std::printf("optimizer steps (global_step): %lld in %.1f s\n",
              static_cast<long long>(trainer.global_step), seconds);
  std::printf("sliced W1 to the target: %.3f before, %.3f after\n", before.w1, after.w1);
  std::printf("distance between means:  %.3f before, %.3f after\n", before.mean_error,
              after.mean_error);
  const bool moved = after.w1 < 0.25 * before.w1 && after.mean_error < 0.25 * before.mean_error;
  std::printf("%s\n", moved ? "generator moved toward the target"
                            : "generator did NOT move toward the target");
  return moved ? 0 : 1;
}
