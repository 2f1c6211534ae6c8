// strategies::DDP with Gloo on the CPU: two ranks, started as processes of this test
// program on 127.0.0.1, train as one process does with their global batch.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>
#include <lightning/policies/ddp.hpp>

#include "support/models.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace L = lightning;

static_assert(L::Strategy<L::strategies::DDP>);

namespace {

// The data every rank and the single process see: 64 examples, no shuffling.
std::pair<torch::Tensor, torch::Tensor> ddp_data() {
  return lightning::testing::seed_data(64, 9);
}

torch::Tensor fit_and_read(auto& trainer, std::int64_t batch) {
  auto [X, y] = ddp_data();
  torch::manual_seed(0);  // the same start everywhere (DDP broadcasts rank zero's anyway)
  lightning::testing::SimpleModel model;
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = batch}));
  return lightning::testing::flat_parameters(model).detach().clone();
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// Starts this program as rank `rank` of `world`, running only the worker test, which
// runs `test_case`.
pid_t start_rank(int rank, int world, int port, const std::filesystem::path& out,
                 const std::string& test_case = "train") {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (auto [k, v] : {std::pair<std::string, std::string>{"MASTER_ADDR", "127.0.0.1"},
                      {"MASTER_PORT", std::to_string(port)},
                      {"WORLD_SIZE", std::to_string(world)},
                      {"RANK", std::to_string(rank)},
                      {"LOCAL_RANK", std::to_string(rank)},
                      {"LIGHTNING_DDP_TEST_OUT", out.string()},
                      {"LIGHTNING_DDP_TEST_CASE", test_case}})
    env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=DDPWorker.TrainsItsShard";
  std::vector<char*> argv{self.data(), filter.data(), nullptr};
  pid_t pid = -1;
  if (::posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
  return pid;
}

// Waits for a child; kills it after `limit` (a hang is a failure, not a stuck CI).
int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

torch::Tensor read_tensor(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::pickle_load(bytes).toTensor();
}

}  // namespace

// Validation loss that only rank 1 sees worsen (after its first epoch).
struct OneRankStalls : lightning::testing::SimpleModel {
  double sign = std::string(std::getenv("RANK")) == "1" ? 1.0 : -1.0;
  void validation_step(const lightning::testing::XY&, std::int64_t) {
    log("val_loss", sign * static_cast<double>(current_epoch()));
  }
};

void write_tensor(const char* path, const torch::Tensor& t) {
  const auto bytes = torch::pickle_save(t);
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// One rank's side: runs only when started by a DDP test below.
TEST(DDPWorker, TrainsItsShard) {
  const char* out = std::getenv("LIGHTNING_DDP_TEST_OUT");
  if (out == nullptr) GTEST_SKIP() << "a rank of a DDP test, started by it";
  torch::set_num_threads(1);
  const std::string test_case = std::getenv("LIGHTNING_DDP_TEST_CASE");
  if (test_case == "straight" || test_case == "first" || test_case == "resume") {
    auto [X, y] = ddp_data();
    torch::manual_seed(test_case == "resume" ? 99 : 0);  // a resume starts from other weights
    lightning::testing::SimpleModel model;
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
        lightning::testing::bare({.max_epochs = test_case == "first" ? 2 : 3}));
    L::data::TensorLoader loader({X, y}, {.batch_size = 8, .shuffle = true, .seed = 3});
    const auto checkpoint = std::filesystem::path(out).parent_path() / "ddp.ckpt";
    if (test_case == "resume")
      trainer.fit(model, loader, L::CheckpointPath{checkpoint});
    else
      trainer.fit(model, loader);
    if (test_case == "first") trainer.save_checkpoint(checkpoint);  // rank zero writes
    write_tensor(out, lightning::testing::flat_parameters(model).detach().clone());
    return;
  }
  if (test_case == "early_stopping") {
    auto [X, y] = ddp_data();
    OneRankStalls model;
    L::Trainer<L::accelerators::CPU, L::strategies::DDP, L::precision::F32,
               L::callbacks::EarlyStopping>
        trainer(lightning::testing::bare({.max_epochs = 10, .num_sanity_val_steps = 0}),
                L::callbacks::EarlyStopping({.monitor = "val_loss", .patience = 1}));
    L::data::TensorLoader loader({X, y}, {.batch_size = 8});
    trainer.fit(model, loader, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    write_tensor(out, torch::tensor({trainer.current_epoch, trainer.global_step}));
    return;
  }
  L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
      lightning::testing::bare({.max_epochs = 2}));
  const auto params = fit_and_read(trainer, 8);  // 8 per rank: a global batch of 16
  EXPECT_EQ(trainer.fabric().world_size(), 2);
  EXPECT_EQ(trainer.global_step, 8);  // 32 examples per rank, 4 batches, 2 epochs
  write_tensor(out, params);
}

