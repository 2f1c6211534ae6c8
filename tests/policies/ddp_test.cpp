// strategies::DDP with Gloo on the CPU: two ranks, started as processes of this test
// program on 127.0.0.1, train as one process does with their global batch.
#include <gtest/gtest.h>

#include <lightning/data/data_loader.hpp>
#include <lightning/lightning.hpp>
#include <lightning/policies/ddp.hpp>

#include "support/models.hpp"

#include <fcntl.h>
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
#include <iostream>
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

template <class Model = lightning::testing::SimpleModel>
torch::Tensor fit_and_read(auto& trainer, std::int64_t batch) {
  auto [X, y] = ddp_data();
  torch::manual_seed(0);  // the same start everywhere (DDP broadcasts rank zero's anyway)
  Model model;
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

// Starts this program running only the worker test (which runs `test_case`), with the
// rank variables of the environment replaced by `variables`; its output goes to `log`
// when one is given.
pid_t start_worker(const std::vector<std::string>& variables, const std::filesystem::path& out,
                   const std::string& test_case, const std::filesystem::path& log = {}) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (!entry.starts_with("MASTER_") && !entry.starts_with("WORLD_SIZE=") &&
        !entry.starts_with("RANK=") && !entry.starts_with("LOCAL_RANK=") &&
        !entry.starts_with("NODE_RANK="))
      env_strings.push_back(entry);
  }
  env_strings.insert(env_strings.end(), variables.begin(), variables.end());
  env_strings.push_back("LIGHTNING_DDP_TEST_OUT=" + out.string());
  env_strings.push_back("LIGHTNING_DDP_TEST_CASE=" + test_case);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=DDPWorker.TrainsItsShard";
  std::vector<char*> argv{self.data(), filter.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  }
  pid_t pid = -1;
  const int error = ::posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

// Rank `rank` of `world`, started by hand (as torchrun would).
pid_t start_rank(int rank, int world, int port, const std::filesystem::path& out,
                 const std::string& test_case = "train") {
  return start_worker({"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port),
                       "WORLD_SIZE=" + std::to_string(world), "RANK=" + std::to_string(rank),
                       "LOCAL_RANK=" + std::to_string(rank)},
                      out, test_case);
}

