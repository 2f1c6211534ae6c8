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
#include <lightning/core/durable_file.hpp>
#include <lightning/core/errors.hpp>
#include <lightning/core/torch_version.hpp>
#include <lightning/fabric/pickle_reader.hpp>
#include <lightning/version.hpp>

#include <ATen/MapAllocator.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/serialize.h>
#include <torch/torch.h>
#include <boost/crc.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace lightning {

namespace detail {

// A CRC32C register advanced over `len` zero bytes: a product with x^(8 len) modulo the
// Castagnoli polynomial (zlib's crc32_combine, in its multmodp/x2nmodp form). With it,
// CRCs of pieces computed side by side join into the CRC of the whole.
inline std::uint32_t crc32c_multiply(std::uint32_t a, std::uint32_t b) {
  std::uint32_t product = 0;
  for (std::uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) {
      product ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    b = (b & 1) ? (b >> 1) ^ 0x82F63B78u : b >> 1;
  }
  return product;
}
inline std::uint32_t crc32c_shift(std::uint32_t crc, std::uint64_t len) {
  static const auto powers = [] {  // x^(2^k) modulo the polynomial
    std::array<std::uint32_t, 64> table{};
    std::uint32_t p = 1u << 30;  // x^1
    for (auto& t : table) {
      t = p;
      p = crc32c_multiply(p, p);
    }
    return table;
  }();
  std::uint32_t factor = 1u << 31;                // x^0
  for (unsigned k = 3; len != 0; len >>= 1, ++k)  // x^(8 len): bits of len from 2^3 on
    if (len & 1) factor = crc32c_multiply(powers[k & 63], factor);
  return crc32c_multiply(factor, crc);
}

#if defined(__x86_64__)
// SSE4.2's crc32 instruction, three independent streams at once (the instruction's
// latency is three cycles): ~20x Boost's table lookup, which had made the checksum most
// of the time a large checkpoint took to save or load.
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42(std::uint32_t crc,
                                                                    const unsigned char* p,
                                                                    std::size_t n) {
  const auto word = [](const unsigned char* at) {
    std::uint64_t v = 0;
    std::memcpy(&v, at, sizeof v);
    return v;
  };
  if (n >= (std::size_t{1} << 16)) {
    const std::size_t third = (n / 3) & ~std::size_t{7};
    std::uint64_t a = crc, b = 0, c = 0;
    for (std::size_t i = 0; i < third; i += 8) {
      a = __builtin_ia32_crc32di(a, word(p + i));
      b = __builtin_ia32_crc32di(b, word(p + third + i));
      c = __builtin_ia32_crc32di(c, word(p + 2 * third + i));
    }
    crc = crc32c_shift(static_cast<std::uint32_t>(a), third) ^ static_cast<std::uint32_t>(b);
    crc = crc32c_shift(crc, third) ^ static_cast<std::uint32_t>(c);
    p += 3 * third;
    n -= 3 * third;
  }
  std::uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) c = __builtin_ia32_crc32di(c, word(p));
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

// CRC32C: the CPU's instruction where it has one, Boost.CRC elsewhere; the same values.
class Crc32c {
 public:
  void process_bytes(const void* data, std::size_t n) {
#if defined(__x86_64__)
    if (hardware_) {
      state_ = crc32c_sse42(state_, static_cast<const unsigned char*>(data), n);
      return;
    }
#endif
    table_.process_bytes(data, n);
  }
  void process_byte(unsigned char b) {
    process_bytes(&b, 1);
  }
  [[nodiscard]] std::uint32_t checksum() const {
    return hardware_ ? ~state_ : table_.checksum();
  }
  [[nodiscard]] bool hardware() const noexcept {
    return hardware_;
  }

