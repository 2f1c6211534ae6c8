// SIGTERM and SIGINT during fit: the handler only records the signal (and passes it on
// to the ranks this process launched), and the training loop acts on it at the next
// step boundary, where every rank agrees, saves a checkpoint and ends fit with
// `Interrupted`. Lightning raises SIGTERMException at the step boundary the same way
// (rank zero's flag broadcast each step) and turns Ctrl-C into a graceful shutdown.
// A second signal while the first waits for its step boundary ends the process at once
// (the default action), as a second Ctrl-C is expected to; the copy of the first that a
// launched rank's launcher passes on is no second signal. Torch-free.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdlib>
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
inline std::atomic<int> received = 0;  // the first signal's number, 0: none
// Where the signals came from so far: a process gets one signal directly (a terminal, kill,
// pkill, systemd) and, as a launched rank, the same one again passed on by its launcher
// when both were signalled at once (pkill -f, a control group's stop). Only a repeat from
// the same source is a second signal.
inline constexpr int from_elsewhere = 1, from_launcher = 2;
inline std::atomic<int> sources = 0;
inline std::atomic<pid_t> launcher = 0;  // the process that passes signals on to this one
// Processes a signal is passed on to (the ranks this process launched).
inline constexpr std::size_t max_forwarded = 256;
inline std::atomic<pid_t> forward_to[max_forwarded] = {};
inline std::atomic<std::size_t> forward_count = 0;
static_assert(std::atomic<pid_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
                  std::atomic<std::size_t>::is_always_lock_free,
              "a signal handler may only touch lock-free atomics");

inline void forward(int signal_number) noexcept {
  const auto n = forward_count.load();
  for (std::size_t i = 0; i < n && i < max_forwarded; ++i)
    if (const pid_t pid = forward_to[i].load(); pid > 0) ::kill(pid, signal_number);
}

// Async-signal-safe: kill, signal and raise only; errno is the interrupted code's, so it
// is given back as it was.
inline void handle(int signal_number, siginfo_t* info, void*) noexcept {
  const int saved_errno = errno;
  forward(signal_number);
  const pid_t from = launcher.load();
  const bool passed_on =
      info != nullptr && info->si_code == SI_USER && from > 0 && info->si_pid == from;
  const int source = passed_on ? from_launcher : from_elsewhere;
  if ((sources.fetch_or(source) & source) != 0) {  // the second: the default action, now
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
    errno = saved_errno;
    return;
  }
  int none = 0;
  received.compare_exchange_strong(none, signal_number);
  errno = saved_errno;
}
}  // namespace detail::interrupts

// The signal fit was asked to stop by, 0 when none came.
[[nodiscard]] inline int received_interrupt() noexcept {
  return detail::interrupts::received.load();
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
    using namespace detail::interrupts;
    received = 0;
    sources = 0;
    launcher = launcher_pid();
    struct sigaction action {};
    action.sa_sigaction = handle;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_SIGINFO;
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
  // The launcher of this rank (subprocess_launcher.hpp sets LIGHTNING_LAUNCHER_PID), 0 for a
  // process that launched itself or none.
  static pid_t launcher_pid() {
    const char* text = std::getenv("LIGHTNING_LAUNCHER_PID");
    if (text == nullptr) return 0;
    char* end = nullptr;
    const long pid = std::strtol(text, &end, 10);
    return end != text && *end == '\0' && pid > 0 && pid != ::getpid() ? static_cast<pid_t>(pid)
                                                                       : 0;
  }

  struct sigaction previous_term_ {};
  struct sigaction previous_int_ {};
  bool installed_ = false;
};

}  // namespace lightning
