// MigrateConnection over gRPC: a connection moves and keeps working under its new id, and
// every refusal has its own status code and leaves the connection where it was. Also the
// recent rates ListConnections reports for each connection.

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/admin/admin.grpc.pb.h"
#include "tests/services/admin/admin_fixture.h"
#include "tests/testing/deadline.h"

namespace percore::testing {
namespace {

using grpc::StatusCode;

class AdminMigrateTest : public AdminTest {
 protected:
  grpc::Status Migrate(uint64_t id, int loop, v1::MigrateConnectionResponse* reply, int64_t wait_ns = 0) {
    v1::MigrateConnectionRequest request;
    request.set_id(id);
    request.set_loop(loop);
    request.set_wait_ns(wait_ns);
    return stub_->MigrateConnection(Context().get(), request, reply);
  }

  // The one echo connection's entry in the list.
  v1::ConnectionInfo OnlyEcho() {
    v1::ListConnectionsRequest request;
    request.set_service("echo");
    v1::ListConnectionsResponse list = List(request);
    EXPECT_EQ(list.connections_size(), 1);
    return list.connections_size() == 1 ? list.connections(0) : v1::ConnectionInfo();
  }
};

TEST_F(AdminMigrateTest, AConnectionMovesAndKeepsServingUnderItsNewId) {
  StartAll();
  const int fd = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "before"));
  const v1::ConnectionInfo before = OnlyEcho();
  v1::MigrateConnectionResponse reply;
  grpc::Status status = Migrate(before.id(), 1 - before.loop(), &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.loop(), 1 - before.loop());
  EXPECT_NE(reply.new_id(), before.id());
  EXPECT_EQ(reply.new_id() >> 48, static_cast<uint64_t>(reply.loop())) << "ids name their loop";
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "after"));
  const v1::ConnectionInfo after = OnlyEcho();
  EXPECT_EQ(after.id(), reply.new_id());
  EXPECT_EQ(after.loop(), reply.loop());
  EXPECT_EQ(after.bytes_in(), before.bytes_in() + 5);

  // And back, by its new id; the old one names nothing now.
  ASSERT_TRUE(Migrate(reply.new_id(), before.loop(), &reply).ok());
  EXPECT_EQ(reply.loop(), before.loop());
  status = Migrate(before.id(), 1, &reply);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND) << status.error_message();
}

TEST_F(AdminMigrateTest, EveryRefusalHasItsCodeAndLeavesTheConnectionAlone) {
  StartAll();
  const int fd = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "hi"));
  const v1::ConnectionInfo c = OnlyEcho();
  v1::MigrateConnectionResponse reply;

  grpc::Status status = Migrate(c.id() + 1000, 1 - c.loop(), &reply);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND) << status.error_message();
  status = Migrate((uint64_t{7} << 48) | 1, 0, &reply);
  EXPECT_EQ(status.error_code(), StatusCode::NOT_FOUND) << "no loop 7: " << status.error_message();
  status = Migrate(c.id(), 2, &reply);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  status = Migrate(c.id(), -1, &reply);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  status = Migrate(c.id(), c.loop(), &reply);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_NE(status.error_message().find("same_loop"), std::string::npos) << status.error_message();
  status = Migrate(c.id(), 1 - c.loop(), &reply, -5);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();

  // A deadline that leaves no time to hear the loops: refused before anything is tried, so the
  // connection cannot move behind the caller's back.
  for (int i = 0; i < 20; ++i) {
    v1::MigrateConnectionRequest hurried;
    hurried.set_id(c.id());
    hurried.set_loop(1 - c.loop());
    status = stub_->MigrateConnection(Context(50).get(), hurried, &reply);
    EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  }
  EXPECT_EQ(OnlyEcho().id(), c.id()) << "it did not move";

  // A draining target takes no one.
  ASSERT_TRUE(server_->DrainLoop(1 - c.loop(), false).ok());
  status = Migrate(c.id(), 1 - c.loop(), &reply);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_NE(status.error_message().find("target_draining"), std::string::npos) << status.error_message();
  ASSERT_TRUE(server_->ResumeLoop(1 - c.loop()).ok());

  // A handler that never moves (the blocking test service keeps the default).
  const int blocked = Connect(blocker_port_);
  ASSERT_GE(blocked, 0);
  v1::ListConnectionsRequest request;
  request.set_service("blocker");
  const v1::ConnectionInfo b =
      [&] {
        v1::ListConnectionsResponse list;
        test::WaitUntil([&] { return (list = List(request)).connections_size() == 1; },
                        test::Deadline::In(absl::Seconds(5)));
        return list.connections_size() == 1 ? list.connections(0) : v1::ConnectionInfo();
      }();
  status = Migrate(b.id(), 1 - b.loop(), &reply);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_NE(status.error_message().find("declined"), std::string::npos) << status.error_message();

  // Nothing moved, and the echo connection still answers.
  const v1::ConnectionInfo still = OnlyEcho();
  EXPECT_EQ(still.id(), c.id());
  EXPECT_EQ(still.loop(), c.loop());
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "still here"));
  const v1::Stats stats = GetStats();
  EXPECT_EQ(stats.loops(0).migrations_out() + stats.loops(1).migrations_out(), 0u);
}

TEST_F(AdminMigrateTest, ListConnectionsReportsEachConnectionsRecentRate) {
  StartAll();
  const int busy = Connect(echo_port_);
  const int quiet = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(quiet, "once"));
  // Traffic on `busy` across a whole rate period (one second), then the rates are read.
  const std::string message(1000, 'r');
  uint64_t busy_id = 0;
  uint64_t quiet_id = 0;
  v1::ConnectionInfo busy_info;
  v1::ConnectionInfo quiet_info;
  const bool measured = test::WaitUntil(
      [&] {
        Echo(busy, message);
        if (::testing::Test::HasFatalFailure()) return true;
        const v1::ListConnectionsResponse list = List();
        for (const v1::ConnectionInfo& c : list.connections()) {
          if (c.service() != "echo") continue;
          if (c.requests() > 1) {
            busy_id = c.id();
            busy_info = c;
          } else {
            quiet_id = c.id();
            quiet_info = c;
          }
        }
        // The quiet connection's one request falls in an early period (as a few bytes per
        // second, and under one request per second); a later period sees nothing of it.
        return busy_info.recent_requests_per_sec() > 0 && quiet_id != 0 && quiet_info.recent_bytes_per_sec() == 0;
      },
      test::Deadline::In(absl::Seconds(5)), absl::Milliseconds(1));
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  ASSERT_TRUE(measured) << "busy " << busy_info.recent_requests_per_sec() << " req/s, quiet "
                        << quiet_info.recent_bytes_per_sec() << " bytes/s";
  EXPECT_NE(busy_id, 0u);
  EXPECT_NE(quiet_id, 0u);
  // Each request is 1000 bytes in and 1000 out.
  EXPECT_GE(busy_info.recent_bytes_per_sec(), busy_info.recent_requests_per_sec() * 2000 * 9 / 10);
  EXPECT_LE(busy_info.recent_bytes_per_sec(), busy_info.recent_requests_per_sec() * 2000 * 11 / 10 + 2000);
  EXPECT_EQ(quiet_info.recent_requests_per_sec(), 0u) << "it sent nothing during the period";
}

}  // namespace
}  // namespace percore::testing
