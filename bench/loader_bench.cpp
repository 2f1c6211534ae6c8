// Iterating the 60,000 Fashion-MNIST training images (float, normalised, [60000, 1, 28, 28]
// plus int64 labels) in shuffled batches of 64, once per iteration:
//   BM_TensorLoader      lightning::data::TensorLoader (one gather per epoch, views per batch)
//   BM_TorchDataLoader   torch::data::make_data_loader over a Dataset with Stack<> collation,
//                        RandomSampler, no worker threads (they do not help in-memory data)
// Both on the normalised float images (what a model consumes) and on the file's uint8
// grey levels (normalised later, e.g. on the device in on_after_batch_transfer).
// Goal: TensorLoader at least 10x faster. Run: ./build/bench/loader_bench
#include <benchmark/benchmark.h>

#include <lightning/data/fashion_mnist.hpp>
#include <lightning/lightning.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

namespace L = lightning;

namespace {

struct Images {
  torch::Tensor x, y, raw;  // x: normalised float; raw: the file's uint8 grey levels
  bool real = true;
  Images() {
    try {
      L::data::FashionMNIST dm({.val_size = 0});
      dm.prepare_data();
      auto images = L::data::read_idx(dm.options().root / "train-images-idx3-ubyte.gz");
      auto labels = L::data::read_idx(dm.options().root / "train-labels-idx1-ubyte.gz");
      x = ((images.to(torch::kFloat) / 255.0 - L::data::FashionMNIST::mean) /
           L::data::FashionMNIST::stddev)
              .unsqueeze(1)
              .contiguous();
      y = labels.to(torch::kLong);
      raw = images.unsqueeze(1).contiguous();
    } catch (const std::exception&) {  // without the package: same shapes, random values
      real = false;
      x = torch::randn({60000, 1, 28, 28});
      y = torch::randint(10, {60000}, torch::kLong);
      raw = torch::randint(256, {60000, 1, 28, 28}, torch::kUInt8);
    }
  }
};
Images& images() {
  static Images i;
  return i;
}

struct PairDataset : torch::data::datasets::Dataset<PairDataset> {
  torch::Tensor x, y;
  PairDataset(torch::Tensor a, torch::Tensor b) : x(std::move(a)), y(std::move(b)) {}
  torch::data::Example<> get(size_t i) override {
    const auto k = static_cast<int64_t>(i);
    return {x[k], y[k]};
  }
  torch::optional<size_t> size() const override { return static_cast<size_t>(x.size(0)); }
};

// state.range(0): 0 = normalised float images, 1 = the file's uint8 images.
torch::Tensor pick(int64_t kind) {
  return kind == 0 ? images().x : images().raw;
}

void BM_TensorLoader(benchmark::State& state) {
  auto& d = images();
  L::data::TensorLoader loader({pick(state.range(0)), d.y},
                               {.batch_size = 64, .shuffle = true, .seed = 1});
  int64_t batches = 0;
  for (auto _ : state)
    for (auto batch : loader) {
      benchmark::DoNotOptimize(std::get<0>(batch).data_ptr());
      ++batches;
    }
  state.counters["us/batch"] = benchmark::Counter(
      static_cast<double>(batches), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_TorchDataLoader(benchmark::State& state) {
  auto& d = images();
  auto dataset = PairDataset(pick(state.range(0)), d.y).map(torch::data::transforms::Stack<>());
  int64_t batches = 0;
  for (auto _ : state) {
    auto loader = torch::data::make_data_loader<torch::data::samplers::RandomSampler>(
        dataset, torch::data::DataLoaderOptions(64));
    for (auto& batch : *loader) {
      benchmark::DoNotOptimize(batch.data.data_ptr());
      ++batches;
    }
  }
  state.counters["us/batch"] = benchmark::Counter(
      static_cast<double>(batches), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}
  std::map<std::string, double> medians;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")
        medians[r.run_name.function_name + "/" +
                r.run_name.args.substr(0, r.run_name.args.find('/'))] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

BENCHMARK(BM_TensorLoader)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TorchDataLoader)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(2.0);

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5", agg = "--benchmark_report_aggregates_only=true";
  args.push_back(reps.data());
  args.push_back(agg.data());
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  std::printf("data: %s\n",
              images().real ? "Fashion-MNIST (dataset-fashion-mnist)" : "random, same shapes");
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  for (const auto& [arg, what] : {std::pair{"0", "float images"}, std::pair{"1", "uint8 images"}}) {
    const double ours = reporter.medians[std::string("BM_TensorLoader/") + arg];
    const double theirs = reporter.medians[std::string("BM_TorchDataLoader/") + arg];
    if (ours > 0)
      std::printf(
          "%s: TensorLoader is %.1fx faster than torch::data (median epoch %.2f ms vs %.2f ms)\n",
          what, theirs / ours, ours, theirs);
  }
  benchmark::Shutdown();
}