 private:
#if defined(__x86_64__)
  bool hardware_ = __builtin_cpu_supports("sse4.2");
#else
  bool hardware_ = false;
#endif
  std::uint32_t state_ = 0xFFFFFFFF;
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> table_;
};

// CRC32C (Castagnoli) of a checkpoint's content: keys, value kinds and tensor bytes, in
// order. Computed over the content, not the file, so the zip container can carry it.
// CRCs of whole tensor storages already being computed (by the loader, as it reads each
// record), by the storage's memory: (bytes, CRC from a zero register).
using KnownCrcs =
    std::unordered_map<const void*, std::pair<std::size_t, std::shared_future<std::uint32_t>>>;

class ContentChecksum {
 public:
  explicit ContentChecksum(const KnownCrcs* known = nullptr) : known_(known) {}

  void add(const c10::IValue& v) {
    if (v.isTensor()) {
      tag('T');
      const auto t = v.toTensor().detach().to(torch::kCPU).contiguous();
      text(c10::toString(t.scalar_type()));
      for (const auto s : t.sizes()) number(s);
      tensor_bytes(t);
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
      bytes(&d, sizeof d);
    } else if (v.isBool()) {
      tag(v.toBool() ? 'Y' : 'N');
    } else if (v.isNone()) {
      tag('0');
    } else {
      throw std::invalid_argument("lightning: a checkpoint cannot hold a value of type " +
                                  v.tagKind());
    }
  }

  [[nodiscard]] std::int64_t value() {
    if (!crc_.hardware()) return static_cast<std::int64_t>(crc_.checksum());
    // The large tensors' CRCs side by side (LibTorch's thread pool), then joined in content
    // order: the CRC of A then B is A's register advanced over B's length, xor B's from
    // a zero register (crc32c_shift).
    std::vector<std::uint32_t> crcs(large_.size());
    const auto known = [&](std::size_t i) -> const std::shared_future<std::uint32_t>* {
      if (known_ == nullptr) return nullptr;
      const auto it = known_->find(large_[i].data_ptr());
      return it != known_->end() && it->second.first == large_[i].nbytes() ? &it->second.second
                                                                           : nullptr;
    };
    at::parallel_for(
        0, static_cast<std::int64_t>(large_.size()), 1, [&](std::int64_t begin, std::int64_t end) {
          for (auto i = static_cast<std::size_t>(begin); i < static_cast<std::size_t>(end); ++i)
            if (known(i) == nullptr)
              crcs[i] = hardware_crc(0, large_[i].data_ptr(), large_[i].nbytes());
        });
    for (std::size_t i = 0; i < large_.size(); ++i)
      if (const auto* f = known(i)) crcs[i] = f->get();
    std::uint32_t state = 0xFFFFFFFF;
    for (std::size_t i = 0; i <= large_.size(); ++i) {
      state = crc32c_shift(state, pieces_[i].length) ^ pieces_[i].raw;
      if (i < large_.size()) state = crc32c_shift(state, large_[i].nbytes()) ^ crcs[i];
    }
    return static_cast<std::int64_t>(~state);
  }

 private:
  // The bytes between two large tensors: their CRC register from zero, and their count.
  struct Piece {
    std::uint32_t raw = 0;
    std::uint64_t length = 0;
  };

  static std::uint32_t hardware_crc(std::uint32_t raw, const void* data, std::size_t n) {
#if defined(__x86_64__)
    return crc32c_sse42(raw, static_cast<const unsigned char*>(data), n);
#else
    (void)data;
    (void)n;
    return raw;  // never called: no instruction, no pieces
#endif
  }
  void bytes(const void* data, std::size_t n) {
    if (!crc_.hardware()) return crc_.process_bytes(data, n);
    auto& piece = pieces_.back();
    piece.raw = hardware_crc(piece.raw, data, n);
    piece.length += n;
  }
  // Where the CPU has a CRC32C instruction, tensors of 1 MiB and more are checksummed at
  // the end, in parallel.
  void tensor_bytes(const at::Tensor& t) {
    if (!crc_.hardware() || t.nbytes() < (std::size_t{1} << 20))
      return bytes(t.data_ptr(), t.nbytes());
    large_.push_back(t);
    pieces_.emplace_back();
  }
  void tag(char c) {
    bytes(&c, 1);
  }
  void text(const std::string& s) {
    number(static_cast<std::int64_t>(s.size()));
    bytes(s.data(), s.size());
  }
  void number(std::int64_t n) {
    bytes(&n, sizeof n);
  }

