// Image transforms with torchvision's names, parameters and results (torchvision.transforms
// on PIL images): each is a callable taking and returning an image tensor [C, H, W],
// uint8 before ToTensor, float after. The deterministic ones compute what torchvision
// computes (Resize: the antialiased bilinear filter of Pillow, within one 8-bit step);
// the random ones make torchvision's draws, in its order, from worker_generator() (the
// loader worker's generator, or LibTorch's default one), so that with the same
// generator state they crop and flip as torchvision does.
#pragma once

#include <lightning/core/bad_option.hpp>
#include <lightning/core/torch_version.hpp>
#include <lightning/data/dataset.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lightning::data::transforms {

// A size as torchvision takes it: one number (Resize: the smaller edge; crops: a square)
// or {height, width}.
struct Size {
  std::int64_t height = 0, width = 0;
  bool single = false;
  Size(std::int64_t edge) : height(edge), width(edge), single(true) {}  // NOLINT: as torchvision
  Size(std::int64_t h, std::int64_t w) : height(h), width(w) {}
};

namespace detail {

// Python's round(): halves to even.
inline std::int64_t py_round(double v) {
  return static_cast<std::int64_t>(std::nearbyint(v));
}

inline void check_image(const torch::Tensor& img, const char* transform) {
  if (!img.defined() || img.dim() < 2)
    throw std::invalid_argument(std::string("lightning: transforms::") + transform +
                                " takes an image tensor [C, H, W] (or [H, W])");
}

// Pillow's antialiased bilinear resampling (torchvision's Resize on PIL images).
inline torch::Tensor resize_to(const torch::Tensor& img, std::int64_t h, std::int64_t w) {
  if (img.size(-2) == h && img.size(-1) == w) return img;
  const bool two_d = img.dim() == 2;
  auto x = two_d ? img.unsqueeze(0) : img;
#if LIGHTNING_TORCH_AT_LEAST(2, 1)
  // LibTorch 2.1+ resamples uint8 images as Pillow does (its fixed-point kernel).
  auto out = at::_upsample_bilinear2d_aa(x.unsqueeze(0), {h, w}, false).squeeze(0);
#else
  auto out =
      at::_upsample_bilinear2d_aa(x.unsqueeze(0).to(torch::kFloat), {h, w}, false).squeeze(0);
  if (x.scalar_type() == torch::kUInt8) out = out.round_().clamp_(0, 255).to(torch::kUInt8);
#endif
  return two_d ? out.squeeze(0) : out;
}

// Zero (or `fill`) padding: left, top, right, bottom.
inline torch::Tensor pad(const torch::Tensor& img, std::int64_t left, std::int64_t top,
                         std::int64_t right, std::int64_t bottom, double fill) {
  if (left == 0 && top == 0 && right == 0 && bottom == 0) return img;
  return torch::constant_pad_nd(img, {left, right, top, bottom}, fill);
}

inline torch::Tensor crop(const torch::Tensor& img, std::int64_t top, std::int64_t left,
                          std::int64_t h, std::int64_t w) {
  return img.narrow(-2, top, h).narrow(-1, left, w);
}

inline std::int64_t randint(std::int64_t high, at::Generator& g) {  // [0, high)
  return torch::randint(high, {1}, g, torch::kLong).item<std::int64_t>();
}

}  // namespace detail

// uint8 [C, H, W] to float32 in [0, 1] (x / 255), as torchvision's ToTensor.
struct ToTensor {
  torch::Tensor operator()(const torch::Tensor& img) const {
    if (img.scalar_type() != torch::kUInt8) return img;
    return img.to(torch::kFloat).div_(255);
  }
};

// (x - mean[c]) / std[c] per channel, in the image's float type (torchvision converts
// mean and std to it first, then subtracts and divides: the same rounding).
struct Normalize {
  std::vector<double> mean, std;
  Normalize(std::vector<double> m, std::vector<double> s) : mean(std::move(m)), std(std::move(s)) {
    if (mean.empty() || mean.size() != std.size())
      throw_bad_option("transforms::Normalize", "mean", std::to_string(mean.size()) + " values",
                       "needs one mean and one std per channel (" + std::to_string(std.size()) +
                           " std values given)");
    for (double s_ : std)
      if (!(s_ != 0.0))
        throw_bad_option("transforms::Normalize", "std", std::to_string(s_),
                         "must be nonzero (it divides)");
    mean_f_ = torch::tensor(mean, torch::kDouble).to(torch::kFloat).view({-1, 1, 1});
    std_f_ = torch::tensor(std, torch::kDouble).to(torch::kFloat).view({-1, 1, 1});
  }
  torch::Tensor operator()(const torch::Tensor& img) const {
    if (!img.is_floating_point())
      throw std::invalid_argument(
          "lightning: transforms::Normalize takes a float image; put "
          "ToTensor() before it");
    if (img.scalar_type() == torch::kFloat) return img.sub(mean_f_).div_(std_f_);
    const auto opts = torch::TensorOptions().dtype(img.scalar_type());
    return img.sub(torch::tensor(mean, torch::kDouble).to(opts).view({-1, 1, 1}))
        .div_(torch::tensor(std, torch::kDouble).to(opts).view({-1, 1, 1}));
  }

