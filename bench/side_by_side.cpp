// One variant of the side-by-side comparison (bench/side_by_side.py runs them all, with
// Python Lightning and a plain PyTorch loop beside them, in one invocation):
//
//   ./build/bench/side_by_side <seed|cnn> <trainer|trainer-lean|trainer-profiled|hand> <work dir>
//
// seed: Linear(10, 1), Adam 1e-3, 1000 x 10 random examples, batch 32, 30 epochs.
// cnn:  one epoch of Fashion-MNIST (60k shuffled training images, validation on the 10k
//       test images), conv 3x3 32 -> pool -> conv 3x3 64 -> pool -> 128 -> 10, Adam 1e-3,
//       batch 64, 2 threads.
// trainer:      Lightning's defaults (progress bar, model summary, checkpoint, and the
//               default TensorBoardLogger, as Lightning adds when tensorboard is installed).
// trainer-lean: no logger, checkpoint, progress bar or summary.
// trainer-profiled: Lightning's defaults and a SimpleProfiler (its report written to
//               <work dir>/fit-profile.txt): what timing every action costs.
// hand:         the same loop written by hand against LibTorch.
//
// Prints one line: `result {json}` with the wall time of the fit, the optimizer steps,
// the minor page faults of the fit and the final metrics (equal in the three variants).
// LIGHTNING_SIDE_BY_SIDE_LIMIT=N limits training (and validation) to N batches, for quick
// checks of the script.
#include <lightning/data/idx.hpp>
#include <lightning/lightning.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

namespace L = lightning;
using XY = L::Batch<torch::Tensor, torch::Tensor>;

namespace {

constexpr std::int64_t kSeedEpochs = 30;
constexpr double kLr = 1e-3;
const std::filesystem::path kFashion = "/usr/share/datasets/fashion-mnist";
constexpr L::data::Normalize kNormalize{.scale = 1.0 / 255, .mean = 0.2860, .std = 0.3530};

// LIGHTNING_SIDE_BY_SIDE_LIMIT: batches per epoch (and per validation); unset: all.
std::optional<std::int64_t> batch_limit() {
  const char* limit = std::getenv("LIGHTNING_SIDE_BY_SIDE_LIMIT");
  if (limit == nullptr || *limit == '\0') return std::nullopt;
  return std::stoll(limit);
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

struct SeedModel : L::LightningModule {
  torch::nn::Linear linear{register_module("linear", torch::nn::Linear(10, 1))};
  torch::Tensor forward(const torch::Tensor& x) { return linear(x); }
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::mse_loss(forward(x), y.unsqueeze(1));
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), kLr); }
};

struct FashionCNN : L::LightningModule {
  torch::nn::Conv2d conv1{
      register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)))};
  torch::nn::Conv2d conv2{
      register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)))};
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(64 * 7 * 7, 128))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(128, 10))};

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);  // 32 x 14 x 14
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);  // 64 x 7 x 7
    return fc2(torch::relu(fc1(x.flatten(1))));
  }
  torch::Tensor training_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::cross_entropy_loss(forward(x), y);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  void validation_step(const XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto logits = forward(x);
    log("val_loss", torch::cross_entropy_loss(logits, y), {.prog_bar = true});
    log("val_acc", logits.argmax(1).eq(y).to(torch::kFloat).mean(), {.prog_bar = true});
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), kLr); }
};

struct Run {
  double seconds = 0;
  std::int64_t steps = 0;
  long faults = 0;
  std::string metrics;  // a JSON object's members
};

template <class F>
Run timed(F&& body) {
  Run run;
  const long faults = minor_faults();
  const auto start = std::chrono::steady_clock::now();
  body(run);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.faults = minor_faults() - faults;
  return run;
}

std::string number(const char* name, double value) {
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "\"%s\": %.9g", name, value);
  return buffer;
}

// The Trainer with Lightning's defaults (its default logger included) or lean, and with
// a SimpleProfiler when `profiled`.
template <class M, class... Loaders>
Run fit_with_trainer(bool lean, bool profiled, const std::filesystem::path& dir,
                     std::int64_t epochs, M& model, Loaders&&... loaders) {
  const auto limit = batch_limit();
  const L::TrainerOptions options{.max_epochs = epochs,
                                  .limit_train_batches = limit ? L::BatchLimit(*limit) : 1.0,
                                  .limit_val_batches = limit ? L::BatchLimit(*limit) : 1.0,
                                  .enable_progress_bar = !lean,
                                  .enable_checkpointing = !lean,
                                  .enable_model_summary = !lean,
                                  .logger = !lean,
                                  .default_root_dir = dir};
  Run run;
  auto report = [&](auto& trainer) {
    run.steps = trainer.global_step;
    std::string out;
    for (const auto& [name, value] : trainer.callback_metrics()) {
      if (!out.empty()) out += ", ";
      out += number(name.c_str(), value);
    }
    run.metrics = out;
  };
  const auto fit = [&](auto& trainer) {
    run = timed([&](Run&) { trainer.fit(model, loaders...); });
    report(trainer);
  };
  if (profiled) {
    L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32,
               L::SimpleProfiler>
        trainer(options, L::SimpleProfiler({.dirpath = dir, .filename = "profile"}));
    fit(trainer);
  } else {
    L::Trainer<L::accelerators::CPU> trainer(options);  // lean: every default off
    fit(trainer);
  }
  return run;
}