// This program alone, without rank variables: its fit launches the other rank.
pid_t start_launcher(const std::filesystem::path& out, const std::string& test_case,
                     const std::filesystem::path& log) {
  return start_worker({}, out, test_case, log);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
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

// Starts a launched signal case and returns the launcher once its rank 0 has passed step
// 3 (and rank 1 has said its pid, when `rank1_pid` is asked for); 60 s at most.
pid_t start_signal_case(const std::string& test_case, bool rank1_pid = false) {
  const auto dir = std::filesystem::current_path();
  for (const char* stale : {"step3.marker", "rank1.pid", "interrupted.ckpt"})
    std::filesystem::remove(dir / stale);  // another test of this process may have left them
  const pid_t launcher =
      start_launcher(dir / (test_case + ".pt"), test_case, dir / (test_case + ".log"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!(std::filesystem::exists(dir / "step3.marker") &&
           (!rank1_pid || std::filesystem::exists(dir / "rank1.pid"))) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return launcher;
}

// Runs `test_case` on 2 ranks started by hand (bounded in time); each rank's tensor.
std::pair<torch::Tensor, torch::Tensor> run_two_ranks(const std::string& test_case) {
  const int port = free_port();
  const auto dir = std::filesystem::current_path();
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.push_back(
        start_rank(r, 2, port, dir / (test_case + std::to_string(r) + ".pt"), test_case));
    EXPECT_GT(ranks.back(), 0) << "could not start rank " << r;
  }
  for (int r = 0; r < 2; ++r)
    EXPECT_EQ(wait_for(ranks[static_cast<std::size_t>(r)], std::chrono::seconds(120)), 0)
        << test_case << ": rank " << r << " failed or hung";
  return {read_tensor(dir / (test_case + "0.pt")), read_tensor(dir / (test_case + "1.pt"))};
}

}  // namespace

// Validation loss that only rank 1 sees worsen (after its first epoch).
struct OneRankStalls : lightning::testing::SimpleModel {
  double sign = std::string(std::getenv("RANK")) == "1" ? 1.0 : -1.0;
  void validation_step(const lightning::testing::XY&, std::int64_t) {
    log("val_loss", sign * static_cast<double>(current_epoch()));
  }
};

void write_tensor(const std::string& path, const torch::Tensor& t) {
  const auto bytes = torch::pickle_save(t);
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// A layer the loss never uses: the Reducer must be told to look for it.
struct DDPWithUnusedLayer : lightning::testing::SimpleModel {
  torch::nn::Linear unused{register_module("unused", torch::nn::Linear(10, 3))};
};

// Validation loss averaged over the ranks (each validates its shard).
struct DDPSyncedValidation : lightning::testing::SimpleModel {
  std::int64_t validation_steps = 0;
  void validation_step(const lightning::testing::XY& batch, std::int64_t) {
    const auto& [x, y] = batch;
    ++validation_steps;
    log("val_loss", torch::mse_loss(forward(x), y.unsqueeze(1)), {.sync_dist = true});
  }
};

// A model for the launched cases: rank 1 fails at step 3 ("throw": an exception, "kill":
// SIGKILL), or every step sleeps a little so that a signal lands mid-run ("sigterm"),
// where rank 0 marks step 3 for the test.
struct LaunchedModel : lightning::testing::SimpleModel {
  std::string how;
  std::filesystem::path marker;
  torch::Tensor training_step(const lightning::testing::XY& batch, std::int64_t idx) {
    const bool rank1 = std::string(std::getenv("RANK")) == "1";
    if (how == "stuck" && !rank1 && global_step() == 3)
      std::this_thread::sleep_for(std::chrono::hours(1));  // busy elsewhere, never in a collective
    if ((how == "throw" || how == "stuck") && rank1 && global_step() == 3)
      throw std::runtime_error("rank 1 failed on purpose at step 3");
    if (how == "kill" && rank1 && global_step() == 3) ::raise(SIGKILL);
    if (how == "throw0" && !rank1 && global_step() == 3)
      throw std::runtime_error("rank 0 failed on purpose at step 3");
    if (how == "sigterm" || how == "pkill" || how == "sigterm143") {
      std::this_thread::sleep_for(std::chrono::milliseconds(40));
      if (!rank1 && global_step() == 3) std::ofstream(marker) << "step 3\n";
      if (rank1 && global_step() == 0)  // where the test finds rank 1 to signal it
        std::ofstream(marker.parent_path() / "rank1.pid") << ::getpid() << '\n';
    }
    return SimpleModel::training_step(batch, idx);
  }
};

// Rank zero's on_exception takes its time (as a callback that uploads or flushes may):
// the other rank can end before rank zero is done with the interrupt.
struct SlowOnException {
  bool enabled = false;
  template <class T, class M>
  void on_exception(T& trainer, M&, const std::exception&) {
    if (enabled && trainer.is_global_zero())
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
};

// The cases started as one process that launches rank 1 itself (devices = 2). Exit
// status: 0 done, 3 fit threw RankFailure, 4 it threw something else (printed); the
// "sigterm143" case exits as examples/ddp.cpp does after an interrupt, 128 + the signal.
[[noreturn]] void run_launched_case(const std::string& test_case, const std::string& out) {
  const auto dir = std::filesystem::path(out).parent_path();
  auto [X, y] = ddp_data();
  torch::manual_seed(test_case == "launch_resume" ? 99 : 0);
  LaunchedModel model;
  model.how = test_case.substr(std::string("launch_").size());
  model.marker = dir / "step3.marker";
  L::Trainer<L::accelerators::CPU, L::strategies::DDP, L::precision::F32, SlowOnException> trainer(
      lightning::testing::bare({.max_epochs = 4, .devices = 2, .default_root_dir = dir}),
      L::strategies::DDP(
          {.failure_timeout = std::chrono::seconds(test_case == "launch_stuck" ? 3 : 10)}),
      SlowOnException{.enabled = test_case == "launch_sigterm143"});
  L::data::TensorLoader loader({X, y}, {.batch_size = 8, .shuffle = true, .seed = 3});
  // Set by the launch in fit (rank 0 is this process).
  const auto mine = [&] { return out + "." + std::getenv("RANK"); };
  try {
    if (test_case == "launch_resume")
      trainer.fit(model, loader, L::CheckpointPath{dir / "interrupted.ckpt"});
    else
      trainer.fit(model, loader);
  } catch (const L::Interrupted& e) {
    std::ofstream(mine() + ".interrupted") << e.what() << '\n';
    if (test_case == "launch_sigterm143") std::exit(128 + e.signal);
  } catch (const L::RankFailure& e) {
    std::cerr << "RankFailure (rank " << e.rank << "): " << e.what() << std::endl;
    std::exit(3);
  } catch (const std::exception& e) {
    std::cerr << "another error: " << e.what() << std::endl;
    std::exit(4);
  }
  write_tensor(
      mine(),
      torch::cat({lightning::testing::flat_parameters(model).detach(),
                  torch::tensor({float(trainer.current_epoch), float(trainer.global_step)})}));
  std::exit(0);  // rank 0 waits for rank 1 at exit (the launcher's supervisor)
}

// One rank's side: runs only when started by a DDP test below.
TEST(DDPWorker, TrainsItsShard) {
  const char* out = std::getenv("LIGHTNING_DDP_TEST_OUT");
  if (out == nullptr) GTEST_SKIP() << "a rank of a DDP test, started by it";
  torch::set_num_threads(1);
  const std::string test_case = std::getenv("LIGHTNING_DDP_TEST_CASE");
  if (test_case.starts_with("launch")) run_launched_case(test_case, out);
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
  if (test_case == "unused") {
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
        lightning::testing::bare({.max_epochs = 2}),
        L::strategies::DDP({.find_unused_parameters = true, .gradient_as_bucket_view = true}));
    write_tensor(out, fit_and_read<DDPWithUnusedLayer>(trainer, 8));
    return;
  }
  if (test_case == "two_trainers") {
    // The first Trainer's process group is shut down and destroyed with it; the second
    // meets the other rank again at the same address.
    auto [X, y] = ddp_data();
    std::vector<double> steps;
    for (int i = 0; i < 2; ++i) {
      L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
          lightning::testing::bare({.max_epochs = 1}));
      lightning::testing::SimpleModel model;
      trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
      steps.push_back(static_cast<double>(trainer.global_step));
      steps.push_back(static_cast<double>(trainer.fabric().world_size()));
    }
    write_tensor(out, torch::tensor(steps, torch::kDouble));
    return;
  }
  if (test_case == "validate") {
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(lightning::testing::bare({}));
    auto [X, y] = ddp_data();
    torch::manual_seed(0);
    DDPSyncedValidation model;
    const auto results = trainer.validate(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
    write_tensor(out, torch::tensor({results.at(0).at("val_loss"),
                                     static_cast<double>(model.validation_steps),
                                     static_cast<double>(*trainer.num_val_batches)},
                                    torch::kDouble));
    return;
  }
  if (test_case == "manual") {
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
        lightning::testing::bare({.max_epochs = 2}));
    // manual_backward synchronises the gradients every time
    write_tensor(out, fit_and_read<lightning::testing::ManualModel>(trainer, 8));
    return;
  }
  if (test_case == "sync_dist") {
    auto [X, y] = ddp_data();
    struct LogsItsRank : lightning::testing::SimpleModel {
      double rank = std::stod(std::getenv("RANK"));
      torch::Tensor training_step(const lightning::testing::XY& batch, std::int64_t idx) {
        const double x = rank + 1 + 10.0 * static_cast<double>(idx);
        const auto weight = static_cast<std::int64_t>(rank) + 1;
        log("synced", torch::tensor(x),
            {.on_step = true, .on_epoch = true, .batch_size = weight, .sync_dist = true});
        log("synced_max", x, {.on_epoch = true, .reduce = L::Reduce::max, .sync_dist = true});
        log("own", x, {.on_step = true, .on_epoch = true, .batch_size = weight});
        return SimpleModel::training_step(batch, idx);
      }
    } model;
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
        lightning::testing::bare({.max_epochs = 1}));
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
    const auto m = trainer.metrics.callback_metrics();
    write_tensor(out, torch::tensor({m.at("synced_step"), m.at("synced_epoch"), m.at("synced_max"),
                                     m.at("own_step"), m.at("own_epoch")},
                                    torch::kDouble));
    return;
  }
  if (test_case == "topk_disagree") {
    // val_loss, not synced, improves on rank 0 only after epoch 0: ModelCheckpoint's
    // top-k decision (a save is a collective) must be the same on both ranks.
    auto [X, y] = ddp_data();
    OneRankStalls model;
    L::Trainer<L::accelerators::CPU, L::strategies::DDP, L::precision::F32,
               L::callbacks::ModelCheckpoint>
        trainer({.max_epochs = 3,
                 .num_sanity_val_steps = 0,
                 .enable_progress_bar = false,
                 .enable_model_summary = false,
                 .logger = false},
                L::strategies::DDP({.timeout = std::chrono::seconds(10)}),
                L::callbacks::ModelCheckpoint(
                    {.dirpath = std::filesystem::path(out).parent_path() / "topk",
                     .filename = "{epoch}",
                     .monitor = "val_loss",
                     .save_top_k = 1}));
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}),
                L::data::TensorLoader({X, y}, {.batch_size = 32}));
    std::ofstream(std::string(out) + ".path")
        << trainer.callback<L::callbacks::ModelCheckpoint>().best_model_path();
    write_tensor(out, torch::tensor({trainer.current_epoch, trainer.global_step}));
    return;
  }
  if (test_case == "dataloader") {
    // The "train" case with a DataLoader of 2 worker threads: the Trainer shards it with
    // a DistributedSampler as it shards a TensorLoader, so the batches are the same.
    auto [X, y] = ddp_data();
    torch::manual_seed(0);
    lightning::testing::SimpleModel model;
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
        lightning::testing::bare({.max_epochs = 2}));
    trainer.fit(model, L::data::DataLoader(L::data::TensorDataset(X, y),
                                           {.batch_size = 8, .num_workers = 2}));
    EXPECT_EQ(trainer.global_step, 8);
    write_tensor(out, lightning::testing::flat_parameters(model).detach().clone());
    return;
  }
  if (test_case == "no_distributed_sampler") {
    // use_distributed_sampler = false: each rank iterates the whole loader, as given.
    L::Trainer<L::accelerators::CPU, L::strategies::DDP> trainer(
        lightning::testing::bare({.max_epochs = 2, .use_distributed_sampler = false}));
    const auto params = fit_and_read(trainer, 8);
    EXPECT_EQ(trainer.num_training_batches, 8);
    EXPECT_EQ(trainer.global_step, 16);
    write_tensor(out, params);
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
  const auto [rank0, rank1] = run_two_ranks("train");
  EXPECT_TRUE(torch::equal(rank0, rank1));  // the ranks agree bit for bit

  L::Trainer<L::accelerators::CPU> single(lightning::testing::bare({.max_epochs = 2}));
  const auto one = fit_and_read(single, 16);  // rows 16k..16k+15: both ranks' batch k
  EXPECT_TRUE(torch::allclose(rank0, one, 1e-6, 1e-7)) << rank0 << "\n" << one;
  torch::manual_seed(0);
  lightning::testing::SimpleModel untrained;
  EXPECT_FALSE(torch::allclose(lightning::testing::flat_parameters(untrained), one));  // it trained
}