 private:
  torch::Tensor mean_f_, std_f_;  // made once: an image costs two operations
};

// Resizes to {h, w}, or the smaller edge to `size` keeping the aspect ratio (the longer
// edge truncated, as torchvision computes it); antialiased bilinear.
struct Resize {
  Size size;
  Resize(Size s) : size(s) {  // NOLINT: as torchvision
    if (size.height <= 0 || size.width <= 0)
      throw_bad_option("transforms::Resize", "size", std::to_string(size.height),
                       "must be positive");
  }
  torch::Tensor operator()(const torch::Tensor& img) const {
    detail::check_image(img, "Resize");
    const auto h = img.size(-2), w = img.size(-1);
    if (!size.single) return detail::resize_to(img, size.height, size.width);
    const bool portrait = w <= h;
    const auto shorter = portrait ? w : h, longer = portrait ? h : w;
    const auto new_long =
        static_cast<std::int64_t>(static_cast<double>(size.height) * static_cast<double>(longer) /
                                  static_cast<double>(shorter));
    return portrait ? detail::resize_to(img, new_long, size.height)
                    : detail::resize_to(img, size.height, new_long);
  }
};

// The central {h, w}, zero-padded first where the image is smaller.
struct CenterCrop {
  Size size;
  CenterCrop(Size s) : size(s) {}  // NOLINT: as torchvision
  torch::Tensor operator()(const torch::Tensor& img) const {
    detail::check_image(img, "CenterCrop");
    auto x = img;
    const auto ch = size.height, cw = size.width;
    auto h = x.size(-2), w = x.size(-1);
    if (cw > w || ch > h) {
      x = detail::pad(x, cw > w ? (cw - w) / 2 : 0, ch > h ? (ch - h) / 2 : 0,
                      cw > w ? (cw - w + 1) / 2 : 0, ch > h ? (ch - h + 1) / 2 : 0, 0.0);
      h = x.size(-2);
      w = x.size(-1);
      if (cw == w && ch == h) return x;
    }
    const auto top = detail::py_round(static_cast<double>(h - ch) / 2.0);
    const auto left = detail::py_round(static_cast<double>(w - cw) / 2.0);
    return detail::crop(x, top, left, ch, cw);
  }
};

struct RandomCropOptions {
  std::int64_t padding = 0;  // on every side, before cropping
  bool pad_if_needed = false;
  double fill = 0.0;
};

// A random {h, w} window (after `padding`): top from randint(0, H - h + 1), then left.
struct RandomCrop {
  Size size;
  RandomCropOptions options;
  RandomCrop(Size s, RandomCropOptions o = {}) : size(s), options(o) {  // NOLINT
    if (options.padding < 0)
      throw_bad_option("transforms::RandomCrop", "padding", std::to_string(options.padding),
                       "must be >= 0");
  }
  torch::Tensor operator()(const torch::Tensor& img) const {
    detail::check_image(img, "RandomCrop");
    const auto p = options.padding;
    auto x = detail::pad(img, p, p, p, p, options.fill);
    const auto th = size.height, tw = size.width;
    if (options.pad_if_needed && x.size(-1) < tw)
      x = detail::pad(x, tw - x.size(-1), 0, tw - x.size(-1), 0, options.fill);
    if (options.pad_if_needed && x.size(-2) < th)
      x = detail::pad(x, 0, th - x.size(-2), 0, th - x.size(-2), options.fill);
    const auto h = x.size(-2), w = x.size(-1);
    if (h < th || w < tw)
      throw std::invalid_argument("lightning: transforms::RandomCrop: the crop " +
                                  std::to_string(th) + "x" + std::to_string(tw) +
                                  " is larger than the (padded) image " + std::to_string(h) + "x" +
                                  std::to_string(w) + "; set pad_if_needed");
    if (h == th && w == tw) return x;
    auto g = worker_generator();
    const auto top = detail::randint(h - th + 1, g);
    const auto left = detail::randint(w - tw + 1, g);
    return detail::crop(x, top, left, th, tw);
  }
};

// Mirrors left to right with probability p (torch.rand(1) < p).
struct RandomHorizontalFlip {
  double p = 0.5;
  torch::Tensor operator()(const torch::Tensor& img) const {
    auto g = worker_generator();
    if (torch::rand({1}, g).item<float>() < p) return img.flip({-1});
    return img;
  }
};

struct RandomResizedCropOptions {
  std::array<double, 2> scale{0.08, 1.0};
  std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};
};

