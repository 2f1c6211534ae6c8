// core/interrupts.hpp: fit's SIGTERM/SIGINT handlers record the signal and pass it on to
// launched ranks; the previous handlers come back; a second signal takes the default
// action at once.
#include <gtest/gtest.h>

#include <lightning/core/interrupts.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace L = lightning;

namespace {
volatile std::sig_atomic_t own_handler_calls = 0;
void own_handler(int) {
  own_handler_calls = own_handler_calls + 1;
}
}  // namespace

TEST(InterruptHandlers, RecordTheSignalAndRestoreThePreviousHandlers) {
  struct sigaction mine {};
  mine.sa_handler = own_handler;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  ::sigaction(SIGTERM, &mine, &before);
  {
    const L::InterruptHandlers handlers;
    EXPECT_EQ(L::received_interrupt(), 0);
    ::raise(SIGTERM);
    EXPECT_EQ(L::received_interrupt(), SIGTERM);
    EXPECT_EQ(own_handler_calls, 0);  // fit's handler, not the program's, while fit runs
  }
  EXPECT_EQ(L::received_interrupt(), SIGTERM);  // still readable after the guard closed
  ::raise(SIGTERM);
  EXPECT_EQ(own_handler_calls, 1);  // the program's handler is back
  {
    const L::InterruptHandlers handlers;
    EXPECT_EQ(L::received_interrupt(), 0);  // a new fit forgets the old signal
  }
  ::sigaction(SIGTERM, &before, nullptr);
}

TEST(InterruptHandlers, ASecondSignalEndsTheProcessAtOnce) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const L::InterruptHandlers handlers;
    ::raise(SIGINT);  // recorded
    ::raise(SIGINT);  // the default action: the process ends here
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST(InterruptHandlers, PassTheSignalOnToLaunchedRanks) {
  const pid_t rank = ::fork();
  ASSERT_GE(rank, 0);
  if (rank == 0) {
    ::pause();  // ends by the default action of the signal passed on
    ::_exit(0);
  }
  ASSERT_TRUE(L::forward_interrupts_to(rank));
  {
    const L::InterruptHandlers handlers;
    ::raise(SIGTERM);
  }
  int status = 0;
  ::waitpid(rank, &status, 0);
  L::stop_forwarding_interrupts_to(rank);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
}

namespace {
// Runs `body` in a child that plays a launched rank of this process (its launcher), and
// returns how the child ended: its exit status, or 128 + the signal that killed it.
template <class Body>
int as_launched_rank(Body&& body) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    ::setenv("LIGHTNING_LAUNCHER_PID", std::to_string(::getppid()).c_str(), 1);
    const L::InterruptHandlers handlers;
    ::_exit(body(ready[1]));
  }
  ::close(ready[1]);
  char byte = 0;
  while (::read(ready[0], &byte, 1) == 1) ::kill(child, SIGTERM);  // the launcher passes it on
  ::close(ready[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits (bounded) until the launcher's copy of the signal has arrived.
bool wait_for_the_launchers_copy() {
  for (int i = 0; i < 5000; ++i) {
    if ((L::detail::interrupts::sources.load() & L::detail::interrupts::from_launcher) != 0)
      return true;
    ::usleep(1000);
  }
  return false;
}
}  // namespace

// A launched rank that gets SIGTERM directly (pkill, a control group's stop) and again
// from its launcher, in either order, has been asked to stop once: it records SIGTERM
// and goes on to the step boundary. Two from the same source are still "now".
TEST(InterruptHandlers, TheLaunchersCopyOfASignalIsNoSecondSignal) {
  const auto ask_launcher = [](int fd) { return ::write(fd, "x", 1) == 1; };
  // Directly first (the process signals itself), then the launcher's copy.
  EXPECT_EQ(as_launched_rank([&](int fd) {
              ::raise(SIGTERM);
              if (!ask_launcher(fd) || !wait_for_the_launchers_copy()) return 2;
              return L::received_interrupt() == SIGTERM ? 0 : 3;
            }),
            0);
  // The launcher's copy first, then directly.
  EXPECT_EQ(as_launched_rank([&](int fd) {
              if (!ask_launcher(fd) || !wait_for_the_launchers_copy()) return 2;
              ::raise(SIGTERM);
              return L::received_interrupt() == SIGTERM ? 0 : 3;
            }),
            0);
  // Twice from the launcher (a second Ctrl-C at the launcher's terminal): the default action.
  EXPECT_EQ(as_launched_rank([&](int fd) {
              if (!ask_launcher(fd) || !wait_for_the_launchers_copy()) return 2;
              if (!ask_launcher(fd)) return 2;
              for (int i = 0; i < 5000; ++i) ::usleep(1000);  // ended by the second
              return 4;
            }),
            128 + SIGTERM);
  // Twice directly: the default action.
  EXPECT_EQ(as_launched_rank([&](int) {
              ::raise(SIGTERM);
              ::raise(SIGTERM);
              return 4;
            }),
            128 + SIGTERM);
}

// The handler leaves errno as the interrupted code had it (it calls kill, which may fail).
TEST(InterruptHandlers, TheHandlerKeepsErrno) {
  const pid_t gone = ::fork();
  ASSERT_GE(gone, 0);
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  ASSERT_TRUE(L::forward_interrupts_to(gone));  // kill(gone) fails with ESRCH in the handler
  {
    const L::InterruptHandlers handlers;
    errno = EDOM;
    ::raise(SIGTERM);
    EXPECT_EQ(errno, EDOM);
  }
  L::stop_forwarding_interrupts_to(gone);
}
