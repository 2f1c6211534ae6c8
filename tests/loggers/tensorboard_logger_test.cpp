// TensorBoardLogger: Lightning's layout, event files whose framing is checked with an
// independent CRC32C and whose every payload protoc decodes, scalars, the hparams plugin
// summaries, hparams.yaml, lazy creation, new files after finalize, errors.
#include <gtest/gtest.h>

#include <lightning/loggers/tensorboard_logger.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "loggers/support.hpp"
#include "loggers/tfevents_reader.hpp"
#include "support/expect.hpp"
#include "support/python.hpp"

namespace L = lightning;
namespace fs = std::filesystem;
using L::loggers::TensorBoardLogger;
using lightning::testing::event_files;
using lightning::testing::expect_invalid_argument;
using lightning::testing::FakeModule;
using lightning::testing::FakeTrainer;
using lightning::testing::Proto;
using lightning::testing::read_events;
using lightning::testing::read_file;
using lightning::testing::read_records;
using lightning::testing::Scalar;
using lightning::testing::scalars;
using lightning::testing::TempDir;

namespace {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

TEST(TensorBoardLogger, IndependentCrc32cMatchesTheStandardCheckValue) {
  // The check value of CRC-32C (RFC 3720, and every CRC catalogue): "123456789".
  EXPECT_EQ(lightning::testing::crc32c_bitwise("123456789"), 0xE3069283u);
}

TEST(TensorBoardLogger, LayoutFileNameAndFirstRecord) {
  TempDir tmp;
  const double before = now_seconds();
  TensorBoardLogger logger({.save_dir = tmp.path(), .name = "exp"});
  EXPECT_EQ(logger.version(), 0);
  EXPECT_EQ(logger.log_dir(), tmp / "exp/version_0");
  EXPECT_EQ(logger.root_dir(), tmp / "exp");
  logger.log_metrics({{"train_loss", 0.5}}, 3);

  const auto files = event_files(tmp / "exp/version_0");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(logger.event_file(), files[0]);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::regex name(std::string(R"(events\.out\.tfevents\.\d{10}\.)") + host + "\\." +
                        std::to_string(::getpid()) + R"(\.\d+)");
  EXPECT_TRUE(std::regex_match(files[0].filename().string(), name)) << files[0];

  const auto events = read_events(files[0]);
  ASSERT_EQ(events.size(), 2u);
  // Event{wall_time = 1, file_version = 3}.
  EXPECT_EQ(events[0][3].str(), "brain.Event:2");
  EXPECT_GE(events[0][1].fixed64(), std::floor(before));
  EXPECT_LE(events[0][1].fixed64(), now_seconds() + 1);
  EXPECT_EQ(events[0].count(2), 0u);  // no step on the version record
}

TEST(TensorBoardLogger, ScalarsCarryTagStepAndFloatValue) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path()});
  logger.log_metrics({{"train_loss", 0.25}, {"epoch", 0.0}}, 9);
  logger.log_metrics({{"train_loss", 0.125}, {"epoch", 1.0}, {"val_acc", 0.1}}, 19);
  logger.log_metrics({{"train_loss", -3.0}}, 0);  // step 0 is proto3's default: left out
  const auto events = read_events(event_files(logger.log_dir()).at(0));
  ASSERT_EQ(events.size(), 7u);
  for (std::size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].count(5), 1u);  // summary
    EXPECT_GT(events[i][1].fixed64(), 1.6e9);
  }
  EXPECT_EQ(events[1][2].varint(), 9);
  EXPECT_EQ(events[6].count(2), 0u);
  const std::vector<Scalar> expected = {{"epoch", 9, 0.0f},    {"train_loss", 9, 0.25f},
                                        {"epoch", 19, 1.0f},   {"train_loss", 19, 0.125f},
                                        {"val_acc", 19, 0.1f}, {"train_loss", 0, -3.0f}};
  EXPECT_EQ(scalars(events), expected);
}

