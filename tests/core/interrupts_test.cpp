// core/interrupts.hpp: fit's SIGTERM/SIGINT handlers record the signal and pass it on to
// launched ranks; the previous handlers come back; a second signal takes the default
// action at once.
#include <gtest/gtest.h>

#include <lightning/core/interrupts.hpp>

#include <sys/wait.h>
#include <unistd.h>

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