TEST(DDP, ADataLoaderIsShardedAsATensorLoaderIs) {
  const auto [rank0, rank1] = run_two_ranks("dataloader");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  const auto [tensor_loader, unused] = run_two_ranks("train");
  EXPECT_TRUE(torch::equal(rank0, tensor_loader)) << rank0 << "\n" << tensor_loader;
}

// use_distributed_sampler = false (Lightning's flag): no shard, both ranks train on all
// 64 examples, so their averaged gradients are one process's on the same batches of 8.
TEST(DDP, WithoutTheDistributedSamplerEachRankIteratesTheWholeLoader) {
  const auto [rank0, rank1] = run_two_ranks("no_distributed_sampler");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  L::Trainer<L::accelerators::CPU> single(lightning::testing::bare({.max_epochs = 2}));
  const auto one = fit_and_read(single, 8);
  EXPECT_TRUE(torch::allclose(rank0, one, 1e-6, 1e-7)) << rank0 << "\n" << one;
  const auto [sharded, unused] = run_two_ranks("train");
  EXPECT_FALSE(torch::allclose(rank0, sharded, 1e-6, 1e-7));  // the flag changed the data
}

// Manual optimization under DDP: manual_backward averages the gradients, so 2 ranks
// train as one process with their global batch.
TEST(DDP, ManualOptimizationTrainsAsOneProcessWithTheGlobalBatch) {
  const auto [rank0, rank1] = run_two_ranks("manual");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  L::Trainer<L::accelerators::CPU> single(lightning::testing::bare({.max_epochs = 2}));
  const auto one = fit_and_read<lightning::testing::ManualModel>(single, 16);
  EXPECT_TRUE(torch::allclose(rank0, one, 1e-6, 1e-7)) << rank0 << "\n" << one;
}

