// ImageFolder, image decoding and the transforms, against torchvision on the same files
// (tests/python/torchvision_images.py writes them and torchvision's outputs).
#include <gtest/gtest.h>

#include <lightning/data/data_loader.hpp>
#include <lightning/data/image.hpp>
#include <lightning/data/image_folder.hpp>
#include <lightning/data/transforms.hpp>

#include "support/expect.hpp"
#include "support/python.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace D = lightning::data;
namespace T = lightning::data::transforms;

namespace {

struct TorchvisionRun {
  std::filesystem::path root;  // the image tree
  std::vector<std::string> classes;
  std::vector<std::pair<std::string, std::int64_t>> samples;
  std::map<std::pair<std::string, std::int64_t>, torch::Tensor> outputs;
};

// Runs the peer in the test's own folder: the image tree and torchvision's outputs.
TorchvisionRun torchvision_run() {
  return [] {
    TorchvisionRun r;
    const auto dir = std::filesystem::absolute("torchvision_run");
    r.root = dir / "images";
    std::filesystem::create_directories(dir);
    const auto here = std::filesystem::current_path();
    std::filesystem::current_path(dir);
    const auto result = lightning::testing::run_python(
        {lightning::testing::peer_script("torchvision_images.py"), (dir / "images").string()});
    if (result.status != 0) {
      std::filesystem::current_path(here);
      throw std::runtime_error("the torchvision peer failed:\n" + result.errors);
    }
    for (const auto& line : lightning::testing::lines_of(result.output)) {
      std::istringstream in(line);
      std::string kind;
      in >> kind;
      if (kind == "classes") {
        for (std::string c; in >> c;) r.classes.push_back(c);
      } else if (kind == "sample") {
        std::string path;
        std::int64_t target = 0;
        in >> path >> target;
        r.samples.emplace_back(path, target);
      } else if (kind == "out") {
        std::string name;
        std::int64_t index = 0;
        std::vector<std::int64_t> shape;
        in >> name >> index;
        for (std::int64_t s; in >> s;) shape.push_back(s);
        auto t = torch::empty(shape, torch::kFloat);
        std::ifstream bin(dir / ("out_" + name + "_" + std::to_string(index) + ".bin"),
                          std::ios::binary);
        bin.read(reinterpret_cast<char*>(t.data_ptr<float>()),
                 static_cast<std::streamsize>(t.numel() * 4));
        r.outputs[{name, index}] = t;
      }
    }
    std::filesystem::current_path(here);
    return r;
  }();
}

// Largest absolute difference, or infinity when the shapes differ.
double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(ImageFolder, ListsClassesAndSamplesAsTorchvision) {
  const auto tv = torchvision_run();
  const auto& images_root = tv.root;
  D::ImageFolder folder(images_root);
  EXPECT_EQ(folder.classes(), tv.classes);
  EXPECT_EQ(folder.class_to_idx().at("cat"), 1);
  ASSERT_EQ(folder.size(), static_cast<std::int64_t>(tv.samples.size()));
  for (std::size_t i = 0; i < tv.samples.size(); ++i) {
    EXPECT_EQ(std::filesystem::relative(folder.samples()[i].first, images_root).string(),
              tv.samples[i].first);
    EXPECT_EQ(folder.samples()[i].second, tv.samples[i].second);
  }
}

TEST(ImageFolder, DecodesPngAndJpegAsPillowInRgbAndGray) {
  const auto tv = torchvision_run();
  const auto& images_root = tv.root;
  D::ImageFolder rgb(images_root, T::ToTensor{});
  D::ImageFolder gray(images_root, T::ToTensor{}, {.mode = D::ImageMode::gray});
  for (std::int64_t i = 0; i < rgb.size(); ++i) {
    const auto& name = tv.samples[static_cast<std::size_t>(i)].first;
    auto [image, target] = rgb.get(i);
    EXPECT_EQ(target, tv.samples[static_cast<std::size_t>(i)].second);
    EXPECT_EQ(max_diff(image, tv.outputs.at({"rgb", i})), 0.0) << name;
    EXPECT_EQ(max_diff(std::get<0>(gray.get(i)), tv.outputs.at({"gray", i})), 0.0) << name;
  }
  // Unchanged mode keeps the file's channels (a gray PNG has one).
  const auto gray_png = D::read_image(images_root / "cat" / "gray.png");
  EXPECT_EQ(gray_png.sizes(), (torch::IntArrayRef{1, 27, 19}));
  EXPECT_EQ(gray_png.scalar_type(), torch::kUInt8);
}

TEST(Transforms, DeterministicOnesEqualTorchvision) {
  const auto tv = torchvision_run();
  const auto& images_root = tv.root;
  const double step = 1.0 / 255 + 1e-6;  // one 8-bit step, for resampling
  const T::Normalize norm({0.5, 0.4, 0.3}, {0.2, 0.25, 0.3});
  const std::vector<std::tuple<std::string, std::function<torch::Tensor(torch::Tensor)>, double>>
      cases{
          {"resize20", T::Compose(T::Resize(20), T::ToTensor{}), step},
          {"resize13x17", T::Compose(T::Resize({13, 17}), T::ToTensor{}), step},
          {"resize45", T::Compose(T::Resize(45), T::ToTensor{}), step},
          {"center10", T::Compose(T::CenterCrop(10), T::ToTensor{}), 0.0},
          {"center40x15", T::Compose(T::CenterCrop({40, 15}), T::ToTensor{}), 0.0},
          {"norm", T::Compose(T::ToTensor{}, norm), 1e-6},
      };
  D::ImageFolder folder(images_root);
  for (std::int64_t i = 0; i < folder.size(); ++i) {
    // Compose fuses ToTensor + Normalize into one pass: the same bits as the two apart.
    const auto image = std::get<0>(folder.get(i));
    EXPECT_TRUE(torch::equal(T::Compose(T::ToTensor{}, norm)(image), norm(T::ToTensor{}(image))));
    const T::Normalize one({0.3}, {0.7});
    EXPECT_TRUE(torch::equal(T::Compose(T::ToTensor{}, one)(image), one(T::ToTensor{}(image))));
  }
  for (const auto& [name, transform, tolerance] : cases)
    for (std::int64_t i = 0; i < folder.size(); ++i) {
      const auto out = transform(std::get<0>(folder.get(i)));
      EXPECT_LE(max_diff(out, tv.outputs.at({name, i})), tolerance)
          << name << " of " << tv.samples[static_cast<std::size_t>(i)].first;
    }
}

TEST(Transforms, RandomOnesDrawAsTorchvisionFromTheSameGenerator) {
  const auto tv = torchvision_run();
  const auto& images_root = tv.root;
  const double step = 1.0 / 255 + 1e-6;
  const T::Normalize norm({0.5, 0.4, 0.3}, {0.2, 0.25, 0.3});
  const std::vector<std::tuple<std::string, std::function<torch::Tensor(torch::Tensor)>, double>>
      cases{
          {"rcrop", T::Compose(T::RandomCrop(16, {.padding = 4}), T::ToTensor{}), 0.0},
          {"flip", T::Compose(T::RandomHorizontalFlip{}, T::ToTensor{}), 0.0},
          {"rrc", T::Compose(T::RandomResizedCrop(12), T::ToTensor{}), step},
          {"compose",
           T::Compose(T::RandomResizedCrop(12, {.scale = {0.5, 1.0}}), T::RandomHorizontalFlip{},
                      T::ToTensor{}, norm),
           step / 0.2},
      };
  D::ImageFolder folder(images_root);
  for (const auto& [name, transform, tolerance] : cases) {
    int flipped = 0;
    for (std::int64_t i = 0; i < folder.size(); ++i) {
      auto image = std::get<0>(folder.get(i));
      torch::manual_seed(100 + static_cast<std::uint64_t>(i));  // no worker: the default generator
      const auto out = transform(image);
      EXPECT_LE(max_diff(out, tv.outputs.at({name, i})), tolerance)
          << name << " of " << tv.samples[static_cast<std::size_t>(i)].first;
      if (name == "flip" && !torch::equal(out, T::ToTensor{}(image))) {
        ++flipped;
      }
    }
    if (name == "flip") {
      EXPECT_GT(flipped, 0);
    }
  }
}

TEST(ImageFolder, ABrokenFileIsALoaderErrorNamingIt) {
  const auto root = std::filesystem::absolute("broken");
  std::filesystem::create_directories(root / "a");
  D::write_png(root / "a" / "good.png", torch::zeros({1, 4, 4}, torch::kUInt8));
  std::ofstream(root / "a" / "truncated.png") << "\x89PNG\r\n\x1a\n garbage";
  D::DataLoader loader(D::ImageFolder(root, T::ToTensor{}), {.batch_size = 2, .num_workers = 2});
  try {
    for (auto& b : loader) (void)b;
    FAIL() << "expected a DataLoaderError";
  } catch (const D::DataLoaderError& e) {
    const std::string what = e.what();
    EXPECT_NE(
        what.find("could not load example 1 (file " + (root / "a" / "truncated.png").string()),
        std::string::npos)
        << what;
    EXPECT_NE(what.find("libpng"), std::string::npos) << what;
  }
  lightning::testing::expect_invalid_argument([&] { D::ImageFolder empty(root / "a"); },
                                              "no class folder");
  std::filesystem::create_directories(root / "b");
  lightning::testing::expect_invalid_argument([&] { D::ImageFolder none(root); },
                                              "no image file for the classes b");
}

TEST(ImageFolder, ATruncatedJpegIsAnErrorNotAFilledInImage) {
  const auto tv = torchvision_run();
  const auto whole = tv.root / "cat" / "nested" / "deeper" / "photo.jpg";
  std::ifstream in(whole, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream("truncated.jpg", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  lightning::testing::expect_error<D::ImageError>([] { (void)D::read_image("truncated.jpg"); },
                                                  "libjpeg");
  EXPECT_EQ(D::read_image(whole).size(0), 3);
}

TEST(ImageFolder, WritePngRoundTripsGrayAndRgb) {
  for (std::int64_t c : {1, 3}) {
    auto image = torch::randint(0, 256, {c, 7, 9}, torch::kUInt8);
    D::write_png("round.png", image);
    EXPECT_TRUE(torch::equal(D::read_image("round.png"), image)) << c << " channels";
  }
}
