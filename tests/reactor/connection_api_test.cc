// The handler-facing connection interface: closing by mode (a paused connection included),
// the one backpressure rule at its edge, request accounting by the framework, deadlines and
// timers in absl::Duration.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/server.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;

Deadline Soon() { return Deadline::In(absl::Seconds(20)); }

constexpr size_t kHighWater = 4096;

// One command per line:
//   PAUSE-FLUSH / PAUSE-NOW  queues "bye\n", pauses, and closes 10 ms later from a timer by
//                            that mode, without ever resuming
//   FILL n                   queues n bytes of 'x', then "T\n" or "F\n": above_high_water()
//   OK / BAD                 "ok\n", counted as a request (BAD as an error)
//   LATER ms                 answers "later\n" after ms milliseconds, counted from the request
//   NODELAY                  "0\n" when SetNoDelay(true) succeeded
//   DEADLINE ms              arms the handler's deadline; OnDeadline answers "late\n" and closes
//   CLEAR                    clears the handler's deadline
class ApiService final : public Service {
 public:
  std::string_view name() const override { return "api"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override { return std::make_unique<ApiHandler>(); }

 private:
  class ApiHandler final : public Handler {
   public:
    Action OnData(Connection& conn, Buffer& input) override {
      const size_t newline = input.view().find('\n');
      if (newline == std::string_view::npos) return Action::Continue();
      const std::string line(input.view().substr(0, newline));
      input.Consume(newline + 1);
      const size_t space = line.find(' ');
      const std::string verb = line.substr(0, space);
      int64_t arg = 0;
      if (space != std::string::npos) (void)absl::SimpleAtoi(line.substr(space + 1), &arg);
      if (verb == "PAUSE-FLUSH" || verb == "PAUSE-NOW") {
        conn.Send("bye\n");
        const CloseMode mode = verb == "PAUSE-FLUSH" ? CloseMode::kFlush : CloseMode::kNow;
        EventLoop& loop = conn.loop();
        const uint64_t id = conn.id();
        loop.RunAfter(absl::Milliseconds(10), [&loop, id, mode] {
          if (Connection* c = loop.FindConnection(id)) c->Close(CloseReason::kServiceClose, mode);
        });
        return Action::Pause();
      }
      if (verb == "FILL") {
        conn.Send(std::string(static_cast<size_t>(arg), 'x'));
        conn.Send(conn.above_high_water() ? "T\n" : "F\n");
        return Action::Continue();
      }
      if (verb == "OK" || verb == "BAD") {
        conn.Send("ok\n");
        conn.RecordRequest(/*error=*/verb == "BAD");
        return Action::Continue();
      }
      if (verb == "LATER") {
        const RequestStart start = conn.BeginRequest();
        EventLoop& loop = conn.loop();
        const uint64_t id = conn.id();
        loop.RunAfter(absl::Milliseconds(arg), [&loop, id, start] {
          Connection* c = loop.FindConnection(id);
          if (c == nullptr) return;
          c->Send("later\n");
          c->EndRequest(start);
          c->Resume();
        });
        return Action::Pause();
      }
      if (verb == "NODELAY") {
        conn.Send(absl::StrCat(static_cast<int>(conn.SetNoDelay(true).code()), "\n"));
        return Action::Continue();
      }
      if (verb == "DEADLINE") {
        conn.SetDeadline(absl::Milliseconds(arg));
        return Action::Continue();
      }
      if (verb == "CLEAR") {
        conn.ClearDeadline();
        return Action::Continue();
      }
      return Action::CloseNow(CloseReason::kProtocolError);
    }

    Action OnDeadline(Connection& conn) override {
      conn.Send("late\n");
      return Action::Close(CloseMode::kFlush, CloseReason::kReadTimeout);
    }
  };
};

class ConnectionApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(absl::ZeroDuration()); }
  void StartServer(absl::Duration idle_timeout) {
    if (server_ != nullptr) server_->Stop(absl::Seconds(5));
    ServerOptions options;
    options.loops = 1;
    options.connection.high_water = kHighWater;
    options.connection.low_water = kHighWater / 4;
    if (idle_timeout > absl::ZeroDuration()) options.connection.idle_timeout = idle_timeout;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(std::make_shared<ApiService>()).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("api", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Stop(absl::Seconds(5)); }

  test::ScopedFd Connect() {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : test::ScopedFd();
  }

  uint64_t Closed(CloseReason reason) { return server_->loop(0).stats().closed[static_cast<int>(reason)].Get(); }
  const ServiceLoopStats& ServiceStats() { return *server_->loop(0).stats().services[0]; }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(ConnectionApiTest, FlushClosingAPausedConnectionNeedsNoResume) {
  test::ScopedFd fd = Connect();
  ASSERT_TRUE(test::WriteAll(fd.get(), "PAUSE-FLUSH\n", Soon()).ok());
  absl::StatusOr<std::string> all = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, "bye\n");
  fd.reset();
  EXPECT_TRUE(test::WaitUntil([&] { return Closed(CloseReason::kServiceClose) == 1; }, Soon()));
}