// Validation loaders are sharded as the train loader is (Lightning's DistributedSampler in
// val loaders): each rank validates half of the batches, and the val_loss logged with
// sync_dist equals one process validating all of them.
TEST(DDP, EachRankValidatesItsShardAndSyncDistGivesTheWholeMean) {
  const auto [rank0, rank1] = run_two_ranks("validate");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  EXPECT_EQ(rank0[1].item<double>(), 4.0);  // 32 of the 64 examples, batches of 8
  EXPECT_EQ(rank0[2].item<double>(), 4.0);
  L::Trainer<L::accelerators::CPU> single(lightning::testing::bare({}));
  auto [X, y] = ddp_data();
  torch::manual_seed(0);
  DDPSyncedValidation model;
  const auto whole = single.validate(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
  EXPECT_EQ(model.validation_steps, 8);
  EXPECT_NEAR(rank0[0].item<double>(), whole.at(0).at("val_loss"), 1e-6);
}

// log(..., {.sync_dist = true}) reduces across ranks (Lightning's): the step value when
// logged, the epoch mean over every rank's batches with their weights; a value logged
// without it stays each rank's own.
TEST(DDP, SyncDistReducesLoggedValuesAcrossRanks) {
  const auto [rank0, rank1] = run_two_ranks("sync_dist");
  // Rank r logs r + 1 + 10 * batch over 4 batches with weight r + 1: epoch means 16 and 17.
  const auto at = [](const torch::Tensor& t, int i) { return t[i].item<double>(); };
  for (const auto& r : {rank0, rank1}) {
    EXPECT_DOUBLE_EQ(at(r, 0), 31.5);                          // last step: mean of 31, 32
    EXPECT_DOUBLE_EQ(at(r, 1), (16.0 * 4 + 17.0 * 8) / 12.0);  // weighted over both ranks
    EXPECT_DOUBLE_EQ(at(r, 2), 32.0);                          // max over both ranks
  }
  EXPECT_DOUBLE_EQ(at(rank0, 3), 31.0);
  EXPECT_DOUBLE_EQ(at(rank1, 3), 32.0);
  EXPECT_DOUBLE_EQ(at(rank0, 4), 16.0);
  EXPECT_DOUBLE_EQ(at(rank1, 4), 17.0);
}

// EarlyStopping's decision is any rank's (Lightning's reduce_boolean_decision, all=False):
// only rank 1's validation loss stops improving, and both ranks stop after the same epoch.
TEST(DDP, WhenOneRankWouldStopEarlyBothStopTogether) {
  const auto [rank0, rank1] = run_two_ranks("early_stopping");
  EXPECT_TRUE(torch::equal(rank0, rank1)) << rank0 << "\n" << rank1;
  // Rank 1: best at epoch 0, no improvement at epoch 1 (patience 1): both stop after
  // epoch 1 (current_epoch then reads 2, as in Lightning), not at max_epochs = 10 (which
  // following rank zero alone would give).
  EXPECT_EQ(rank0[0].item<std::int64_t>(), 2);
  EXPECT_EQ(rank0[1].item<std::int64_t>(), 8);  // 2 epochs of 4 steps
}

// find_unused_parameters (a layer outside the loss) and gradient_as_bucket_view (the
// gradients are views into the Reducer's buckets, zeroed in place) train as one process
// with the global batch; the unused layer stays as it was.
TEST(DDP, UnusedParametersAndBucketViewsTrainAsOneProcess) {
  const auto [rank0, rank1] = run_two_ranks("unused");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  L::Trainer<L::accelerators::CPU> single(lightning::testing::bare({.max_epochs = 2}));
  const auto one = fit_and_read<DDPWithUnusedLayer>(single, 16);
  EXPECT_TRUE(torch::allclose(rank0, one, 1e-6, 1e-7)) << rank0 << "\n" << one;
  torch::manual_seed(0);  // the start fit_and_read trained from
  DDPWithUnusedLayer model;
  const auto untrained = lightning::testing::flat_parameters(model).detach();
  EXPECT_TRUE(torch::equal(rank0.slice(0, 11), untrained.slice(0, 11)));  // "unused" as it was
  EXPECT_FALSE(torch::equal(rank0.slice(0, 0, 11), untrained.slice(0, 0, 11)));
}

// A process group lives as long as its Trainer: destroyed with it, a later Trainer of the
// same processes forms a new one (Lightning keeps one per process until exit).
TEST(DDP, ASecondTrainerFormsANewProcessGroup) {
  const auto [rank0, rank1] = run_two_ranks("two_trainers");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  EXPECT_TRUE(torch::equal(rank0, torch::tensor({4.0, 2.0, 4.0, 2.0}, torch::kDouble))) << rank0;
}

// A run resumed from a DDP checkpoint (same world size, shuffled shards) continues as
// the uninterrupted run does, bit for bit.
TEST(DDP, AResumeFromADdpCheckpointContinuesExactly) {
  const auto dir = std::filesystem::current_path();
  const auto run = [](const std::string& test_case) { return run_two_ranks(test_case).first; };
  const auto straight = run("straight");
  const auto first = run("first");
  ASSERT_TRUE(std::filesystem::exists(dir / "ddp.ckpt"));
  const auto resumed = run("resume");
  EXPECT_FALSE(torch::equal(first, straight));
  EXPECT_TRUE(torch::equal(resumed, straight)) << resumed << "\n" << straight;
}

// One command: the program started alone with devices = 2 starts rank 1 itself (a copy of
// this program with LOCAL_RANK=1), and the two train as the ranks started by hand do.
TEST(DDPLauncher, OneProcessStartsTheOtherRankAndTheyTrainTogether) {
  const auto dir = std::filesystem::current_path();
  const pid_t launcher = start_launcher(dir / "launched.pt", "launch_train", dir / "launch.log");
  ASSERT_GT(launcher, 0);
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(120)), 0) << read_text(dir / "launch.log");
  const auto rank0 = read_tensor(dir / "launched.pt.0"), rank1 = read_tensor(dir / "launched.pt.1");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  EXPECT_EQ(rank0[-1].item<float>(), 16.0F);  // 4 epochs of 4 steps (32 examples per rank)
}

