// Reading and writing images: PNG with libpng, JPEG with libjpeg-turbo (Debian's
// libpng-dev and libjpeg62-turbo-dev), the libraries Pillow itself decodes with, so
// the pixels are the ones torchvision's ImageFolder sees. An image is a uint8 tensor
// [C, H, W] (torchvision's tensor layout), C = 1 (gray) or 3 (RGB).
//
// Link lightning::image (CMake) to use this header: it adds the two libraries.
#pragma once

#include <torch/torch.h>

#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>

namespace lightning::data {

// What read_image returns: the file's own channels (alpha dropped), or converted as
// Pillow's Image.convert("L") / convert("RGB") converts.
enum class ImageMode { unchanged, gray, rgb };

class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

[[noreturn]] inline void image_error(const std::filesystem::path& path, const std::string& why) {
  throw ImageError("lightning: cannot read the image " + path.string() + ": " + why);
}

// An image decoded as [H, W, C] to [C, H, W], keeping the first `keep` channels: a view
// for one channel (the same bytes), a copy otherwise.
inline torch::Tensor chw_of(const torch::Tensor& hwc, std::int64_t keep) {
  auto chw = hwc.narrow(2, 0, keep).permute({2, 0, 1});
  return chw.is_contiguous() ? chw : chw.contiguous();
}

inline torch::Tensor decode_png(const std::vector<std::uint8_t>& bytes,
                                const std::filesystem::path& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()))
    image_error(path, std::string("libpng: ") + image.message);
  // 8-bit images are read as they are (no gamma conversion); a palette is expanded.
  const bool color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  const bool alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  image.format = color ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB)
                       : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  const auto channels = static_cast<std::int64_t>(PNG_IMAGE_SAMPLE_CHANNELS(image.format));
  // Decoded straight into the tensor: a grey image is already [1, H, W].
  const auto h = static_cast<std::int64_t>(image.height),
             w = static_cast<std::int64_t>(image.width);
  auto pixels = channels == 1 ? torch::empty({1, h, w}, torch::kUInt8)
                              : torch::empty({h, w, channels}, torch::kUInt8);
  if (!png_image_finish_read(&image, nullptr, pixels.data_ptr<std::uint8_t>(), 0, nullptr)) {
    const std::string why = image.message;
    png_image_free(&image);
    image_error(path, "libpng: " + why);
  }
  return channels == 1 ? pixels : chw_of(pixels, color ? 3 : 1);
}

struct JpegErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// Kept free of C++ objects with destructors between setjmp and a longjmp to it.
inline bool decode_jpeg_into(const std::vector<std::uint8_t>& bytes, std::vector<std::uint8_t>& out,
                             int& h, int& w, int& c, char (&message)[JMSG_LENGTH_MAX]) {
  jpeg_decompress_struct info{};
  JpegErrors errors{};
  info.err = jpeg_std_error(&errors.pub);
  errors.pub.error_exit = [](j_common_ptr cinfo) {
    auto* e = reinterpret_cast<JpegErrors*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, e->message);
    std::longjmp(e->jump, 1);
  };
  // A warning is corrupt data (a truncated file, a bad Huffman code): an error, as
  // Pillow raises one, not an image silently filled in.
  errors.pub.emit_message = [](j_common_ptr cinfo, int level) {
    if (level < 0) (*cinfo->err->error_exit)(cinfo);
  };
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&info);
    std::copy(std::begin(errors.message), std::end(errors.message), std::begin(message));
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    std::snprintf(message, JMSG_LENGTH_MAX, "CMYK JPEG images are not supported");
    jpeg_destroy_decompress(&info);
    return false;
  }
  info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&info);
  h = static_cast<int>(info.output_height);
  w = static_cast<int>(info.output_width);
  c = info.output_components;
  out.resize(static_cast<std::size_t>(h) * static_cast<std::size_t>(w) *
             static_cast<std::size_t>(c));
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = out.data() + static_cast<std::size_t>(info.output_scanline) *
                                    static_cast<std::size_t>(w) * static_cast<std::size_t>(c);
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return true;
}

