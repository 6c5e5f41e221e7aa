// ListConnections and CloseConnection, including a loop that is stalled on purpose.

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/services/admin/admin_fixture.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::testing {
namespace {

std::string PeerOf(int fd) { return absl::StrCat("127.0.0.1:", test::LocalPort(fd).value_or(0)); }

// The listed connection whose peer is the client `fd`, or null.
const v1::ConnectionInfo* Find(const v1::ListConnectionsResponse& reply, int fd) {
  for (const v1::ConnectionInfo& c : reply.connections()) {
    if (c.peer() == PeerOf(fd)) return &c;
  }
  return nullptr;
}

TEST_F(AdminTest, ListConnectionsDescribesEachConnection) {
  StartAll();
  std::vector<int> fds;
  for (int k = 1; k <= 4; ++k) {
    const int fd = Connect(echo_port_);
    fds.push_back(fd);
    ASSERT_NO_FATAL_FAILURE(Echo(fd, std::string(10 * k, 'a')));
  }
  // The server counts a write after it returns, so wait until every reply is accounted for.
  v1::ListConnectionsResponse all;
  test::WaitUntil(
      [&] {
        all = List();
        bool done = all.connections_size() == 4;
        for (const auto& c : all.connections()) done = done && c.bytes_out() == c.bytes_in();
        return done;
      },
      test::Deadline::In(absl::Seconds(5)));
  ASSERT_EQ(all.connections_size(), 4);
  EXPECT_EQ(all.stalled_loops_size(), 0);
  EXPECT_TRUE(all.next_page_token().empty());
  for (int k = 1; k <= 4; ++k) {
    const v1::ConnectionInfo* c = Find(all, fds[k - 1]);
    ASSERT_NE(c, nullptr) << k;
    EXPECT_EQ(c->service(), "echo");
    EXPECT_EQ(c->state(), "reading");
    EXPECT_EQ(static_cast<uint64_t>(c->loop()), c->id() >> 48);
    EXPECT_EQ(c->bytes_in(), 10u * k);
    EXPECT_EQ(c->bytes_out(), 10u * k);
    EXPECT_GE(c->requests(), 1u);
    EXPECT_GE(c->age_ns(), c->idle_ns());
    EXPECT_GE(c->idle_ns(), 0);
    EXPECT_EQ(c->queued_output(), 0u);
  }
  for (int i = 1; i < all.connections_size(); ++i) {
    EXPECT_LT(all.connections(i - 1).id(), all.connections(i).id());
  }

  // Filters.
  v1::ListConnectionsRequest by_loop;
  by_loop.set_loop(1);
  const v1::ListConnectionsResponse loop1 = List(by_loop);
  EXPECT_EQ(loop1.connections_size(), 2);  // round robin
  for (const auto& c : loop1.connections()) EXPECT_EQ(c.loop(), 1);
  v1::ListConnectionsRequest by_service;
  by_service.set_service("blocker");
  EXPECT_EQ(List(by_service).connections_size(), 0);
  by_service.set_service("echo");
  EXPECT_EQ(List(by_service).connections_size(), 4);
  v1::ListConnectionsRequest by_state;
  by_state.set_state("paused");
  EXPECT_EQ(List(by_state).connections_size(), 0);
  by_state.set_state("reading");
  EXPECT_EQ(List(by_state).connections_size(), 4);

  // Pages of one: four pages, the same connections in the same order.
  v1::ListConnectionsRequest paged;
  paged.set_page_size(1);
  std::vector<uint64_t> ids;
  for (int page = 0; page < 10; ++page) {
    const v1::ListConnectionsResponse r = List(paged);
    ASSERT_LE(r.connections_size(), 1);
    for (const auto& c : r.connections()) ids.push_back(c.id());
    if (r.next_page_token().empty()) break;
    paged.set_page_token(r.next_page_token());
  }
  ASSERT_EQ(ids.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(ids[i], all.connections(i).id());
}

TEST_F(AdminTest, ListConnectionsRejectsBadArguments) {
  StartAll();
  auto code = [&](const v1::ListConnectionsRequest& request) {
    v1::ListConnectionsResponse reply;
    return stub_->ListConnections(Context().get(), request, &reply).error_code();
  };
  v1::ListConnectionsRequest r;
  r.set_loop(2);
  EXPECT_EQ(code(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.set_loop(-1);
  EXPECT_EQ(code(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.Clear();
  r.set_service("nope");
  EXPECT_EQ(code(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.Clear();
  r.set_state("sleeping");
  EXPECT_EQ(code(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.Clear();
  r.set_page_token("12x");
  EXPECT_EQ(code(r), grpc::StatusCode::INVALID_ARGUMENT);
  r.Clear();
  r.set_page_size(-5);
  EXPECT_EQ(code(r), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminTest, CloseConnectionClosesOnlyThatOne) {
  StartAll();
  const int a = Connect(echo_port_);
  const int b = Connect(echo_port_);
  const int c = Connect(echo_port_);
  for (int fd : {a, b, c}) ASSERT_NO_FATAL_FAILURE(Echo(fd, "hello"));
  const v1::ListConnectionsResponse all = List();
  const v1::ConnectionInfo* target = Find(all, b);
  ASSERT_NE(target, nullptr);

  v1::CloseConnectionRequest request;
  request.set_id(target->id());
  v1::CloseConnectionResponse reply;
  grpc::Status status = stub_->CloseConnection(Context().get(), request, &reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(test::ReadUntilEofOrReset(b, Soon()).ok());
  ASSERT_NO_FATAL_FAILURE(Echo(a, "still here"));
  ASSERT_NO_FATAL_FAILURE(Echo(c, "still here"));

  const v1::Stats s = StatsWhen([](const v1::Stats& st) {
    return st.loops(0).conns_closed() + st.loops(1).conns_closed() == 1;
  });
  uint64_t admin_closes = 0;
  for (const auto& l : s.loops()) {
    for (const auto& r : l.closed()) {
      if (r.reason() == "admin_close") admin_closes += r.count();
    }
  }
  EXPECT_EQ(admin_closes, 1u);

  // Gone now; and ids of no connection or of no loop are NOT_FOUND too.
  EXPECT_EQ(stub_->CloseConnection(Context().get(), request, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  request.set_id(12345);
  EXPECT_EQ(stub_->CloseConnection(Context().get(), request, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  request.set_id((uint64_t{7} << 48) | 1);
  EXPECT_EQ(stub_->CloseConnection(Context().get(), request, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminTest, StalledLoopIsReportedAndTheCallStillReturns) {
  StartAll({.loop_timeout = absl::Seconds(1)});
  const int blocked = Connect(blocker_port_);
  ASSERT_TRUE(test::WriteAll(blocked, "x", Soon()).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return blocker_->blocking(); }, Soon()));
  // The next connection goes to the other loop (round robin), which keeps answering.
  const int free_client = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(free_client, "alive"));

  // The client's deadline (3 s) is beyond the admin's wait for a loop (1 s).
  const v1::ListConnectionsResponse listing = List();
  ASSERT_EQ(listing.stalled_loops_size(), 1);
  const int stalled = listing.stalled_loops(0);
  ASSERT_EQ(listing.connections_size(), 1);
  EXPECT_NE(listing.connections(0).loop(), stalled);
  EXPECT_EQ(listing.connections(0).peer(), PeerOf(free_client));

  // Closing a connection of the stalled loop cannot be confirmed in time.
  v1::CloseConnectionRequest close;
  close.set_id((static_cast<uint64_t>(stalled) << 48) | 999);  // its late task finds nothing
  v1::CloseConnectionResponse reply;
  EXPECT_EQ(stub_->CloseConnection(Context().get(), close, &reply).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // So is a move off it: the answer says the loops did not answer, not that nothing happened.
  v1::MigrateConnectionRequest migrate;
  migrate.set_id((static_cast<uint64_t>(stalled) << 48) | 999);
  migrate.set_loop(1 - stalled);
  v1::MigrateConnectionResponse migrate_reply;
  const grpc::Status moved = stub_->MigrateConnection(Context().get(), migrate, &migrate_reply);
  EXPECT_EQ(moved.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << moved.error_message();
  EXPECT_NE(moved.error_message().find("no_answer"), std::string::npos) << moved.error_message();
  // Counters are still read while the loop is stuck.
  const v1::Stats stats = GetStats();
  EXPECT_EQ(stats.loops_size(), 2);

  // Once released, the loop answers again (and runs the tasks that were left behind).
  ReleaseBlocker();
  EXPECT_TRUE(test::ReadExactly(blocked, 1, Soon()).ok());
  const v1::ListConnectionsResponse after = List();
  EXPECT_EQ(after.stalled_loops_size(), 0);
  EXPECT_EQ(after.connections_size(), 2);
}

}  // namespace
}  // namespace percore::testing
