// Checkpoint files: atomic writes, verified loads with clear errors, Python's torch.load
// reading them, and the state of modules, optimizers, schedulers and generators.
#include <gtest/gtest.h>

#include "support/python.hpp"

#include <lightning/fabric/checkpoint_io.hpp>
#include <lightning/fabric/checkpoint_state.hpp>
#include <lightning/lightning.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace L = lightning;
namespace fs = std::filesystem;

namespace {

struct Net : torch::nn::Module {
  torch::nn::Linear fc1{register_module("fc1", torch::nn::Linear(4, 3))};
  torch::nn::BatchNorm1d bn{register_module("bn", torch::nn::BatchNorm1d(3))};
  torch::nn::Linear fc2{register_module("fc2", torch::nn::Linear(3, 1))};
  torch::Tensor forward(const torch::Tensor& x) { return fc2(bn(fc1(x))); }
};

fs::path fresh_dir(const std::string& name) {
  const auto dir =
      fs::temp_directory_path() / ("lightning_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

L::CheckpointDict sample_checkpoint(Net& net) {
  L::CheckpointDict c = L::make_checkpoint();
  c.insert("state_dict", L::module_state_dict(net));
  c.insert("epoch", std::int64_t{3});
  c.insert("global_step", std::int64_t{96});
  return c;
}

std::string error_of(const fs::path& p) {
  try {
    (void)L::load_checkpoint_file(p);
  } catch (const L::CheckpointError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(CheckpointIO, RoundTripWithVersionAndChecksumAndNoTemporaryLeft) {
  const auto dir = fresh_dir("roundtrip");
  Net net;
  net.forward(torch::randn({8, 4}));  // moves the batch-norm running statistics
  L::save_checkpoint_file(dir / "a.ckpt", sample_checkpoint(net));
  const auto loaded = L::load_checkpoint_file(dir / "a.ckpt");
  EXPECT_EQ(loaded.at("epoch").toInt(), 3);
  EXPECT_EQ(loaded.at("lightning_version").toStringRef(), std::string(L::version));
  EXPECT_TRUE(loaded.contains("checksum"));

  Net other;
  L::load_module_state_dict(other, L::checkpoint_dict<at::Tensor>(loaded.at("state_dict")),
                            "a.ckpt");
  for (const auto& p : net.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), other.named_parameters()[p.key()])) << p.key();
  EXPECT_TRUE(torch::equal(net.bn->running_mean, other.bn->running_mean));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(CheckpointIO, PythonTorchLoadReadsTheStateDict) {
  const auto dir = fresh_dir("python");
  Net net;
  auto content = sample_checkpoint(net);
  content.insert(
      "hyper_parameters",
      L::hyperparameters_state({{"lr", 0.01}, {"hidden", 32}, {"opt", "adam"}, {"bn", true}}));
  L::save_checkpoint_file(dir / "model.ckpt", content);
  // torch 2.x's torch.load defaults to weights_only=True: the checkpoint must pass its
  // restricted unpickler.
  const auto result = lightning::testing::run_python_program(
      "import torch\n"
      "d = torch.load('" +
      (dir / "model.ckpt").string() +
      "', weights_only=True)\n"
      "sd = d['state_dict']\n"
      "print(' '.join(sorted(sd)), d['epoch'], d['global_step'], "
      "'%.6f' % float(sum(t.double().sum() for t in sd.values())), d['hyper_parameters'])\n");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const std::string line = lightning::testing::lines_of(result.output).at(0);
  double total = 0;
  for (const auto& p : net.named_parameters())
    total += p.value().to(torch::kDouble).sum().item<double>();
  for (const auto& b : net.named_buffers())
    total += b.value().to(torch::kDouble).sum().item<double>();
  char expected_total[32];
  std::snprintf(expected_total, sizeof expected_total, "%.6f", total);
  EXPECT_EQ(line,
            "bn.bias bn.num_batches_tracked bn.running_mean bn.running_var bn.weight fc1.bias "
            "fc1.weight fc2.bias fc2.weight 3 96 " +
                std::string(expected_total) +
                " {'lr': 0.01, 'hidden': 32, 'opt': 'adam', 'bn': True}");
}

TEST(CheckpointIO, MissingTruncatedCorruptedAndForeignFilesAreClearErrors) {
  const auto dir = fresh_dir("errors");
  EXPECT_NE(error_of(dir / "nope.ckpt").find("nope.ckpt does not exist"), std::string::npos);

  Net net;
  L::save_checkpoint_file(dir / "good.ckpt", sample_checkpoint(net));
  std::ifstream in(dir / "good.ckpt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  std::ofstream(dir / "truncated.ckpt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_NE(error_of(dir / "truncated.ckpt").find("is not a readable checkpoint"),
            std::string::npos)
      << error_of(dir / "truncated.ckpt");

  // Flip one bit at 64 places across the file: each time, either load refuses the file
  // naming it, or (a flip in zip padding or an unused header field) the content it
  // returns is exactly the original. Never silently different content.
  const auto original = L::load_checkpoint_file(dir / "good.ckpt");
  int refused = 0;
  for (std::size_t i = 0; i < 64; ++i) {
    const std::size_t offset = i * (bytes.size() - 1) / 63;
    std::string flipped = bytes;
    flipped[offset] = static_cast<char>(flipped[offset] ^ 0x10);
    std::ofstream(dir / "flipped.ckpt", std::ios::binary | std::ios::trunc) << flipped;
    try {
      const auto loaded = L::load_checkpoint_file(dir / "flipped.ckpt");
      EXPECT_EQ(loaded.at("checksum").toInt(), original.at("checksum").toInt()) << offset;
      EXPECT_TRUE(
          torch::equal(L::checkpoint_dict<at::Tensor>(loaded.at("state_dict")).at("fc1.weight"),
                       L::checkpoint_dict<at::Tensor>(original.at("state_dict")).at("fc1.weight")))
          << offset;
    } catch (const L::CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("flipped.ckpt"), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_GE(refused, 16);  // much of this small file is zip alignment padding

  L::CheckpointDict foreign = L::make_checkpoint();
  foreign.insert("weights", torch::ones({2}));
  foreign.insert("other", std::int64_t{1});
  const auto raw = torch::pickle_save(c10::IValue(foreign));
  std::ofstream(dir / "foreign.pt", std::ios::binary).write(raw.data(), raw.size());
  EXPECT_NE(error_of(dir / "foreign.pt")
                .find("was written by neither lightning-cpp nor PyTorch Lightning"),
            std::string::npos);
}

TEST(CheckpointIO, CorruptedContentFailsTheChecksum) {
  const auto dir = fresh_dir("checksum");
  Net net;
  auto c = sample_checkpoint(net);
  c.insert("lightning_version", std::string(L::version));
  c.insert("checksum", std::int64_t{12345});  // a checksum that does not match the content
  const auto raw = torch::pickle_save(c10::IValue(c));
  std::ofstream(dir / "bad.ckpt", std::ios::binary).write(raw.data(), raw.size());
  const auto e = error_of(dir / "bad.ckpt");
  EXPECT_NE(e.find("bad.ckpt is corrupted: its content checksum is"), std::string::npos) << e;
}

// A child process saves a ~1 MB checkpoint in a loop and is killed with SIGKILL at a
// random moment, 200 times; the last committed checkpoint must always load, and the
// leftovers of the killed save are removed. The checkpoint is built before fork(): the
// child only serialises and writes (no intra-op thread pool in a forked child).
TEST(CheckpointIO, KilledSavesNeverLoseTheLastGoodCheckpoint) {
  const auto dir = fresh_dir("kill");
  const auto path = dir / "last.ckpt";
  torch::nn::Linear net(64, 64);
  auto content = L::make_checkpoint();
  content.insert("state_dict", L::module_state_dict(*net));
  content.insert("padding", torch::rand({250'000}));
  std::mt19937 rng(2026);
  int leftovers = 0;
  for (int round = 0; round < 200; ++round) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(ready[0]);
      for (std::int64_t step = 0;; ++step) {
        content.insert_or_assign("global_step", step);
        L::save_checkpoint_file(path, content);
        if (step == 0) {
          const char byte = 'r';
          if (::write(ready[1], &byte, 1) != 1) ::_exit(3);
        }
      }
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the saving process did not start";
    ::close(ready[0]);
    ::usleep(std::uniform_int_distribution<useconds_t>(0, 20'000)(rng));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the saving process ended before it was killed";
    leftovers += L::remove_stale_checkpoint_temporaries(dir) > 0 ? 1 : 0;
    const auto loaded = L::load_checkpoint_file(path);  // throws if torn
    EXPECT_TRUE(loaded.contains("state_dict"));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  }
  EXPECT_GT(leftovers, 0);  // some kills did land in the middle of a write
  // A temporary of a process that still runs is an in-flight save of another run sharing
  // the directory: it stays.
  const auto live =
      dir / (".last.ckpt" + std::string(".lightning-tmp-") + std::to_string(::getpid()));
  std::ofstream(live) << "in flight";
  EXPECT_EQ(L::remove_stale_checkpoint_temporaries(dir), 0u);
  EXPECT_TRUE(fs::exists(live));
  fs::remove(live);
}

TEST(CheckpointState, OptimizerAndSchedulersResumeExactly) {
  torch::manual_seed(0);
  Net a, b;
  torch::NoGradGuard no_grad_outer;
  for (auto& p : b.parameters()) p.set_data(torch::zeros_like(p));
  const auto x = torch::randn({16, 4}), y = torch::randn({16, 1});
  torch::optim::Adam opt_a(a.parameters(), 0.01);
  L::lr::Scheduler sched_a(L::lr::StepLR{.step_size = 2, .gamma = 0.5});
  sched_a.attach(opt_a);
  L::lr::ReduceLROnPlateau plateau_a({.patience = 1});
  const auto train_step = [&](Net& n, torch::optim::Optimizer& o) {
    torch::AutoGradMode grad(true);
    o.zero_grad();
    torch::mse_loss(n.forward(x), y).backward();
    o.step();
  };
  for (int i = 0; i < 3; ++i) {
    train_step(a, opt_a);
    sched_a.step(opt_a);
    plateau_a.step(opt_a, 1.0);
  }
  // Copy everything into b, its optimizer and schedulers, through checkpoint entries.
  L::load_module_state_dict(b, L::module_state_dict(a), "test");
  torch::optim::Adam opt_b(b.parameters(), 0.5);
  L::lr::Scheduler sched_b(L::lr::StepLR{.step_size = 2, .gamma = 0.5});
  sched_b.attach(opt_b);
  L::lr::ReduceLROnPlateau plateau_b({.patience = 1});
  // Schedulers first (restoring a formula re-applies its lr), the optimizer's lrs last.
  L::load_scheduler_state(sched_b, opt_b, L::scheduler_state(sched_a, opt_a));
  L::load_scheduler_state(plateau_b, opt_b, L::scheduler_state(plateau_a, opt_a));
  L::load_optimizer_state(opt_b, L::optimizer_state(opt_a));
  EXPECT_EQ(L::lr::group_lrs(opt_b), L::lr::group_lrs(opt_a));
  for (int i = 0; i < 3; ++i) {
    train_step(a, opt_a);
    sched_a.step(opt_a);
    plateau_a.step(opt_a, 1.0);
    train_step(b, opt_b);
    sched_b.step(opt_b);
    plateau_b.step(opt_b, 1.0);
  }
  for (const auto& p : a.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), b.named_parameters()[p.key()])) << p.key();
  EXPECT_EQ(L::lr::group_lrs(opt_b), L::lr::group_lrs(opt_a));

  // The CPU generator's state round-trips too.
  const auto state = L::cpu_rng_state();
  const auto first = torch::rand({4});
  L::set_cpu_rng_state(state);
  EXPECT_TRUE(torch::equal(torch::rand({4}), first));
}

TEST(CheckpointState, ModuleMismatchesNameTheEntry) {
  Net net;
  auto state = L::module_state_dict(net);
  (void)state.erase("fc2.bias");
  try {
    L::load_module_state_dict(net, state, "x.ckpt");
    FAIL();
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("x.ckpt has no entry \"fc2.bias\""), std::string::npos);
  }
  state = L::module_state_dict(net);
  state.insert_or_assign("fc1.weight", torch::zeros({2, 2}));
  try {
    L::load_module_state_dict(net, state, "x.ckpt");
    FAIL();
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("\"fc1.weight\" has shape [2, 2]"), std::string::npos)
        << e.what();
  }
}

namespace {

// A checkpoint whose data record for its one tensor holds only `stored_bytes` of the
// tensor's storage (torch.save's layout otherwise): the tensor's offset and sizes in the
// pickle then point past the storage the reader builds from the record.
void write_crafted_checkpoint(const fs::path& path, const torch::Tensor& tensor,
                              std::size_t stored_bytes) {
  auto state = L::make_checkpoint();
  state.insert("weight", tensor);
  auto content = L::make_checkpoint();
  content.insert("state_dict", state);
  content.insert("lightning_version", std::string(L::version));
  content.insert("checksum", std::int64_t{0});
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* bytes, std::size_t n) { pickled.insert(pickled.end(), bytes, bytes + n); },
      nullptr, nullptr, nullptr, nullptr, false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(content));
  pickler.stop();
  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t n) {
    const auto* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + n);
    return n;
  });
  const auto data = torch::jit::getWriteableTensorData(pickler.tensorData().at(0));
  writer.writeRecord("data/0", data.data(), std::min(stored_bytes, data.sizeInBytes()));
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  writer.writeEndOfFile();
  std::ofstream(path, std::ios::binary).write(archive.data(), std::streamsize(archive.size()));
}

// A zip archive as torch.save lays it out, holding `pickled` as data.pkl and no tensor.
void write_archive(const fs::path& path, const std::string& pickled) {
  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t n) {
    const auto* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + n);
    return n;
  });
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  writer.writeEndOfFile();
  std::ofstream(path, std::ios::binary).write(archive.data(), std::streamsize(archive.size()));
}

