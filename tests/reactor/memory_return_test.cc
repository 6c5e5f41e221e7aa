// A loop returns the memory a burst left behind even when its buffer pool gives the burst's
// blocks back later than the allocator was last trimmed: the pool's trim counts as work, so the
// next quiet check trims the allocator again (EventLoop::ReturnFreeMemory). Short periods make
// the sequence quick; the order of events, not the time, is what is checked.

#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/event_loop.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;
using test::WaitUntil;

TEST(MemoryReturnTest, BlocksTrimmedAfterTheLastAllocatorTrimAreReturnedToo) {
  std::shared_ptr<Service> echo = NewEchoService();
  EventLoopOptions options;
  options.backend = PollerBackend::kEpoll;
  options.services = {echo.get()};
  options.buffer_trim_period = absl::Milliseconds(400);
  options.memory_check_period = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<EventLoop>> created = EventLoop::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  EventLoop& loop = **created;
  std::thread runner([&] { loop.Run(); });

  // A burst: connections that each leave a block in the pool when they close.
  std::vector<int> clients;
  for (int i = 0; i < 64; ++i) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    loop.Adopt(pair[1], 0, SocketAddress());
    clients.push_back(pair[0]);
  }
  const std::string bytes(8000, 'x');
  for (int fd : clients) ASSERT_TRUE(test::WriteAll(fd, bytes, Deadline::In(absl::Seconds(5))).ok());
  for (int fd : clients) ASSERT_TRUE(test::ReadExactly(fd, bytes.size(), Deadline::In(absl::Seconds(5))).ok());
  for (int fd : clients) ::close(fd);
  const LoopStats& stats = loop.stats();
  ASSERT_TRUE(WaitUntil([&] { return stats.conns_active.Get() == 0; }, Deadline::In(absl::Seconds(5))));
  ASSERT_TRUE(WaitUntil([&] { return stats.buffer_blocks_free.Get() > 0; }, Deadline::In(absl::Seconds(5))));

  // The pool gives its idle blocks back two trim periods later, after a quiet check has
  // already trimmed the allocator once; another trim must follow the blocks' release.
  ASSERT_TRUE(WaitUntil([&] { return stats.buffer_blocks_free.Get() == 0; }, Deadline::In(absl::Seconds(10)),
                        absl::Microseconds(200)));
  const uint64_t trims_when_freed = stats.memory_trims.Get();
  EXPECT_TRUE(WaitUntil([&] { return stats.memory_trims.Get() > trims_when_freed; }, Deadline::In(absl::Seconds(5))))
      << "no allocator trim after the pool's blocks were freed";

  loop.Quit();
  runner.join();
}

// Connections that close in little time (handshake timeouts, a client's burst of closes) after
// the allocator was trimmed are followed by another trim, without waiting for the pool's.
TEST(MemoryReturnTest, ClosesAfterATrimAreFollowedByAnother) {
  std::shared_ptr<Service> echo = NewEchoService();
  EventLoopOptions options;
  options.backend = PollerBackend::kEpoll;
  options.services = {echo.get()};
  options.buffer_trim_period = absl::Hours(1);  // only the closes can bring the second trim
  options.memory_check_period = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<EventLoop>> created = EventLoop::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  EventLoop& loop = **created;
  std::thread runner([&] { loop.Run(); });
  const LoopStats& stats = loop.stats();

  std::vector<int> clients;
  for (int i = 0; i < 16; ++i) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    loop.Adopt(pair[1], 0, SocketAddress());
    clients.push_back(pair[0]);
  }
  ASSERT_TRUE(WaitUntil([&] { return stats.conns_active.Get() == 16; }, Deadline::In(absl::Seconds(5))));
  // Half of them close (well under 1% of a period of work): the quiet check after trims once.
  for (int i = 0; i < 8; ++i) ::close(clients[i]);
  ASSERT_TRUE(WaitUntil([&] { return stats.memory_trims.Get() >= 1; }, Deadline::In(absl::Seconds(5))));
  const uint64_t trims = stats.memory_trims.Get();
  // The rest close after that trim: another follows.
  for (int i = 8; i < 16; ++i) ::close(clients[i]);
  ASSERT_TRUE(WaitUntil([&] { return stats.conns_active.Get() == 0; }, Deadline::In(absl::Seconds(5))));
  EXPECT_TRUE(WaitUntil([&] { return stats.memory_trims.Get() > trims; }, Deadline::In(absl::Seconds(5))))
      << "no allocator trim after the connections closed";
  loop.Quit();
  runner.join();
}

}  // namespace
}  // namespace percore