  const KnownCrcs* known_;
  Crc32c crc_;                          // without the instruction: everything, in order
  std::vector<Piece> pieces_{Piece{}};  // with it: the small runs around...
  std::vector<at::Tensor> large_;       // ...the large tensors
};

inline std::int64_t content_checksum(const CheckpointDict& content,
                                     const KnownCrcs* known = nullptr) {
  ContentChecksum c(known);
  for (const auto& kv : content)
    if (kv.key().toStringRef() != "checksum") {
      c.add(kv.key());
      c.add(kv.value());
    }
  return c.value();
}

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
// (data/<i> per tensor, data.pkl), streamed to `sink(data, size)` as it is made: the
// tensors' bytes go from their memory to the sink, never into a second buffer.
// torch.save's zip writer, without the zip's own CRC32 of each record where LibTorch
// can leave it out (2.x, as torch.serialization.config.save.compute_crc32 = False): the
// content checksum covers the same bytes, and computing both cost a quarter of a large
// save.
template <class Writer = caffe2::serialize::PyTorchStreamWriter, class F>
Writer make_zip_writer(F&& write) {
  using Func = std::function<std::size_t(const void*, std::size_t)>;
  if constexpr (std::is_constructible_v<Writer, Func, bool>)
    return Writer(Func(std::forward<F>(write)), /*compute_crc32=*/false);
  else
    return Writer(Func(std::forward<F>(write)));
}

template <class Sink>
void write_pickle_without_type_tags(const c10::IValue& value, const Sink& sink) {
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* bytes, std::size_t n) { pickled.insert(pickled.end(), bytes, bytes + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  auto writer = make_zip_writer([&](const void* data, std::size_t n) {
    sink(data, n);
    return n;
  });
  const auto& tensors = pickler.tensorData();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  writer.writeEndOfFile();
}

inline std::vector<char> pickle_without_type_tags(const c10::IValue& value) {
  std::vector<char> archive;
  write_pickle_without_type_tags(value, [&](const void* data, std::size_t n) {
    const auto* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + n);
  });
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
  write_file_durably_with(path, [&](const auto& sink) {
    detail::write_pickle_without_type_tags(c10::IValue(content), sink);
  });
}

namespace detail {

// Whether every element a tensor's sizes, strides and offset reach lies in its storage.
// The unpickler takes a file's tensor metadata as it is: a crafted offset or size would
// point past the storage, and the first read of the data (the checksum) would be out of
// bounds. Overflow-checked: the sizes come from the file.
inline bool tensor_within_storage(const at::Tensor& t) {
  if (!t.defined()) return true;
  if (t.storage_offset() < 0) return false;
  std::int64_t last = t.storage_offset();  // the largest element index reached
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    const auto size = t.size(d), stride = t.stride(d);
    if (size < 0 || stride < 0) return false;
    if (size == 0) return true;  // no element at all
    std::int64_t reach = 0;
    if (__builtin_mul_overflow(size - 1, stride, &reach) ||
        __builtin_add_overflow(last, reach, &last))
      return false;
  }
  if (!t.has_storage()) return false;
  std::int64_t end_byte = 0;
  if (__builtin_add_overflow(last, std::int64_t{1}, &end_byte) ||
      __builtin_mul_overflow(end_byte, static_cast<std::int64_t>(t.element_size()), &end_byte))
    return false;
  return end_byte <= static_cast<std::int64_t>(t.storage().nbytes());
}

// Why the first tensor in `value` would read past memory the file gave it, "" when none:
// its storage declares more bytes than its record holds, or its offset and sizes reach
// past its storage.
inline std::string tensor_outside_storage(const c10::IValue& value, const std::string& where,
                                          const RecordSizes& records) {
  if (value.isTensor()) {
    const auto& t = value.toTensor();
    if (!t.defined()) return {};
    const auto declared = t.has_storage() ? t.storage().nbytes() : 0;
    if (t.has_storage()) {
      const auto record = records.find(t.storage().data_ptr().get());
      if (record != records.end() && declared > record->second)
        return "the tensor " + where + " declares a storage of " + std::to_string(declared) +
               " bytes, but its data record holds " + std::to_string(record->second);
    }
    if (tensor_within_storage(t)) return {};
    std::string sizes;
    for (const auto s : t.sizes()) sizes += (sizes.empty() ? "" : ", ") + std::to_string(s);
    return "the tensor " + where + " (sizes [" + sizes + "], offset " +
           std::to_string(t.storage_offset()) + ") reaches past the end of its storage of " +
           std::to_string(declared) + " bytes";
  }
  if (value.isGenericDict()) {
    for (const auto& kv : value.toGenericDict()) {
      const auto key = kv.key().isString() ? kv.key().toStringRef() : kv.key().tagKind();
      if (auto bad = tensor_outside_storage(kv.value(), where + "[\"" + key + "\"]", records);
          !bad.empty())
        return bad;
    }
  } else if (value.isList() || value.isTuple()) {
    const auto elements = value.isList()
                              ? value.toListRef()
                              : c10::ArrayRef<c10::IValue>(value.toTupleRef().elements());
    for (std::size_t i = 0; i < elements.size(); ++i)
      if (auto bad =
              tensor_outside_storage(elements[i], where + "[" + std::to_string(i) + "]", records);
          !bad.empty())
        return bad;
  }
  return {};
}

// Why torch's unpickler would take this pickle stream as a request for more memory than
// the stream could describe, "" when it would not. The unpickler trusts its length and
// memo-index arguments (LONG_BINPUT 1,900,000,000 grows its memo to 30 GB); a stream
// that pickle and torch.save write never has a length past its end nor a memo index
// above its size (every PUT takes two bytes at least). Walks every opcode of the
// protocols 0-5 with its argument; anything else is refused.
inline std::string pickle_stream_problem(const char* data, std::size_t size) {
  std::size_t at = 0;
  const auto fits = [&](std::uint64_t n) { return n <= size - at; };
  const auto little_endian = [&](int bytes) {
    std::uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k)
      v = (v << 8) | static_cast<unsigned char>(data[at + static_cast<std::size_t>(k)]);
    at += static_cast<std::size_t>(bytes);
    return v;
  };
  const auto line = [&]() -> std::optional<std::string_view> {
    const auto* end = static_cast<const char*>(std::memchr(data + at, '\n', size - at));
    if (end == nullptr) return std::nullopt;
    const std::string_view text(data + at, static_cast<std::size_t>(end - (data + at)));
    at += text.size() + 1;
    return text;
  };
  const auto past_end = [](unsigned char op) {
    char hex[64];
    std::snprintf(hex, sizeof hex, "pickle opcode 0x%02x runs past the end of the stream", op);
    return std::string(hex);
  };
  while (at < size) {
    const auto op = static_cast<unsigned char>(data[at++]);
    std::uint64_t length = 0;
    switch (op) {
      case '.':  // STOP
        return {};
      case '(':
      case ')':
      case ']':
      case '}':
      case 'N':
      case 'R':
      case 'b':
      case 't':
      case 'l':
      case 'd':
      case 's':
      case 'u':
      case 'a':
      case 'e':
      case '0':
      case '1':
      case '2':
      case 'Q':
      case 0x81:
      case 0x85:
      case 0x86:
      case 0x87:
      case 0x88:
      case 0x89:
      case 0x8f:
      case 0x90:
      case 0x91:
      case 0x92:
      case 0x93:
      case 0x94:
      case 0x97:
      case 0x98:
        continue;  // no argument
      case 0x80:
      case 'K':
      case 'h':
      case 'q':
        length = 1;
        break;
      case 'M':
        length = 2;
        break;
      case 'J':
      case 'j':
        length = 4;
        break;
      case 'r': {  // LONG_BINPUT
        if (!fits(4)) return past_end(op);
        const auto memo = little_endian(4);
        if (memo >= size)
          return "pickle memo index " + std::to_string(memo) + " in a stream of " +
                 std::to_string(size) + " bytes";
        continue;
      }
      case 'G':
      case 0x95:
        length = 8;
        break;
      case 0x8a:
      case 0x8c:
      case 'U':
      case 'C':  // one length byte, then the data
        if (!fits(1)) return past_end(op);
        length = little_endian(1);
        break;
      case 0x8b:
      case 'X':
      case 'T':
      case 'B':  // four length bytes
        if (!fits(4)) return past_end(op);
        length = little_endian(4);
        break;
      case 0x8d:
      case 0x8e:
      case 0x96:  // eight length bytes
        if (!fits(8)) return past_end(op);
        length = little_endian(8);
        break;
      case 'c':
      case 'i':  // module and name lines
        if (!line() || !line()) return past_end(op);
        continue;
      case 'p': {  // PUT with a decimal memo index
        const auto text = line();
        if (!text) return past_end(op);
        if (text->size() > 19 || std::stoull("0" + std::string(*text)) >= size)
          return "pickle memo index " + std::string(*text) + " in a stream of " +
                 std::to_string(size) + " bytes";
        continue;
      }
      case 'I':
      case 'L':
      case 'S':
      case 'V':
      case 'F':
      case 'P':
      case 'g':
        if (!line()) return past_end(op);
        continue;
      default: {
        char hex[48];
        std::snprintf(hex, sizeof hex, "unknown pickle opcode 0x%02x", op);
        return hex;
      }
    }
    if (!fits(length)) return past_end(op);
    at += static_cast<std::size_t>(length);
  }
  return "the pickle stream has no STOP opcode";
}

