// Checkpoint files: one file per checkpoint, readable by Python's torch.load, written
// atomically and verified on load.
//
// A checkpoint is a dict (c10::Dict<std::string, IValue>) pickled in the zip format
// torch.save writes; Python's torch.load returns a plain dict (its "state_dict" a dict of
// tensors), also with torch 2.x's default weights_only=True, and Lightning's
// load_from_checkpoint reads it (it carries "pytorch-lightning_version"). LibTorch's
// writers write in place, so a crash mid-save would leave a torn file where the last good
// checkpoint was; here the bytes go to a temporary file in the target directory, which is
// flushed, fsynced and renamed over the target, and the directory is fsynced (POSIX
// rename is atomic). Every checkpoint carries a CRC32C (Boost.CRC) of its content, which
// load verifies.
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/version.hpp>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>
#include <torch/torch.h>
#include <boost/crc.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace lightning {

// The file or its content is not a loadable checkpoint; what() names the file and why.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {

// Temporary files are named ".<target name>.lightning-tmp-<pid>" next to their target.
inline constexpr std::string_view tmp_marker = ".lightning-tmp-";

// CRC32C (Castagnoli) of a checkpoint's content: keys, value kinds and tensor bytes, in
// order. Computed over the content, not the file, so the zip container can carry it.
class ContentChecksum {
 public:
  void add(const c10::IValue& v) {
    if (v.isTensor()) {
      tag('T');
      const auto t = v.toTensor().detach().to(torch::kCPU).contiguous();
      text(c10::toString(t.scalar_type()));
      for (const auto s : t.sizes()) number(s);
      crc_.process_bytes(t.data_ptr(), t.nbytes());
    } else if (v.isGenericDict()) {
      tag('D');
      for (const auto& kv : v.toGenericDict()) {
        add(kv.key());
        add(kv.value());
      }
    } else if (v.isList()) {
      tag('L');
      for (const auto& e : v.toListRef()) add(e);
    } else if (v.isTuple()) {
      tag('U');
      for (const auto& e : v.toTupleRef().elements()) add(e);
    } else if (v.isString()) {
      tag('S');
      text(v.toStringRef());
    } else if (v.isInt()) {
      tag('I');
      number(v.toInt());
    } else if (v.isDouble()) {
      tag('F');
      const double d = v.toDouble();
      crc_.process_bytes(&d, sizeof d);
    } else if (v.isBool()) {
      tag(v.toBool() ? 'Y' : 'N');
    } else if (v.isNone()) {
      tag('0');
    } else {
      throw std::invalid_argument("lightning: a checkpoint cannot hold a value of type " +
                                  v.tagKind());
    }
  }
  [[nodiscard]] std::int64_t value() const { return static_cast<std::int64_t>(crc_.checksum()); }

 private:
  void tag(char c) { crc_.process_byte(static_cast<unsigned char>(c)); }
  void text(const std::string& s) {
    number(static_cast<std::int64_t>(s.size()));
    crc_.process_bytes(s.data(), s.size());
  }
  void number(std::int64_t n) { crc_.process_bytes(&n, sizeof n); }
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc_;
};

inline std::int64_t content_checksum(const CheckpointDict& content) {
  ContentChecksum c;
  for (const auto& kv : content)
    if (kv.key().toStringRef() != "checksum") {
      c.add(kv.key());
      c.add(kv.value());
    }
  return c.value();
}

[[noreturn]] inline void throw_io(const std::string& what, const std::filesystem::path& p) {
  throw std::runtime_error("lightning: " + what + " " + p.string() + ": " + std::strerror(errno));
}

inline void fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_io("cannot open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw_io("cannot fsync directory", dir);
}

}  // namespace detail

// Writes `bytes` to `path` so that `path` holds either its old content or all of the new.
inline void write_file_atomically(const std::filesystem::path& path,
                                  const std::vector<char>& bytes) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::filesystem::create_directories(dir);
  // Built piece by piece: GCC 12 at -O3 misreads `"." + std::string&&` as an overflow.
  std::string tmp_name = ".";
  tmp_name += path.filename().string();
  tmp_name += detail::tmp_marker;
  tmp_name += std::to_string(::getpid());
  const auto tmp = dir / tmp_name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) detail::throw_io("cannot create", tmp);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = saved;
      detail::throw_io("cannot write", tmp);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    detail::throw_io("cannot flush", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    detail::throw_io("cannot rename a temporary file onto", path);
  }
  detail::fsync_directory(dir);
}