TEST(DDP, TwoRanksTrainAsOneProcessWithTheirGlobalBatch) {
  const int port = free_port();
  const auto dir = std::filesystem::current_path();
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.push_back(start_rank(r, 2, port, dir / ("rank" + std::to_string(r) + ".pt")));
    ASSERT_GT(ranks.back(), 0) << "could not start rank " << r;
  }
  for (int r = 0; r < 2; ++r)
    EXPECT_EQ(wait_for(ranks[static_cast<std::size_t>(r)], std::chrono::seconds(120)), 0)
        << "rank " << r << " failed or hung";
  const auto rank0 = read_tensor(dir / "rank0.pt"), rank1 = read_tensor(dir / "rank1.pt");
  EXPECT_TRUE(torch::equal(rank0, rank1));  // the ranks agree bit for bit

  L::Trainer<L::accelerators::CPU> single(lightning::testing::bare({.max_epochs = 2}));
  const auto one = fit_and_read(single, 16);  // rows 16k..16k+15: both ranks' batch k
  EXPECT_TRUE(torch::allclose(rank0, one, 1e-6, 1e-7)) << rank0 << "\n" << one;
  torch::manual_seed(0);
  lightning::testing::SimpleModel untrained;
  EXPECT_FALSE(torch::allclose(lightning::testing::flat_parameters(untrained), one));  // it trained
}

// EarlyStopping's decision is any rank's (Lightning's reduce_boolean_decision, all=False):
// only rank 1's validation loss stops improving, and both ranks stop after the same epoch.
TEST(DDP, WhenOneRankWouldStopEarlyBothStopTogether) {
  const int port = free_port();
  const auto dir = std::filesystem::current_path();
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.push_back(
        start_rank(r, 2, port, dir / ("stop" + std::to_string(r) + ".pt"), "early_stopping"));
    ASSERT_GT(ranks.back(), 0) << "could not start rank " << r;
  }
  for (int r = 0; r < 2; ++r)
    EXPECT_EQ(wait_for(ranks[static_cast<std::size_t>(r)], std::chrono::seconds(120)), 0)
        << "rank " << r << " failed or hung";
  const auto rank0 = read_tensor(dir / "stop0.pt"), rank1 = read_tensor(dir / "stop1.pt");
  EXPECT_TRUE(torch::equal(rank0, rank1)) << rank0 << "\n" << rank1;
  // Rank 1: best at epoch 0, no improvement at epoch 1 (patience 1): both stop after
  // epoch 1 (current_epoch then reads 2, as in Lightning), not at max_epochs = 10 (which
  // following rank zero alone would give).
  EXPECT_EQ(rank0[0].item<std::int64_t>(), 2);
  EXPECT_EQ(rank0[1].item<std::int64_t>(), 8);  // 2 epochs of 4 steps
}

// A run resumed from a DDP checkpoint (same world size, shuffled shards) continues as
// the uninterrupted run does, bit for bit.
TEST(DDP, AResumeFromADdpCheckpointContinuesExactly) {
  const auto dir = std::filesystem::current_path();
  auto run = [&](const std::string& test_case) {
    const int port = free_port();
    std::vector<pid_t> ranks;
    for (int r = 0; r < 2; ++r) {
      ranks.push_back(
          start_rank(r, 2, port, dir / (test_case + std::to_string(r) + ".pt"), test_case));
      EXPECT_GT(ranks.back(), 0) << "could not start rank " << r;
    }
    for (int r = 0; r < 2; ++r)
      EXPECT_EQ(wait_for(ranks[static_cast<std::size_t>(r)], std::chrono::seconds(120)), 0)
          << test_case << ": rank " << r << " failed or hung";
    return read_tensor(dir / (test_case + "0.pt"));
  };
  const auto straight = run("straight");
  const auto first = run("first");
  ASSERT_TRUE(std::filesystem::exists(dir / "ddp.ckpt"));
  const auto resumed = run("resume");
  EXPECT_FALSE(torch::equal(first, straight));
  EXPECT_TRUE(torch::equal(resumed, straight)) << resumed << "\n" << straight;
}
