// Checks the directories a run writes to (default_root_dir, a checkpoint dirpath, a log
// folder) when the run starts, so a bad path is an error naming the option, the path and
// the fix, and not an error of the writer thread or std::filesystem an epoch later.
// Torch-free (the loggers use it too).
#pragma once

#include <lightning/core/errors.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace lightning {

// Where a directory came from and how to choose another, for the error's message, e.g.
// {"TrainerOptions.default_root_dir", "set TrainerOptions.default_root_dir to another
// directory"}.
struct DirectoryRole {
  std::string_view what;
  std::string_view fix;
};

namespace detail {
[[noreturn]] inline void bad_directory(DirectoryRole role, const std::filesystem::path& dir,
                                       const std::string& why) {
  std::string m = "lightning: ";
  m += role.what;
  m += " = \"";
  m += dir.string();
  m += "\" cannot be used: ";
  m += why;
  m += "; ";
  m += role.fix;
  throw MisconfigurationError(m);
}
}  // namespace detail

// Throws MisconfigurationError when `dir` cannot be a directory of this run: a file stands
// at it or at one of its parents. With `create`, also makes it and checks that this
// process may write there.
inline void require_directory(const std::filesystem::path& dir, DirectoryRole role, bool create) {
  std::error_code ec;
  const auto normal = dir.lexically_normal();
  for (auto at = normal; !at.empty(); at = at.parent_path()) {
    const auto status = std::filesystem::status(at, ec);
    if (std::filesystem::exists(status) && !std::filesystem::is_directory(status))
      detail::bad_directory(
          role, dir,
          (at == normal ? std::string("a file stands there") : "a file stands at " + at.string()) +
              ", not a directory (move the file away)");
    if (at == at.parent_path()) break;  // the root
  }
  if (!create) return;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    detail::bad_directory(role, dir, "the directory cannot be created (" + ec.message() + ")");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    detail::bad_directory(
        role, dir, std::string("the directory cannot be written (") + std::strerror(errno) + ")");
}

}  // namespace lightning
