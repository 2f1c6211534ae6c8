// Background checkpoint writes: the snapshot is independent of training, a failure is
// raised (never lost), and a replaced file goes only after its successor is on disk.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>

#include "support/models.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

namespace L = lightning;
namespace fs = std::filesystem;

namespace {
L::CheckpointDict content_with(const torch::Tensor& t) {
  auto c = L::make_checkpoint();
  auto inner = L::make_checkpoint();
  inner.insert("weight", t);
  c.insert("state_dict", inner);
  c.insert("epoch", std::int64_t{3});
  return c;
}
// A path no process can create, root included.
const fs::path unwritable = "/proc/lightning-cannot-write-here/x.ckpt";
}  // namespace

TEST(CheckpointWriter, TheSnapshotIsWhatIsWrittenWhateverTrainingDoesAfter) {
  auto weight = torch::ones({3});
  const auto content = content_with(weight);
  L::BackgroundCheckpointWriter writer;
  writer.submit("snap.ckpt", L::checkpoint_snapshot(content).toGenericDict());
  weight.mul_(5);  // training goes on with the live tensor
  writer.wait();
  const auto loaded = L::load_checkpoint_file("snap.ckpt");
  const auto sd = L::checkpoint_dict<at::Tensor>(loaded.at("state_dict"));
  EXPECT_TRUE(torch::equal(sd.at("weight"), torch::ones({3})));
  EXPECT_EQ(loaded.at("epoch").toInt(), 3);
}

TEST(CheckpointWriter, TheSnapshotCopiesWhatTrainingCanReachAndTakesTheRestAsItIs) {
  auto live = torch::ones({3});
  auto c = L::make_checkpoint();
  c.insert("live", live);                  // training holds it too
  c.insert("view", live.narrow(0, 0, 2));  // a view of a live tensor
  c.insert("own", torch::full({2}, 7.0));  // only the content holds it (a copy made for it)
  auto nested = L::make_checkpoint();
  nested.insert("own", torch::full({2}, 8.0));
  c.insert("nested", nested);
  const auto own_data = c.at("own").toTensor().data_ptr();
  const auto nested_data = L::checkpoint_dict(c.at("nested")).at("own").toTensor().data_ptr();

  const auto snap = L::checkpoint_snapshot(c).toGenericDict();
  EXPECT_NE(snap.at("live").toTensor().data_ptr(), live.data_ptr());
  EXPECT_NE(snap.at("view").toTensor().data_ptr(), live.data_ptr());
  EXPECT_EQ(snap.at("own").toTensor().data_ptr(), own_data);
  EXPECT_EQ(L::checkpoint_dict(snap.at("nested")).at("own").toTensor().data_ptr(), nested_data);
  live.mul_(5);
  EXPECT_TRUE(torch::equal(snap.at("live").toTensor(), torch::ones({3})));
  EXPECT_TRUE(torch::equal(snap.at("view").toTensor(), torch::ones({2})));
}

TEST(CheckpointWriter, AFailedWriteIsRaisedNotLost) {
  L::BackgroundCheckpointWriter writer;
  writer.submit(unwritable, content_with(torch::ones({1})));
  try {
    writer.wait();
    FAIL() << "writing under /proc must fail";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("lightning-cannot-write-here"), std::string::npos)
        << e.what();
  }
  writer.wait();  // raised once: the writer is usable again
  writer.submit(unwritable, content_with(torch::ones({1})));
  // The next submission raises the previous failure before starting its own write.
  EXPECT_ANY_THROW(writer.submit("next.ckpt", content_with(torch::ones({1}))));
}

TEST(CheckpointWriter, AReplacedFileGoesOnlyOnceItsSuccessorIsCommitted) {
  L::save_checkpoint_file("old.ckpt", content_with(torch::ones({1})));
  L::BackgroundCheckpointWriter writer;
  writer.submit(unwritable, content_with(torch::ones({1})));
  writer.remove_after_write("old.ckpt");
  EXPECT_ANY_THROW(writer.wait());
  EXPECT_TRUE(fs::exists("old.ckpt"));  // the successor failed: the old file stays

  writer.submit("new.ckpt", content_with(torch::ones({1})));
  writer.remove_after_write("old.ckpt");
  writer.wait();
  EXPECT_TRUE(fs::exists("new.ckpt"));
  EXPECT_FALSE(fs::exists("old.ckpt"));
}

namespace {
// Saves into a place that cannot be written, in the background, at the first batch.
struct UnwritableSaver {
  template <class T, class M, class O, class B>
  void on_train_batch_end(T& trainer, M&, const O&, const B&, std::int64_t batch_idx) {
    if (batch_idx == 0 && trainer.current_epoch == 0)
      trainer.save_checkpoint_in_background(unwritable);
  }
};
}  // namespace

TEST(CheckpointWriter, TheTrainerRaisesABackgroundFailureFromFit) {
  lightning::testing::SimpleModel model;
  auto [X, y] = lightning::testing::seed_data(64);
  lightning::testing::CpuTrainer<UnwritableSaver> trainer({.max_epochs = 2,
                                                           .enable_progress_bar = false,
                                                           .enable_checkpointing = false,
                                                           .enable_model_summary = false,
                                                           .logger = false},
                                                          UnwritableSaver{});
  try {
    trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
    FAIL() << "fit must raise the failed checkpoint write";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("lightning-cannot-write-here"), std::string::npos)
        << e.what();
  }
}

// A writer whose thread cannot start (EAGAIN: a pids limit, RLIMIT_NPROC) raises that at
// submit, and neither wait() nor its destructor then waits for a write that never comes.
// Run in a child: it lowers its own process limit (as an unprivileged user, whom the limit
// binds) and reports by its exit status; the parent ends it if it hangs.
TEST(CheckpointWriter, AWriterThreadThatCannotStartIsAnErrorNotAHang) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
    const rlimit none{0, 0};
    if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(11);
    int status = 12;  // submit did not throw
    {
      L::BackgroundCheckpointWriter writer;
      try {
        writer.submit("never.ckpt", content_with(torch::ones({1})));
      } catch (const std::runtime_error& e) {
        status = std::string(e.what()).find("cannot start the checkpoint writer thread") !=
                         std::string::npos
                     ? 0
                     : 13;
      }
      writer.wait();  // returns: nothing is in flight
    }                 // the destructor returns too
    ::_exit(status);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      FAIL() << "the writer hung";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10/11: could not set up the limit, 12: submit did not "
                                       "throw, 13: another error";
}
