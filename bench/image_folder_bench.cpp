// Loading images from files: Fashion-MNIST written as 70,000 PNG files (grey, 28 x 28)
// in a temporary folder, read through ImageFolder + DataLoader with ToTensor and Normalize,
// batches of 64, shuffled:
//   BM_ImageFolderEpoch/<workers>        ours: images/s over one epoch
//   BM_TorchvisionImageFolderEpoch/<w>   torch.utils.data.DataLoader + torchvision's
//                                        ImageFolder, same transforms (bench/image_folder.py)
//   BM_CnnEpoch                          one epoch of the Fashion-MNIST CNN (60,000 training
//                                        images, the default Trainer less checkpoints and
//                                        logger) from in-memory tensors (TensorLoader) and
//                                        from the PNG files with 2 workers, alternated 3 times
//   BM_PersistentWorkersMemory           20 epochs over the 10,000 test images with
//                                        persistent workers: resident memory after epoch 1
//                                        and after epoch 20
// Goals (issue 21): ours >= 3x Python's images/s at equal workers; the CNN epoch from PNG
// files within 1.15x of the in-memory one; memory flat. The summary prints the ratios.
// Run: ./build/bench/image_folder_bench
#include <benchmark/benchmark.h>

#include <lightning/data/data_loader.hpp>
#include <lightning/data/fashion_mnist.hpp>
#include <lightning/data/image_folder.hpp>
#include <lightning/data/transforms.hpp>
#include <lightning/lightning.hpp>

#include "support/fashion_net.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