TEST(TensorBoardLogger, HyperparametersAsTheHparamsPluginWritesThem) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path()});
  logger.log_hyperparams({{"lr", 1e-3}, {"layers", 3}, {"optimizer", "adam"}, {"flag", true}});
  const auto events = read_events(event_files(logger.log_dir()).at(0));
  // file_version, hp_metric = -1 at step 0, then experiment, session start, session end.
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(scalars(events), (std::vector<Scalar>{{"hp_metric", 0, -1.0f}}));

  const auto plugin = [](const Proto& event, const std::string& tag) -> const Proto& {
    const auto& value = event[5][1];
    EXPECT_EQ(value[1].str(), tag);
    EXPECT_EQ(value[9][1][1].str(), "hparams");  // metadata.plugin_data.plugin_name
    EXPECT_EQ(value[9][1][2].count(1), 0u);      // HParamsPluginData.version 0: left out
    return value[9][1][2];                       // plugin_data.content
  };

  // Experiment{hparam_infos = 4 {name = 1, type = 4}, metric_infos = 5 {name {tag = 2}}}.
  const auto& experiment = plugin(events[2], "_hparams_/experiment")[2];
  const auto infos = experiment.all(4);
  ASSERT_EQ(infos.size(), 4u);
  EXPECT_EQ((*infos[0])[1].str(), "lr");
  EXPECT_EQ((*infos[0])[4].varint(), 3);  // DATA_TYPE_FLOAT64
  EXPECT_EQ((*infos[1])[1].str(), "layers");
  EXPECT_EQ((*infos[1])[4].varint(), 3);
  EXPECT_EQ((*infos[2])[1].str(), "optimizer");
  EXPECT_EQ((*infos[2])[4].varint(), 1);  // DATA_TYPE_STRING
  EXPECT_EQ((*infos[3])[1].str(), "flag");
  EXPECT_EQ((*infos[3])[4].varint(), 3);  // a bool is a number, as in Python
  EXPECT_EQ(experiment[5][1][2].str(), "hp_metric");

  // SessionStartInfo{hparams = 1: map entries {key = 1, value = 2: google.protobuf.Value}}.
  const auto& start = plugin(events[3], "_hparams_/session_start_info")[3];
  const auto entries = start.all(1);
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ((*entries[0])[1].str(), "lr");
  EXPECT_EQ((*entries[0])[2][2].fixed64(), 1e-3);  // number_value
  EXPECT_EQ((*entries[1])[1].str(), "layers");
  EXPECT_EQ((*entries[1])[2][2].fixed64(), 3.0);
  EXPECT_EQ((*entries[2])[1].str(), "optimizer");
  EXPECT_EQ((*entries[2])[2][3].str(), "adam");  // string_value
  EXPECT_EQ((*entries[3])[1].str(), "flag");
  EXPECT_EQ((*entries[3])[2][2].fixed64(), 1.0);

  // SessionEndInfo{status = STATUS_SUCCESS}.
  EXPECT_EQ(plugin(events[4], "_hparams_/session_end_info")[4][1].varint(), 1);

  // hparams.yaml is written when the run ends well, not before.
  EXPECT_FALSE(fs::exists(logger.log_dir() / "hparams.yaml"));
  logger.finalize("success");
  EXPECT_EQ(read_file(logger.log_dir() / "hparams.yaml"),
            "flag: true\nlayers: 3\nlr: 0.001\noptimizer: adam\n");
}

TEST(TensorBoardLogger, WithoutDefaultHpMetricHyperparametersOnlyReachTheYaml) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path(), .default_hp_metric = false});
  logger.log_hyperparams({{"lr", 0.5}});
  EXPECT_FALSE(fs::exists(tmp / "lightning_logs"));  // nothing written yet
  logger.log_metrics({{"loss", 1.0}}, 1);
  logger.finalize("success");
  const auto events = read_events(event_files(logger.log_dir()).at(0));
  EXPECT_EQ(scalars(events), (std::vector<Scalar>{{"loss", 1, 1.0f}}));
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(read_file(logger.log_dir() / "hparams.yaml"), "lr: 0.5\n");
}

