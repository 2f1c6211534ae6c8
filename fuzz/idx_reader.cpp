// libFuzzer target: read_idx on arbitrary bytes (plain; the seeds include gzip files).
// Every input must end in a tensor or a std::runtime_error naming the file, without
// asking for more memory than the file could hold; anything else is a finding.
#include <lightning/data/idx.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto path = std::filesystem::temp_directory_path() /
                           ("lightning_fuzz_idx_" + std::to_string(::getpid()) + ".idx");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    (void)lightning::data::read_idx(path);
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find(path.string()) == std::string::npos) {
      std::fprintf(stderr, "lightning fuzz: read_idx's error does not name the file: %s\n",
                   e.what());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lightning fuzz: read_idx threw %s, not runtime_error\n", e.what());
    std::abort();
  }
  return 0;
}
