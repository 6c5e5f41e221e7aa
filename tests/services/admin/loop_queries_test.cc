// The loop-side half of ListConnections and CloseConnection, without gRPC (so it also runs
// under TSan): tasks posted to loops, deadlines, and a loop stalled on purpose.

#include <algorithm>
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
  ConnectionListing all = ListConnections(server_, {}, absl::Seconds(1));
  ASSERT_EQ(all.connections.size(), 3u);
  EXPECT_TRUE(all.stalled_loops.empty());
  for (const ConnectionRecord& r : all.connections) {
    EXPECT_GE(r.age, r.idle) << r.id;
    EXPECT_GE(r.idle, absl::ZeroDuration()) << r.id;
  }
  // Paging filter: only ids above the first.
  ConnectionFilter after;
  after.after_id = all.connections[0].id;
  EXPECT_EQ(ListConnections(server_, after, absl::Seconds(1)).connections.size(), 2u);

  ASSERT_TRUE(CloseConnection(server_, all.connections[1].id, absl::Seconds(1)).ok());
  EXPECT_EQ(CloseConnection(server_, all.connections[1].id, absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CloseConnection(server_, uint64_t{9} << 48, absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
  test::WaitUntil([&] { return ListConnections(server_, {}, absl::Seconds(1)).connections.size() == 2; }, Soon());
  EXPECT_EQ(ListConnections(server_, {}, absl::Seconds(1)).connections.size(), 2u);
}

TEST_F(LoopQueriesTest, StalledLoopIsReportedWithinTheDeadline) {
  const int blocked = Connect(blocker_port_);
  ASSERT_TRUE(test::WriteAll(blocked, "z", Soon()).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return blocker_->blocking(); }, Soon()));
  ConnectionListing listing = ListConnections(server_, {}, absl::Seconds(1));
  ASSERT_EQ(listing.stalled_loops.size(), 1u);
  EXPECT_TRUE(listing.connections.empty());
  const uint64_t on_stalled_loop = static_cast<uint64_t>(listing.stalled_loops[0]) << 48 | 999;
  EXPECT_EQ(CloseConnection(server_, on_stalled_loop, absl::Milliseconds(100)).code(),
            absl::StatusCode::kDeadlineExceeded);
  // The tasks left behind run once the loop is free; their slots are still alive.
  release_.set_value();
  released_ = true;
  EXPECT_TRUE(test::ReadExactly(blocked, 1, Soon()).ok());
  listing = ListConnections(server_, {}, absl::Seconds(1));
  EXPECT_TRUE(listing.stalled_loops.empty());
  EXPECT_EQ(listing.connections.size(), 1u);
}

// No deadline at all: absl::InfiniteDuration, which a condition variable's wait_for could not
// add to the current time, waits for the loops' answers.
TEST_F(LoopQueriesTest, InfiniteTimeoutWaitsForTheAnswers) {
  ASSERT_NO_FATAL_FAILURE(Echo(Connect(echo_port_)));
  const ConnectionListing listing = ListConnections(server_, {}, absl::InfiniteDuration());
  EXPECT_TRUE(listing.stalled_loops.empty());
  ASSERT_EQ(listing.connections.size(), 1u);
  EXPECT_TRUE(CloseConnection(server_, listing.connections[0].id, absl::InfiniteDuration()).ok());
  EXPECT_EQ(CloseConnection(server_, listing.connections[0].id, absl::InfiniteDuration()).code(),
            absl::StatusCode::kNotFound);
}

// A timeout already spent does not wait: a loop that has not answered by then is stalled.
TEST_F(LoopQueriesTest, NegativeTimeoutReportsTheBusyLoopStalled) {
  const int blocked = Connect(blocker_port_);
  ASSERT_TRUE(test::WriteAll(blocked, "z", Soon()).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return blocker_->blocking(); }, Soon()));
  const ConnectionListing waited = ListConnections(server_, {}, absl::Seconds(1));
  ASSERT_EQ(waited.stalled_loops.size(), 1u);
  const ConnectionListing listing = ListConnections(server_, {}, -absl::Seconds(1));
  EXPECT_NE(std::find(listing.stalled_loops.begin(), listing.stalled_loops.end(), waited.stalled_loops[0]),
            listing.stalled_loops.end());
  const uint64_t on_stalled_loop = static_cast<uint64_t>(waited.stalled_loops[0]) << 48 | 1;
  EXPECT_EQ(CloseConnection(server_, on_stalled_loop, -absl::Seconds(1)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(LoopQueriesTest, StoppedServerHasNoConnections) {
  server_.Stop(absl::ZeroDuration());
  EXPECT_TRUE(ListConnections(server_, {}, absl::Seconds(1)).connections.empty());
  EXPECT_EQ(CloseConnection(server_, 1, absl::Seconds(1)).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace percore::testing