TEST(TensorBoardLogger, HyperparametersWithTheirOwnMetrics) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path(), .default_hp_metric = false});
  logger.log_hyperparams({{"lr", 0.5}}, {{"val_acc", 0.75}, {"val_loss", 2.0}});
  const auto events = read_events(event_files(logger.log_dir()).at(0));
  ASSERT_EQ(events.size(), 6u);  // version, two scalars, three plugin summaries
  EXPECT_EQ(scalars(events), (std::vector<Scalar>{{"val_acc", 0, 0.75f}, {"val_loss", 0, 2.0f}}));
  const auto& experiment = events[3][5][1][9][1][2][2];
  const auto metrics = experiment.all(5);
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_EQ((*metrics[0])[1][2].str(), "val_acc");
  EXPECT_EQ((*metrics[1])[1][2].str(), "val_loss");
}

TEST(TensorBoardLogger, NothingIsCreatedBeforeTheFirstWrite) {
  TempDir tmp;
  const auto root = tmp / "runs";
  {
    TensorBoardLogger logger({.save_dir = root});
    EXPECT_EQ(logger.log_dir(), root / "lightning_logs/version_0");
    logger.save();
    logger.finalize("success");  // no run directory: no hparams.yaml either
    EXPECT_FALSE(logger.event_file());
  }
  EXPECT_FALSE(fs::exists(root));
}

TEST(TensorBoardLogger, FinalizeClosesALaterWriteOpensANewFile) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path(), .prefix = "p"});
  logger.log_metrics({{"a", 1.0}}, 1);
  FakeTrainer trainer;
  FakeModule module;
  logger.teardown(trainer, module, L::Stage::fit);
  EXPECT_FALSE(logger.event_file());
  EXPECT_EQ(read_file(logger.log_dir() / "hparams.yaml"), "{}\n");  // as yaml.dump({})
  logger.log_metrics({{"a", 2.0}}, 2);
  logger.on_exception(trainer, module, std::runtime_error("boom"));
  const auto files = event_files(logger.log_dir());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(scalars(read_events(files[0])), (std::vector<Scalar>{{"p-a", 1, 1.0f}}));
  const auto second = read_events(files[1]);
  EXPECT_EQ(second[0][3].str(), "brain.Event:2");  // each file starts with its version
  EXPECT_EQ(scalars(second), (std::vector<Scalar>{{"p-a", 2, 2.0f}}));
}

TEST(TensorBoardLogger, OtherRanksFinalizeNothing) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path()});
  logger.log_metrics({{"a", 1.0}}, 1);
  FakeTrainer trainer{.zero = false};
  FakeModule module;
  logger.teardown(trainer, module, L::Stage::fit);
  EXPECT_TRUE(logger.event_file());
  EXPECT_FALSE(fs::exists(logger.log_dir() / "hparams.yaml"));
}

TEST(TensorBoardLogger, VersionsAndSubDir) {
  TempDir tmp;
  fs::create_directories(tmp / "lightning_logs/version_0");
  fs::create_directories(tmp / "lightning_logs/version_3");
  TensorBoardLogger logger({.save_dir = tmp.path(), .sub_dir = "fold_a"});
  EXPECT_EQ(logger.version(), 4);
  EXPECT_EQ(logger.log_dir(), tmp / "lightning_logs/version_4/fold_a");
  logger.log_metrics({{"a", 1.0}}, 1);
  EXPECT_EQ(event_files(tmp / "lightning_logs/version_4/fold_a").size(), 1u);
  EXPECT_EQ(TensorBoardLogger({.save_dir = tmp.path(), .version = 1}).log_dir(),
            tmp / "lightning_logs/version_1");
}

TEST(TensorBoardLogger, ReaderRejectsACorruptedFile) {
  // The framing check above can fail: flip one byte of a record and it must.
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path()});
  logger.log_metrics({{"a", 1.0}}, 1);
  logger.finalize("failed");
  const auto file = event_files(logger.log_dir()).at(0);
  EXPECT_EQ(read_records(file).size(), 2u);
  auto bytes = read_file(file);
  bytes[bytes.size() - 6] ^= 0x01;  // inside the last record's data
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_THROW(read_records(file), std::runtime_error);
}