// Large data records used where they lie in the file, as torch.load(mmap=True) does: one
// private, copy-on-write mapping of the whole file (LibTorch's MapAllocator), each record
// a view of it that holds the mapping. Loading then neither allocates nor copies them, and
// the checksum reads the page cache once. Only records stored uncompressed at a 64-byte
// aligned offset (every torch.save and lightning-cpp file); others are read as before.
// LibTorch 1.13's reader cannot tell a record's size, so there every record is read.
class MappedRecords {
 public:
  static constexpr std::size_t kAtLeast = std::size_t{1} << 20;  // smaller ones are read

  MappedRecords([[maybe_unused]] const std::filesystem::path& path, std::uint64_t file_size)
      : file_size_(file_size) {
#if LIGHTNING_TORCH_AT_LEAST(2, 0)
    if (file_size == 0) return;
    try {
      std::size_t mapped = 0;
      mapping_ = std::make_shared<at::DataPtr>(
          at::MapAllocator::makeDataPtr(path.string(), /*flags: private, read-only file*/ 0,
                                        static_cast<std::size_t>(file_size), &mapped));
      if (mapped < file_size) mapping_.reset();
    } catch (const std::exception&) {
      mapping_.reset();  // a file system that cannot map: every record is read
    }
#endif
  }

  // The record `name` (its data and size) as a view of the mapping, or nothing where it
  // must be read.
  std::optional<std::pair<at::DataPtr, std::size_t>> record(
      [[maybe_unused]] caffe2::serialize::PyTorchStreamReader& reader,
      [[maybe_unused]] const std::string& name) const {
#if LIGHTNING_TORCH_AT_LEAST(2, 0)
    if (!mapping_) return std::nullopt;
    const std::uint64_t size = reader.getRecordSize(name);
    if (size < kAtLeast) return std::nullopt;
    const std::uint64_t offset = reader.getRecordOffset(name);
    if (offset % 64 != 0 || offset > file_size_ || size > file_size_ - offset ||
        !stored_uncompressed(offset))
      return std::nullopt;
    auto* data = static_cast<char*>(mapping_->get()) + offset;
    return std::make_pair(
        at::DataPtr(data, new std::shared_ptr<at::DataPtr>(mapping_), &release, at::kCPU),
        static_cast<std::size_t>(size));
#else
    return std::nullopt;
#endif
  }

