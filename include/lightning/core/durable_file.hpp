// Durable file replacement: readers see the old content or all of the new, never a torn
// file, and after return the new content survives a power loss. The bytes go to a
// temporary file in the target's directory (".<name>.lightning-tmp-<pid>", so two
// processes never share one and a killed writer's leftover is known by its pid), which is
// fsynced, renamed over the target (POSIX rename is atomic) and the directory fsynced.
// Every failure closes what it opened, removes the temporary and raises an error naming
// the path and errno's text (a full disk says "No space left on device"). Torch-free: the
// checkpoint writer and the loggers share it.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace lightning {

namespace detail {

// Temporary files are named ".<target name>.lightning-tmp-<pid>" next to their target.
inline constexpr std::string_view tmp_marker = ".lightning-tmp-";

[[noreturn]] inline void throw_io(const std::string& what, const std::filesystem::path& p,
                                  int error) {
  throw std::runtime_error("lightning: " + what + " " + p.string() + ": " + std::strerror(error));
}

inline std::filesystem::path temporary_for(const std::filesystem::path& target) {
  // Built piece by piece: GCC 12 at -O3 misreads `"." + std::string&&` as an overflow.
  std::string name = ".";
  name += target.filename().string();
  name += tmp_marker;
  name += std::to_string(::getpid());
  return target.has_parent_path() ? target.parent_path() / name : std::filesystem::path(name);
}

inline void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_io("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw_io("cannot fsync directory", dir, error);
}

// Closes and removes the temporary, then raises `error` (what failed first).
[[noreturn]] inline void abandon_temporary(int fd, const std::filesystem::path& tmp,
                                           const std::string& what,
                                           const std::filesystem::path& named, int error) {
  if (fd >= 0) ::close(fd);
  ::unlink(tmp.c_str());
  throw_io(what, named, error);
}

}  // namespace detail

// Replaces `path` with what `produce(sink)` writes through `sink(data, size)`, durably
// (see above), without holding the content in memory. The sink never throws: after a
// failed write it drops the rest, and the failure is raised once `produce` returns, so a
// producer that must not unwind half-way (a zip writer's end records) finishes first.
// The directory is created if missing.
template <class Produce>
void write_file_durably_with(const std::filesystem::path& path, Produce&& produce) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) detail::throw_io("cannot create the directory of", path, ec.value());
  const auto tmp = detail::temporary_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) detail::throw_io("cannot create", tmp, errno);
  int error = 0;
  // Writeback starts every 64 MiB as the bytes come (Linux), so the fsync at the end
  // waits for the last stretch only, not for the whole file.
  constexpr std::size_t writeback_every = std::size_t{64} << 20;
  std::size_t written = 0, flushed = 0;
  const auto sink = [&](const void* data, std::size_t size) noexcept {
    const auto* bytes = static_cast<const char*>(data);
    for (std::size_t done = 0; error == 0 && done < size;) {
      const auto n = ::write(fd, bytes + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : ENOSPC;
      } else {
        done += static_cast<std::size_t>(n);
        written += static_cast<std::size_t>(n);
      }
    }
#if defined(__linux__)
    if (error == 0 && written - flushed >= writeback_every) {
      (void)::sync_file_range(fd, static_cast<off_t>(flushed),
                              static_cast<off_t>(written - flushed), SYNC_FILE_RANGE_WRITE);
      flushed = written;
    }
#endif
  };
  try {
    produce(sink);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (error != 0) detail::abandon_temporary(fd, tmp, "cannot write", path, error);
  // fsync and close are both needed whatever the other answers: a failed fsync must not
  // leak the descriptor, and close reports what a delayed write (NFS) could not do.
  if (::fsync(fd) != 0) detail::abandon_temporary(fd, tmp, "cannot flush", path, errno);
  if (::close(fd) != 0) detail::abandon_temporary(-1, tmp, "cannot flush", path, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    detail::abandon_temporary(-1, tmp, "cannot rename a temporary file onto", path, errno);
  detail::fsync_directory(dir);
}

// Replaces `path` with `bytes`, durably (see above). The directory is created if missing.
inline void write_file_durably(const std::filesystem::path& path, std::string_view bytes) {
  write_file_durably_with(path, [&](const auto& sink) { sink(bytes.data(), bytes.size()); });
}

}  // namespace lightning
