// CSVLogger: Lightning's CSV logger. Writes save_dir/name/version_N/metrics.csv (one row
// per logging step: the metrics plus "step", columns sorted by name, as Lightning's
// _ExperimentWriter) and hparams.yaml. Torch-free.
//
// Rows are kept in memory and written every `flush_logs_every_n_steps` steps (when
// (step + 1) is a multiple), on save(), on finalize() (teardown or an exception in the
// Trainer) and when the logger is destroyed. A metric seen for the first time widens the
// header: the file is rewritten with the new header (older rows get empty cells), through a
// temporary file and a rename so that rows already on disk are never lost.
#pragma once

#include <lightning/core/durable_file.hpp>
#include <lightning/core/hyperparameters.hpp>
#include <lightning/core/metric_map.hpp>
#include <lightning/loggers/experiment_dir.hpp>
#include <lightning/loggers/hparams_yaml.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lightning::loggers {

struct CSVLoggerOptions {
  std::filesystem::path save_dir = ".";
  std::string name = "lightning_logs";                 // empty: runs go straight into save_dir
  std::optional<std::int64_t> version = std::nullopt;  // default: the next free version_N
  std::string prefix = "";                             // metric names become "<prefix>-<name>"
  std::int64_t flush_logs_every_n_steps = 100;
};

namespace detail {

// Python's csv module (excel dialect, QUOTE_MINIMAL): quotes only fields holding a
// comma, a quote or a line break; rows end with "\r\n".
inline void append_csv_field(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

inline void append_csv_row(std::string& out, const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    append_csv_field(out, fields[i]);
  }
  out += "\r\n";
}

// Reads what append_csv_row writes (and any RFC 4180 text: quoted fields may hold line
// breaks; "\n" alone ends a row too).
inline std::vector<std::vector<std::string>> parse_csv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c != '"') {
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = field_started = true;
    } else if (c == ',') {
      row.push_back(std::exchange(field, {}));
      field_started = true;
    } else if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::exchange(field, {}));
      rows.push_back(std::exchange(row, {}));
      field_started = false;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (field_started || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_io_error("read", path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw_io_error("read", path, std::strerror(errno));
  return std::move(text).str();
}

// One run's state, shared by the copies of a CSVLogger.
class CSVRun {
 public:
  static constexpr std::string_view metrics_file_name = "metrics.csv";
  static constexpr std::string_view hparams_file_name = "hparams.yaml";

  explicit CSVRun(CSVLoggerOptions options)
      : dir_("CSVLoggerOptions", std::move(options.save_dir), std::move(options.name),
             options.version),
        prefix_(std::move(options.prefix)),
        flush_every_(options.flush_logs_every_n_steps) {
    if (flush_every_ < 1)
      throw_bad_option("CSVLoggerOptions", "flush_logs_every_n_steps", std::to_string(flush_every_),
                       "must be >= 1");
  }

  CSVRun(const CSVRun&) = delete;
  CSVRun& operator=(const CSVRun&) = delete;
  ~CSVRun() {
    try {
      save();
    } catch (const std::exception& error) {
      report_unsaved("CSVLogger", error);
    }
  }

  [[nodiscard]] const std::filesystem::path& save_dir() const noexcept { return dir_.save_dir(); }
  [[nodiscard]] const std::string& name() const noexcept { return dir_.name(); }
  // Resolved on first use: the next free version_N under save_dir/name.
  [[nodiscard]] std::int64_t version() const { return dir_.version(); }
  [[nodiscard]] std::filesystem::path log_dir() const { return dir_.log_dir(); }
  [[nodiscard]] std::filesystem::path metrics_file() const { return log_dir() / metrics_file_name; }
  [[nodiscard]] const HParams& hparams() const noexcept { return hparams_; }

  // One row: the metrics (prefixed) and "step". "epoch" is written as an integer, as the
  // Trainer passes it to Lightning's loggers.
  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    Row row;
    for (const auto& [name, value] : metrics) {
      const bool integral_epoch = name == "epoch" && std::isfinite(value) &&
                                  value == std::trunc(value) && std::abs(value) < 1e15;
      row.insert_or_assign(prefixed(prefix_, name),
                           integral_epoch ? std::to_string(static_cast<std::int64_t>(value))
                                          : lightning::python_float_repr(value));
    }
    row.insert_or_assign("step", std::to_string(step));
    pending_.push_back(std::move(row));
    if ((step + 1) % flush_every_ == 0) save();
  }

  // Merged into what was logged before (Lightning's hparams.update) and written at once.
  void log_hyperparams(const HParams& hparams) {
    auto merged = hparams_;
    for (const auto& [name, value] : hparams) merged.set(name, value);
    const auto dir = log_dir();
    make_directories(dir);
    save_hparams_to_yaml(dir / hparams_file_name, merged);
    hparams_ = std::move(merged);
  }

  // Writes the rows logged since the last save. On failure the rows stay pending.
  void save() {
    if (pending_.empty()) return;
    const auto dir = log_dir();
    make_directories(dir);
    const auto path = dir / metrics_file_name;

    std::error_code ec;
    const bool exists = std::filesystem::exists(path, ec);
    std::vector<std::vector<std::string>> existing;  // the file's rows, read when needed
    std::vector<std::string> on_disk;                // its header
    if (exists) {
      if (!file_columns_) {
        // A file this logger did not write (an explicit version run again): keep its rows.
        existing = parse_csv(read_text_file(path));
        file_columns_ = existing.empty() ? std::vector<std::string>{} : existing.front();
      }
      on_disk = *file_columns_;
    }
    auto columns = on_disk;
    for (const auto& row : pending_)
      for (const auto& [key, value] : row)
        if (std::ranges::find(columns, key) == columns.end()) columns.push_back(key);
    std::ranges::sort(columns);

    if (exists && columns == on_disk) {
      File file(path, "ab");
      file.write(rows_text(columns, /*header=*/false, {}));
      file.close();
    } else {
      if (exists && existing.empty()) existing = parse_csv(read_text_file(path));
      // Readers see the old file or all of the new one (core/durable_file.hpp): a crash or
      // power loss while rewriting cannot lose rows already on disk.
      write_file_durably(path, rows_text(columns, /*header=*/true, existing));
    }
    file_columns_ = std::move(columns);
    pending_.clear();
  }

 private:
  using Row = std::map<std::string, std::string, std::less<>>;

  // The header (if asked), the rows of the existing file (header first) mapped onto
  // `columns` by name, then the pending rows.
  std::string rows_text(const std::vector<std::string>& columns, bool header,
                        const std::vector<std::vector<std::string>>& existing) const {
    std::string text;
    std::vector<std::string> cells(columns.size());
    if (header) append_csv_row(text, columns);
    if (!existing.empty()) {
      const auto& old_header = existing.front();
      for (auto row = std::next(existing.begin()); row != existing.end(); ++row) {
        for (std::size_t c = 0; c < columns.size(); ++c) {
          const auto at = std::ranges::find(old_header, columns[c]);
          const auto i = static_cast<std::size_t>(at - old_header.begin());
          cells[c] = at != old_header.end() && i < row->size() ? (*row)[i] : std::string();
        }
        append_csv_row(text, cells);
      }
    }
    for (const auto& row : pending_) {
      for (std::size_t c = 0; c < columns.size(); ++c) {
        const auto it = row.find(columns[c]);
        cells[c] = it != row.end() ? it->second : std::string();
      }
      append_csv_row(text, cells);
    }
    return text;
  }

  ExperimentDir dir_;
  std::string prefix_;
  std::int64_t flush_every_;
  HParams hparams_;
  std::vector<Row> pending_;
  // The header of metrics.csv as this logger last wrote or read it.
  std::optional<std::vector<std::string>> file_columns_;
};

}  // namespace detail