 private:
  static void release(void* holder) {
    delete static_cast<std::shared_ptr<at::DataPtr>*>(holder);
  }

  // Whether the zip entry whose data starts at `offset` is stored (method 0): its local
  // header ("PK\3\4", method at +8, name and extra lengths at +26 and +28) ends there.
  bool stored_uncompressed(std::uint64_t offset) const {
    const auto* bytes = static_cast<const unsigned char*>(mapping_->get());
    const auto u16 = [&](std::uint64_t at) { return bytes[at] | (bytes[at + 1] << 8); };
    for (std::uint64_t back = 30; back <= std::min<std::uint64_t>(offset, 30 + 2048); ++back) {
      const auto header = offset - back;
      if (bytes[header] != 'P' || bytes[header + 1] != 'K' || bytes[header + 2] != 3 ||
          bytes[header + 3] != 4)
        continue;
      if (30 + static_cast<std::uint64_t>(u16(header + 26)) + u16(header + 28) == back)
        return u16(header + 8) == 0;
    }
    return false;
  }

  std::uint64_t file_size_;
  std::shared_ptr<at::DataPtr> mapping_;
};

// A torch.save file read by PickleReader (pickle_reader.hpp: torch.load(weights_only=True)'s
// allow-list), keeping the size of each data record a storage is made from.
inline c10::IValue read_pickle_archive(const std::filesystem::path& path, RecordSizes& records,
                                       KnownCrcs* crcs = nullptr, bool mmap = false) {
  caffe2::serialize::PyTorchStreamReader reader(path.string());
  // A record is allocated at the size the zip's directory declares: not more than the file.
  [[maybe_unused]] const auto file_size = std::filesystem::file_size(path);
  const auto check_size = [&]([[maybe_unused]] const std::string& record) {
#if LIGHTNING_TORCH_AT_LEAST(2, 0)
    if (reader.getRecordSize(record) > file_size)
      throw CheckpointError("the record " + record + " declares " +
                            std::to_string(reader.getRecordSize(record)) + " bytes in a file of " +
                            std::to_string(file_size));
#endif
  };
  if (reader.hasRecord("byteorder")) {
    const auto order = reader.getRecord("byteorder");
    const std::string_view text(static_cast<const char*>(std::get<0>(order).get()),
                                std::get<1>(order));
    if (text != "little")
      throw CheckpointError("its tensors are stored " + std::string(text) +
                            "-endian; this machine reads little-endian files only");
  }
  check_size("data.pkl");
  const auto pickle = reader.getRecord("data.pkl");  // (bytes, size)
  const auto* pickled = static_cast<const char*>(std::get<0>(pickle).get());
  const std::size_t pickle_size = std::get<1>(pickle);
  if (const auto problem = pickle_stream_problem(pickled, pickle_size); !problem.empty())
    throw CheckpointError(problem);
  std::optional<MappedRecords> mapped;
  if (mmap) mapped.emplace(path, file_size);
  PickleReader unpickler(pickled, pickle_size, [&](const std::string& name) {
    check_size("data/" + name);
    if (mapped)
      if (auto view = mapped->record(reader, "data/" + name)) return std::move(*view);
    auto record = reader.getRecord("data/" + name);
    return std::make_pair(std::move(std::get<0>(record)), std::get<1>(record));
  });
  // Each large record's CRC is computed on LibTorch's inter-op pool while the next is read;
  // the task holds the storage, so a load that fails half-way frees nothing it reads.
#if defined(__x86_64__)
  if (crcs != nullptr && Crc32c().hardware())
    unpickler.on_storage([crcs](const at::Tensor& storage, std::size_t record_bytes) {
      if (record_bytes != storage.nbytes() || record_bytes < (std::size_t{1} << 20)) return;
      auto promise = std::make_shared<std::promise<std::uint32_t>>();
      (*crcs)[storage.data_ptr()] = {record_bytes, promise->get_future().share()};
      at::launch([promise, storage] {
        promise->set_value(crc32c_sse42(0, static_cast<const unsigned char*>(storage.data_ptr()),
                                        storage.nbytes()));
      });
    });
#else
  (void)crcs;
#endif
  auto value = unpickler.parse();
  records = std::move(unpickler.record_sizes());
  return value;
}

}  // namespace detail