namespace L = lightning;
namespace T = lightning::data::transforms;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> classes{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

// root/all (70,000 images), root/train (60,000), root/test (10,000), written once.
struct Folder {
  fs::path root;
  Folder() {
    char templ[] = "/tmp/lightning-image-bench-XXXXXX";
    if (!::mkdtemp(templ)) throw std::runtime_error("cannot make a temporary folder");
    root = templ;
    const fs::path idx = "/usr/share/datasets/fashion-mnist";
    const auto start = std::chrono::steady_clock::now();
    for (const std::string split : {"train", "t10k"}) {
      auto images = L::data::read_idx(idx / (split + "-images-idx3-ubyte.gz")).unsqueeze(1);
      auto labels = L::data::read_idx(idx / (split + "-labels-idx1-ubyte.gz"));
      const auto name = split == "train" ? "train" : "test";
      L::data::write_image_folder(root / name, images, labels, classes);
      // root/all holds both splits: links to the same files.
      for (const auto& c : classes)
        for (const auto& f : fs::directory_iterator(root / name / c)) {
          fs::create_directories(root / "all" / c);
          fs::create_hard_link(
              f.path(), root / "all" / c / (std::string(name) + f.path().filename().string()));
        }
    }
    std::fprintf(stderr, "wrote 70,000 PNG files into %s in %.1f s\n", root.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  ~Folder() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};
Folder& folder() {
  static Folder f;
  return f;
}

auto transform() {
  return T::Compose(T::ToTensor{}, T::Normalize({0.2860}, {0.3530}));
}
using Images = L::data::ImageFolder<decltype(transform())>;

auto png_loader(const fs::path& root, std::int64_t workers, bool persistent = false) {
  return L::data::DataLoader(Images(root, transform(), {.mode = L::data::ImageMode::gray}),
                             {.batch_size = 64,
                              .shuffle = true,
                              .num_workers = workers,
                              .persistent_workers = persistent,
                              .seed = 0});
}

std::map<std::string, double> results;

void BM_ImageFolderEpoch(benchmark::State& state) {
  const auto workers = state.range(0);
  auto loader = png_loader(folder().root / "all", workers);
  std::int64_t n = 0;
  for (auto _ : state)
    for (auto& [x, y] : loader) n += x.size(0);
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsRate);
}

double python_images_per_second(std::int64_t workers) {
  const std::string command = std::string("'") + LIGHTNING_BENCH_PYTHON + "' '" +
                              LIGHTNING_BENCH_DIR + "/image_folder.py' '" +
                              (folder().root / "all").string() + "' " + std::to_string(workers);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return 0.0;
  char line[512] = {};
  std::string out;
  while (std::fgets(line, sizeof line, pipe)) out += line;
  ::pclose(pipe);
  return std::atof(out.c_str());
}

void BM_TorchvisionImageFolderEpoch(benchmark::State& state) {
  const auto workers = state.range(0);
  double rate = 0.0;
  for (auto _ : state) rate = python_images_per_second(workers);
  if (rate <= 0.0) state.SkipWithError("the Python peer failed (scripts/setup.sh makes .venv)");
  state.counters["images/s"] = rate;
  results["python/" + std::to_string(workers)] = rate;
}

struct Cnn : L::LightningModule {
  L::bench::FashionNet net{register_module("net", L::bench::FashionNet())};
  torch::Tensor training_step(const L::Batch<torch::Tensor, torch::Tensor>& batch, std::int64_t) {
    const auto& [x, y] = batch;
    auto loss = torch::cross_entropy_loss(net(x), y);
    log("train_loss", loss, {.prog_bar = true});
    return loss;
  }
  auto configure_optimizers() { return torch::optim::Adam(parameters(), 1e-3); }
};

// One epoch of the CNN from memory or from the PNG files: seconds.
double cnn_epoch(bool from_png) {
  L::seed_everything(0);
  Cnn model;
  L::Trainer trainer({.max_epochs = 1,
                      .enable_checkpointing = false,
                      .logger = false,
                      .default_root_dir = fs::temp_directory_path()});
  const auto start = std::chrono::steady_clock::now();
  if (from_png) {
    trainer.fit(model, png_loader(folder().root / "train", 2));
  } else {
    L::data::FashionMNIST data({.batch_size = 64, .val_size = 0});
    data.prepare_data();
    data.setup(L::Stage::fit);
    trainer.fit(model, data.train_dataloader());
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The two epochs alternate, three times each (this VM's speed drifts by more than the
// difference measured); the medians are compared.
void BM_CnnEpoch(benchmark::State& state) {
  std::vector<double> memory, png;
  for (auto _ : state)
    for (int round = 0; round < 3; ++round) {
      memory.push_back(cnn_epoch(false));
      png.push_back(cnn_epoch(true));
    }
  std::sort(memory.begin(), memory.end());
  std::sort(png.begin(), png.end());
  state.counters["memory_s"] = memory[1];
  state.counters["png_s"] = png[1];
  state.counters["png_over_memory"] = png[1] / memory[1];
  results["cnn_memory"] = memory[1];
  results["cnn_png"] = png[1];
}

long resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

void BM_PersistentWorkersMemory(benchmark::State& state) {
  for (auto _ : state) {
    auto loader = png_loader(folder().root / "test", 2, /*persistent=*/true);
    long after_first = 0, after_last = 0;
    for (int epoch = 1; epoch <= 20; ++epoch) {
      for (auto& [x, y] : loader) benchmark::DoNotOptimize(x);
      if (epoch == 1) after_first = resident_kib();
      if (epoch == 20) after_last = resident_kib();
    }
    state.counters["rss_epoch1_MiB"] = static_cast<double>(after_first) / 1024.0;
    state.counters["rss_epoch20_MiB"] = static_cast<double>(after_last) / 1024.0;
    results["rss_growth_MiB"] = static_cast<double>(after_last - after_first) / 1024.0;
  }
}

}  // namespace

BENCHMARK(BM_ImageFolderEpoch)
    ->Arg(0)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
BENCHMARK(BM_TorchvisionImageFolderEpoch)
    ->Arg(0)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
BENCHMARK(BM_CnnEpoch)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_PersistentWorkersMemory)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  folder();  // written before any timing
  struct Collect : benchmark::ConsoleReporter {
    void ReportRuns(const std::vector<Run>& runs) override {
      for (const auto& r : runs) {
        if (auto it = r.counters.find("images/s"); it != r.counters.end())
          results["rate " + r.benchmark_name()] = it->second;
      }
      ConsoleReporter::ReportRuns(runs);
    }
  } reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto rate = [](const char* name) { return results["rate " + std::string(name)]; };
  for (int w : {0, 2}) {
    const auto ours =
        rate(("BM_ImageFolderEpoch/" + std::to_string(w) + "/iterations:1/real_time").c_str());
    const auto python = results["python/" + std::to_string(w)];
    if (python > 0)
      std::printf("num_workers=%d: ours %.0f images/s, Python %.0f images/s: %.2fx (goal >= 3x)\n",
                  w, ours, python, ours / python);
  }
  const auto mem = results["cnn_memory"], png = results["cnn_png"];
  if (mem > 0)
    std::printf(
        "CNN epoch (medians of 3, alternating): %.1f s from memory, %.1f s from PNG files "
        "(2 workers): %.3fx (goal <= 1.15x)\n",
        mem, png, png / mem);
  std::printf("persistent workers, 20 epochs: resident memory grew %.1f MiB after epoch 1\n",
              results["rss_growth_MiB"]);
  benchmark::Shutdown();
}
