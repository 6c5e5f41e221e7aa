// Slow-header attack: many connections trickle a request line a byte at a time. The HTTP
// service's header timeout must answer each with 408 and close it, while a well-behaved
// keep-alive client on the same server keeps being served.

#include <atomic>
#include <cstdio>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/server.h"
#include "services/http/http_options.h"
#include "services/http/http_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/http_requests.h"
#include "tests/testing/multi_client.h"

namespace percore {
namespace {

using test::Deadline;
using test::MultiClient;

constexpr int kSlowConnections = 200;
// What the slow connections trickle, and the normal client sends whole.
constexpr std::string_view kRequest = test::kHttpGetPlaintext;

// Sends GET /plaintext on one keep-alive connection until `stop`; returns the number of
// complete, correct responses, or sets `error`.
uint64_t NormalClient(uint16_t port, const std::atomic<bool>& stop, std::string& error) {
  // The response has a fixed length: only the Date value varies.
  const std::string_view expected = test::kHttpPlaintextResponseMasked;
  auto fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
  if (!fd.ok()) {
    error = fd.status().ToString();
    return 0;
  }
  uint64_t served = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    absl::Status sent = test::WriteAll(fd->get(), kRequest, Deadline::In(absl::Seconds(10)));
    if (!sent.ok()) {
      error = sent.ToString();
      return served;
    }
    auto got = test::ReadExactly(fd->get(), expected.size(), Deadline::In(absl::Seconds(10)));
    if (!got.ok()) {
      error = got.status().ToString();
      return served;
    }
    if (test::MaskHttpDate(*got) != expected) {
      error = "malformed response: " + *got;
      return served;
    }
    ++served;
  }
  return served;
}

TEST(SlowlorisTest, TricklingHeadersGet408WhileNormalClientIsServed) {
  ASSERT_TRUE(test::RaiseOpenFileLimit(4096).ok());
  ServerOptions server_options;
  server_options.loops = 2;
  Server server(server_options);
  HttpOptions http;
  http.header_timeout = absl::Milliseconds(300);
  ASSERT_TRUE(server.AddService(NewHttpService(std::move(http))).ok());
  auto listener = server.Listen("http", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  const uint16_t port = listener->bound.port();
  ASSERT_TRUE(server.Start().ok());

  std::atomic<bool> stop{false};
  std::string normal_error;
  uint64_t normal_served = 0;
  std::thread normal([&] { normal_served = NormalClient(port, stop, normal_error); });

  MultiClient slow(test::LoopbackAddress(port));
  std::vector<MultiClient::Id> ids;
  for (int i = 0; i < kSlowConnections; ++i) {
    auto id = slow.Connect();
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  // One byte per connection every 100 ms. The request is far longer than 3 bytes, so the
  // 300 ms header timeout fires long before any request could complete.
  std::vector<size_t> next_byte(ids.size(), 0);
  std::vector<bool> closed(ids.size(), false);
  const Deadline overall = Deadline::In(absl::Seconds(30));
  size_t done = 0;
  while (done < ids.size() && !overall.expired()) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (closed[i]) continue;
      if (slow.eof(ids[i]) || slow.failed(ids[i])) {
        slow.Close(ids[i]);  // our FIN ends the server's linger at once
        closed[i] = true;
        ++done;
        continue;
      }
      if (next_byte[i] < kRequest.size()) {
        slow.Send(ids[i], std::string(1, kRequest[next_byte[i]++]));
      }
    }
    const absl::Time tick = absl::Now() + absl::Milliseconds(100);
    absl::Status run = slow.RunUntil([&] { return absl::Now() >= tick; }, overall);
    if (!run.ok()) break;  // deadline: reported below
  }
  stop.store(true);
  normal.join();

  EXPECT_EQ(done, ids.size()) << "slow connections still open at the deadline";
  for (size_t i = 0; i < ids.size(); ++i) {
    const MultiClient::Id id = ids[i];
    EXPECT_TRUE(slow.eof(id)) << slow.Describe(id);
    EXPECT_LT(next_byte[i], kRequest.size()) << "request completed: " << slow.Describe(id);
    const std::string& got = slow.received(id);
    EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 Request Timeout\r\n")) << got;
    EXPECT_NE(got.find("\r\nConnection: close\r\n"), std::string::npos) << got;
    EXPECT_TRUE(absl::EndsWith(got, "\r\n\r\nRequest Timeout\n")) << got;
  }
  EXPECT_TRUE(normal_error.empty()) << normal_error;
  EXPECT_GT(normal_served, 0u);

  ASSERT_TRUE(test::WaitUntil(
      [&] { return server.Totals().closed_by(CloseReason::kReadTimeout) == kSlowConnections; },
      Deadline::In(absl::Seconds(10))))
      << server.Totals().closed_by(CloseReason::kReadTimeout);
  server.Stop();
  const ServerTotals totals = server.Totals();
  ASSERT_EQ(totals.services.size(), 1u);
  // Every 408 is a counted error response; every normal response a counted request.
  EXPECT_EQ(totals.services[0].errors, static_cast<uint64_t>(kSlowConnections));
  EXPECT_EQ(totals.services[0].requests, normal_served + kSlowConnections);
  EXPECT_EQ(totals.closed_by(CloseReason::kReadTimeout), static_cast<uint64_t>(kSlowConnections));
  std::printf("normal client requests served during the flood: %llu\n",
              static_cast<unsigned long long>(normal_served));
}

}  // namespace
}  // namespace percore