Run seed(std::string_view variant, const std::filesystem::path& dir) {
  L::seed_everything(0);
  const auto X = torch::randn({1000, 10});
  const auto y = torch::randn({1000});
  SeedModel model;
  auto loader = L::data::TensorLoader({X, y}, {.batch_size = 32});
  if (variant != "hand")
    return fit_with_trainer(variant == "trainer-lean", variant == "trainer-profiled", dir,
                            kSeedEpochs, model, loader);
  return timed([&](Run& run) {
    model.train();
    torch::optim::Adam optimizer(model.parameters(), kLr);
    torch::Tensor loss;
    const auto limit = batch_limit();
    for (std::int64_t epoch = 0; epoch < kSeedEpochs; ++epoch) {
      std::int64_t batches = 0;
      for (const auto& [x, target] : loader) {
        if (limit && batches++ == *limit) break;
        optimizer.zero_grad();
        loss = torch::mse_loss(model.forward(x), target.unsqueeze(1));
        loss.backward();
        optimizer.step();
        ++run.steps;
      }
    }
    run.metrics = number("train_loss", loss.item<double>());
  });
}

Run cnn(std::string_view variant, const std::filesystem::path& dir) {
  const auto images = [](const char* prefix) {
    auto x = L::data::read_idx(kFashion / (std::string(prefix) + "-images-idx3-ubyte.gz"));
    auto y = L::data::read_idx(kFashion / (std::string(prefix) + "-labels-idx1-ubyte.gz"));
    return std::pair{x.unsqueeze(1).contiguous(), y.to(torch::kLong)};
  };
  const auto [train_x, train_y] = images("train");
  const auto [test_x, test_y] = images("t10k");
  L::seed_everything(0);
  FashionCNN model;
  auto train = L::data::TensorLoader(
      {train_x, train_y}, {.batch_size = 64, .shuffle = true, .seed = 0, .normalize = kNormalize});
  auto val = L::data::TensorLoader({test_x, test_y}, {.batch_size = 64, .normalize = kNormalize});
  if (variant != "hand")
    return fit_with_trainer(variant == "trainer-lean", variant == "trainer-profiled", dir, 1, model,
                            train, val);
  return timed([&](Run& run) {
    model.train();
    torch::optim::Adam optimizer(model.parameters(), kLr);
    torch::Tensor loss;
    const auto limit = batch_limit();
    for (const auto& [x, target] : train) {
      if (limit && run.steps == *limit) break;
      optimizer.zero_grad();
      loss = torch::cross_entropy_loss(model.forward(x), target);
      loss.backward();
      optimizer.step();
      ++run.steps;
    }
    // Validation: epoch means weighted by batch size, as Lightning's log() reduces.
    model.eval();
    torch::InferenceMode inference;
    auto loss_sum = torch::zeros({}, torch::kDouble), correct = torch::zeros({}, torch::kDouble);
    std::int64_t n = 0, batches = 0;
    for (const auto& [x, target] : val) {
      if (limit && batches++ == *limit) break;
      const auto logits = model.forward(x);
      const auto b = x.size(0);
      loss_sum += torch::cross_entropy_loss(logits, target) * b;
      correct += logits.argmax(1).eq(target).to(torch::kFloat).mean() * b;
      n += b;
    }
    model.train();
    run.metrics = number("train_loss", loss.item<double>()) + ", " +
                  number("val_acc", correct.item<double>() / n) + ", " +
                  number("val_loss", loss_sum.item<double>() / n);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: side_by_side <seed|cnn> <trainer|trainer-lean|trainer-profiled|hand> "
                 "<work dir>\n";
    return 2;
  }
  const std::string_view workload = argv[1], variant = argv[2];
  if ((workload != "seed" && workload != "cnn") ||
      (variant != "trainer" && variant != "trainer-lean" && variant != "trainer-profiled" &&
       variant != "hand")) {
    std::cerr << "side_by_side: unknown workload or variant: " << workload << ' ' << variant
              << '\n';
    return 2;
  }
  torch::set_num_threads(2);
  const Run run = workload == "seed" ? seed(variant, argv[3]) : cnn(variant, argv[3]);
  std::cout << "result {\"workload\": \"" << workload << "\", \"variant\": \"" << variant
            << "\", \"torch\": \"" << TORCH_VERSION << "\", " << number("seconds", run.seconds)
            << ", \"steps\": " << run.steps << ", \"minor_faults\": " << run.faults << ", "
            << run.metrics << "}" << std::endl;
  return 0;
}
