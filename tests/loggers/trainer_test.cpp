// Loggers inside a Trainer: a CSVLogger and a TensorBoardLogger side by side as callbacks
// get the same logging steps (log_every_n_steps, validation epoch ends), and finalize
// themselves at teardown or when fit fails.
#include <gtest/gtest.h>

#include <lightning/lightning.hpp>
#include <lightning/loggers/csv_logger.hpp>
#include <lightning/loggers/tensorboard_logger.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "loggers/support.hpp"
#include "loggers/tfevents_reader.hpp"
#include "support/models.hpp"

namespace L = lightning;
namespace fs = std::filesystem;
using L::loggers::CSVLogger;
using L::loggers::TensorBoardLogger;
using lightning::testing::CpuTrainer;
using lightning::testing::event_files;
using lightning::testing::read_events;
using lightning::testing::read_file;
using lightning::testing::Scalar;
using lightning::testing::scalars;
using lightning::testing::seed_data;
using lightning::testing::SimpleModel;
using lightning::testing::TempDir;
using lightning::testing::ValidatedModel;
using lightning::testing::XY;

namespace {

L::TrainerOptions quiet(L::TrainerOptions o) {
  o.enable_progress_bar = false;
  return o;
}

// metrics.csv as rows of cells (the header first); the file has no quoted cells here.
std::vector<std::vector<std::string>> read_csv(const fs::path& file) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(read_file(file));
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(line.ends_with('\r')) << "rows end with CRLF: " << line;
    if (line.ends_with('\r')) line.pop_back();
    std::vector<std::string> cells;
    std::istringstream fields(line);
    std::string cell;
    while (std::getline(fields, cell, ',')) cells.push_back(cell);
    if (line.ends_with(',')) cells.emplace_back();
    rows.push_back(cells);
  }
  return rows;
}

// The CSV column `name`, row by row.
std::vector<std::string> column(const std::vector<std::vector<std::string>>& rows,
                                const std::string& name) {
  std::vector<std::string> out;
  const auto& header = rows.at(0);
  const auto at = std::find(header.begin(), header.end(), name);
  if (at == header.end()) return out;
  const auto i = static_cast<std::size_t>(at - header.begin());
  for (std::size_t r = 1; r < rows.size(); ++r) out.push_back(rows[r].at(i));
  return out;
}

std::vector<Scalar> with_tag(const std::vector<Scalar>& all, const std::string& tag) {
  std::vector<Scalar> out;
  for (const auto& s : all)
    if (s.tag == tag) out.push_back(s);
  return out;
}

