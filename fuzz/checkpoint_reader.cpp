// libFuzzer target: load_checkpoint_file on arbitrary bytes. Every input must end in a
// loaded checkpoint or a lightning::CheckpointError naming the file; any other exception,
// a crash or an out-of-bounds access (AddressSanitizer) is a finding. Seeds: fuzz/corpus/
// checkpoint_reader (a lightning-cpp checkpoint, torch.save files, a crafted one, a
// PyTorch Lightning 2.6 checkpoint, AttributeDict/numpy/torch.Size/Counter values, and a
// global outside the allow-list).
#include <lightning/fabric/checkpoint_io.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace {
const std::filesystem::path& input_file() {
  static const auto path = std::filesystem::temp_directory_path() /
                           ("lightning_fuzz_checkpoint_" + std::to_string(::getpid()) + ".ckpt");
  return path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(input_file(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const auto content = lightning::load_checkpoint_file(input_file());
    (void)content.size();
  } catch (const lightning::CheckpointError&) {
    // the expected answer to a bad file
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lightning fuzz: load_checkpoint_file threw %s, not CheckpointError\n",
                 e.what());
    std::abort();
  }
  return 0;
}