// A rank that throws, or is killed with SIGKILL, ends the job: rank 0's fit throws
// RankFailure carrying that rank's error, within the failure timeout (10 s here).
void expect_the_job_fails_with(const std::string& test_case, const std::string& message) {
  const auto dir = std::filesystem::current_path();
  const auto log = dir / (test_case + ".log");
  const auto start = std::chrono::steady_clock::now();
  const pid_t launcher = start_launcher(dir / (test_case + ".pt"), test_case, log);
  ASSERT_GT(launcher, 0);
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(60)), 3) << read_text(log);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  const auto output = read_text(log);
  EXPECT_NE(output.find("RankFailure (rank 1): lightning: rank 1 (local rank 1"), std::string::npos)
      << output;
  EXPECT_NE(output.find(message), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(dir / (test_case + ".pt.0")));
}
TEST(DDPLauncher, ARankThatThrowsEndsTheJobWithItsError) {
  expect_the_job_fails_with("launch_throw", "rank 1 failed on purpose at step 3");
}
TEST(DDPLauncher, ARankKilledWithSigkillEndsTheJob) {
  expect_the_job_fails_with("launch_kill", "was killed by signal 9 (SIGKILL)");
}

// A rank 0 that does not reach a collective after another rank failed (stuck in its own
// work) is ended with that rank's error after the failure timeout (3 s here), status 1.
TEST(DDPLauncher, ARankZeroThatNeverNoticesIsEndedAfterTheTimeout) {
  const auto dir = std::filesystem::current_path();
  const auto start = std::chrono::steady_clock::now();
  const pid_t launcher = start_launcher(dir / "stuck.pt", "launch_stuck", dir / "stuck.log");
  ASSERT_GT(launcher, 0);
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(60)), 1) << read_text(dir / "stuck.log");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::seconds(3));
  EXPECT_LT(took, std::chrono::seconds(20));
  const auto output = read_text(dir / "stuck.log");
  EXPECT_NE(output.find("lightning: rank 1 (local rank 1"), std::string::npos) << output;
  EXPECT_NE(output.find("rank 1 failed on purpose at step 3"), std::string::npos) << output;
  EXPECT_NE(output.find("lightning: ending rank 0 after 3000 ms"), std::string::npos) << output;
}