inline torch::Tensor decode_jpeg(const std::vector<std::uint8_t>& bytes,
                                 const std::filesystem::path& path) {
  std::vector<std::uint8_t> pixels;
  int h = 0, w = 0, c = 0;
  char message[JMSG_LENGTH_MAX] = {};
  if (!decode_jpeg_into(bytes, pixels, h, w, c, message))
    image_error(path, std::string("libjpeg: ") + message);
  auto hwc = torch::from_blob(pixels.data(), {h, w, c}, torch::kUInt8);
  return chw_of(hwc, c).clone();  // owns its pixels
}

// The whole file, with POSIX calls (a small image is read in one read()).
inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) image_error(path, std::string("the file cannot be opened: ") + std::strerror(errno));
  struct stat st {};
  std::vector<std::uint8_t> bytes;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) bytes.resize(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = n < 0 ? std::strerror(errno) : "the file shrank while read";
      ::close(fd);
      image_error(path, "the file cannot be read: " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return bytes;
}

}  // namespace detail

// Pillow's conversions: "L" = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16 (ITU-R
// 601-2 luma in fixed point), "RGB" from gray repeats the channel.
inline torch::Tensor convert_image(const torch::Tensor& chw, ImageMode mode) {
  const auto c = chw.size(0);
  if (mode == ImageMode::unchanged || (mode == ImageMode::gray && c == 1) ||
      (mode == ImageMode::rgb && c == 3))
    return chw;
  if (mode == ImageMode::rgb) return chw.expand({3, chw.size(1), chw.size(2)}).contiguous();
  auto rgb = chw.to(torch::kInt32);
  auto l = (rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000).bitwise_right_shift(16);
  return l.to(torch::kUInt8).unsqueeze(0);
}

// Decodes a PNG or a JPEG file (by its first bytes, not its name).
inline torch::Tensor read_image(const std::filesystem::path& path,
                                ImageMode mode = ImageMode::unchanged) {
  const auto bytes = detail::read_file(path);
  torch::Tensor chw;
  if (bytes.size() >= 8 && bytes[0] == 0x89 && bytes[1] == 'P' && bytes[2] == 'N' &&
      bytes[3] == 'G')
    chw = detail::decode_png(bytes, path);
  else if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
    chw = detail::decode_jpeg(bytes, path);
  else
    detail::image_error(
        path, bytes.empty() ? "the file is empty" : "it is neither a PNG nor a JPEG file");
  return convert_image(chw, mode);
}

// Writes a uint8 image [C, H, W] or [H, W] (C = 1 or 3) as a PNG file.
inline void write_png(const std::filesystem::path& path, const torch::Tensor& image) {
  if (image.scalar_type() != torch::kUInt8 || (image.dim() != 2 && image.dim() != 3))
    throw std::invalid_argument(
        "lightning: write_png takes a uint8 tensor [C, H, W] or [H, W]; "
        "got " +
        std::string(image.dtype().name()) + " of " + std::to_string(image.dim()) + " dimensions");
  const auto chw = image.dim() == 2 ? image.unsqueeze(0) : image;
  const auto c = chw.size(0);
  if (c != 1 && c != 3)
    throw std::invalid_argument("lightning: write_png writes 1 (gray) or 3 (RGB) channels, not " +
                                std::to_string(c));
  const auto hwc = chw.permute({1, 2, 0}).contiguous();
  png_image out{};
  out.version = PNG_IMAGE_VERSION;
  out.width = static_cast<png_uint_32>(chw.size(2));
  out.height = static_cast<png_uint_32>(chw.size(1));
  out.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&out, path.c_str(), 0, hwc.data_ptr<std::uint8_t>(), 0, nullptr))
    throw ImageError("lightning: cannot write the PNG file " + path.string() +
                     ": libpng: " + out.message);
}

}  // namespace lightning::data