TEST_F(ConnectionApiTest, ClosingAPausedConnectionNowDropsItsOutput) {
  test::ScopedFd fd = Connect();
  // "bye" is written when the callback returns (pausing does not hold output back); what the
  // close discards is what a paused handler queues after. The connection must close without a
  // Resume either way.
  ASSERT_TRUE(test::WriteAll(fd.get(), "PAUSE-NOW\n", Soon()).ok());
  absl::StatusOr<std::string> all = test::ReadToEof(fd.get(), Soon());
  if (all.ok()) {
    EXPECT_EQ(*all, "bye\n");
  } else {
    EXPECT_TRUE(absl::IsUnavailable(all.status())) << all.status();  // an RST is allowed
  }
  EXPECT_TRUE(test::WaitUntil([&] { return Closed(CloseReason::kServiceClose) == 1; }, Soon()));
}

TEST_F(ConnectionApiTest, AboveHighWaterMeansMoreThanTheMarkUnsent) {
  test::ScopedFd fd = Connect();
  // Nothing else queued: exactly high_water bytes is not above the mark, one more is.
  ASSERT_TRUE(test::WriteAll(fd.get(), absl::StrCat("FILL ", kHighWater, "\n"), Soon()).ok());
  absl::StatusOr<std::string> at = test::ReadExactly(fd.get(), kHighWater + 2, Soon());
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(at->substr(kHighWater), "F\n");
  ASSERT_TRUE(test::WriteAll(fd.get(), absl::StrCat("FILL ", kHighWater + 1, "\n"), Soon()).ok());
  absl::StatusOr<std::string> over = test::ReadExactly(fd.get(), kHighWater + 3, Soon());
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(over->substr(kHighWater + 1), "T\n");
}

TEST_F(ConnectionApiTest, TheFrameworkCountsAndTimesRequests) {
  test::ScopedFd fd = Connect();
  ASSERT_TRUE(test::WriteAll(fd.get(), "OK\nBAD\nOK\n", Soon()).ok());
  absl::StatusOr<std::string> replies = test::ReadExactly(fd.get(), 9, Soon());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_TRUE(test::WaitUntil([&] { return ServiceStats().requests.Get() == 3; }, Soon()));
  EXPECT_EQ(ServiceStats().errors.Get(), 1u);
  EXPECT_EQ(ServiceStats().latency_ns.count(), 3u);
}

TEST_F(ConnectionApiTest, ADeferredReplyIsTimedFromItsRequest) {
  test::ScopedFd fd = Connect();
  const absl::Time sent = absl::Now();
  ASSERT_TRUE(test::WriteAll(fd.get(), "LATER 30\nOK\n", Soon()).ok());
  absl::StatusOr<std::string> replies = test::ReadExactly(fd.get(), 9, Soon());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*replies, "later\nok\n");  // the OK waited behind the paused LATER
  EXPECT_GE(absl::Now() - sent, absl::Milliseconds(30));
  EXPECT_TRUE(test::WaitUntil([&] { return ServiceStats().requests.Get() == 2; }, Soon()));
  // The deferred request's latency covers its 30 ms wait.
  EXPECT_GE(ServiceStats().latency_ns.Snapshot().max, 30'000'000u);
}

// The server runs in this process: its end of a client's connection is the socket whose peer
// is the client's local address. Returns that socket's TCP_NODELAY, or -1 if none is found.
int ServerSideNoDelay(int client_fd) {
  sockaddr_storage local{};
  socklen_t local_len = sizeof(local);
  if (::getsockname(client_fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return -1;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fd == client_fd) continue;
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (peer_len != local_len || std::memcmp(&peer, &local, local_len) != 0) continue;
    int on = 0;
    socklen_t len = sizeof(on);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return -1;
    return on;
  }
  return -1;
}

TEST_F(ConnectionApiTest, AcceptedConnectionsHaveNoDelayOn) {
  // Set on the listener and inherited: no connection needs its own setsockopt.
  for (int i = 0; i < 3; ++i) {
    test::ScopedFd fd = Connect();
    // Served: the connection is adopted by its loop (an OK is answered).
    ASSERT_TRUE(test::WriteAll(fd.get(), "OK\n", Soon()).ok());
    absl::StatusOr<std::string> ok = test::ReadExactly(fd.get(), 3, Soon());
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ServerSideNoDelay(fd.get()), 1);
  }
}

