// The subprocess launcher (Lightning's _SubprocessScriptLauncher): one command starts N
// local ranks. The process that first calls fit with devices = N becomes local rank 0 and
// starts ranks 1..N-1 as copies of this program (same executable, arguments and working
// directory) with MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK and LOCAL_RANK set, so
// they reach the same fit and join it as ranks.
//
// Rank 0 supervises: the copies' error output passes through it, and when one of them
// fails (a non-zero exit, a signal), the job fails with that rank's error: rank 0's fit
// throws RankFailure with it (a collective with the dead rank fails at once), the other
// ranks are killed after `failure_timeout`, and if rank 0 has not ended by then it is
// ended with the message (exit status 1). A rank 0 that dies takes the copies with it
// (PR_SET_PDEATHSIG). SIGTERM and SIGINT to rank 0 reach every copy (core/interrupts.hpp);
// a copy that exits by such a signal (or returns 128 + it) while rank 0 stops for it
// is no failure.
// At exit rank 0 waits for the copies, and a failure among them makes its exit status 1.
// Linux only (/proc/self, prctl). Torch-free.
#pragma once

#include <lightning/core/interrupts.hpp>
#include <lightning/policies/cluster_environment.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace lightning {

// What rank 0's fit throws when another rank failed: that rank's error, not the error of
// the collective that saw it go.
class RankFailure : public std::runtime_error {
 public:
  RankFailure(std::int64_t failed_rank, const std::string& what)
      : std::runtime_error(what), rank(failed_rank) {}
  std::int64_t rank;
};

namespace detail {

// A TCP port nothing listens on now (Lightning's find_free_network_port).
inline int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "lightning: socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("lightning: found no free TCP port for MASTER_PORT");
  return ntohs(address.sin_port);
}

// Rank zero is about to host the rendezvous at `port`: another process listening there
// (another run, a leftover server) would make the TCPStore fail only after its timeout,
// with c10d's socket error. Checked the way the store binds (every interface, address
// reuse on), so a port in TIME_WAIT of our own earlier store still counts as free.
inline void require_free_port(int port, std::string_view source) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;  // no socket to test with: the store will say what is wrong
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool in_use =
      ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 && errno == EADDRINUSE;
  ::close(fd);
  if (in_use)
    throw std::runtime_error(
        "lightning: MASTER_PORT = " + std::to_string(port) + " (" + std::string(source) +
        ") is in use by another process, so rank 0 cannot host the rendezvous there. Unset "
        "MASTER_PORT to let the launcher pick a free port, or set it to a free one (another "
        "run on this machine may be using it)");
}

// This program's arguments as it was started (/proc/self/cmdline).
inline std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (std::size_t at = 0; at < all.size();) {
    const auto end = all.find('\0', at);
    args.push_back(all.substr(at, end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return args;
}

inline std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int s = WTERMSIG(status);
    const char* name = ::sigabbrev_np(s);
    return "was killed by signal " + std::to_string(s) +
           (name != nullptr ? " (SIG" + std::string(name) + ")" : std::string());
  }
  return "ended with wait status " + std::to_string(status);
}

// The process-wide launcher and supervisor: one per process, alive until exit.
class Supervisor {
 public:
  static Supervisor& instance() {
    static Supervisor supervisor;
    return supervisor;
  }
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  [[nodiscard]] bool launched() const {
    std::lock_guard lock(mutex_);
    return thread_.joinable();
  }

