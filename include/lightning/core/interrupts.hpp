// SIGTERM and SIGINT during fit: the handler only records the signal (and passes it on
// to the ranks this process launched), and the training loop acts on it at the next
// step boundary, where every rank agrees, saves a checkpoint and ends fit with
// `Interrupted`. Lightning raises SIGTERMException at the step boundary the same way
// (rank zero's flag broadcast each step) and turns Ctrl-C into a graceful shutdown.
// A second signal while the first waits for its step boundary ends the process at once
// (the default action), as a second Ctrl-C is expected to. Torch-free.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace lightning {

// What fit throws after a SIGTERM or SIGINT: the run stopped at a step boundary and its
// state is in `checkpoint`; fit(model, loader, CheckpointPath{e.checkpoint}) resumes it.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal_number, std::filesystem::path checkpoint_path)
      : std::runtime_error(message(signal_number, checkpoint_path)),
        signal(signal_number),
        checkpoint(std::move(checkpoint_path)) {}
  int signal;
  std::filesystem::path checkpoint;

 private:
  static std::string message(int signal_number, const std::filesystem::path& path) {
    return std::string("lightning: fit stopped by ") +
           (signal_number == SIGINT ? "SIGINT" : "SIGTERM") +
           " at a step boundary; the run is saved in " + path.string() +
           " (resume with CheckpointPath{\"" + path.string() + "\"})";
  }
};

namespace detail::interrupts {
inline volatile std::sig_atomic_t received = 0;  // the first signal's number, 0: none
// Processes a signal is passed on to (the ranks this process launched).
inline constexpr std::size_t max_forwarded = 256;
inline std::atomic<pid_t> forward_to[max_forwarded] = {};
inline std::atomic<std::size_t> forward_count = 0;
static_assert(std::atomic<pid_t>::is_always_lock_free &&
                  std::atomic<std::size_t>::is_always_lock_free,
              "a signal handler may only touch lock-free atomics");

inline void forward(int signal_number) noexcept {
  const auto n = forward_count.load();
  for (std::size_t i = 0; i < n && i < max_forwarded; ++i)
    if (const pid_t pid = forward_to[i].load(); pid > 0) ::kill(pid, signal_number);
}

// Async-signal-safe: kill, signal and raise only.
inline void handle(int signal_number) noexcept {
  forward(signal_number);
  if (received != 0) {  // the second: the default action, now
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
    return;
  }
  received = signal_number;
}
}  // namespace detail::interrupts

// The signal fit was asked to stop by, 0 when none came.
[[nodiscard]] inline int received_interrupt() noexcept {
  return detail::interrupts::received;
}

// Passes SIGTERM and SIGINT this process receives on to `pid` (a launched rank), also
// outside fit; returns false when the table is full.
inline bool forward_interrupts_to(pid_t pid) noexcept {
  using namespace detail::interrupts;
  const auto i = forward_count.fetch_add(1);
  if (i >= max_forwarded) return false;
  forward_to[i].store(pid);
  return true;
}
inline void stop_forwarding_interrupts_to(pid_t pid) noexcept {
  using namespace detail::interrupts;
  for (auto& slot : forward_to) {
    pid_t expected = pid;
    slot.compare_exchange_strong(expected, 0);
  }
}

// RAII: fit's handlers for SIGTERM and SIGINT, the previous ones restored at its end. A
// signal that came before is forgotten; one that comes while the guard lives is kept
// until the next guard, so the loop can still read it after the guard closed.
class InterruptHandlers {
 public:
  InterruptHandlers() {
    detail::interrupts::received = 0;
    struct sigaction action {};
    action.sa_handler = detail::interrupts::handle;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    installed_ = ::sigaction(SIGTERM, &action, &previous_term_) == 0 &&
                 ::sigaction(SIGINT, &action, &previous_int_) == 0;
  }
  InterruptHandlers(const InterruptHandlers&) = delete;
  InterruptHandlers& operator=(const InterruptHandlers&) = delete;
  ~InterruptHandlers() {
    if (!installed_) return;
    ::sigaction(SIGTERM, &previous_term_, nullptr);
    ::sigaction(SIGINT, &previous_int_, nullptr);
  }

 private:
  struct sigaction previous_term_ {};
  struct sigaction previous_int_ {};
  bool installed_ = false;
};

}  // namespace lightning