// Rank 0's own error is its own: it goes on unchanged, and the rank it started (which
// would wait for it in a collective) is stopped, so the job ends at once.
TEST(DDPLauncher, ARankZeroThatThrowsKeepsItsErrorAndStopsTheOthers) {
  const auto dir = std::filesystem::current_path();
  const auto start = std::chrono::steady_clock::now();
  const pid_t launcher = start_launcher(dir / "throw0.pt", "launch_throw0", dir / "throw0.log");
  ASSERT_GT(launcher, 0);
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(60)), 4) << read_text(dir / "throw0.log");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));  // < the timeout
  EXPECT_NE(read_text(dir / "throw0.log").find("another error: rank 0 failed on purpose"),
            std::string::npos)
      << read_text(dir / "throw0.log");
}

// SIGTERM to the launcher reaches both ranks; they agree at a step boundary, rank zero
// saves interrupted.ckpt, fit throws Interrupted on both, and a run resumed from the
// checkpoint ends bit for bit as the uninterrupted run.
TEST(DDPLauncher, SigtermSavesACheckpointThatResumesExactly) {
  const auto dir = std::filesystem::current_path();
  auto run = [&](const std::string& test_case) {
    const auto log = dir / (test_case + ".log");
    const pid_t launcher = start_launcher(dir / (test_case + ".pt"), test_case, log);
    EXPECT_GT(launcher, 0);
    if (test_case == "launch_sigterm") {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!std::filesystem::exists(dir / "step3.marker") &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ::kill(launcher, SIGTERM);
    }
    EXPECT_EQ(wait_for(launcher, std::chrono::seconds(120)), 0) << read_text(log);
    return dir / (test_case + ".pt");
  };
  const auto straight = read_tensor(run("launch_straight").string() + ".0");
  const auto stopped = run("launch_sigterm");
  for (const char* rank : {".0", ".1"})
    EXPECT_NE(read_text(stopped.string() + rank + ".interrupted").find("stopped by SIGTERM"),
              std::string::npos);
  const auto at_stop = read_tensor(stopped.string() + ".0");
  EXPECT_TRUE(torch::equal(at_stop, read_tensor(stopped.string() + ".1")));
  const auto step = at_stop[-1].item<float>();
  EXPECT_GE(step, 4.0F);   // after the marker at step 3 ...
  EXPECT_LT(step, 16.0F);  // ... and before the end
  ASSERT_TRUE(std::filesystem::exists(dir / "interrupted.ckpt"));
  const auto resumed = read_tensor(run("launch_resume").string() + ".0");
  EXPECT_TRUE(torch::equal(resumed, straight)) << resumed << "\n" << straight;
}