  // Starts local ranks 1..devices-1 of this node (and sets this process's variables to
  // local rank 0's). The copies are started by the supervising thread, which lives until
  // exit: their parent-death signal follows it.
  void launch(std::int64_t devices, std::int64_t num_nodes, std::int64_t node_rank,
              std::chrono::milliseconds failure_timeout) {
    std::unique_lock lock(mutex_);
    if (thread_.joinable()) return;
    failure_timeout_ = failure_timeout;
    if (!std::getenv("MASTER_ADDR")) ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    if (const char* given = std::getenv("MASTER_PORT"))
      require_free_port(std::atoi(given), "from the environment");  // before any copy starts
    else
      ::setenv("MASTER_PORT", std::to_string(free_tcp_port()).c_str(), 1);
    ::setenv("NODE_RANK", std::to_string(node_rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(devices * num_nodes).c_str(), 1);
    ::setenv("LOCAL_RANK", "0", 1);
    ::setenv("RANK", std::to_string(node_rank * devices).c_str(), 1);
    ::setenv("LIGHTNING_LAUNCHER_PID", std::to_string(::getpid()).c_str(), 1);
    ranks_.clear();
    for (std::int64_t r = 1; r < devices; ++r) {
      Rank rank;
      rank.local_rank = r;
      rank.global_rank = node_rank * devices + r;
      ranks_.push_back(std::move(rank));
    }
    started_ = false;
    start_error_.clear();
    thread_ = std::thread([this] { supervise(); });
    started_cv_.wait(lock, [&] { return started_; });
    if (!start_error_.empty()) throw std::runtime_error(start_error_);
  }

  // The first failure among the copies, if one failed within `wait` (rank 0's own fit
  // failed in a collective: the rank that caused it may still be on its way out).
  [[nodiscard]] std::optional<RankFailure> failure(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    changed_cv_.wait_for(lock, wait, [&] { return failure_.has_value() || all_exited(); });
    if (failure_) acknowledged_ = true;
    return failure_;
  }
  // Every rank stops for an agreed SIGTERM/SIGINT (called as soon as rank 0 knows): how
  // the copies exit then (a program may return 128 + the signal) is no failure, also when
  // one of them already did.
  void interrupted() {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
    forgive_interrupt_exit();
  }
  // Rank 0 failed on its own: the copies are stopped now (they would wait on it).
  void abandon() {
    std::lock_guard lock(mutex_);
    rank0_failed_ = true;
    for (auto& r : ranks_)
      if (!r.exited && r.pid > 0) ::kill(r.pid, SIGKILL);  // never kill(-1)
  }

  // At exit: waits for the copies, and reports a failure among them in the exit status.
  ~Supervisor() {
    std::unique_lock lock(mutex_);
    if (!thread_.joinable()) return;
    exiting_ = true;
    changed_cv_.wait(lock, [&] { return all_exited(); });
    forgive_interrupt_exit();
    const bool report = failure_ && !acknowledged_ && !rank0_failed_;
    lock.unlock();
    thread_.join();
    if (report) {
      std::fprintf(stderr, "%s\n", failure_->what());
      std::fflush(stderr);
      std::_Exit(1);
    }
  }

 private:
  Supervisor() = default;

  struct Rank {
    std::int64_t local_rank = 0, global_rank = 0;
    pid_t pid = -1;
    int error_fd = -1;  // its stderr, read here and passed on
    std::string error_tail;
    bool exited = false;
    int status = 0;
  };

  // An exit that a SIGTERM/SIGINT explains: killed by it, or 128 + it returned (as a
  // program that catches Interrupted does).
  static bool interrupt_exit(int status) {
    if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT;
    return WIFEXITED(status) &&
           (WEXITSTATUS(status) == 128 + SIGTERM || WEXITSTATUS(status) == 128 + SIGINT);
  }
  // A copy that ended by an interrupt before rank 0 learnt of it was no failure once rank
  // 0 knows (or got the signal itself). Called with mutex_ held.
  void forgive_interrupt_exit() {
    if (failure_ && failure_by_interrupt_ && !acknowledged_ &&
        (interrupted_ || received_interrupt() != 0)) {
      failure_.reset();
      failure_by_interrupt_ = false;
    }
  }

  [[nodiscard]] bool all_exited() const {
    for (const auto& r : ranks_)
      if (!r.exited) return false;
    return true;
  }

  std::string spawn(Rank& rank) {
    const auto args = own_arguments();
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      if (entry.starts_with("LOCAL_RANK=") || entry.starts_with("RANK=")) continue;
      env.push_back(entry);
    }
    env.push_back("LOCAL_RANK=" + std::to_string(rank.local_rank));
    env.push_back("RANK=" + std::to_string(rank.global_rank));
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
      return "lightning: pipe: " + std::string(std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    // Its own process group: a Ctrl-C in the terminal reaches rank 0 only, which passes it
    // on once (a rank that got it twice would take the second as "now").
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    const std::string exe = "/proc/self/exe";
    const int error =
        ::posix_spawn(&rank.pid, exe.c_str(), &actions, &attributes, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(pipe_fds[1]);
    if (error != 0) {
      ::close(pipe_fds[0]);
      return "lightning: could not start local rank " + std::to_string(rank.local_rank) + " (" +
             args.front() + "): " + std::strerror(error);
    }
    rank.error_fd = pipe_fds[0];
    forward_interrupts_to(rank.pid);
    return {};
  }

  void supervise() {
    {
      std::lock_guard lock(mutex_);
      for (auto& r : ranks_) {
        start_error_ = spawn(r);
        if (!start_error_.empty()) break;
      }
      if (!start_error_.empty())
        for (auto& r : ranks_)
          if (r.pid > 0) ::kill(r.pid, SIGKILL);
      started_ = true;
    }
    started_cv_.notify_all();
    // When the copies still running are killed (set by a failure); max: none pending.
    auto deadline = std::chrono::steady_clock::time_point::max();
    for (;;) {
      std::vector<pollfd> fds;
      {
        std::lock_guard lock(mutex_);
        for (const auto& r : ranks_)
          if (r.error_fd >= 0) fds.push_back({r.error_fd, POLLIN, 0});
      }
      if (!fds.empty())
        ::poll(fds.data(), fds.size(), 100);
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(100));

      std::unique_lock lock(mutex_);
      for (auto& r : ranks_) pass_on_errors(r);
      bool changed = false;
      for (auto& r : ranks_) {
        if (r.exited || r.pid <= 0) {
          r.exited = true;
          continue;
        }
        // Seen ended but not reaped yet (WNOWAIT): its pid cannot be another process's
        // until it stops being a signal's target, then it is reaped.
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(r.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            info.si_pid != r.pid)
          continue;
        stop_forwarding_interrupts_to(r.pid);
        if (::waitpid(r.pid, &r.status, 0) != r.pid) continue;
        drain(r);
        r.exited = changed = true;
        const bool ok = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
        if (!ok && !failure_ && !rank0_failed_ && !interrupted_) {
          failure_.emplace(r.global_rank, failure_message(r));
          failure_by_interrupt_ = interrupt_exit(r.status);
          deadline = std::chrono::steady_clock::now() + failure_timeout_;
        }
      }
      forgive_interrupt_exit();
      if (!failure_) deadline = std::chrono::steady_clock::time_point::max();
      if (changed) changed_cv_.notify_all();
      // Done when every copy has ended, unless a failure still waits for rank 0 to take it.
      if (all_exited() && !(failure_ && !acknowledged_ && !rank0_failed_ && !exiting_)) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        for (auto& r : ranks_)
          if (!r.exited && r.pid > 0) ::kill(r.pid, SIGKILL);  // never kill(-1)
        if (!acknowledged_ && !rank0_failed_ && !exiting_) {
          // Rank 0 did not see the failure in time (stuck, or busy outside fit).
          std::fprintf(stderr, "%s\nlightning: ending rank 0 after %lld ms\n", failure_->what(),
                       static_cast<long long>(failure_timeout_.count()));
          std::fflush(stderr);
          std::_Exit(1);
        }
        deadline = std::chrono::steady_clock::time_point::max();
      }
    }
    std::lock_guard lock(mutex_);
    for (auto& r : ranks_)
      if (r.error_fd >= 0) ::close(std::exchange(r.error_fd, -1));
  }

