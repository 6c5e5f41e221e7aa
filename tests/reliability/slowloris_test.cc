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
#include "tests/testing/multi_client.h"
#include "tests/testing/server_probe.h"

namespace percore {
namespace {

using test::Deadline;
using test::MultiClient;

constexpr int kSlowConnections = 200;
constexpr std::string_view kSlowRequest = "GET /plaintext HTTP/1.1\r\nHost: slow\r\n\r\n";
constexpr std::string_view kPlaintextRequest = "GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n";

// The plaintext response has a fixed length: only the Date value (always 29 characters) varies.
std::string PlaintextTemplate() {
  return "HTTP/1.1 200 OK\r\n"
         "Server: percore\r\n"
         "Date: " + std::string(29, '?') + "\r\n"
         "Content-Length: 13\r\n"
         "Content-Type: text/plain\r\n"
         "\r\n"
         "Hello, World!";
}

// Sends GET /plaintext on one keep-alive connection until `stop`; returns the number of
// complete, correct responses, or sets `error`.
uint64_t NormalClient(uint16_t port, const std::atomic<bool>& stop, std::string& error) {
  const std::string expected = PlaintextTemplate();
  const size_t date_at = expected.find("Date: ") + 6;
  auto fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
  if (!fd.ok()) {
    error = fd.status().ToString();
    return 0;
  }
  uint64_t served = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    absl::Status sent = test::WriteAll(fd->get(), kPlaintextRequest, Deadline::In(absl::Seconds(10)));
    if (!sent.ok()) {
      error = sent.ToString();
      return served;
    }
    auto got = test::ReadExactly(fd->get(), expected.size(), Deadline::In(absl::Seconds(10)));
    if (!got.ok()) {
      error = got.status().ToString();
      return served;
    }
    std::string masked = *got;
    masked.replace(date_at, 29, 29, '?');
    if (masked != expected) {
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
  http.header_timeout_ns = 300'000'000;
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
      if (next_byte[i] < kSlowRequest.size()) {
        slow.Send(ids[i], std::string(1, kSlowRequest[next_byte[i]++]));
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
    EXPECT_LT(next_byte[i], kSlowRequest.size()) << "request completed: " << slow.Describe(id);
    const std::string& got = slow.received(id);
    EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 Request Timeout\r\n")) << got;
    EXPECT_NE(got.find("\r\nConnection: close\r\n"), std::string::npos) << got;
    EXPECT_TRUE(absl::EndsWith(got, "\r\n\r\nRequest Timeout\n")) << got;
  }
  EXPECT_TRUE(normal_error.empty()) << normal_error;
  EXPECT_GT(normal_served, 0u);

  ASSERT_TRUE(test::WaitUntil(
      [&] { return test::ClosedOverLoops(server, CloseReason::kReadTimeout) == kSlowConnections; },
      Deadline::In(absl::Seconds(10))))
      << test::ClosedOverLoops(server, CloseReason::kReadTimeout);
  server.Stop();
  uint64_t requests = 0;
  uint64_t errors = 0;
  for (int i = 0; i < server.loop_count(); ++i) {
    requests += server.loop(i).stats().services[0]->requests.Get();
    errors += server.loop(i).stats().services[0]->errors.Get();
  }
  // Every 408 is a counted error response; every normal response a counted request.
  EXPECT_EQ(errors, static_cast<uint64_t>(kSlowConnections));
  EXPECT_EQ(requests, normal_served + kSlowConnections);
  EXPECT_EQ(test::ClosedOverLoops(server, CloseReason::kReadTimeout),
            static_cast<uint64_t>(kSlowConnections));
  std::printf("normal client requests served during the flood: %llu\n",
              static_cast<unsigned long long>(normal_served));
}

}  // namespace
}  // namespace percore