TEST(TensorBoardLogger, BadOptionsAndIoFailures) {
  expect_invalid_argument([] { TensorBoardLogger({.version = -2}); },
                          "TensorBoardLoggerOptions.version = -2");
  expect_invalid_argument([] { TensorBoardLogger({.sub_dir = "/abs"}); },
                          "TensorBoardLoggerOptions.sub_dir = \"/abs\"");
  expect_invalid_argument([] { TensorBoardLogger({.save_dir = ""}); },
                          "TensorBoardLoggerOptions.save_dir");
  TempDir tmp;
  std::ofstream(tmp / "blocked") << "a file where the logs should go";
  TensorBoardLogger logger({.save_dir = tmp / "blocked"});
  try {
    logger.log_metrics({{"a", 1.0}}, 1);
    ADD_FAILURE() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((tmp / "blocked").string()), std::string::npos)
        << e.what();
  }
}

// The tensorboard package's own reader (EventAccumulator, through
// tests/python/read_tensorboard.py) reads our event files: every scalar's tag, step and
// value and the hyperparameters of the hparams plugin are what was logged.
TEST(TensorBoardLogger, TensorBoardsOwnReaderReadsEverythingThatWasLogged) {
  TempDir tmp;
  TensorBoardLogger logger({.save_dir = tmp.path()});
  logger.log_hyperparams({{"lr", 1e-3}, {"layers", 3}, {"optimizer", "adam"}, {"flag", true}},
                         {{"val_acc", 0.0}});
  struct Logged {
    std::string tag;
    std::int64_t step;
    double value;
  };
  std::vector<Logged> logged = {{"val_acc", 0, 0.0}};  // log_hyperparams' metrics, at step 0
  const double specials[] = {0.1,
                             -2.5,
                             1e-8,
                             123456.789,
                             1e30,
                             std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN()};
  std::int64_t step = 0;
  for (double value : specials) {
    logger.log_metrics({{"train_loss", value}, {"epoch", static_cast<double>(step / 3)}}, step);
    logged.push_back({"train_loss", step, value});
    logged.push_back({"epoch", step, static_cast<double>(step / 3)});
    step += 7;
  }
  logger.log_metrics({{"val_acc", 0.875}}, 49);
  logged.push_back({"val_acc", 49, 0.875});
  logger.finalize("success");

  const auto read = lightning::testing::run_python(
      {lightning::testing::peer_script("read_tensorboard.py"), logger.log_dir().string()});
  LIGHTNING_EXPECT_PYTHON_OK(read);
  // {"files": 1, "hparam_metrics": [...], "hparams": {...}, "scalars": [{"step": s, "tag": t,
  // "value": v}, ...]} (json.dumps with sorted keys).
  const std::string& json = read.output;
  EXPECT_NE(json.find("\"files\": 1,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"hparam_metrics\": [\"val_acc\"]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"hparams\": {\"flag\": 1.0, \"layers\": 3.0, \"lr\": 0.001, "
                      "\"optimizer\": \"adam\"}"),
            std::string::npos)
      << json;

  std::vector<Logged> seen;
  const std::regex scalar(R"re(\{"step": (\d+), "tag": "([^"]+)", "value": ([^}]+)\})re");
  for (std::sregex_iterator it(json.begin(), json.end(), scalar), end; it != end; ++it)
    seen.push_back(
        {(*it)[2].str(), std::stoll((*it)[1].str()), std::strtod((*it)[3].str().c_str(), nullptr)});
  // The reader orders by tag, then step.
  std::stable_sort(logged.begin(), logged.end(), [](const Logged& a, const Logged& b) {
    return std::tie(a.tag, a.step) < std::tie(b.tag, b.step);
  });
  ASSERT_EQ(seen.size(), logged.size()) << json;
  for (std::size_t i = 0; i < logged.size(); ++i) {
    EXPECT_EQ(seen[i].tag, logged[i].tag) << i;
    EXPECT_EQ(seen[i].step, logged[i].step) << logged[i].tag;
    // Event files hold float32 values.
    const double expected = static_cast<float>(logged[i].value);
    if (std::isnan(expected))
      EXPECT_TRUE(std::isnan(seen[i].value)) << logged[i].tag << " at " << logged[i].step;
    else
      EXPECT_EQ(seen[i].value, expected) << logged[i].tag << " at " << logged[i].step;
  }
}

}  // namespace