// A random area fraction (scale) and aspect ratio (ratio, drawn log-uniformly), up to 10
// tries and then a central crop, resized to `size`: torchvision's get_params draw by draw.
struct RandomResizedCrop {
  Size size;
  RandomResizedCropOptions options;
  RandomResizedCrop(Size s, RandomResizedCropOptions o = {}) : size(s), options(o) {  // NOLINT
    if (options.scale[0] > options.scale[1] || options.ratio[0] > options.ratio[1])
      throw_bad_option("transforms::RandomResizedCrop", "scale/ratio", "(min, max)",
                       "each must be given as (min, max)");
  }
  torch::Tensor operator()(const torch::Tensor& img) const {
    detail::check_image(img, "RandomResizedCrop");
    const auto [top, left, h, w] = params(img.size(-2), img.size(-1));
    return detail::resize_to(detail::crop(img, top, left, h, w), size.height, size.width);
  }

  // (top, left, height, width) of the crop.
  [[nodiscard]] std::array<std::int64_t, 4> params(std::int64_t height, std::int64_t width) const {
    auto g = worker_generator();
    const double area = static_cast<double>(height * width);
    const auto log_ratio = torch::log(
        torch::tensor({options.ratio[0], options.ratio[1]}, torch::kDouble).to(torch::kFloat));
    const double lr0 = log_ratio[0].item<double>(), lr1 = log_ratio[1].item<double>();
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target =
          area * torch::empty({1}).uniform_(options.scale[0], options.scale[1], g).item<double>();
      const double aspect = torch::exp(torch::empty({1}).uniform_(lr0, lr1, g)).item<double>();
      const auto w = detail::py_round(std::sqrt(target * aspect));
      const auto h = detail::py_round(std::sqrt(target / aspect));
      if (0 < w && w <= width && 0 < h && h <= height) {
        const auto top = detail::randint(height - h + 1, g);
        const auto left = detail::randint(width - w + 1, g);
        return {top, left, h, w};
      }
    }
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    std::int64_t w = width, h = height;
    if (in_ratio < options.ratio[0]) {
      h = detail::py_round(static_cast<double>(w) / options.ratio[0]);
    } else if (in_ratio > options.ratio[1]) {
      w = detail::py_round(static_cast<double>(h) * options.ratio[1]);
    }
    return {(height - h) / 2, (width - w) / 2, h, w};
  }
};

namespace detail {
// ToTensor then Normalize in one pass over a uint8 image: (float(x) / 255 - mean) / std
// with the same float operations in the same order as the two transforms (so the same
// bits), without the three intermediate operations and their allocations.
inline torch::Tensor to_tensor_normalized(const torch::Tensor& img, const Normalize& norm) {
  const auto channels = img.dim() >= 3 ? img.size(-3) : 1;
  const auto n = static_cast<std::int64_t>(norm.mean.size());
  if (img.scalar_type() != torch::kUInt8 || img.dim() < 2 || (n != channels && n != 1))
    return norm(ToTensor{}(img));
  const auto src = img.contiguous();
  auto out = torch::empty(src.sizes(), torch::kFloat);
  const auto plane = src.size(-1) * src.size(-2);
  const auto* in = src.data_ptr<std::uint8_t>();
  auto* o = out.data_ptr<float>();
  const auto planes = src.numel() / std::max<std::int64_t>(plane, 1);
  for (std::int64_t p = 0; p < planes; ++p) {
    const auto c = static_cast<std::size_t>(n == 1 ? 0 : p % channels);
    const auto m = static_cast<float>(norm.mean[c]), sd = static_cast<float>(norm.std[c]);
    for (std::int64_t k = 0; k < plane; ++k, ++in, ++o)
      *o = (static_cast<float>(*in) / 255.0f - m) / sd;
  }
  return out;
}
}  // namespace detail

// Applies the transforms in order (torchvision's Compose; composed at compile time, and
// ToTensor followed by Normalize fused into one pass).
template <class... T>
struct Compose {
  std::tuple<T...> steps;
  explicit Compose(T... t) : steps(std::move(t)...) {}
  torch::Tensor operator()(torch::Tensor x) const { return run<0>(std::move(x)); }

 private:
  // Whether steps I and I + 1 are ToTensor and Normalize.
  template <std::size_t I>
  static constexpr bool fused() {
    if constexpr (I + 1 < sizeof...(T))
      return std::is_same_v<std::tuple_element_t<I, std::tuple<T...>>, ToTensor> &&
             std::is_same_v<std::tuple_element_t<I + 1, std::tuple<T...>>, Normalize>;
    else
      return false;
  }

  template <std::size_t I>
  torch::Tensor run(torch::Tensor x) const {
    if constexpr (I == sizeof...(T)) {
      return x;
    } else {
      if constexpr (fused<I>())
        return run<I + 2>(detail::to_tensor_normalized(x, std::get<I + 1>(steps)));
      else
        return run<I + 1>(std::get<I>(steps)(x));
    }
  }
};

// The identity (ImageFolder's default transform).
struct Identity {
  torch::Tensor operator()(torch::Tensor x) const { return x; }
};

}  // namespace lightning::data::transforms