// pkill, killall or a systemd stop signal every rank directly, and rank 0 passes its
// signal on as well: rank 1 gets SIGTERM twice, once from each. That is one request to
// stop, not a second "now": the run stops at an agreed step with its checkpoint.
TEST(DDPLauncher, SigtermToEveryRankAtOnceStillStopsGracefully) {
  const auto dir = std::filesystem::current_path();
  const auto log = dir / "launch_pkill.log";
  const pid_t launcher = start_signal_case("launch_pkill", /*rank1_pid=*/true);
  ASSERT_GT(launcher, 0);
  const pid_t rank1 = std::stoi(read_text(dir / "rank1.pid"));
  ::kill(launcher, SIGTERM);  // forwarded to rank 1 at once ...
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(rank1, SIGTERM);  // ... and its own copy (two deliveries, not one merged)
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(120)), 0) << read_text(log);
  for (const char* rank : {".0", ".1"})
    EXPECT_NE(read_text(dir / ("launch_pkill.pt" + std::string(rank) + ".interrupted"))
                  .find("stopped by SIGTERM"),
              std::string::npos)
        << read_text(log);
  const auto at_stop = read_tensor(dir / "launch_pkill.pt.0");
  EXPECT_TRUE(torch::equal(at_stop, read_tensor(dir / "launch_pkill.pt.1")));
  EXPECT_LT(at_stop[-1].item<float>(), 16.0F);
  EXPECT_TRUE(std::filesystem::exists(dir / "interrupted.ckpt"));
}

// A rank that ends with 128 + SIGTERM after the agreed stop (as examples/ddp.cpp returns)
// while rank 0 is still in its on_exception is no failure: the job exits 143, the status
// of a clean SIGTERM stop, without a "rank 1 exited with status 143" error.
TEST(DDPLauncher, AnInterruptedRankExitingWith143IsNoFailure) {
  const auto dir = std::filesystem::current_path();
  const auto log = dir / "launch_sigterm143.log";
  const pid_t launcher = start_signal_case("launch_sigterm143");
  ASSERT_GT(launcher, 0);
  ::kill(launcher, SIGTERM);
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(120)), 128 + SIGTERM) << read_text(log);
  EXPECT_EQ(read_text(log).find("exited with status 143"), std::string::npos) << read_text(log);
  EXPECT_TRUE(std::filesystem::exists(dir / "launch_sigterm143.pt.1.interrupted"));
  EXPECT_TRUE(std::filesystem::exists(dir / "interrupted.ckpt"));
}

