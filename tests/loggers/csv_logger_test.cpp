// CSVLogger: Lightning's layout (save_dir/name/version_N/metrics.csv, hparams.yaml),
// columns and rows as Lightning writes them, the header rewrite when metrics appear,
// version choice, lazy creation, flushing, errors.
#include <gtest/gtest.h>

#include <lightning/loggers/csv_logger.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "loggers/support.hpp"
#include "support/expect.hpp"
#include "support/python.hpp"

namespace L = lightning;
namespace fs = std::filesystem;
using L::loggers::CSVLogger;
using lightning::testing::expect_invalid_argument;
using lightning::testing::FakeModule;
using lightning::testing::FakeTrainer;
using lightning::testing::read_file;
using lightning::testing::TempDir;

namespace {

// A Python literal for `s` (its bytes, decoded as UTF-8).
std::string py_str(std::string_view s) {
  std::string out = "b'";
  for (unsigned char c : s) {
    char hex[5];
    std::snprintf(hex, sizeof hex, "\\x%02x", c);
    out += hex;
  }
  out += "'.decode()";
  return out;
}

// A Python literal for exactly this double.
std::string py_float(double v) {
  if (std::isnan(v)) return "float('nan')";
  if (std::isinf(v)) return v > 0 ? "float('inf')" : "float('-inf')";
  char hex[64];
  std::snprintf(hex, sizeof hex, "float.fromhex('%a')", v);
  return hex;
}

// Runs a Python program (on the test environment's Python, which has PyYAML).
void run_python(const std::string& program) {
  const auto result = lightning::testing::run_python_program(program);
  LIGHTNING_EXPECT_PYTHON_OK(result) << program;
}

TEST(CSVLogger, SameBytesAsPythonsCsvModuleWritesForLightning) {
  // Lightning's _ExperimentWriter: csv.DictWriter over the sorted union of the keys, the
  // values as Python holds them (floats from .item(), int step and epoch).
  TempDir tmp;
  const std::vector<std::pair<L::MetricMap, std::int64_t>> rows = {
      {{{"train_loss", 0.1f}, {"epoch", 0.0}, {"lr", 1e-5}}, 9},
      {{{"train_loss", 1e16}, {"epoch", 0.0}, {"a,b", -0.0}}, 19},
      {{{"val \"acc\"", 0.30000000000000004}, {"epoch", 1.0}, {"big", 123456789.125}}, 20},
      {{{"train_loss", std::nan("")},
        {"epoch", 1.0},
        {"lr", -std::numeric_limits<double>::infinity()}},
       29},
  };
  CSVLogger logger({.save_dir = tmp / "runs"});
  std::string program = "import csv\nrows = [\n";
  for (const auto& [metrics, step] : rows) {
    logger.log_metrics(metrics, step);
    program += "  {";
    for (const auto& [name, value] : metrics) {
      program += py_str(name);
      program += ": ";
      program += name == "epoch" ? std::to_string(static_cast<int>(value)) : py_float(value);
      program += ", ";
    }
    program += "'step': ";
    program += std::to_string(step);
    program += "},\n";
  }
  program += "]\nkeys = sorted(set().union(*rows))\n";
  program += "with open(";
  program += py_str((tmp / "expected.csv").string());
  program += ", 'w', newline='') as f:\n";
  program += "  w = csv.DictWriter(f, fieldnames=keys)\n  w.writeheader()\n  w.writerows(rows)\n";
  logger.save();
  run_python(program);
  EXPECT_EQ(read_file(logger.metrics_file()), read_file(tmp / "expected.csv"));
}

TEST(CSVLogger, SameBytesAsPyYamlDumpWrites) {
  TempDir tmp;
  const L::HParams hparams = {
      {"lr", 3e-4},
      {"eps", 1e-8},
      {"steps", 100000},
      {"ratio", 2.5e16},
      {"flag", false},
      {"name", "resnet"},
      {"colon", "a:b"},
      {"spaced", "a: b"},
      {"hash", "x #y"},
      {"dash", "- x"},
      {"yes", "yes"},
      {"Null", "null"},
      {"number", "1.5"},
      {"octal", "0o17"},
      {"date", "2024-01-02"},
      {"tab", "a\tb"},
      {"unicode", "\xce\xbb=0.1"},
      {"quote", "'q'"},
      {"empty", ""},
      {"sci", "1e5"},
      {"inf", std::numeric_limits<double>::infinity()},
      {"neg", -7},
      {"bang", "!x"},
      {"star", "*x"},
      {"pct", "%x"},
      {"at", "@x"},
      {"trail", "x "},
  };
  CSVLogger logger({.save_dir = tmp / "runs"});
  logger.log_hyperparams(hparams);
  std::string program = "import yaml\nd = {\n";
  for (const auto& [name, value] : hparams) {
    program += "  ";
    program += py_str(name);
    program += ": ";
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, bool>)
            program += v ? "True" : "False";
          else if constexpr (std::is_same_v<V, std::int64_t>)
            program += std::to_string(v);
          else if constexpr (std::is_same_v<V, double>)
            program += py_float(v);
          else
            program += py_str(v);
        },
        value.value());
    program += ",\n";
  }
  program += "}\nopen(";
  program += py_str((tmp / "expected.yaml").string());
  program += ", 'w').write(yaml.dump(d))\n";
  run_python(program);
  EXPECT_EQ(read_file(logger.log_dir() / "hparams.yaml"), read_file(tmp / "expected.yaml"));
}

