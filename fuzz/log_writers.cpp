// libFuzzer target: the loggers' escaping of names and strings. Each input is three
// strings (FuzzedDataProvider): a metric name, a hyperparameter name and a hyperparameter
// text value, of any bytes (quotes, commas, line breaks, '/', "..", NUL, non-UTF-8).
//   - always: the CSV row written for the metric name parses back (parse_csv) with the
//     name as it was, made valid UTF-8; hparams.yaml's text and TensorBoard's events are
//     built (AddressSanitizer and UBSan watch them);
//   - with LIGHTNING_FUZZ_EMIT=<dir>: the real loggers write each input's files into
//     <dir>/<n>/ with the input beside them, and fuzz/check_log_files.py reads them with
//     Python's csv, PyYAML and TensorBoard's reader (CTest runs it on the seed corpus).
#include <lightning/core/utf8.hpp>
#include <lightning/loggers/csv_logger.hpp>
#include <lightning/loggers/hparams_yaml.hpp>
#include <lightning/loggers/tensorboard_logger.hpp>
#include <lightning/loggers/tfevents.hpp>

// In quotes: clang finds it on its own include path, and the GPU machine's dependency
// packer (which probes every <...> include with g++) does not look for it.
#include "fuzzer/FuzzedDataProvider.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace L = lightning;

namespace {

std::string hex(const std::string& s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 0xF];
  }
  return out;
}

[[noreturn]] void finding(const char* what, const std::string& name) {
  std::fprintf(stderr, "lightning fuzz: %s (name bytes %s)\n", what, hex(name).c_str());
  std::abort();
}

// The files the loggers write for this input, for the Python check.
void emit(const std::filesystem::path& root, const std::string& metric, const std::string& key,
          const std::string& text) {
  static int count = 0;
  const auto dir = root / std::to_string(count++);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "input.txt") << hex(metric) << '\n' << hex(key) << '\n' << hex(text) << '\n';
  L::HParams hparams;
  hparams.set(key, text);
  L::loggers::CSVLogger csv({.save_dir = dir / "csv", .name = "", .version = 0});
  csv.log_hyperparams(hparams);
  csv.log_metrics({{metric, 1.5}}, 0);
  csv.save();
  L::loggers::TensorBoardLogger tb(
      {.save_dir = dir / "tb", .name = "", .version = 0, .default_hp_metric = false});
  tb.log_hyperparams(hparams, L::MetricMap{{metric, 1.5}});
  tb.log_metrics({{metric, 1.5}}, 0);
  tb.finalize("success");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const auto metric = input.ConsumeRandomLengthString(64);
  const auto key = input.ConsumeRandomLengthString(64);
  const auto text = input.ConsumeRandomLengthString(256);

  // CSV: a header row and a value row, read back field by field.
  std::string csv;
  L::loggers::detail::append_csv_row(csv, {L::loggers::detail::prefixed("", metric), "step"});
  L::loggers::detail::append_csv_row(csv, {"1.5", "0"});
  const auto rows = L::loggers::detail::parse_csv(csv);
  if (rows.size() != 2 || rows[0].size() != 2 || rows[1].size() != 2)
    finding("a CSV row with this name does not parse back as one header and one row", metric);
  if (rows[0][0] != L::valid_utf8(metric)) finding("the CSV header does not keep the name", metric);
  if (!L::is_valid_utf8(rows[0][0])) finding("the CSV header is not valid UTF-8", metric);

  // YAML and TensorBoard: built, and valid UTF-8 where Python decodes it.
  L::HParams hparams;
  hparams.set(key, text);
  if (!L::is_valid_utf8(L::loggers::hparams_to_yaml(hparams)))
    finding("hparams.yaml is not valid UTF-8", key);
  (void)L::loggers::detail::tfrecord(L::loggers::detail::scalar_event(0.0, 0, metric, 1.5F));
  (void)L::loggers::detail::hparams_summaries(0.0, hparams, {{metric, 1.5}});

  if (const char* root = std::getenv("LIGHTNING_FUZZ_EMIT")) emit(root, metric, key, text);
  return 0;
}
