// The global connection limit: connections past ServerOptions::max_connections are turned
// away by the distributor with the service's canned 503 and closed; the admitted ones are
// served normally, and capacity comes back as they close.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/server.h"
#include "services/http/http_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;
using test::ScopedFd;

constexpr int kLimit = 20;
constexpr std::string_view kPlaintextRequest = "GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n";

// Sends one GET /plaintext and checks a complete 200 comes back (the response ends with the
// 13-byte body; its length is fixed but for nothing we need to know here).
void ExpectServed(int fd) {
  ASSERT_TRUE(test::WriteAll(fd, kPlaintextRequest, Deadline::In(absl::Seconds(10))).ok());
  std::string got;
  const Deadline deadline = Deadline::In(absl::Seconds(10));
  while (!absl::EndsWith(got, "\r\n\r\nHello, World!")) {
    auto more = test::ReadExactly(fd, 1, deadline);
    ASSERT_TRUE(more.ok()) << more.status() << " after " << got;
    got += *more;
    ASSERT_LT(got.size(), 4096u) << got;
  }
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 200 OK\r\n")) << got;
}

TEST(ConnectionLimitTest, ConnectionsOverTheLimitGet503ThenCapacityReturns) {
  ServerOptions options;
  options.loops = 2;
  options.max_connections = kLimit;
  Server server(options);
  ASSERT_TRUE(server.AddService(NewHttpService()).ok());
  auto listener = server.Listen("http", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  const uint16_t port = listener->bound.port();
  ASSERT_TRUE(server.Start().ok());

  // The first kLimit connections are admitted and served (each one's answer proves the
  // distributor has counted it before the next connects).
  std::vector<ScopedFd> admitted;
  for (int i = 0; i < kLimit; ++i) {
    auto fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(fd.ok()) << fd.status();
    ExpectServed(fd->get());
    admitted.push_back(std::move(*fd));
  }
  // The next kLimit are refused: exactly the overload bytes, then EOF.
  const std::string overload(HttpOverloadResponse());
  for (int i = 0; i < kLimit; ++i) {
    auto fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(fd.ok()) << fd.status();
    auto got = test::ReadToEof(fd->get(), Deadline::In(absl::Seconds(10)), 1 << 16);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, overload);
  }
  const AcceptCounters& counters = server.distributor_stats()->counters;
  EXPECT_EQ(counters.rejected_global_limit.Get(), static_cast<uint64_t>(kLimit));
  EXPECT_EQ(counters.accepted.Get(), static_cast<uint64_t>(2 * kLimit));
  // The admitted connections were not disturbed by the refusals.
  for (ScopedFd& fd : admitted) ExpectServed(fd.get());

  // Close the admitted ones; once the loops have counted the closes, new ones are served.
  admitted.clear();
  ASSERT_TRUE(test::WaitUntil([&] { return server.Totals().closed_by(CloseReason::kPeerClosed) == kLimit; },
                              Deadline::In(absl::Seconds(10))));
  for (int i = 0; i < kLimit; ++i) {
    auto fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(fd.ok()) << fd.status();
    ExpectServed(fd->get());
    admitted.push_back(std::move(*fd));
  }
  EXPECT_EQ(counters.rejected_global_limit.Get(), static_cast<uint64_t>(kLimit));
  server.Stop();
}

}  // namespace
}  // namespace percore