TEST(CSVLogger, PythonFloatReprMatchesPython) {
  using L::python_float_repr;
  // Expected texts are Python 3's repr() of the same doubles.
  EXPECT_EQ(python_float_repr(0.5), "0.5");
  EXPECT_EQ(python_float_repr(100.0), "100.0");
  EXPECT_EQ(python_float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(2.5e15), "2500000000000000.0");
  EXPECT_EQ(python_float_repr(1e22), "1e+22");
  EXPECT_EQ(python_float_repr(123456789.123), "123456789.123");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(-3.25), "-3.25");
  EXPECT_EQ(python_float_repr(static_cast<double>(0.1f)), "0.10000000149011612");
  EXPECT_EQ(python_float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(python_float_repr(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(python_float_repr(std::nan("")), "nan");
}

TEST(CSVLogger, LayoutColumnsAndRows) {
  TempDir tmp;
  CSVLogger logger({.save_dir = tmp.path(), .name = "exp"});
  EXPECT_EQ(logger.name(), "exp");
  EXPECT_EQ(logger.save_dir(), tmp.path());
  EXPECT_EQ(logger.version(), 0);
  EXPECT_EQ(logger.log_dir(), tmp / "exp" / "version_0");

  logger.log_metrics({{"train_loss", 0.5}, {"acc", 1.0}}, 0);
  logger.log_metrics({{"train_loss", 0.25}, {"acc", 2.0}, {"epoch", 0.0}}, 1);
  logger.finalize("success");
  // Columns sorted by name (Lightning sorts its keys), "step" included; a metric missing
  // from a row leaves its cell empty; "epoch" is an integer; lines end with CRLF as
  // Python's csv module writes them.
  EXPECT_EQ(read_file(tmp / "exp/version_0/metrics.csv"),
            "acc,epoch,step,train_loss\r\n"
            "1.0,,0,0.5\r\n"
            "2.0,0,1,0.25\r\n");
}

TEST(CSVLogger, NewMetricRewritesTheHeaderKeepingEarlierRows) {
  TempDir tmp;
  CSVLogger logger({.save_dir = tmp.path(), .flush_logs_every_n_steps = 1});
  logger.log_metrics({{"loss", 1.5}}, 0);
  const auto file = tmp / "lightning_logs/version_0/metrics.csv";
  EXPECT_EQ(read_file(file), "loss,step\r\n1.5,0\r\n");
  logger.log_metrics({{"loss", 1.25}}, 1);  // same columns: appended
  EXPECT_EQ(read_file(file), "loss,step\r\n1.5,0\r\n1.25,1\r\n");
  logger.log_metrics({{"loss", 1.0}, {"val_acc", 0.75}}, 2);
  EXPECT_EQ(read_file(file),
            "loss,step,val_acc\r\n"
            "1.5,0,\r\n"
            "1.25,1,\r\n"
            "1.0,2,0.75\r\n");
  logger.log_metrics({{"a", 3.0}}, 3);  // sorts before the others
  EXPECT_EQ(read_file(file),
            "a,loss,step,val_acc\r\n"
            ",1.5,0,\r\n"
            ",1.25,1,\r\n"
            ",1.0,2,0.75\r\n"
            "3.0,,3,\r\n");
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));
}

