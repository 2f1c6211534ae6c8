// Writes checkpoints off the training thread. The caller hands over a snapshot (every
// tensor copied, so training can go on changing the originals); a writer thread pickles
// it and writes it durably (save_checkpoint_file: temporary file, fsync, rename). One
// save is in flight at a time: the next one waits for it. A failed write is raised, never
// lost: at the next check (the Trainer checks every step), at the next save, or at wait().
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/fabric/checkpoint_io.hpp>

#include <torch/torch.h>

#include <atomic>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace lightning {

// A copy of a checkpoint's content that shares no tensor storage with the original.
inline c10::IValue checkpoint_snapshot(const c10::IValue& value) {
  if (value.isTensor()) {
    const auto& t = value.toTensor();
    return t.defined() ? t.detach().clone() : t;
  }
  if (value.isGenericDict()) {
    auto out =
        c10::impl::GenericDict(value.toGenericDict().keyType(), value.toGenericDict().valueType());
    for (const auto& kv : value.toGenericDict())
      out.insert(kv.key(), checkpoint_snapshot(kv.value()));
    return out;
  }
  if (value.isList()) {
    c10::impl::GenericList out(value.toList().elementType());
    for (const auto& e : value.toListRef()) out.push_back(checkpoint_snapshot(e));
    return out;
  }
  if (value.isTuple()) {
    std::vector<c10::IValue> elements;
    for (const auto& e : value.toTupleRef().elements()) elements.push_back(checkpoint_snapshot(e));
    return c10::ivalue::Tuple::create(std::move(elements));
  }
  return value;  // numbers, strings, None: immutable
}

class BackgroundCheckpointWriter {
 public:
  BackgroundCheckpointWriter() = default;
  BackgroundCheckpointWriter(const BackgroundCheckpointWriter&) = delete;
  BackgroundCheckpointWriter& operator=(const BackgroundCheckpointWriter&) = delete;
  // A write still in flight is finished; its error can no longer be raised, so it is
  // printed.
  ~BackgroundCheckpointWriter() {
    try {
      wait();
    } catch (const std::exception& error) {
      std::cerr << "lightning: a checkpoint written in the background failed: " << error.what()
                << '\n';
    }
  }

  // Starts writing `content` (a snapshot: see checkpoint_snapshot) to `path`, after the
  // save in flight has finished (its error, if any, is raised here instead).
  void submit(std::filesystem::path path, CheckpointDict content) {
    wait();
    failed_.store(false, std::memory_order_relaxed);
    writing_ = true;
    thread_ = std::thread([this, path = std::move(path), content = std::move(content)] {
      bool saved = false;
      try {
        save_checkpoint_file(path, content);
        saved = true;
      } catch (...) {
        error_ = std::current_exception();
        failed_.store(true, std::memory_order_release);
      }
      std::vector<std::filesystem::path> removals;
      {
        std::lock_guard lock(mutex_);
        writing_ = false;
        removals.swap(removals_);
      }
      // A file the new one replaces goes only once the new one is committed; if the
      // write failed, it stays.
      if (saved)
        for (const auto& p : removals) {
          std::error_code ignored;
          std::filesystem::remove(p, ignored);
        }
    });
  }

  // Removes `path` once the write in flight is committed (now, when none is): a
  // checkpoint being replaced is never deleted before its successor is on disk.
  void remove_after_write(std::filesystem::path path) {
    {
      std::lock_guard lock(mutex_);
      if (writing_) {
        removals_.push_back(std::move(path));
        return;
      }
    }
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }

  // Raises the error of a finished write; a relaxed atomic load when there is none.
  void raise_if_failed() {
    if (failed_.load(std::memory_order_acquire)) wait();
  }

  // Waits for the write in flight and raises its error.
  void wait() {
    if (thread_.joinable()) thread_.join();
    failed_.store(false, std::memory_order_relaxed);
    if (auto error = std::exchange(error_, nullptr)) std::rethrow_exception(error);
  }

  [[nodiscard]] bool in_flight() const noexcept { return thread_.joinable(); }

 private:
  std::thread thread_;
  std::mutex mutex_;  // guards writing_ and removals_, shared with the writer thread
  bool writing_ = false;
  std::vector<std::filesystem::path> removals_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
};

}  // namespace lightning
