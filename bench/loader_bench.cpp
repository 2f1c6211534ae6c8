// Iterating the 60,000 Fashion-MNIST training images (float, normalised, [60000, 1, 28, 28]
// plus int64 labels) in shuffled batches of 64, once per iteration:
//   BM_TensorLoader      lightning::data::TensorLoader (one gather per epoch, views per batch)
//   BM_TorchDataLoader   torch::data::make_data_loader over a Dataset with Stack<> collation,
//                        RandomSampler, no worker threads (they do not help in-memory data)
// Three cases (the benchmark argument):
//   0  both loaders over normalised float images held in memory;
//   1  both over the file's uint8 grey levels (not normalised);
//   2  what data::FashionMNIST does: TensorLoader holds uint8 images and yields
//      normalised float32 batches (LoaderOptions.normalize), against torch::data over the
//      normalised float images (the fastest torch::data setup yielding the same batches).
// Goal: TensorLoader at least 10x faster on the batches a model consumes (case 2).
// Run: ./build/bench/loader_bench
#include <benchmark/benchmark.h>

#include <lightning/data/fashion_mnist.hpp>
#include <lightning/lightning.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <tuple>

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

// state.range(0): 0 = normalised float images, 1 = the file's uint8 images, 2 = uint8
// images normalised by the loader (torch::data gets the float images).
torch::Tensor pick(int64_t kind, bool ours) {
  return kind == 1 || (kind == 2 && ours) ? images().raw : images().x;
}

void BM_TensorLoader(benchmark::State& state) {
  auto& d = images();
  std::optional<L::data::Normalize> normalize;
  if (state.range(0) == 2)
    normalize = L::data::Normalize{.scale = 1.0 / 255,
                                   .mean = L::data::FashionMNIST::mean,
                                   .std = L::data::FashionMNIST::stddev};
  L::data::TensorLoader loader(
      {pick(state.range(0), true), d.y},
      {.batch_size = 64, .shuffle = true, .seed = 1, .normalize = normalize});
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
  auto dataset =
      PairDataset(pick(state.range(0), false), d.y).map(torch::data::transforms::Stack<>());
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

BENCHMARK(BM_TensorLoader)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(2.0);
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
  // Case 2 is compared with torch::data's case 0: both yield normalised float batches.
  for (const auto& [arg, base, what] :
       {std::tuple{"0", "0", "float images held as float"}, std::tuple{"1", "1", "uint8 images"},
        std::tuple{"2", "0", "float images normalised from uint8 (FashionMNIST's path)"}}) {
    const double ours = reporter.medians[std::string("BM_TensorLoader/") + arg];
    const double theirs = reporter.medians[std::string("BM_TorchDataLoader/") + base];
    if (ours > 0)
      std::printf(
          "%s: TensorLoader is %.1fx faster than torch::data (median epoch %.2f ms vs %.2f ms)\n",
          what, theirs / ours, ours, theirs);
  }
  benchmark::Shutdown();
}
