// The loop-side half of ListConnections and CloseConnection, without gRPC (so it also runs
// under TSan): tasks posted to loops, deadlines, and a loop stalled on purpose.

#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "services/admin/loop_queries.h"
#include "services/echo/echo_service.h"
#include "tests/services/admin/blocking_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::testing {
namespace {

test::Deadline Soon() { return test::Deadline::In(absl::Seconds(5)); }

class LoopQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    blocker_ = std::make_shared<BlockingService>(release_.get_future().share());
    ASSERT_TRUE(server_.AddService(NewEchoService()).ok());
    ASSERT_TRUE(server_.AddService(blocker_).ok());
    absl::StatusOr<ListenerInfo> echo = server_.Listen("echo", {"127.0.0.1", 0});
    absl::StatusOr<ListenerInfo> blocker = server_.Listen("blocker", {"127.0.0.1", 0});
    ASSERT_TRUE(echo.ok() && blocker.ok());
    echo_port_ = echo->bound.port();
    blocker_port_ = blocker->bound.port();
    ASSERT_TRUE(server_.Start().ok());
  }
  void TearDown() override {
    if (!released_) release_.set_value();
    fds_.clear();
    server_.Stop(absl::ZeroDuration());
  }
  int Connect(uint16_t port) {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    fds_.push_back(std::move(*fd));
    return fds_.back().get();
  }
  void Echo(int fd) {
    ASSERT_TRUE(test::WriteAll(fd, "abc", Soon()).ok());
    ASSERT_TRUE(test::ReadExactly(fd, 3, Soon()).ok());
  }

  Server server_{ServerOptions{.loops = 2}};
  std::promise<void> release_;
  bool released_ = false;
  std::shared_ptr<BlockingService> blocker_;
  uint16_t echo_port_ = 0;
  uint16_t blocker_port_ = 0;
  std::vector<test::ScopedFd> fds_;
};

TEST_F(LoopQueriesTest, ListsAndClosesConnections) {
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(Echo(Connect(echo_port_)));
  ConnectionListing all = ListConnections(server_, {}, 1'000'000'000);
  ASSERT_EQ(all.connections.size(), 3u);
  EXPECT_TRUE(all.stalled_loops.empty());
  // Paging filter: only ids above the first.
  ConnectionFilter after;
  after.after_id = all.connections[0].id;
  EXPECT_EQ(ListConnections(server_, after, 1'000'000'000).connections.size(), 2u);

  ASSERT_TRUE(CloseConnection(server_, all.connections[1].id, 1'000'000'000).ok());
  EXPECT_EQ(CloseConnection(server_, all.connections[1].id, 1'000'000'000).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CloseConnection(server_, uint64_t{9} << 48, 1'000'000'000).code(), absl::StatusCode::kNotFound);
  test::WaitUntil([&] { return ListConnections(server_, {}, 1'000'000'000).connections.size() == 2; }, Soon());
  EXPECT_EQ(ListConnections(server_, {}, 1'000'000'000).connections.size(), 2u);
}

TEST_F(LoopQueriesTest, StalledLoopIsReportedWithinTheDeadline) {
  const int blocked = Connect(blocker_port_);
  ASSERT_TRUE(test::WriteAll(blocked, "z", Soon()).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return blocker_->blocking(); }, Soon()));
  ConnectionListing listing = ListConnections(server_, {}, 1'000'000'000);
  ASSERT_EQ(listing.stalled_loops.size(), 1u);
  EXPECT_TRUE(listing.connections.empty());
  EXPECT_EQ(CloseConnection(server_, static_cast<uint64_t>(listing.stalled_loops[0]) << 48 | 999, 100'000'000).code(),
            absl::StatusCode::kDeadlineExceeded);
  // The tasks left behind run once the loop is free; their slots are still alive.
  release_.set_value();
  released_ = true;
  EXPECT_TRUE(test::ReadExactly(blocked, 1, Soon()).ok());
  listing = ListConnections(server_, {}, 1'000'000'000);
  EXPECT_TRUE(listing.stalled_loops.empty());
  EXPECT_EQ(listing.connections.size(), 1u);
}

TEST_F(LoopQueriesTest, StoppedServerHasNoConnections) {
  server_.Stop(absl::ZeroDuration());
  EXPECT_TRUE(ListConnections(server_, {}, 1'000'000'000).connections.empty());
  EXPECT_EQ(CloseConnection(server_, 1, 1'000'000'000).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace percore::testing