std::size_t open_descriptors() {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

// Names the temporary file a save of `target` by this process writes first.
fs::path temporary_of(const fs::path& target) {
  return target.parent_path() /
         ("." + target.filename().string() + ".lightning-tmp-" + std::to_string(::getpid()));
}

}  // namespace

// A tensor whose offset or sizes reach past its storage (a crafted or damaged file) is a
// CheckpointError naming it, found before anything reads the tensor's data.
TEST(CheckpointIO, ATensorReachingPastItsStorageIsRefusedBeforeItsDataIsRead) {
  const auto dir = fresh_dir("crafted");
  // 100 floats at offset 90 of their storage, and 1,000,000 floats, each stored in 16 bytes.
  write_crafted_checkpoint(dir / "offset.ckpt", torch::arange(100, torch::kFloat).narrow(0, 90, 10),
                           16);
  write_crafted_checkpoint(dir / "size.ckpt", torch::zeros({1000, 1000}), 16);
  for (const char* name : {"offset.ckpt", "size.ckpt"}) {
    const auto error = error_of(dir / name);
    EXPECT_NE(error.find(std::string(name) + " is corrupted or crafted"), std::string::npos)
        << error;
    EXPECT_NE(error.find("checkpoint[\"state_dict\"][\"weight\"]"), std::string::npos) << error;
    EXPECT_NE(error.find("its data record holds 16"), std::string::npos) << error;
  }
  // The same tensors stored whole load.
  write_crafted_checkpoint(dir / "whole.ckpt", torch::arange(100, torch::kFloat).narrow(0, 90, 10),
                           400);
  EXPECT_EQ(error_of(dir / "whole.ckpt").find("is corrupted or crafted"), std::string::npos)
      << error_of(dir / "whole.ckpt");
}