// ModelCheckpoint under DDP: a monitored value that improves on rank 0 only (not synced)
// must not make rank 0 save alone (a save is a collective: it would hang until the
// timeout). Both ranks take the same decision and name the same best file.
TEST(DDP, ModelCheckpointRanksAgreeWhenOnlyOneRanksMetricImproves) {
  const auto dir = std::filesystem::current_path();
  const auto [rank0, rank1] = run_two_ranks("topk_disagree");
  EXPECT_TRUE(torch::equal(rank0, rank1));
  const auto path0 = read_text(dir / "topk_disagree0.pt.path");
  EXPECT_EQ(path0, read_text(dir / "topk_disagree1.pt.path"));
  // Rank 1's val_loss worsens after epoch 0: the ranks never agree that a later epoch is
  // better, as Lightning's reduce_boolean_decision(all) decides.
  EXPECT_EQ(std::filesystem::path(path0).filename(), "epoch=0.ckpt");
  EXPECT_TRUE(std::filesystem::exists(dir / "topk" / "epoch=0.ckpt"));
}

// A MASTER_PORT that another process listens on: rank 0 cannot host the rendezvous.
// That is an error naming the port and the fix at once (not c10d's socket error after
// its timeout), before the launcher starts any other rank; and on a rank 0 started by
// hand (torchrun's way) too.
TEST(DDPLauncher, AMasterPortInUseIsAnErrorNamingItAtOnce) {
  const auto dir = std::filesystem::current_path();
  const int busy = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(busy, reinterpret_cast<sockaddr*>(&address), &length);
  const auto port = std::to_string(ntohs(address.sin_port));
  const auto start = std::chrono::steady_clock::now();
  const pid_t launcher =
      start_worker({"MASTER_PORT=" + port}, dir / "busy.pt", "launch_train", dir / "busy.log");
  ASSERT_GT(launcher, 0);
  EXPECT_EQ(wait_for(launcher, std::chrono::seconds(60)), 4) << read_text(dir / "busy.log");
  const pid_t by_hand = start_worker(
      {"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port, "WORLD_SIZE=2", "RANK=0", "LOCAL_RANK=0"},
      dir / "busy_rank0.pt", "train", dir / "busy_rank0.log");
  ASSERT_GT(by_hand, 0);
  EXPECT_NE(wait_for(by_hand, std::chrono::seconds(60)), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  ::close(busy);
  for (const char* log : {"busy.log", "busy_rank0.log"}) {
    const auto output = read_text(dir / log);
    EXPECT_NE(output.find("MASTER_PORT = " + port), std::string::npos) << output;
    EXPECT_NE(output.find("is in use by another process"), std::string::npos) << output;
    EXPECT_NE(output.find("Unset MASTER_PORT"), std::string::npos) << output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "busy.pt.1"));  // no other rank ever ran
}

// NCCL on a GPU: a world of one rank (gradients through the Reducer and NCCL) trains as
// SingleDevice does on that GPU. Runs where a GPU is present (label gpu).
TEST(DDPGpu, NcclWorldOfOneTrainsAsSingleDevice) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  ::setenv("MASTER_PORT", std::to_string(free_port()).c_str(), 1);
  auto [X, y] = ddp_data();
  auto train = [&](auto& trainer) {
    torch::manual_seed(0);
    lightning::testing::SimpleModel model;
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 8}));
    return lightning::testing::flat_parameters(model).detach().cpu().clone();
  };
  L::Trainer<L::accelerators::CUDA, L::strategies::DDP> ddp(
      lightning::testing::bare({.max_epochs = 2}));
  L::Trainer<L::accelerators::CUDA> single(lightning::testing::bare({.max_epochs = 2}));
  const auto with_nccl = train(ddp), alone = train(single);
  EXPECT_EQ(ddp.fabric().world_size(), 1);
  EXPECT_TRUE(torch::allclose(with_nccl, alone, 1e-6, 1e-7)) << with_nccl << "\n" << alone;
}
