// The IDX format of (Fashion-)MNIST: plain or gzip-compressed, read through zlib.
//
// Layout: two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
// 0x0E f64), the number of dimensions, each dimension as a big-endian int32, then the
// values, big-endian. gzread reads plain files as they are, so one path serves both.
#pragma once

#include <torch/torch.h>

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace lightning::data {

namespace detail {
struct GzFile {
  gzFile f;
  explicit GzFile(const std::filesystem::path& p) : f(gzopen(p.c_str(), "rb")) {}
  ~GzFile() {
    if (f) gzclose(f);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
};

inline void read_exact(GzFile& in, void* out, std::size_t n, const std::filesystem::path& p,
                       const char* what) {
  std::size_t done = 0;
  auto* bytes = static_cast<char*>(out);
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
    const int got = gzread(in.f, bytes + done, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(in.f, &err);
      throw std::runtime_error("lightning: cannot read IDX file " + p.string() + ": " + msg);
    }
    if (got == 0)
      throw std::runtime_error("lightning: IDX file " + p.string() +
                               " is truncated: it ends inside its " + what + " (" +
                               std::to_string(done) + " of " + std::to_string(n) + " bytes read)");
    done += static_cast<std::size_t>(got);
  }
}
inline std::string hex_byte(unsigned char b) {
  constexpr char digits[] = "0123456789ABCDEF";
  return {digits[b >> 4], digits[b & 0xF]};
}
}  // namespace detail

// Reads an IDX file (".gz" or plain) into a tensor of its element type and shape.
inline torch::Tensor read_idx(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path))
    throw std::runtime_error("lightning: IDX file " + path.string() + " does not exist");
  detail::GzFile in(path);
  if (!in.f) throw std::runtime_error("lightning: cannot open IDX file " + path.string());
  unsigned char magic[4];
  detail::read_exact(in, magic, 4, path, "header");
  if (magic[0] != 0 || magic[1] != 0)
    throw std::runtime_error("lightning: " + path.string() +
                             " is not an IDX file (bad magic number)");
  torch::ScalarType type{};
  std::size_t width = 0;
  switch (magic[2]) {
    case 0x08:
      type = torch::kUInt8, width = 1;
      break;
    case 0x09:
      type = torch::kInt8, width = 1;
      break;
    case 0x0B:
      type = torch::kInt16, width = 2;
      break;
    case 0x0C:
      type = torch::kInt32, width = 4;
      break;
    case 0x0D:
      type = torch::kFloat32, width = 4;
      break;
    case 0x0E:
      type = torch::kFloat64, width = 8;
      break;
    default:
      throw std::runtime_error("lightning: " + path.string() + " has unknown IDX element type 0x" +
                               detail::hex_byte(magic[2]));
  }
  const int dims = magic[3];
  if (dims == 0)
    throw std::runtime_error("lightning: " + path.string() + " declares zero dimensions");
  std::vector<std::int64_t> shape(static_cast<std::size_t>(dims));
  std::string shape_text;
  std::int64_t count = 1, extent = 1;
  bool overflow = false;
  for (auto& d : shape) {
    unsigned char b[4];
    detail::read_exact(in, b, 4, path, "header");
    d = (std::int64_t{b[0]} << 24) | (std::int64_t{b[1]} << 16) | (std::int64_t{b[2]} << 8) | b[3];
    // Every product of sizes must fit, not only the count: with a zero among them the
    // count is 0, but the strides torch computes are products of the others.
    overflow = overflow || __builtin_mul_overflow(count, d, &count) ||
               __builtin_mul_overflow(extent, std::max<std::int64_t>(d, 1), &extent);
    shape_text += (shape_text.empty() ? "" : ", ") + std::to_string(d);
  }
  // The header is the file's word: before allocating what it declares, check that the
  // file can hold it (a plain file: its size; gzip: deflate's best ratio, 1032:1), so a
  // damaged or hostile 20-byte file is an error naming it, not a request for gigabytes.
  const auto header = 4 + 4 * static_cast<std::uintmax_t>(dims);
  std::error_code ec;
  const auto on_disk = std::filesystem::file_size(path, ec);
  const std::uintmax_t most = ec                    ? 0
                              : gzdirect(in.f) != 0 ? (on_disk > header ? on_disk - header : 0)
                                                    : on_disk * 1032;
  std::int64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(extent, static_cast<std::int64_t>(width), &bytes);
  if (overflow)
    throw std::runtime_error("lightning: IDX file " + path.string() +
                             " is damaged or not an IDX file: its header declares shape [" +
                             shape_text + "], too large for any tensor");
  bytes = count * static_cast<std::int64_t>(width);
  if (static_cast<std::uintmax_t>(bytes) > most)
    throw std::runtime_error("lightning: IDX file " + path.string() +
                             " is truncated or damaged: its header declares shape [" + shape_text +
                             "] of " + std::to_string(width) + "-byte values, more than its " +
                             std::to_string(on_disk) + " bytes on disk can hold");
  auto t = torch::empty(shape, torch::TensorOptions().dtype(type));
  detail::read_exact(in, t.data_ptr(), static_cast<std::size_t>(count) * width, path, "data");
  if (width > 1 && std::endian::native == std::endian::little) {
    auto* p = static_cast<unsigned char*>(t.data_ptr());
    for (std::int64_t i = 0; i < count; ++i) std::reverse(p + i * width, p + (i + 1) * width);
  }
  return t;
}

}  // namespace lightning::data