// A pickle whose arguments ask for more than the stream could describe (found by
// fuzz/checkpoint_reader: LONG_BINPUT with a memo index of 1.9 billion made torch's
// unpickler grow its memo to 30 GB; a string length past the end) is refused before the
// unpickler sees it.
TEST(CheckpointIO, APickleAskingForMoreThanItHoldsIsRefusedBeforeUnpickling) {
  const auto dir = fresh_dir("pickle");
  using namespace std::string_literals;
  write_archive(dir / "memo.ckpt", "\x80\x02}r\x01\x43\x51\x71."s);  // a dict, memo 1901150977
  write_archive(dir / "string.ckpt",
                "\x80\x02X\xff\xff\xff\x7f"
                "abc."s);  // 2 GB of text
  write_archive(dir / "opcode.ckpt", "\x80\x02\xfe."s);
  EXPECT_NE(error_of(dir / "memo.ckpt").find("pickle memo index 1901150977 in a stream of 9 bytes"),
            std::string::npos)
      << error_of(dir / "memo.ckpt");
  EXPECT_NE(error_of(dir / "string.ckpt").find("runs past the end of the stream"),
            std::string::npos)
      << error_of(dir / "string.ckpt");
  EXPECT_NE(error_of(dir / "opcode.ckpt").find("unknown pickle opcode 0xfe"), std::string::npos)
      << error_of(dir / "opcode.ckpt");
  for (const char* name : {"memo.ckpt", "string.ckpt", "opcode.ckpt"})
    EXPECT_NE(error_of(dir / name).find(std::string(name) + " is not a readable checkpoint"),
              std::string::npos);
}