TEST(CSVLogger, FlushesEveryNStepsAndOnSave) {
  TempDir tmp;
  CSVLogger logger({.save_dir = tmp.path(), .flush_logs_every_n_steps = 3});
  const auto file = tmp / "lightning_logs/version_0/metrics.csv";
  logger.log_metrics({{"x", 1.0}}, 0);
  logger.log_metrics({{"x", 2.0}}, 1);
  EXPECT_FALSE(fs::exists(file));
  logger.log_metrics({{"x", 3.0}}, 2);  // (2 + 1) % 3 == 0
  EXPECT_EQ(read_file(file), "step,x\r\n0,1.0\r\n1,2.0\r\n2,3.0\r\n");
  logger.log_metrics({{"x", 4.0}}, 3);
  EXPECT_EQ(read_file(file), "step,x\r\n0,1.0\r\n1,2.0\r\n2,3.0\r\n");
  logger.save();
  EXPECT_EQ(read_file(file), "step,x\r\n0,1.0\r\n1,2.0\r\n2,3.0\r\n3,4.0\r\n");
  logger.save();  // nothing new: unchanged
  EXPECT_EQ(read_file(file), "step,x\r\n0,1.0\r\n1,2.0\r\n2,3.0\r\n3,4.0\r\n");
}

TEST(CSVLogger, VersionIsOneMoreThanTheLargestExisting) {
  TempDir tmp;
  EXPECT_EQ(CSVLogger({.save_dir = tmp.path()}).version(), 0);  // no folder yet
  fs::create_directories(tmp / "lightning_logs/version_0");
  fs::create_directories(tmp / "lightning_logs/version_3");
  fs::create_directories(tmp / "lightning_logs/version_x");     // not a number: ignored
  fs::create_directories(tmp / "lightning_logs/other_9");       // not a version: ignored
  std::ofstream(tmp / "lightning_logs/version_7") << "a file";  // not a directory: ignored
  CSVLogger logger({.save_dir = tmp.path()});
  EXPECT_EQ(logger.version(), 4);
  EXPECT_EQ(logger.log_dir(), tmp / "lightning_logs/version_4");
  // Resolved once: a directory appearing later does not move the run.
  fs::create_directories(tmp / "lightning_logs/version_9");
  EXPECT_EQ(logger.version(), 4);
  EXPECT_EQ(CSVLogger({.save_dir = tmp.path()}).version(), 10);
  // Other names have their own versions; an explicit version is used as given.
  EXPECT_EQ(CSVLogger({.save_dir = tmp.path(), .name = "b"}).version(), 0);
  EXPECT_EQ(CSVLogger({.save_dir = tmp.path(), .version = 2}).log_dir(),
            tmp / "lightning_logs/version_2");
  // An empty name puts the versions straight into save_dir.
  EXPECT_EQ(CSVLogger({.save_dir = tmp / "lightning_logs", .name = ""}).version(), 10);
}

