// The main() of every test program: each test process (CTest runs one per test) works in
// a fresh temporary directory, set as its working directory and as TMPDIR, and removed
// when the process ends. A test that writes default checkpoints or logs (into ".") or a
// fixed name under temp_directory_path() therefore never shares it with a concurrent
// test or run, and never writes into the source or build tree.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "lightning-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("lightning tests: mkdtemp");
      std::exit(2);
    }
    path_ = pattern;
    std::filesystem::current_path(path_);
    ::setenv("TMPDIR", path_.c_str(), 1);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::current_path(path_.parent_path(), ignored);
    std::filesystem::remove_all(path_, ignored);
  }

 private:
  std::filesystem::path path_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const ScratchDirectory scratch;
  return RUN_ALL_TESTS();
}
