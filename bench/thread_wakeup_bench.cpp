// What handing work to a sleeping thread costs the thread that hands it over: the
// checkpoint writer's hand-over (include/lightning/fabric/checkpoint_writer.hpp) is one
// notify_all per save, made by the training thread. The waker works between hand-overs
// (as training does between saves) so the other thread is really asleep, and only the
// notify_all is timed. On a VM, waking a thread asleep on an idle vCPU is an
// inter-processor interrupt that the hypervisor delivers (figures: docs/performance.md).
//
//   ./build/bench/thread_wakeup_bench
#include <benchmark/benchmark.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace {

void BM_NotifyASleepingThread(benchmark::State& state) {
  const auto work = std::chrono::microseconds(state.range(0));
  std::mutex mutex;
  std::condition_variable changed;
  bool job = false, stop = false;
  std::thread sleeper([&] {
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return job || stop; });
      if (stop) return;
      job = false;
    }
  });
  for (auto _ : state) {
    const auto until = std::chrono::steady_clock::now() + work;
    while (std::chrono::steady_clock::now() < until) {
    }
    {
      std::lock_guard lock(mutex);
      job = true;
    }
    const auto start = std::chrono::steady_clock::now();
    changed.notify_all();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  {
    std::lock_guard lock(mutex);
    stop = true;
  }
  changed.notify_all();
  sleeper.join();
}

}  // namespace

// Busy 2 ms between hand-overs (an epoch of the seed workload is 2-6 ms here).
BENCHMARK(BM_NotifyASleepingThread)
    ->Arg(2000)
    ->Iterations(500)
    ->Repetitions(5)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