// How load_checkpoint_file reads a file.
struct LoadCheckpointOptions {
  // torch.load's mmap=True: large tensors are views of a private, copy-on-write mapping of
  // the file instead of copies read into memory (faster, and no memory of its own until
  // written to). The file must then not be truncated or rewritten in place while they are
  // held (lightning-cpp's own saves replace files by rename, which is safe): the Trainer
  // uses it for a resume and for evaluation weights, which it copies into the module and
  // the optimizers before letting the file go, and load_hyperparameters.
  bool mmap = false;
};

// Loads and verifies a checkpoint. A missing, truncated, corrupted or foreign file is a
// CheckpointError naming the file and the cause.
inline CheckpointDict load_checkpoint_file(const std::filesystem::path& path,
                                           LoadCheckpointOptions options = {}) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw CheckpointError("lightning: checkpoint " + path.string() + " does not exist");
  c10::IValue value;
  detail::RecordSizes records;
  detail::KnownCrcs crcs;
  try {
    value = detail::read_pickle_archive(path, records, &crcs, options.mmap);
  } catch (const ForbiddenGlobalError& e) {
    throw ForbiddenGlobalError("lightning: " + path.string() + ": " + e.what());
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
  // Before anything reads a tensor's data: a hostile file must not make us read past it.
  if (const auto bad = detail::tensor_outside_storage(value, "checkpoint", records); !bad.empty())
    throw CheckpointError("lightning: " + path.string() + " is corrupted or crafted: " + bad);
  for (const auto& kv : value.toGenericDict())
    if (!kv.key().isString())
      throw CheckpointError("lightning: " + path.string() +
                            " is not a checkpoint: its dict has a key of type " +
                            kv.key().tagKind() + " (a checkpoint's keys are strings)");
  CheckpointDict content = checkpoint_dict(value);
  // PyTorch Lightning's own checkpoints carry its version and no checksum: they load as
  // they are (train in Python, resume here).
  if (!content.contains("checksum") && content.contains("pytorch-lightning_version") &&
      !content.contains("lightning_version"))
    return content;
  if (!content.contains("lightning_version") || !content.contains("checksum"))
    throw CheckpointError("lightning: " + path.string() +
                          " was written by neither lightning-cpp nor PyTorch Lightning (no "
                          "lightning_version/checksum or pytorch-lightning_version entries); "
                          "load plain torch.save files with torch::pickle_load");
  if (!content.at("checksum").isInt())
    throw CheckpointError("lightning: checkpoint " + path.string() +
                          " is corrupted: its checksum entry is not an integer");
  const auto stored = content.at("checksum").toInt();
  const auto actual = detail::content_checksum(content, &crcs);
  if (stored != actual)
    throw CheckpointError("lightning: checkpoint " + path.string() +
                          " is corrupted: its content checksum is " + std::to_string(actual) +
                          ", the file says " + std::to_string(stored));
  return content;
}

}  // namespace lightning