TEST(CSVLogger, HparamsYamlAsYamlDumpWritesIt) {
  TempDir tmp;
  CSVLogger logger({.save_dir = tmp.path()});
  logger.log_hyperparams({{"lr", 1e-3},
                          {"layers", 3},
                          {"optimizer", "adam"},
                          {"flag", true},
                          {"note", "yes"},
                          {"name", "a: b"},
                          {"tiny", 1e-5},
                          {"big", 1e16},
                          {"path", "runs/x"},
                          {"quote", "it's"},
                          {"num", "42"},
                          {"empty", ""},
                          {"neg", -2},
                          {"accent", "caf\xc3\xa9"}});
  // Byte for byte what PyYAML's yaml.dump writes for the same dict (keys sorted).
  const std::string expected =
      "accent: \"caf\\xE9\"\n"
      "big: 1.0e+16\n"
      "empty: ''\n"
      "flag: true\n"
      "layers: 3\n"
      "lr: 0.001\n"
      "name: 'a: b'\n"
      "neg: -2\n"
      "note: 'yes'\n"
      "num: '42'\n"
      "optimizer: adam\n"
      "path: runs/x\n"
      "quote: it's\n"
      "tiny: 1.0e-05\n";
  EXPECT_EQ(read_file(tmp / "lightning_logs/version_0/hparams.yaml"), expected);
  EXPECT_EQ(logger.hparams().size(), 14u);

  // A second call merges (Lightning's hparams.update): new keys added, old ones replaced.
  logger.log_hyperparams({{"layers", 4}, {"dropout", 0.5}});
  const auto text = read_file(tmp / "lightning_logs/version_0/hparams.yaml");
  EXPECT_NE(text.find("layers: 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dropout: 0.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("optimizer: adam\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("layers: 3"), std::string::npos) << text;
}

TEST(CSVLogger, YamlStringsNeedingQuotesAreQuoted) {
  using L::loggers::detail::yaml_string;
  EXPECT_EQ(yaml_string("adam"), "adam");
  EXPECT_EQ(yaml_string("-x"), "-x");
  EXPECT_EQ(yaml_string("- x"), "'- x'");
  EXPECT_EQ(yaml_string("#a"), "'#a'");
  EXPECT_EQ(yaml_string("a #b"), "'a #b'");
  EXPECT_EQ(yaml_string("a#b"), "a#b");
  EXPECT_EQ(yaml_string(" a"), "' a'");
  EXPECT_EQ(yaml_string("null"), "'null'");
  EXPECT_EQ(yaml_string("~"), "'~'");
  EXPECT_EQ(yaml_string("2020-01-01"), "'2020-01-01'");
  EXPECT_EQ(yaml_string("0x1F"), "'0x1F'");
  EXPECT_EQ(yaml_string("1.5"), "'1.5'");
  EXPECT_EQ(yaml_string("1e5"), "1e5");  // not a YAML 1.1 float: PyYAML leaves it plain
  EXPECT_EQ(yaml_string("Off"), "'Off'");
  EXPECT_EQ(yaml_string("a\tb"), "\"a\\tb\"");
  EXPECT_EQ(yaml_string("a\nb"), "\"a\\nb\"");
  EXPECT_EQ(L::loggers::hparams_to_yaml({}), "{}\n");
}

TEST(CSVLogger, NothingIsCreatedBeforeTheFirstWrite) {
  TempDir tmp;
  const auto root = tmp / "runs";
  {
    CSVLogger logger({.save_dir = root});
    EXPECT_EQ(logger.version(), 0);
    EXPECT_EQ(logger.log_dir(), root / "lightning_logs/version_0");
    logger.finalize("success");  // nothing logged: nothing to write
    FakeTrainer trainer;
    FakeModule module;
    logger.teardown(trainer, module, L::Stage::fit);
    EXPECT_FALSE(fs::exists(root));
  }
  EXPECT_FALSE(fs::exists(root));  // nor when destroyed
  CSVLogger logger({.save_dir = root});
  logger.log_metrics({{"x", 1.0}}, 0);  // buffered
  EXPECT_FALSE(fs::exists(root));
  logger.save();
  EXPECT_TRUE(fs::exists(root / "lightning_logs/version_0/metrics.csv"));
}

TEST(CSVLogger, HooksFinalizeOnTeardownAndOnException) {
  TempDir tmp;
  FakeTrainer trainer;
  FakeModule module;
  CSVLogger a({.save_dir = tmp.path(), .name = "a"});
  a.log_metrics({{"x", 1.0}}, 0);
  trainer.zero = false;  // another rank's copy writes nothing
  a.teardown(trainer, module, L::Stage::fit);
  EXPECT_FALSE(fs::exists(tmp / "a"));
  trainer.zero = true;
  a.teardown(trainer, module, L::Stage::fit);
  EXPECT_EQ(read_file(tmp / "a/version_0/metrics.csv"), "step,x\r\n0,1.0\r\n");

  CSVLogger b({.save_dir = tmp.path(), .name = "b"});
  b.log_metrics({{"x", 2.0}}, 0);
  b.on_exception(trainer, module, std::runtime_error("boom"));
  EXPECT_EQ(read_file(tmp / "b/version_0/metrics.csv"), "step,x\r\n0,2.0\r\n");
}

TEST(CSVLogger, CopiesShareOneRunAndTheLastOneSaves) {
  TempDir tmp;
  CSVLogger original({.save_dir = tmp.path()});
  {
    CSVLogger copy = original;  // what Trainer(opts, logger) keeps
    CSVLogger moved = std::move(copy);
    moved.log_metrics({{"x", 1.0}}, 0);
  }
  EXPECT_FALSE(fs::exists(original.metrics_file()));  // still buffered in the shared run
  fs::create_directories(tmp / "lightning_logs/version_5");
  EXPECT_EQ(original.version(), 0);          // the copy resolved it first
  { CSVLogger last = std::move(original); }  // the last handle saves
  EXPECT_EQ(read_file(tmp / "lightning_logs/version_0/metrics.csv"), "step,x\r\n0,1.0\r\n");
}

TEST(CSVLogger, PrefixAndQuoting) {
  TempDir tmp;
  CSVLogger logger({.save_dir = tmp.path(), .prefix = "fold1"});
  logger.log_metrics({{"loss", 0.5}, {"a,b", 1.0}, {"say \"hi\"", 2.0}}, 7);
  logger.save();
  EXPECT_EQ(read_file(logger.metrics_file()),
            "\"fold1-a,b\",fold1-loss,\"fold1-say \"\"hi\"\"\",step\r\n"
            "1.0,0.5,2.0,7\r\n");
  // Rewriting (a new column) reads the quoted header and rows back intact.
  logger.log_metrics({{"z", 3.0}}, 8);
  logger.save();
  EXPECT_EQ(read_file(logger.metrics_file()),
            "\"fold1-a,b\",fold1-loss,\"fold1-say \"\"hi\"\"\",fold1-z,step\r\n"
            "1.0,0.5,2.0,,7\r\n"
            ",,,3.0,8\r\n");
}

TEST(CSVLogger, AnExistingMetricsFileKeepsItsRows) {
  TempDir tmp;
  fs::create_directories(tmp / "lightning_logs/version_1");
  std::ofstream(tmp / "lightning_logs/version_1/metrics.csv", std::ios::binary)
      << "loss,step\r\n2.0,0\r\n";
  CSVLogger logger({.save_dir = tmp.path(), .version = 1});
  logger.log_metrics({{"loss", 1.0}, {"acc", 0.5}}, 1);
  logger.save();
  EXPECT_EQ(read_file(logger.metrics_file()), "acc,loss,step\r\n,2.0,0\r\n0.5,1.0,1\r\n");
}

TEST(CSVLogger, BadOptionsNameTheOptionAndTheValue) {
  expect_invalid_argument([] { CSVLogger({.version = -1}); }, "CSVLoggerOptions.version = -1");
  expect_invalid_argument([] { CSVLogger({.flush_logs_every_n_steps = 0}); },
                          "CSVLoggerOptions.flush_logs_every_n_steps = 0");
  expect_invalid_argument([] { CSVLogger({.save_dir = ""}); }, "CSVLoggerOptions.save_dir");
  expect_invalid_argument([] { CSVLogger({.name = "/abs"}); }, "CSVLoggerOptions.name = /abs");
}

TEST(CSVLogger, IoFailuresNameThePathAndKeepTheRows) {
  TempDir tmp;
  std::ofstream(tmp / "blocked") << "a file where the logs should go";
  CSVLogger logger({.save_dir = tmp / "blocked"});
  logger.log_metrics({{"x", 1.0}}, 0);
  try {
    logger.save();
    ADD_FAILURE() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((tmp / "blocked").string()), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("the log directory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("a file stands at " + (tmp / "blocked").string()),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(logger.log_hyperparams({{"a", 1}}), std::runtime_error);
  fs::remove(tmp / "blocked");
  logger.log_metrics({{"x", 2.0}}, 1);
  logger.save();  // the row of the failed save was kept
  EXPECT_EQ(read_file(logger.metrics_file()), "step,x\r\n0,1.0\r\n1,2.0\r\n");
  EXPECT_TRUE(logger.hparams().empty());  // the failed call changed nothing
}

}  // namespace

// A full disk (ENOSPC, from /dev/full standing at the temporary's name) is reported with
// the path and the cause, leaves no temporary, and the rows wait for the next save.
TEST(CSVLogger, AFullDiskIsReportedAndTheRowsKept) {
  TempDir tmp;
  CSVLogger logger({.save_dir = tmp.path(), .name = "exp"});
  logger.log_metrics({{"x", 1.0}}, 0);
  const fs::path dir = logger.log_dir();
  fs::create_directories(dir);
  const auto temporary = dir / (".metrics.csv.lightning-tmp-" + std::to_string(::getpid()));
  fs::create_symlink("/dev/full", temporary);
  try {
    logger.save();
    ADD_FAILURE() << "a write to /dev/full must fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "metrics.csv").string()), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(temporary)));
  EXPECT_FALSE(fs::exists(dir / "metrics.csv"));
  logger.log_metrics({{"x", 2.0}}, 1);
  logger.save();
  EXPECT_EQ(read_file(logger.metrics_file()), "step,x\r\n0,1.0\r\n1,2.0\r\n");
}
