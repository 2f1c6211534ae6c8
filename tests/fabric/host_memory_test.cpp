// Host memory kept between steps: a CNN's training steps page-fault every step under
// glibc's adaptive malloc thresholds, and not once retain_freed_host_memory() pinned them.
#include <gtest/gtest.h>

#include <lightning/fabric/host_memory.hpp>
#include <lightning/lightning.hpp>

#include <sys/resource.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace L = lightning;

namespace {

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Minor page faults per training step of a small CNN on Fashion-MNIST-shaped batches
// (the model of docs/performance.md's side-by-side run): the median of 12 steps (the first
// ones grow the heap to the working set).
long cnn_faults_per_step() {
  torch::manual_seed(0);
  torch::nn::Sequential net(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 32, 3).padding(1)), torch::nn::ReLU(),
      torch::nn::MaxPool2d(2), torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3).padding(1)),
      torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(),
      torch::nn::Linear(64 * 7 * 7, 128), torch::nn::ReLU(), torch::nn::Linear(128, 10));
  torch::optim::Adam optimizer(net->parameters(), 1e-3);
  const auto x = torch::randn({64, 1, 28, 28});
  const auto y = torch::randint(10, {64});
  auto step = [&] {
    optimizer.zero_grad();
    torch::cross_entropy_loss(net->forward(x), y).backward();
    optimizer.step();
  };
  std::vector<long> faults;
  for (int i = 0; i < 12; ++i) {
    const long before = minor_faults();
    step();
    faults.push_back(minor_faults() - before);
  }
  std::nth_element(faults.begin(), faults.begin() + 6, faults.end());
  return faults[6];
}

// The kernel's transparent huge page mode, the bracketed word of its sysfs file.
std::string huge_page_mode() {
  std::ifstream file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(file, line);
  const auto open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos
             ? "unknown"
             : line.substr(open + 1, close - open - 1);
}

}  // namespace

#if defined(__GLIBC__)
// CTest runs each test in a process of its own: the thresholds of one do not reach the other.
TEST(HostMemory, RetainedFreedMemoryIsNotFaultedInAgainEachStep) {
  L::retain_freed_host_memory();
  ASSERT_TRUE(L::host_memory_is_retained());
  EXPECT_LT(cnn_faults_per_step(), 200);  // of ~7,000 pages a step touches
}

// The case above would pass without retain_freed_host_memory() where steps do not fault
// anyway: this one measures both in one process. Whether there is anything to remove is
// the machine's: glibc's adaptive thresholds hand this working set back every step on
// 4 KiB pages, but with transparent huge pages always on (or malloc tuned) a step faults
// in a few huge pages or nothing, and the count says nothing about the retention.
TEST(HostMemory, RetentionRemovesTheFaultsEveryStepWouldOtherwiseTake) {
  if (L::host_memory_is_retained())
    GTEST_SKIP() << "another test of this process pinned malloc's thresholds; run it alone, "
                    "as CTest does";
  const long without = cnn_faults_per_step();
  if (without < 1000)
    GTEST_SKIP() << "without the retention a step faults in only " << without
                 << " pages on this machine (transparent huge pages: " << huge_page_mode()
                 << "; malloc tuned by the environment: "
                 << (L::detail::malloc_tuned_by_environment() ? "yes" : "no")
                 << "): there are no per-step faults here for the retention to remove";
  L::retain_freed_host_memory();
  ASSERT_TRUE(L::host_memory_is_retained());
  const long with = cnn_faults_per_step();
  EXPECT_LT(with, 200) << "faults per step without the retention: " << without;
  RecordProperty("faults_per_step_without", std::to_string(without));
  RecordProperty("faults_per_step_with", std::to_string(with));
}

TEST(HostMemory, LeavesMallocAloneWhenTheEnvironmentTunedItOrOptedOut) {
  for (const char* variable :
       {"GLIBC_TUNABLES=glibc.malloc.trim_threshold=1000000", "MALLOC_MMAP_THRESHOLD_=1000000",
        "LIGHTNING_RETAIN_HOST_MEMORY=0"}) {
    ::putenv(const_cast<char*>(variable));
    EXPECT_TRUE(L::detail::malloc_tuned_by_environment()) << variable;
    const char* name = variable;
    ::unsetenv(std::string(name, std::strchr(name, '=')).c_str());
  }
  EXPECT_FALSE(L::detail::malloc_tuned_by_environment());
}

TEST(HostMemory, FabricLaunchRetainsIt) {
  L::Fabric<L::accelerators::CPU> fabric;
  fabric.launch();
  EXPECT_TRUE(L::host_memory_is_retained());
}
#endif