  // Passes what a rank wrote to stderr on to ours, keeping its last lines.
  void pass_on_errors(Rank& r) {
    if (r.error_fd < 0) return;
    pollfd p{r.error_fd, POLLIN, 0};
    // A bounded number of reads: a rank that writes without pause must not keep the
    // others (and their exits) from being looked at.
    for (int reads = 0; reads < 16 && ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
         ++reads) {
      char buffer[4096];
      const auto n = ::read(r.error_fd, buffer, sizeof buffer);
      if (n <= 0) {
        ::close(std::exchange(r.error_fd, -1));
        return;
      }
      [[maybe_unused]] const auto written = ::write(STDERR_FILENO, buffer, std::size_t(n));
      r.error_tail.append(buffer, std::size_t(n));
      if (r.error_tail.size() > tail_bytes) r.error_tail.erase(0, r.error_tail.size() - tail_bytes);
    }
  }
  // After its exit: what is left in its pipe (a process it started may still hold the
  // pipe open, so only what is there now).
  void drain(Rank& r) {
    for (int rounds = 0; r.error_fd >= 0 && rounds < 64; ++rounds) {
      pollfd p{r.error_fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      pass_on_errors(r);
    }
  }

  std::string failure_message(const Rank& r) const {
    std::string tail = r.error_tail;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    std::string m = "lightning: rank " + std::to_string(r.global_rank) + " (local rank " +
                    std::to_string(r.local_rank) + ", pid " + std::to_string(r.pid) + ") " +
                    describe_exit(r.status);
    m += tail.empty() ? std::string(" without an error message")
                      : "; the end of its error output:\n" + tail;
    return m;
  }

  static constexpr std::size_t tail_bytes = 2048;
  mutable std::mutex mutex_;
  std::condition_variable started_cv_, changed_cv_;
  std::thread thread_;
  std::vector<Rank> ranks_;
  std::chrono::milliseconds failure_timeout_{30000};
  std::optional<RankFailure> failure_;
  std::string start_error_;
  bool started_ = false, acknowledged_ = false, rank0_failed_ = false, exiting_ = false,
       interrupted_ = false;
  bool failure_by_interrupt_ = false;  // failure_ is an exit an interrupt would explain
};

// Called first thing by a rank this launcher started: it ends when rank 0 ends.
inline void follow_launcher() {
  const char* launcher = std::getenv("LIGHTNING_LAUNCHER_PID");
  if (launcher == nullptr || std::getenv("LOCAL_RANK") == nullptr ||
      std::string(std::getenv("LOCAL_RANK")) == "0")
    return;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (std::to_string(::getppid()) != launcher) std::_Exit(1);  // rank 0 is already gone
}

}  // namespace detail
}  // namespace lightning
