// Writes checkpoints off the training thread. The caller hands over a snapshot (every
// tensor training can reach copied, so it can go on changing the originals); a writer
// thread pickles it and writes it durably (save_checkpoint_file: temporary file, fsync,
// rename). One save is in flight at a time: the next one waits for it. A failed write is raised,
// never lost: at the next check (the Trainer checks every step), at the next save, or at wait().
#pragma once

#include <lightning/core/checkpoint_dict.hpp>
#include <lightning/fabric/checkpoint_io.hpp>

#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace lightning {

namespace detail {
// Whether nothing but this one reference can reach the tensor's data: no other handle,
// no view, no other tensor on its storage. Training cannot change such a tensor.
inline bool only_reference(const at::Tensor& t) {
  return t.use_count() == 1 && t.has_storage() && t.storage().use_count() == 1;
}
}  // namespace detail

// A copy of a checkpoint's content that training cannot change: every tensor that
// anything else can reach is copied. Those only the content holds (module_state_dict's
// copies, a generator's state, a fresh lr tensor) are taken as they are.
inline c10::IValue checkpoint_snapshot(const c10::IValue& value) {
  if (value.isTensor()) {
    const auto& t = value.toTensor();
    return !t.defined() || detail::only_reference(t) ? t : t.detach().clone();
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

// One writer thread for the life of the writer (started at the first save): handing a
// save over costs a wake-up, not a thread.
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
    if (thread_.joinable()) {
      {
        std::lock_guard lock(mutex_);
        stop_ = true;
      }
      changed_.notify_all();
      thread_.join();
    }
  }

  // Starts writing `content` (a snapshot: see checkpoint_snapshot) to `path`, after the
  // save in flight has finished (its error, if any, is raised here instead).
  void submit(std::filesystem::path path, CheckpointDict content) {
    wait();
    // The thread first: if it cannot start (EAGAIN under a pids limit), no job is left
    // waiting for a writer that never comes, and wait() and the destructor return.
    if (!thread_.joinable()) {
      try {
        thread_ = std::thread([this] { run(); });
      } catch (const std::system_error& e) {
        throw std::runtime_error("lightning: cannot start the checkpoint writer thread to save " +
                                 path.string() + ": " + e.what() +
                                 " (a process or thread limit: see ulimit -u, or the "
                                 "pids limit of the container)");
      }
    }
    {
      std::lock_guard lock(mutex_);
      job_.emplace(Job{std::move(path), std::move(content)});
    }
    changed_.notify_all();
  }

  // Removes `path` once the latest write is committed (now, when it already is): a
  // checkpoint being replaced is never deleted before its successor is on disk, and
  // stays if its successor failed.
  void remove_after_write(std::filesystem::path path) {
    {
      std::lock_guard lock(mutex_);
      if (job_) {
        removals_.push_back(std::move(path));
        return;
      }
      if (!last_write_ok_) return;
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
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !job_; });
    failed_.store(false, std::memory_order_relaxed);
    if (auto error = std::exchange(error_, nullptr)) std::rethrow_exception(error);
  }

 private:
  struct Job {
    std::filesystem::path path;
    CheckpointDict content;
  };

  void run() {
    // Idle time is enough for a write (one per epoch or so); on a machine with no core to
    // spare, the training threads keep theirs. The file is the same, only written later.
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return stop_ || job_; });
      if (!job_) return;  // stop_, nothing left
      auto& job = *job_;
      lock.unlock();
      std::exception_ptr error;
      try {
        save_checkpoint_file(job.path, job.content);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      // A file the new one replaces goes only once the new one is committed; if the
      // write failed, it stays.
      auto removals = std::exchange(removals_, {});
      last_write_ok_ = !error;
      if (error) {
        error_ = error;
        removals.clear();
        failed_.store(true, std::memory_order_release);
      }
      job_.reset();
      lock.unlock();
      for (const auto& p : removals) {
        std::error_code ignored;
        std::filesystem::remove(p, ignored);
      }
      changed_.notify_all();
      lock.lock();
    }
  }

  std::mutex mutex_;  // guards job_, removals_, error_, stop_, last_write_ok_
  std::condition_variable changed_;
  std::optional<Job> job_;  // the save in flight
  std::vector<std::filesystem::path> removals_;
  std::exception_ptr error_;
  bool stop_ = false;
  bool last_write_ok_ = true;
  std::atomic<bool> failed_{false};
  std::thread thread_;  // last: started after the members it uses
};

}  // namespace lightning