TEST_F(ConnectionApiTest, NoDelayAndDeadlinesTakeTypedValues) {
  test::ScopedFd fd = Connect();
  ASSERT_TRUE(test::WriteAll(fd.get(), "NODELAY\n", Soon()).ok());
  absl::StatusOr<std::string> ok = test::ReadExactly(fd.get(), 2, Soon());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "0\n");
  const absl::Time armed = absl::Now();
  ASSERT_TRUE(test::WriteAll(fd.get(), "DEADLINE 50\n", Soon()).ok());
  absl::StatusOr<std::string> late = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(*late, "late\n");
  EXPECT_GE(absl::Now() - armed, absl::Milliseconds(50));
  fd.reset();
  EXPECT_TRUE(test::WaitUntil([&] { return Closed(CloseReason::kReadTimeout) == 1; }, Soon()));
}

// The handler's deadline, the idle deadline and the write deadline share one timer entry that
// is armed for the earliest and re-arms itself when it fires early; what the handler sees must
// be exactly what three timers would give.
TEST_F(ConnectionApiTest, ADeadlineMovedLaterFiresAtTheLaterTime) {
  test::ScopedFd fd = Connect();
  const absl::Time armed = absl::Now();
  ASSERT_TRUE(test::WriteAll(fd.get(), "DEADLINE 20\nDEADLINE 250\n", Soon()).ok());
  absl::StatusOr<std::string> late = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(*late, "late\n");
  EXPECT_GE(absl::Now() - armed, absl::Milliseconds(250));
}

TEST_F(ConnectionApiTest, AClearedDeadlineNeverFires) {
  test::ScopedFd fd = Connect();
  ASSERT_TRUE(test::WriteAll(fd.get(), "DEADLINE 20\nCLEAR\n", Soon()).ok());
  // Ten times the deadline: nothing may arrive, and the connection must still answer.
  EXPECT_TRUE(absl::IsDeadlineExceeded(test::WaitReadable(fd.get(), Deadline::In(absl::Milliseconds(200)))));
  ASSERT_TRUE(test::WriteAll(fd.get(), "OK\n", Soon()).ok());
  absl::StatusOr<std::string> ok = test::ReadExactly(fd.get(), 3, Soon());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "ok\n");
  EXPECT_EQ(Closed(CloseReason::kReadTimeout), 0u);
}

TEST_F(ConnectionApiTest, TheHandlerDeadlineFiresBeforeALaterIdleTimeout) {
  StartServer(absl::Seconds(2));
  test::ScopedFd fd = Connect();
  const absl::Time armed = absl::Now();
  ASSERT_TRUE(test::WriteAll(fd.get(), "DEADLINE 50\n", Soon()).ok());
  absl::StatusOr<std::string> late = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(*late, "late\n");
  EXPECT_LT(absl::Now() - armed, absl::Seconds(2));
  EXPECT_TRUE(test::WaitUntil([&] { return Closed(CloseReason::kReadTimeout) == 1; }, Soon()));
  EXPECT_EQ(Closed(CloseReason::kIdleTimeout), 0u);
}

TEST_F(ConnectionApiTest, TheIdleTimeoutFiresBeforeALaterHandlerDeadlineAndCountsFromTheLastRequest) {
  StartServer(absl::Milliseconds(150));
  test::ScopedFd fd = Connect();
  ASSERT_TRUE(test::WriteAll(fd.get(), "DEADLINE 5000\n", Soon()).ok());
  // Traffic keeps the connection alive past its first idle deadline.
  absl::Time last = absl::Now();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(test::WriteAll(fd.get(), "OK\n", Soon()).ok());
    last = absl::Now();
    absl::StatusOr<std::string> ok = test::ReadExactly(fd.get(), 3, Soon());
    ASSERT_TRUE(ok.ok()) << ok.status();
    absl::SleepFor(absl::Milliseconds(60));  // part of the scenario: 240 ms in all, each gap < 150
  }
  absl::StatusOr<std::string> rest = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, "");  // closed for idleness, not by the handler's deadline ("late")
  EXPECT_GE(absl::Now() - last, absl::Milliseconds(150));
  EXPECT_TRUE(test::WaitUntil([&] { return Closed(CloseReason::kIdleTimeout) == 1; }, Soon()));
  EXPECT_EQ(Closed(CloseReason::kReadTimeout), 0u);
}

}  // namespace
}  // namespace percore