namespace detail {
// Whether the process that named a temporary ".<name>.lightning-tmp-<pid>" still runs:
// its save may be in flight (two runs sharing a directory), so its file is not stale.
inline bool temporary_owner_alive(const std::string& name) {
  const auto at = name.rfind(tmp_marker);
  const auto digits = name.substr(at + tmp_marker.size());
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  const auto pid = static_cast<pid_t>(std::stoll(digits));
  return ::kill(pid, 0) == 0 || errno == EPERM;
}
}  // namespace detail

// Removes the temporary files a killed save left in `dir` (their targets are intact);
// those of a process still running are left alone. Returns how many were removed.
inline std::size_t remove_stale_checkpoint_temporaries(const std::filesystem::path& dir) {
  std::size_t removed = 0;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with(".") && name.find(detail::tmp_marker) != std::string::npos &&
        !detail::temporary_owner_alive(name) && std::filesystem::remove(entry.path(), ec))
      ++removed;
  }
  return removed;
}

// The PyTorch Lightning release whose checkpoint contents lightning-cpp's follow, written
// as "pytorch-lightning_version": Lightning's load_from_checkpoint requires the key, and
// applies its format migrations to older versions only.
inline constexpr std::string_view lightning_checkpoint_format_version = "2.6.0";

namespace detail {

// torch::pickle_save without TorchScript's type tags: pickle_save wraps every dict and
// list in torch.jit._pickle.restore_type_tag, a global that torch 2.x's
// torch.load(weights_only=True), its default, refuses. Same zip layout as pickle_save
// (data/<i> per tensor, data.pkl); torch::pickle_load reads untagged containers as
// generic ones.
inline std::vector<char> pickle_without_type_tags(const c10::IValue& value) {
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* bytes, std::size_t n) { pickled.insert(pickled.end(), bytes, bytes + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t n) {
    const auto* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + n);
    return n;
  });
  const auto& tensors = pickler.tensorData();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  writer.writeEndOfFile();
  return archive;
}

}  // namespace detail

// Saves a checkpoint: adds the library and Lightning format versions and the content
// checksum, then writes atomically.
inline void save_checkpoint_file(const std::filesystem::path& path, const CheckpointDict& entries) {
  CheckpointDict content = entries.copy();
  content.insert_or_assign("lightning_version", std::string(version));
  content.insert_or_assign("pytorch-lightning_version",
                           std::string(lightning_checkpoint_format_version));
  (void)content.erase("checksum");
  content.insert_or_assign("checksum", detail::content_checksum(content));
  write_file_atomically(path, detail::pickle_without_type_tags(c10::IValue(content)));
}

// Loads and verifies a checkpoint. A missing, truncated, corrupted or foreign file is a
// CheckpointError naming the file and the cause.
inline CheckpointDict load_checkpoint_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw CheckpointError("lightning: checkpoint " + path.string() + " does not exist");
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof())
    throw CheckpointError("lightning: cannot read checkpoint " + path.string());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    throw CheckpointError("lightning: " + path.string() +
                          " is not a readable checkpoint (truncated, corrupted or not a "
                          "torch.save/lightning file): " +
                          why);
  }
  if (!value.isGenericDict())
    throw CheckpointError("lightning: " + path.string() +
                          " is not a lightning-cpp checkpoint (its content is not a dict)");
  CheckpointDict content = checkpoint_dict(value);
  if (!content.contains("lightning_version") || !content.contains("checksum"))
    throw CheckpointError("lightning: " + path.string() +
                          " was not written by lightning-cpp (no lightning_version/checksum "
                          "entries); load plain torch.save files with torch::pickle_load");
  const auto stored = content.at("checksum").toInt();
  const auto actual = detail::content_checksum(content);
  if (stored != actual)
    throw CheckpointError("lightning: checkpoint " + path.string() +
                          " is corrupted: its content checksum is " + std::to_string(actual) +
                          ", the file says " + std::to_string(stored));
  return content;
}

}  // namespace lightning
