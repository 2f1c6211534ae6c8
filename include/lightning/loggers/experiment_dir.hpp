// What the file loggers share: Lightning's versioned run directory
// (save_dir/name/version_N), option checks, and file writes whose errors name the path.
// Torch-free, so logger tests build without LibTorch.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/directories.hpp>
#include <lightning/core/durable_file.hpp>
#include <lightning/core/utf8.hpp>

#include <lightning/core/stage.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace lightning::loggers::detail {

[[noreturn]] inline void throw_io_error(std::string_view action, const std::filesystem::path& path,
                                        std::string_view cause) {
  std::string message = "lightning: cannot ";
  message += action;
  message += " '";
  message += path.string();
  message += "': ";
  message += cause;
  throw std::runtime_error(message);
}

using lightning::throw_bad_option;

inline void make_directories(const std::filesystem::path& dir) {
  require_directory(dir,
                    {"the log directory",
                     "set the logger's save_dir (or TrainerOptions.default_root_dir) to another "
                     "directory"},
                    /*create=*/false);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw_io_error("create the log directory", dir, ec.message());
}

// A C stream: unlike iostreams it reports why a write failed (errno).
class File {
 public:
  File(const std::filesystem::path& path, const char* mode)
      : path_(path), file_(std::fopen(path.c_str(), mode)) {
    if (!file_) throw_io_error("open", path_, std::strerror(errno));
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  File(File&& other) noexcept
      : path_(std::move(other.path_)), file_(std::exchange(other.file_, nullptr)) {}
  File& operator=(File&& other) noexcept {
    if (this != &other) {
      if (file_) std::fclose(file_);
      path_ = std::move(other.path_);
      file_ = std::exchange(other.file_, nullptr);
    }
    return *this;
  }
  ~File() {
    if (file_) std::fclose(file_);
  }

  void write(std::string_view data) {
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size())
      throw_io_error("write to", path_, std::strerror(errno));
  }
  void flush() {
    if (std::fflush(file_) != 0) throw_io_error("write to", path_, std::strerror(errno));
  }
  // fclose reports what a delayed write (NFS, a full disk) could not do.
  void close() {
    const int rc = std::fclose(std::exchange(file_, nullptr));
    if (rc != 0) throw_io_error("write to", path_, std::strerror(errno));
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_;
};

// Lightning's rule: one more than the largest N of the version_N directories (0 if none).
// Entries that are not directories or whose N is not a number are ignored.
inline std::int64_t next_version(const std::filesystem::path& versions_root) {
  std::error_code ec;
  std::filesystem::directory_iterator it(versions_root, ec);
  if (ec) return 0;  // a missing folder: the first run
  std::int64_t next = 0;
  for (const auto& entry : it) {
    const auto name = entry.path().filename().string();
    if (!name.starts_with("version_") || !entry.is_directory(ec)) continue;
    // Lightning reads the text between the first and the second underscore.
    const auto digits = std::string_view(name).substr(8, name.find('_', 8) - 8);
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos)
      continue;
    next = std::max<std::int64_t>(next, std::stoll(std::string(digits)) + 1);
  }
  return next;
}

// Metric names as Lightning's _add_prefix writes them, as valid UTF-8 (core/utf8.hpp):
// the CSV header and TensorBoard's tags are read as UTF-8 by Python.
inline std::string prefixed(std::string_view prefix, std::string_view name) {
  std::string key(prefix);
  if (!key.empty()) key += '-';
  key += name;
  return valid_utf8(key);
}

// Reports an error that cannot be thrown (a destructor, or an exception already on its
// way out of fit) instead of losing it silently.
inline void report_unsaved(std::string_view logger, const std::exception& error) noexcept {
  std::cerr << "lightning: " << logger << " could not save its logs: " << error.what() << '\n';
}

// save_dir/name/version_N, N chosen on first use (as Lightning's lazy `version`), so that
// a logger that never writes neither creates nor even lists anything... until asked.
class ExperimentDir {
 public:
  ExperimentDir(std::string_view options, std::filesystem::path save_dir, std::string name,
                std::optional<std::int64_t> version)
      : save_dir_(std::move(save_dir)), name_(std::move(name)), version_(version) {
    if (save_dir_.empty())
      throw_bad_option(options, "save_dir", "\"\"", "the directory to log into must be named");
    if (version_ && *version_ < 0)
      throw_bad_option(options, "version", std::to_string(*version_), "must be >= 0");
    if (std::filesystem::path(name_).is_absolute())
      throw_bad_option(options, "name", name_, "must be relative to save_dir");
  }

  [[nodiscard]] const std::filesystem::path& save_dir() const noexcept { return save_dir_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  // The folder holding the version_N directories.
  [[nodiscard]] std::filesystem::path root_dir() const { return save_dir_ / name_; }
  [[nodiscard]] std::int64_t version() const {
    if (!version_) version_ = next_version(root_dir());
    return *version_;
  }
  [[nodiscard]] std::filesystem::path log_dir() const {
    std::string dir = "version_";
    dir += std::to_string(version());
    return root_dir() / dir;
  }

 private:
  std::filesystem::path save_dir_;
  std::string name_;
  mutable std::optional<std::int64_t> version_;
};

// The callback hooks through which a logger finalizes itself, as Lightning finalizes its
// loggers: "success" at teardown (on rank zero only, which alone logs), "failed" when fit
// throws. Logger provides finalize(status) and a `kind` name for messages.
template <class Logger>
class FinalizeHooks {
 public:
  template <class T, class M>
  void teardown(T& trainer, M&, Stage) {
    if constexpr (requires { trainer.is_global_zero(); })
      if (!trainer.is_global_zero()) return;
    self().finalize("success");
  }

  // The Trainer rethrows the original error after this: a failure here must not replace it.
  template <class T, class M>
  void on_exception(T&, M&, const std::exception&) noexcept {
    try {
      self().finalize("failed");
    } catch (const std::exception& error) {
      report_unsaved(Logger::kind, error);
    }
  }

 private:
  Logger& self() { return static_cast<Logger&>(*this); }
};

}  // namespace lightning::loggers::detail
