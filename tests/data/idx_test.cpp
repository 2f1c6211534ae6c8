// The IDX reader (plain and gzip) and the Fashion-MNIST DataModule.
#include <gtest/gtest.h>

#include <lightning/data/fashion_mnist.hpp>
#include <lightning/data/idx.hpp>

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "support/expect.hpp"

namespace L = lightning;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  auto d = fs::temp_directory_path() / ("lightning_idx_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

void write_plain(const fs::path& p, const std::vector<unsigned char>& bytes) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}
void write_gz(const fs::path& p, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

template <class F>
void expect_runtime(F&& f, const std::string& part) {
  lightning::testing::expect_error<std::runtime_error>(std::forward<F>(f), part);
}

// A 2x3 uint8 file, and a 2-element big-endian int32 file.
const std::vector<unsigned char> u8 = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255};
const std::vector<unsigned char> i32 = {0, 0, 0x0C, 1, 0,    0,    0,    2,
                                        0, 0, 1,    0, 0xFF, 0xFF, 0xFF, 0xFE};

}  // namespace

TEST(Idx, ReadsPlainAndGzipWithShapeAndByteOrder) {
  const auto d = temp_dir();
  write_plain(d / "a.idx", u8);
  write_gz(d / "a.idx.gz", u8);
  write_gz(d / "b.idx.gz", i32);
  for (const auto* name : {"a.idx", "a.idx.gz"}) {
    auto t = L::data::read_idx(d / name);
    EXPECT_EQ(t.scalar_type(), torch::kUInt8);
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t[1][2].item<int>(), 255);
  }
  auto b = L::data::read_idx(d / "b.idx.gz");
  EXPECT_EQ(b.scalar_type(), torch::kInt32);
  EXPECT_EQ(b[0].item<int>(), 256);
  EXPECT_EQ(b[1].item<int>(), -2);
  fs::remove_all(d);
}

TEST(Idx, ClearErrorsNameTheFileAndTheCause) {
  const auto d = temp_dir();
  auto truncated = u8;
  truncated.resize(15);
  write_gz(d / "short.gz", truncated);
  write_plain(d / "text.idx", {'h', 'e', 'l', 'l', 'o', '!', '!', '!'});
  expect_runtime([&] { L::data::read_idx(d / "short.gz"); }, "short.gz is truncated");
  expect_runtime([&] { L::data::read_idx(d / "text.idx"); }, "text.idx is not an IDX file");
  expect_runtime([&] { L::data::read_idx(d / "missing.gz"); }, "missing.gz does not exist");
  fs::remove_all(d);
}

// A header is checked against the file before its data is allocated: three dimensions of
// 2^32-1 overflow the element count, and even a plausible count must fit in the file.
TEST(Idx, AHeaderDeclaringMoreThanTheFileHoldsIsAnErrorNotAnAllocation) {
  const auto d = temp_dir();
  const std::vector<unsigned char> huge = {0,    0,    0x08, 3,    0xFF, 0xFF, 0xFF, 0xFF,
                                           0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  write_plain(d / "huge.idx", huge);
  write_gz(d / "huge.gz", huge);
  // 2 x 1,000,000 float64: 16 MB declared by a 30-byte file.
  write_plain(d / "big.idx", {0, 0, 0x0E, 2, 0, 0, 0, 2, 0, 0x0F, 0x42, 0x40, 1, 2, 3, 4});
  write_plain(d / "type.idx", {0, 0, 0x42, 1, 0, 0, 0, 1, 7});
  // Found by fuzz/idx_reader: a zero among huge dimensions holds no element, but its
  // strides overflow (torch's "Stride calculation overflowed", a c10::Error).
  write_plain(d / "zero.idx",
              {0, 0, 0x08, 3, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
  for (const char* name : {"huge.idx", "huge.gz", "zero.idx"})
    expect_runtime([&] { L::data::read_idx(d / name); },
                   std::string(name) + " is damaged or not an IDX file");
  expect_runtime([&] { L::data::read_idx(d / "huge.idx"); },
                 "[4294967295, 4294967295, 4294967295], too large for any tensor");
  expect_runtime([&] { L::data::read_idx(d / "zero.idx"); }, "[0, 4294967295, 4294967295]");
  expect_runtime([&] { L::data::read_idx(d / "big.idx"); }, "big.idx is truncated or damaged");
  expect_runtime([&] { L::data::read_idx(d / "big.idx"); }, "shape [2, 1000000] of 8-byte values");
  expect_runtime([&] { L::data::read_idx(d / "type.idx"); }, "unknown IDX element type 0x42");
  fs::remove_all(d);
}

TEST(FashionMNIST, MissingFilesNameThePackage) {
  L::data::FashionMNIST dm({.root = "/nonexistent/fashion"});
  try {
    dm.prepare_data();
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install dataset-fashion-mnist"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("/nonexistent/fashion/train-images-idx3-ubyte.gz"),
              std::string::npos);
  }
  lightning::testing::expect_invalid_argument([] { L::data::FashionMNIST({.batch_size = 0}); },
                                              "batch_size = 0");
}

TEST(FashionMNIST, SplitsNormalisesAndBatches) {
  L::data::FashionMNIST dm({.batch_size = 100, .val_size = 200, .limit = 1000});
  dm.prepare_data();  // the setup script installs dataset-fashion-mnist
  dm.setup(L::Stage::fit);
  auto train = dm.train_dataloader();
  auto val = dm.val_dataloader();
  EXPECT_EQ(train.num_examples(), 800);
  EXPECT_EQ(val.num_examples(), 200);
  auto [x, y] = *train.begin();
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{100, 1, 28, 28}));
  EXPECT_EQ(x.scalar_type(), torch::kFloat);  // stored as uint8, yielded normalised
  EXPECT_EQ(y.scalar_type(), torch::kLong);
  EXPECT_GE(y.min().item<int64_t>(), 0);
  EXPECT_LE(y.max().item<int64_t>(), 9);
  EXPECT_THROW(dm.test_dataloader(), std::logic_error);  // setup(test) not run yet
  dm.setup(L::Stage::test);
  EXPECT_EQ(dm.test_dataloader().num_examples(), 1000);

  L::data::FashionMNIST full({.val_size = 5000});
  full.setup(L::Stage::fit);
  const auto fx = std::get<0>(*full.val_dataloader().begin());
  EXPECT_EQ(full.train_dataloader().num_examples(), 55000);
  // Normalised with the training set's statistics: a batch has roughly zero mean, unit deviation.
  EXPECT_NEAR(fx.mean().item<double>(), 0.0, 0.2);
  EXPECT_NEAR(fx.std().item<double>(), 1.0, 0.2);
}