// Copies share one run (as several references to one Python logger do): the copy the
// Trainer holds and the one the caller kept write to, and report, the same directory.
class CSVLogger : public detail::FinalizeHooks<CSVLogger> {
 public:
  static constexpr std::string_view kind = "CSVLogger";

  explicit CSVLogger(CSVLoggerOptions options = {})
      : run_(std::make_shared<detail::CSVRun>(std::move(options))) {}

  [[nodiscard]] const std::filesystem::path& save_dir() const noexcept { return run_->save_dir(); }
  [[nodiscard]] const std::string& name() const noexcept { return run_->name(); }
  // Resolved on first use: one more than the largest existing save_dir/name/version_N.
  [[nodiscard]] std::int64_t version() const { return run_->version(); }
  // save_dir/name/version_N.
  [[nodiscard]] std::filesystem::path log_dir() const { return run_->log_dir(); }
  [[nodiscard]] std::filesystem::path metrics_file() const { return run_->metrics_file(); }
  [[nodiscard]] const HParams& hparams() const noexcept { return run_->hparams(); }

  void log_metrics(const MetricMap& metrics, std::int64_t step) {
    run_->log_metrics(metrics, step);
  }
  void log_hyperparams(const HParams& hparams) { run_->log_hyperparams(hparams); }
  void save() { run_->save(); }
  // Lightning passes "success" or "failed"; either way what was logged is written.
  void finalize(std::string_view /*status*/) { run_->save(); }

 private:
  std::shared_ptr<detail::CSVRun> run_;
};

}  // namespace lightning::loggers
