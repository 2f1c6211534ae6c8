// ImageFolder: torchvision.datasets.ImageFolder's layout, root/<class>/**/<file>, as a
// map-style Dataset. Classes are the sorted names of root's folders (class_to_idx gives
// their indices); samples are every PNG or JPEG file under each class folder, folders
// walked in sorted order and files sorted within each, as torchvision lists them. An
// example is (transform(image), class index); images are RGB by default, as
// torchvision's loader makes them (ImageMode::gray for one channel).
//
// Link lightning::image (CMake): images are decoded with libpng and libjpeg-turbo.
#pragma once

#include <lightning/data/image.hpp>
#include <lightning/data/transforms.hpp>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace lightning::data {

struct ImageFolderOptions {
  ImageMode mode = ImageMode::rgb;
  // Lower-case file name endings taken as images (torchvision's list, less the formats
  // this reader does not decode).
  std::vector<std::string> extensions{".jpg", ".jpeg", ".png"};
};

template <class Transform = transforms::Identity>
class ImageFolder {
 public:
  explicit ImageFolder(std::filesystem::path root, Transform transform = {},
                       ImageFolderOptions options = {})
      : root_(std::move(root)), transform_(std::move(transform)), options_(std::move(options)) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(root_, ec))
      throw std::invalid_argument("lightning: ImageFolder root " + root_.string() +
                                  " is not a directory");
    for (const auto& e : fs::directory_iterator(root_))
      if (e.is_directory()) classes_.push_back(e.path().filename().string());
    std::sort(classes_.begin(), classes_.end());
    if (classes_.empty())
      throw std::invalid_argument("lightning: ImageFolder found no class folder in " +
                                  root_.string() + " (expected root/<class>/<image files>)");
    std::vector<std::string> empty;
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      class_to_idx_[classes_[c]] = static_cast<std::int64_t>(c);
      const auto before = samples_.size();
      add_class(root_ / classes_[c], static_cast<std::int64_t>(c));
      if (samples_.size() == before) empty.push_back(classes_[c]);
    }
    if (!empty.empty()) {
      std::string names, exts;
      for (const auto& n : empty) names += (names.empty() ? "" : ", ") + n;
      for (const auto& x : options_.extensions) exts += (exts.empty() ? "" : ", ") + x;
      throw std::invalid_argument("lightning: ImageFolder found no image file for the classes " +
                                  names + " under " + root_.string() +
                                  "; supported extensions: " + exts);
    }
  }

  [[nodiscard]] std::int64_t size() const noexcept {
    return static_cast<std::int64_t>(samples_.size());
  }
  [[nodiscard]] auto get(std::int64_t i) const {
    const auto& [path, target] = samples_[static_cast<std::size_t>(i)];
    return std::tuple{transform_(read_image(path, options_.mode)), target};
  }
  [[nodiscard]] std::string describe(std::int64_t i) const {
    return "file " + samples_[static_cast<std::size_t>(i)].first.string();
  }

  [[nodiscard]] const std::vector<std::string>& classes() const noexcept { return classes_; }
  [[nodiscard]] const std::map<std::string, std::int64_t>& class_to_idx() const noexcept {
    return class_to_idx_;
  }
  [[nodiscard]] const std::vector<std::pair<std::filesystem::path, std::int64_t>>& samples()
      const noexcept {
    return samples_;
  }
  [[nodiscard]] std::vector<std::int64_t> targets() const {
    std::vector<std::int64_t> t;
    t.reserve(samples_.size());
    for (const auto& s : samples_) t.push_back(s.second);
    return t;
  }
  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }

 private:
  bool is_image(const std::filesystem::path& p) const {
    std::string name = p.filename().string();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    for (const auto& ext : options_.extensions)
      if (name.size() >= ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0)
        return true;
    return false;
  }

  // sorted(os.walk(folder, followlinks=True)): folders by path, files by name in each.
  void add_class(const std::filesystem::path& folder, std::int64_t target) {
    namespace fs = std::filesystem;
    std::vector<fs::path> folders{folder};
    for (const auto& e :
         fs::recursive_directory_iterator(folder, fs::directory_options::follow_directory_symlink))
      if (e.is_directory()) folders.push_back(e.path());
    std::sort(folders.begin(), folders.end(),
              [](const fs::path& a, const fs::path& b) { return a.string() < b.string(); });
    for (const auto& dir : folders) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(dir))
        if (!e.is_directory() && is_image(e.path())) files.push_back(e.path());
      std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
        return a.filename().string() < b.filename().string();
      });
      for (auto& f : files) samples_.emplace_back(std::move(f), target);
    }
  }

  std::filesystem::path root_;
  Transform transform_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::map<std::string, std::int64_t> class_to_idx_;
  std::vector<std::pair<std::filesystem::path, std::int64_t>> samples_;
};

// Writes images (uint8 [N, C, H, W] or [N, H, W]) and their labels as an ImageFolder tree:
// root/<class_names[label]>/<index>.png (index zero-padded, so names sort in order).
// Folders are created; existing files are overwritten.
inline void write_image_folder(const std::filesystem::path& root, const torch::Tensor& images,
                               const torch::Tensor& labels,
                               const std::vector<std::string>& class_names) {
  if (images.dim() < 3 || labels.dim() != 1 || labels.size(0) != images.size(0))
    throw std::invalid_argument(
        "lightning: write_image_folder takes images [N, C, H, W] or "
        "[N, H, W] and labels [N]");
  const auto n = images.size(0);
  const auto digits = std::to_string(std::max<std::int64_t>(n - 1, 0)).size();
  const auto y = labels.to(torch::kLong).contiguous();
  for (const auto& name : class_names) std::filesystem::create_directories(root / name);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = y[i].item<std::int64_t>();
    if (label < 0 || label >= static_cast<std::int64_t>(class_names.size()))
      throw std::invalid_argument("lightning: write_image_folder: label " + std::to_string(label) +
                                  " of image " + std::to_string(i) + " has no class name");
    auto index = std::to_string(i);
    index.insert(0, digits - index.size(), '0');
    write_png(root / class_names[static_cast<std::size_t>(label)] / (index + ".png"), images[i]);
  }
}

}  // namespace lightning::data
