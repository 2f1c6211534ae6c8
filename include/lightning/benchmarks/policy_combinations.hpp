// Google Benchmark cases for a user's own module and data over a product of policies:
// which accelerator, strategy and precision trains this model fastest here?
//
//   namespace LB = lightning::benchmarks;
//   LB::register_policy_combinations(
//       "MyNet", LB::policies<L::accelerators::CPU, L::accelerators::CUDA>,
//       LB::policies<L::strategies::SingleDevice>,
//       LB::policies<L::precision::F32, L::precision::BF16Mixed>,
//       [] { return MyNet(); }, [] { return make_loader(); }, {.epochs = 1});
//   benchmark::Initialize(&argc, argv); benchmark::RunSpecifiedBenchmarks();
//
// Each case is named by its policy tuple ("MyNet/cpu/single_device/bf16-mixed") and fits
// a fresh module per iteration with every default callback off, so the figures are the
// loop, the policies and the model. Counters: samples/s and host microseconds per step
// (us/step). A combination that cannot compile (F16Mixed on the CPU) is left out of the
// product at compile time; one whose device is missing here (CUDA without a GPU) is not
// registered. docs/benchmarking.md shows the whole of a program.
#pragma once

#include <lightning/lightning.hpp>

#include <benchmark/benchmark.h>
#include <boost/hana.hpp>

#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

namespace lightning::benchmarks {

// A list of policy types for one axis of the product.
template <class... Policies>
inline constexpr auto policies = boost::hana::tuple_t<Policies...>;

struct PolicyCombinationOptions {
  std::int64_t epochs = 1;       // per fit (one benchmark iteration)
  std::int64_t iterations = 0;   // fits per case; 0: Google Benchmark decides
  std::int64_t repetitions = 1;  // of each case (aggregates reported when > 1)
  bool use_real_time = true;     // wall time: what a user waits for (threads, devices)
};

namespace detail {

// Counts the samples of each training batch: the first dimension of its first tensor.
struct SampleCounter {
  std::int64_t samples = 0;
  template <class Output, class Batch>
  void on_train_batch_end(auto&, auto&, const Output&, const Batch& batch, std::int64_t) {
    visit_tensors(batch, [&](const torch::Tensor& t) {
      if (!t.defined() || t.dim() == 0) return false;
      samples += t.size(0);
      return true;
    });
  }
};

// Whether the combination can exist: the precision runs on the accelerator's device
// where that is known at compile time.
template <class A, class P>
constexpr bool compiles_together() {
  if constexpr (A::device_type.has_value())
    return precision::supports_device<P>(*A::device_type);
  else
    return true;
}

inline std::string case_name(std::string_view prefix, std::string_view a, std::string_view s,
                             std::string_view p) {
  std::string name(prefix);
  for (auto part : {a, s, p}) {
    name += '/';
    name += part;
  }
  return name;
}

}  // namespace detail

// Registers one case per (accelerator, strategy, precision) of the three lists.
// make_module() returns a fresh module (by value); make_loader() a loader, made once
// per case and iterated by every fit.
template <class Accelerators, class Strategies, class Precisions, class MakeModule,
          class MakeLoader>
void register_policy_combinations(std::string_view prefix, Accelerators accelerators,
                                  Strategies strategies, Precisions precisions,
                                  MakeModule make_module, MakeLoader make_loader,
                                  PolicyCombinationOptions options = {}) {
  namespace hana = boost::hana;
  const auto product =
      hana::cartesian_product(hana::make_tuple(accelerators, strategies, precisions));
  hana::for_each(product, [&](auto combination) {
    using A = typename decltype(+hana::at_c<0>(combination))::type;
    using S = typename decltype(+hana::at_c<1>(combination))::type;
    using P = typename decltype(+hana::at_c<2>(combination))::type;
    const auto name = detail::case_name(prefix, A::name, S::name, P::name);
    if constexpr (!detail::compiles_together<A, P>()) {
      std::cerr << name << ": left out (precision \"" << P::name << "\" cannot run on \"" << A::name
                << "\")\n";
    } else {
      if (!A::is_available()) {
        std::cerr << name << ": not registered (no " << A::name << " device here)\n";
        return;
      }
      if constexpr (!A::device_type.has_value()) {  // Auto: where it would resolve here
        const auto here = torch::cuda::is_available() ? c10::kCUDA : c10::kCPU;
        if (!precision::supports_device<P>(here)) {
          std::cerr << name << ": not registered (precision \"" << P::name << "\" cannot run on "
                    << c10::DeviceTypeName(here, true) << ", where \"" << A::name
                    << "\" resolves here)\n";
          return;
        }
      }
      auto* b = benchmark::RegisterBenchmark(
          name.c_str(),
          [make_module, make_loader, epochs = options.epochs](benchmark::State& state) {
            auto loader = make_loader();
            std::int64_t samples = 0, steps = 0;
            for (auto _ : state) {
              auto module = make_module();
              Trainer<A, S, P, detail::SampleCounter> trainer(
                  TrainerOptions{.max_epochs = epochs,
                                 .enable_progress_bar = false,
                                 .enable_checkpointing = false,
                                 .enable_model_summary = false,
                                 .logger = false},
                  detail::SampleCounter{});
              trainer.fit(module, loader);
              trainer.fabric().accelerator().synchronize();  // queued device work counts
              samples += trainer.template callback<detail::SampleCounter>().samples;
              steps += trainer.global_step;
            }
            state.counters["samples/s"] =
                benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
            // Printed as a time per step (Google Benchmark picks the unit).
            state.counters["us/step"] =
                benchmark::Counter(static_cast<double>(steps),
                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
          });
      b->Unit(benchmark::kMillisecond);
      if (options.repetitions > 1) b->Repetitions(options.repetitions);
      if (options.iterations > 0) b->Iterations(options.iterations);
      if (options.use_real_time) b->UseRealTime();
    }
  });
}

}  // namespace lightning::benchmarks