TEST(TrainerLoggers, BothLoggersGetEveryLoggingStep) {
  TempDir tmp;
  auto [X, y] = seed_data(640);  // 20 batches of 32 per epoch
  ValidatedModel model;
  CSVLogger csv({.save_dir = tmp.path()});
  TensorBoardLogger tb({.save_dir = tmp.path(), .name = "tb"});
  L::Trainer<L::accelerators::CPU, L::strategies::SingleDevice, L::precision::F32, CSVLogger,
             TensorBoardLogger>
      trainer(quiet({.max_epochs = 2, .log_every_n_steps = 10}), csv, tb);
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}),
              L::data::TensorLoader({X, y}, {.batch_size = 64}));

  // The copies the Trainer holds share their runs with `csv` and `tb`.
  EXPECT_EQ(csv.log_dir(), tmp / "lightning_logs/version_0");
  EXPECT_EQ(tb.log_dir(), tmp / "tb/version_0");

  // Rows at steps 9, 19, 29, 39 (every 10th batch; step = global_step - 1 as Lightning)
  // with train_loss, and at the validation ends with val_loss. 6 rows are fewer than
  // flush_logs_every_n_steps: the file exists because teardown finalized.
  // Validation ends log at the step of the batch they follow (19, 39), as Lightning does
  // (it validates before incrementing _batches_that_stepped).
  const auto rows = read_csv(csv.metrics_file());
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0], (std::vector<std::string>{"epoch", "step", "train_loss", "val_loss"}));
  EXPECT_EQ(column(rows, "step"), (std::vector<std::string>{"9", "19", "19", "29", "39", "39"}));
  EXPECT_EQ(column(rows, "epoch"), (std::vector<std::string>{"0", "0", "0", "1", "1", "1"}));
  const auto train_loss = column(rows, "train_loss");
  const auto val_loss = column(rows, "val_loss");
  ASSERT_EQ(train_loss.size(), 6u);
  for (std::size_t r : {0u, 1u, 3u, 4u}) {
    EXPECT_TRUE(std::isfinite(std::stod(train_loss[r]))) << train_loss[r];
    EXPECT_EQ(val_loss[r], "");
  }
  for (std::size_t r : {2u, 5u}) {
    EXPECT_EQ(train_loss[r], "");
    EXPECT_GT(std::stod(val_loss[r]), 0.0) << val_loss[r];
  }

  // TensorBoard: the same steps, each metric its own scalar event, with the same values
  // as the CSV rows (rounded to float as TensorBoard stores them).
  const auto files = event_files(tb.log_dir());
  ASSERT_EQ(files.size(), 1u);
  const auto all = scalars(read_events(files[0]));
  const auto tb_train = with_tag(all, "train_loss");
  ASSERT_EQ(tb_train.size(), 4u);
  const std::vector<std::int64_t> train_steps = {9, 19, 29, 39};
  const std::vector<std::size_t> train_rows = {0, 1, 3, 4};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(tb_train[i].step, train_steps[i]);
    EXPECT_EQ(tb_train[i].value, static_cast<float>(std::stod(train_loss[train_rows[i]])));
  }
  const auto tb_val = with_tag(all, "val_loss");
  ASSERT_EQ(tb_val.size(), 2u);
  EXPECT_EQ(tb_val[0].step, 19);
  EXPECT_EQ(tb_val[1].step, 39);
  EXPECT_EQ(tb_val[1].value, static_cast<float>(std::stod(val_loss[5])));
  EXPECT_EQ(with_tag(all, "epoch").size(), 6u);
  EXPECT_TRUE(fs::exists(tb.log_dir() / "hparams.yaml"));  // finalized with "success"
  EXPECT_FALSE(tb.event_file());                           // and closed
}

TEST(TrainerLoggers, TwoLoggersOfOneType) {
  TempDir tmp;
  auto [X, y] = seed_data(320);
  SimpleModel model;
  CSVLogger a({.save_dir = tmp.path(), .name = "a"});
  CSVLogger b({.save_dir = tmp.path(), .name = "b", .prefix = "b"});
  CpuTrainer<CSVLogger, CSVLogger> trainer(quiet({.max_epochs = 1, .log_every_n_steps = 5}), a, b);
  trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32}));
  EXPECT_EQ(column(read_csv(a.metrics_file()), "step"), (std::vector<std::string>{"4", "9"}));
  EXPECT_EQ(column(read_csv(b.metrics_file()), "b-train_loss"),
            column(read_csv(a.metrics_file()), "train_loss"));
}

TEST(TrainerLoggers, AFailedFitKeepsWhatWasLogged) {
  struct Boom : SimpleModel {
    std::int64_t calls = 0;
    torch::Tensor training_step(const XY& batch, std::int64_t i) {
      if (++calls == 26) throw std::runtime_error("boom");
      return SimpleModel::training_step(batch, i);
    }
  };
  TempDir tmp;
  auto [X, y] = seed_data(640);
  Boom model;
  CSVLogger csv({.save_dir = tmp.path()});
  TensorBoardLogger tb({.save_dir = tmp.path()});
  CpuTrainer<CSVLogger, TensorBoardLogger> trainer(
      quiet({.max_epochs = 2, .log_every_n_steps = 10}), csv, tb);
  EXPECT_THROW(trainer.fit(model, L::data::TensorLoader({X, y}, {.batch_size = 32})),
               std::runtime_error);
  // Steps 9 and 19 were logged before the failure at the 26th batch: on_exception saved them.
  EXPECT_EQ(column(read_csv(csv.metrics_file()), "step"), (std::vector<std::string>{"9", "19"}));
  const auto files = event_files(tb.log_dir());
  ASSERT_EQ(files.size(), 1u);
  const auto tb_train = with_tag(scalars(read_events(files[0])), "train_loss");
  ASSERT_EQ(tb_train.size(), 2u);
  EXPECT_EQ(tb_train[1].step, 19);
  EXPECT_FALSE(fs::exists(tb.log_dir() / "hparams.yaml"));  // finalized with "failed"
}

}  // namespace