// A full disk (ENOSPC, from /dev/full standing at the temporary's name): the save fails
// with the path and the cause, the previous checkpoint stays as it was, no temporary is
// left, and no descriptor leaks.
TEST(CheckpointIO, AFullDiskFailsTheSaveAndKeepsThePreviousCheckpoint) {
  const auto dir = fresh_dir("enospc");
  Net net;
  L::save_checkpoint_file(dir / "last.ckpt", sample_checkpoint(net));
  const auto descriptors = open_descriptors();
  fs::create_symlink("/dev/full", temporary_of(dir / "last.ckpt"));
  auto newer = sample_checkpoint(net);
  newer.insert_or_assign("epoch", std::int64_t{4});
  try {
    L::save_checkpoint_file(dir / "last.ckpt", newer);
    FAIL() << "a write to /dev/full must fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "last.ckpt").string()), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  EXPECT_EQ(L::load_checkpoint_file(dir / "last.ckpt").at("epoch").toInt(), 3);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_EQ(open_descriptors(), descriptors);
}

// An fsync that fails (EINVAL from /dev/null at the temporary's name; EIO on a failing
// disk or NFS) closes the file all the same: many failed saves leak no descriptor.
TEST(CheckpointIO, AFailedFsyncClosesTheFile) {
  const auto dir = fresh_dir("fsync");
  Net net;
  const auto descriptors = open_descriptors();
  for (int i = 0; i < 3; ++i) {
    fs::create_symlink("/dev/null", temporary_of(dir / "a.ckpt"));
    try {
      L::save_checkpoint_file(dir / "a.ckpt", sample_checkpoint(net));
      FAIL() << "fsync of /dev/null must fail";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot flush"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(fs::symlink_status(temporary_of(dir / "a.ckpt"))));
  }
  EXPECT_EQ(open_descriptors(), descriptors);
  EXPECT_FALSE(fs::exists(dir / "a.ckpt"));
}

// The checksum's CRC32C takes the CPU's instruction where there is one: the same values
// as Boost.CRC's table (files written either way verify either way), for every length and
// alignment.
TEST(CheckpointIO, TheHardwareAndTableCrc32cAgree) {
  std::vector<unsigned char> bytes(200'000);  // past the size read in three streams
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
  for (const std::size_t offset : {0u, 1u, 3u, 7u})
    for (const std::size_t n :
         {0u, 1u, 7u, 8u, 9u, 15u, 16u, 17u, 1000u, 65536u, 65543u, 199'000u}) {
      L::detail::Crc32c ours;
      ours.process_bytes(bytes.data() + offset, n / 2);
      ours.process_bytes(bytes.data() + offset + n / 2, n - n / 2);
      boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> table;
      table.process_bytes(bytes.data() + offset, n);
      EXPECT_EQ(ours.checksum(), table.checksum()) << offset << " " << n;
    }
  // The standard check value of CRC32C.
  L::detail::Crc32c check;
  check.process_bytes("123456789", 9);
  EXPECT_EQ(check.checksum(), 0xE3069283u);
}

// Large tensors are checksummed side by side and joined: the same checksum as the bytes
// of the content read in order (keys, kinds, dtypes, sizes, data) by one CRC.
TEST(CheckpointIO, TheContentChecksumOfLargeTensorsIsTheSequentialOne) {
  L::CheckpointDict content = L::make_checkpoint();
  const auto big = torch::arange(700'000, torch::kFloat), small = torch::ones({3});
  content.insert("big", big);  // 2.8 MB: in parallel
  content.insert("small", small);
  content.insert("again", big * 2);
  std::string stream;
  const auto number = [&](std::int64_t n) { stream.append(reinterpret_cast<const char*>(&n), 8); };
  const auto text = [&](const std::string& s) {
    number(static_cast<std::int64_t>(s.size()));
    stream += s;
  };
  for (const auto& kv : content) {
    stream += 'S';
    text(kv.key().toStringRef());
    const auto t = kv.value().toTensor();
    stream += 'T';
    text("Float");
    number(t.size(0));
    stream.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  }
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> sequential;
  sequential.process_bytes(stream.data(), stream.size());
  EXPECT_EQ(L::detail::content_checksum(content), static_cast<std::int64_t>(sequential.checksum()));
}

// On load, the large tensors' CRCs are computed as their records are read (off the
// reading thread) and joined into the same checksum: a file loads, and one flipped byte
// inside a large tensor is found.
TEST(CheckpointIO, LargeTensorsAreVerifiedWhileTheyAreRead) {
  const auto dir = fresh_dir("large");
  L::CheckpointDict content = L::make_checkpoint();
  content.insert("big", torch::arange(700'000, torch::kFloat));
  content.insert("small", torch::ones({3}));
  content.insert("again", torch::arange(700'000, torch::kFloat) * 2);
  L::save_checkpoint_file(dir / "large.ckpt", content);
  const auto loaded = L::load_checkpoint_file(dir / "large.ckpt");
  EXPECT_TRUE(torch::equal(loaded.at("again").toTensor(), content.at("again").toTensor()));
  const auto size = fs::file_size(dir / "large.ckpt");
  {
    std::fstream f(dir / "large.ckpt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size / 2));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x10);
    f.seekp(static_cast<std::streamoff>(size / 2));
    f.write(&c, 1);
  }
  const auto e = error_of(dir / "large.ckpt");
  EXPECT_NE(e.find("is corrupted: its content checksum is"), std::string::npos) << e;
  // Also where the records are views of the file (a resume's load): the pages are checked.
  try {
    (void)L::load_checkpoint_file(dir / "large.ckpt", {.mmap = true});
    ADD_FAILURE() << "a flipped byte in a mapped record was not found";
  } catch (const L::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("is corrupted: its content checksum is"),
              std::string::npos)
        << e.what();
  }
}

namespace {

// The file a mapping of this process holds at `address` ("" if none), from /proc/self/maps.
std::string file_mapped_at(const void* address) {
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  for (std::string line; std::getline(maps, line);) {
    std::uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &begin, &end) != 2 || at < begin || at >= end)
      continue;
    const auto slash = line.find('/');
    return slash == std::string::npos ? "" : line.substr(slash);
  }
  return "";
}

L::CheckpointDict large_content() {
  // Random: a re-zipping tool's deflate leaves each record smaller than the whole file.
  torch::manual_seed(0);
  L::CheckpointDict content = L::make_checkpoint();
  const auto big = torch::randn({700'000});
  content.insert("big", big);
  content.insert("view", big.slice(0, 1000, 5000));  // shares big's storage
  content.insert("small", torch::ones({3}));
  content.insert("doubles", torch::randn({300'000}, torch::kDouble));
  return content;
}

}  // namespace

TEST(CheckpointIO, MmapLoadsLargeTensorsAsCopyOnWriteViewsOfTheFile) {
  const auto dir = fresh_dir("mmap");
  const auto path = dir / "large.ckpt";
  const auto content = large_content();
  L::save_checkpoint_file(path, content);
  auto mapped = L::load_checkpoint_file(path, {.mmap = true});
  for (const char* key : {"big", "view", "small", "doubles"}) {
    EXPECT_TRUE(torch::equal(mapped.at(key).toTensor(), content.at(key).toTensor())) << key;
  }
  auto big = mapped.at("big").toTensor();
  const auto canonical = fs::canonical(path).string();
#if LIGHTNING_TORCH_AT_LEAST(2, 0)
  EXPECT_EQ(file_mapped_at(big.data_ptr()), canonical);
  EXPECT_EQ(file_mapped_at(mapped.at("doubles").toTensor().data_ptr()), canonical);
  EXPECT_EQ(mapped.at("view").toTensor().data_ptr<float>(), big.data_ptr<float>() + 1000);
#endif
  EXPECT_EQ(file_mapped_at(mapped.at("small").toTensor().data_ptr()), "");  // read, < 1 MiB
  // Private: writing to it leaves the file as it was.
  big.add_(1);
  EXPECT_TRUE(torch::equal(L::load_checkpoint_file(path).at("big").toTensor(),
                           content.at("big").toTensor()));
  // A save replaces the file by rename: what is held keeps the bytes it was loaded from.
  L::CheckpointDict other = L::make_checkpoint();
  other.insert("doubles", torch::zeros({300'000}, torch::kDouble));
  L::save_checkpoint_file(path, other);
  EXPECT_TRUE(torch::equal(mapped.at("doubles").toTensor(), content.at("doubles").toTensor()));
  // The mapping goes with the last tensor that views it.
  mapped = L::make_checkpoint();
  const auto* data = big.data_ptr();
  EXPECT_EQ(file_mapped_at(data), canonical + " (deleted)");  // the replaced file, still held
  { [[maybe_unused]] const auto gone = std::move(big); }
  EXPECT_EQ(file_mapped_at(data), "");
}

// A checkpoint re-zipped by another tool: records compressed, or stored at offsets torch's
// writer would not choose, are read, never viewed in place.
TEST(CheckpointIO, MmapReadsCompressedAndUnalignedRecordsAsBefore) {
  const auto dir = fresh_dir("mmap_rezipped");
  const auto content = large_content();
  L::save_checkpoint_file(dir / "large.ckpt", content);
  const auto result = lightning::testing::run_python_program(
      "import os, torch, zipfile\n"
      "# torch.save's zip (ours leaves the zip's CRC-32 out, which zipfile would check)\n"
      "torch.save(torch.load('" +
      (dir / "large.ckpt").string() + "', weights_only=True), '" + (dir / "torch.ckpt").string() +
      "')\n"
      "src = zipfile.ZipFile('" +
      (dir / "torch.ckpt").string() +
      "')\n"
      "def write(path, method, pad):\n"
      "    with zipfile.ZipFile(path, 'w', method, compresslevel=1) as out:\n"
      "        # stored, so that `pad` moves every later record by exactly that many bytes\n"
      "        out.writestr(src.namelist()[0].split('/')[0] + '/pad', b'x' * pad,\n"
      "                     compress_type=zipfile.ZIP_STORED)\n"
      "        for info in src.infolist():\n"
      "            out.writestr(info.filename, src.read(info.filename))\n"
      "    # the data offsets of its large records, and those a view could be made of by\n"
      "    # offset and size alone\n"
      "    size = os.path.getsize(path)\n"
      "    with zipfile.ZipFile(path) as z:\n"
      "        at = [(i.header_offset + 30 + len(i.filename.encode()) + len(i.extra), i)\n"
      "              for i in z.infolist() if i.file_size >= 1 << 20]\n"
      "    return at[0][0], [i for o, i in at if o % 64 == 0 and o + i.file_size <= size]\n"
      "deflated = '" +
      (dir / "deflated.ckpt").string() +
      "'\n"
      "first, _ = write(deflated, zipfile.ZIP_DEFLATED, 0)\n"
      "# its first large record aligned: only the method tells it is compressed\n"
      "assert write(deflated, zipfile.ZIP_DEFLATED, -first % 64)[1]\n"
      "pad = 0\n"
      "while write('" +
      (dir / "stored.ckpt").string() +
      "', zipfile.ZIP_STORED, pad)[1]:  # no large record 64-byte aligned\n"
      "    pad += 1\n");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  for (const char* name : {"deflated.ckpt", "stored.ckpt"}) {
    const auto loaded = L::load_checkpoint_file(dir / name, {.mmap = true});
    for (const char* key : {"big", "view", "small", "doubles"}) {
      EXPECT_TRUE(torch::equal(loaded.at(key).toTensor(), content.at(key).toTensor()))
          << name << " " << key;
    }
    EXPECT_EQ(file_mapped_at(loaded.at("big").toTensor().data_ptr()), "") << name;
    EXPECT_EQ(file_mapped_at(loaded.at("doubles").toTensor().data_ptr()), "") << name;
  }
}
