// OnExceptionCheckpoint: Lightning's callback that saves a checkpoint when fit fails
// (an exception, a Ctrl-C turned into one), so the run resumes from where it failed;
// a run that ends well removes it.
#pragma once

#include <lightning/core/bad_option.hpp>

#include <lightning/core/stage.hpp>

#include <exception>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lightning::callbacks {

struct OnExceptionCheckpointOptions {
  std::filesystem::path dirpath;          // where the file goes (required)
  std::string filename = "on_exception";  // without ".ckpt"
};

class OnExceptionCheckpoint {
 public:
  explicit OnExceptionCheckpoint(OnExceptionCheckpointOptions options) : o_(std::move(options)) {
    if (o_.filename.empty())
      throw_bad_option("OnExceptionCheckpointOptions", "filename", "\"\"",
                       "name the file (without .ckpt)");
    if (o_.dirpath.empty())
      throw_bad_option("OnExceptionCheckpointOptions", "dirpath", "\"\"", "say where to save");
  }

  [[nodiscard]] std::filesystem::path ckpt_path() const {
    return o_.dirpath / (o_.filename + ".ckpt");
  }

  // Saving must not replace the error being reported: a failure here is printed instead.
  template <class Trainer, class Module>
  void on_exception(Trainer& trainer, Module&, const std::exception&) {
    if (trainer.stage != Stage::fit || !trainer.can_save_checkpoint()) return;
    try {
      trainer.save_checkpoint(ckpt_path());
    } catch (const std::exception& e) {
      std::cerr << "lightning: OnExceptionCheckpoint could not save " << ckpt_path().string()
                << ": " << e.what() << '\n';
    }
  }

  template <class Trainer, class Module>
  void teardown(Trainer& trainer, Module&, Stage) {
    if (!trainer.is_global_zero()) return;
    std::error_code ec;
    std::filesystem::remove(ckpt_path(), ec);
  }

 private:
  OnExceptionCheckpointOptions o_;
};

}  // namespace lightning::callbacks
