// Failures inside the loop cost as little as possible: a handler callback or a task posted to a
// connection that throws (std::bad_alloc, as under memory pressure) closes that connection,
// counted as handler_error, and nothing else; a plain posted task or a timer callback that
// throws is logged and counted (task_errors), and the loop serves on. A task posted to a
// connection that is gone is dropped without running. Real loopback sockets, one loop, both
// poller back ends.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/mutex.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/server_probe.h"

namespace percore {

// Names the back end in gtest failure messages (found by ADL, so not in the anonymous namespace).
void PrintTo(PollerBackend backend, std::ostream* os) { *os << PollerBackendName(backend); }

namespace {

using test::Deadline;
using test::ScopedFd;
using test::WaitUntil;

Deadline Soon() { return Deadline::In(absl::Seconds(10)); }

// Echoes each line; the line "throw\n" makes OnData throw std::bad_alloc instead. Records the
// reason every connection closed with, as its handler was told.
class FragileService final : public Service {
 public:
  std::string_view name() const override { return "fragile"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<FragileHandler>(*this); }

  std::vector<CloseReason> close_reasons() const {
    MutexLock lock(mu_);
    return close_reasons_;
  }

 private:
  class FragileHandler final : public Handler {
   public:
    explicit FragileHandler(FragileService& service) : service_(service) {}
    Action OnData(Connection& conn, Buffer& input) override {
      for (;;) {
        const std::string_view bytes = input.view();
        const size_t newline = bytes.find('\n');
        if (newline == std::string_view::npos) return Action::Continue();
        if (bytes.substr(0, newline) == "throw") throw std::bad_alloc();
        conn.Send(bytes.substr(0, newline + 1));
        input.Consume(newline + 1);
      }
    }
    void OnClose(Connection& conn, CloseReason reason) override {
      MutexLock lock(service_.mu_);
      service_.close_reasons_.push_back(reason);
    }

   private:
    FragileService& service_;
  };

  mutable Mutex mu_;
  std::vector<CloseReason> close_reasons_ ABSL_GUARDED_BY(mu_);
};

class GuardedCallbacksTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.loops = 1;  // the failing connection and the healthy ones share the loop
    options.backend = GetParam();
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(service_).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("fragile", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  ScopedFd Connect() {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : ScopedFd();
  }

  EventLoop& loop() { return server_->loop(0); }
  const LoopStats& stats() { return loop().stats(); }
  uint64_t Closed(CloseReason reason) { return stats().closed[static_cast<int>(reason)].Get(); }

  // The server's id for the connection whose client side is `client_fd`, read on the loop.
  std::optional<uint64_t> IdOf(int client_fd) {
    absl::StatusOr<uint16_t> port = test::LocalPort(client_fd);
    if (!port.ok()) return std::nullopt;
    std::optional<uint64_t> id;
    EventLoop& l = loop();
    EXPECT_TRUE(test::RunOnLoop(
        l,
        [&l, &id, peer_port = *port] {
          l.ForEachConnection([&](Connection& c) {
            if (c.peer().port() == peer_port) id = c.id();
          });
        },
        Soon()));
    return id;
  }

  // Sends `line` and expects it echoed back.
  ::testing::AssertionResult Echoes(int fd, const std::string& line) {
    if (absl::Status s = test::WriteAll(fd, line, Soon()); !s.ok()) return ::testing::AssertionFailure() << s;
    absl::StatusOr<std::string> back = test::ReadExactly(fd, line.size(), Soon());
    if (!back.ok()) return ::testing::AssertionFailure() << back.status();
    if (*back != line) return ::testing::AssertionFailure() << "echo of \"" << line << "\" was \"" << *back << "\"";
    return ::testing::AssertionSuccess();
  }

  std::shared_ptr<FragileService> service_ = std::make_shared<FragileService>();
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// OnData throws std::bad_alloc: its connection is closed (the client sees EOF) and counted as
// handler_error, its handler told so; the other connection on the loop is untouched, and a
// new one is served.
TEST_P(GuardedCallbacksTest, HandlerThatThrowsClosesOnlyItsConnection) {
  ScopedFd failing = Connect();
  ScopedFd healthy = Connect();
  ASSERT_TRUE(Echoes(failing.get(), "before\n"));
  ASSERT_TRUE(Echoes(healthy.get(), "before\n"));

  ASSERT_TRUE(test::WriteAll(failing.get(), "throw\n", Soon()).ok());
  EXPECT_TRUE(test::ExpectEof(failing.get(), Soon()).ok());
  ASSERT_TRUE(WaitUntil([&] { return Closed(CloseReason::kHandlerError) == 1; }, Soon()));
  EXPECT_EQ(stats().closed_total(), 1u);
  EXPECT_EQ(stats().conns_active.Get(), 1);
  EXPECT_EQ(stats().task_errors.Get(), 0u);  // a connection's failure is not a task's
  EXPECT_EQ(service_->close_reasons(), std::vector<CloseReason>{CloseReason::kHandlerError});

  EXPECT_TRUE(Echoes(healthy.get(), "after\n"));
  ScopedFd next = Connect();
  EXPECT_TRUE(Echoes(next.get(), "new\n"));
  EXPECT_EQ(stats().closed_total(), 1u);
}

// A task posted to a connection runs as its callback: what it queues is written, and when it
// throws, that connection is closed (handler_error), not the loop, and no task error is
// counted. The other connection carries on.
TEST_P(GuardedCallbacksTest, ConnectionTaskThatThrowsClosesThatConnection) {
  ScopedFd failing = Connect();
  ScopedFd healthy = Connect();
  ASSERT_TRUE(Echoes(failing.get(), "hi\n"));
  ASSERT_TRUE(Echoes(healthy.get(), "hi\n"));
  const std::optional<uint64_t> failing_id = IdOf(failing.get());
  const std::optional<uint64_t> healthy_id = IdOf(healthy.get());
  ASSERT_TRUE(failing_id.has_value());
  ASSERT_TRUE(healthy_id.has_value());

  loop().PostToConnection(*healthy_id, [](Connection& c) { c.Send("posted\n"); });
  absl::StatusOr<std::string> posted = test::ReadExactly(healthy.get(), 7, Soon());
  ASSERT_TRUE(posted.ok()) << posted.status();
  EXPECT_EQ(*posted, "posted\n");

  loop().PostToConnection(*failing_id, [](Connection& c) { throw std::bad_alloc(); });
  EXPECT_TRUE(test::ExpectEof(failing.get(), Soon()).ok());
  ASSERT_TRUE(WaitUntil([&] { return Closed(CloseReason::kHandlerError) == 1; }, Soon()));
  EXPECT_EQ(stats().closed_total(), 1u);
  EXPECT_EQ(stats().task_errors.Get(), 0u);
  EXPECT_EQ(service_->close_reasons(), std::vector<CloseReason>{CloseReason::kHandlerError});
  EXPECT_TRUE(Echoes(healthy.get(), "still\n"));
}

// A plain posted task and a timer callback that throw are counted in task_errors, one each;
// the tasks after the failing one still run, and every connection is served as before.
TEST_P(GuardedCallbacksTest, PostedTaskOrTimerThatThrowsIsCountedAndTheLoopServesOn) {
  ScopedFd client = Connect();
  ASSERT_TRUE(Echoes(client.get(), "one\n"));

  auto ran_after = std::make_shared<std::atomic<bool>>(false);
  loop().Post([] { throw std::bad_alloc(); });
  loop().Post([ran_after] { ran_after->store(true); });
  ASSERT_TRUE(WaitUntil([&] { return stats().task_errors.Get() == 1; }, Soon()));
  EXPECT_TRUE(WaitUntil([&] { return ran_after->load(); }, Soon()));
  EXPECT_TRUE(Echoes(client.get(), "two\n"));

  EventLoop& l = loop();
  ASSERT_TRUE(test::RunOnLoop(
      l, [&l] { l.RunAfter(absl::ZeroDuration(), [] { throw std::bad_alloc(); }); }, Soon()));
  ASSERT_TRUE(WaitUntil([&] { return stats().task_errors.Get() == 2; }, Soon()));
  EXPECT_TRUE(Echoes(client.get(), "three\n"));

  // The loop still runs posted work, and a new connection is served.
  EXPECT_TRUE(test::RunOnLoop(l, [] {}, Soon()));
  ScopedFd next = Connect();
  EXPECT_TRUE(Echoes(next.get(), "four\n"));
  EXPECT_EQ(stats().task_errors.Get(), 2u);
  EXPECT_EQ(stats().closed_total(), 0u);
}

// PostToConnection to a connection that has closed: the task is dropped, unrun, and destroyed
// (what it captured is released).
TEST_P(GuardedCallbacksTest, TaskPostedToAClosedConnectionIsDroppedWithoutRunning) {
  ScopedFd client = Connect();
  ASSERT_TRUE(Echoes(client.get(), "hi\n"));
  const std::optional<uint64_t> id = IdOf(client.get());
  ASSERT_TRUE(id.has_value());
  client.reset();
  ASSERT_TRUE(WaitUntil([&] { return Closed(CloseReason::kPeerClosed) == 1; }, Soon()));

  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto token = std::make_shared<int>(0);
  loop().PostToConnection(*id, [ran, token](Connection&) { ran->store(true); });
  // Posted later by the same thread, so run after it.
  ASSERT_TRUE(test::RunOnLoop(loop(), [] {}, Soon()));
  EXPECT_FALSE(ran->load());
  EXPECT_TRUE(WaitUntil([&] { return token.use_count() == 1; }, Soon()));
  EXPECT_EQ(stats().closed_total(), 1u);
}

// A task that closes its connection, and one posted to the same connection right behind it:
// the second finds the connection gone and is dropped.
TEST_P(GuardedCallbacksTest, TaskPostedBehindOneThatClosesTheConnectionIsDropped) {
  ScopedFd client = Connect();
  ASSERT_TRUE(Echoes(client.get(), "hi\n"));
  const std::optional<uint64_t> id = IdOf(client.get());
  ASSERT_TRUE(id.has_value());

  auto ran = std::make_shared<std::atomic<int>>(0);
  loop().PostToConnection(*id, [ran](Connection& c) {
    ran->fetch_add(1);
    c.Close(CloseReason::kServiceClose, CloseMode::kNow);
  });
  loop().PostToConnection(*id, [ran](Connection& c) { ran->fetch_add(10); });
  EXPECT_TRUE(test::ExpectEof(client.get(), Soon()).ok());
  ASSERT_TRUE(WaitUntil([&] { return Closed(CloseReason::kServiceClose) == 1; }, Soon()));
  ASSERT_TRUE(test::RunOnLoop(loop(), [] {}, Soon()));
  EXPECT_EQ(ran->load(), 1);
  EXPECT_EQ(stats().closed_total(), 1u);
  EXPECT_EQ(service_->close_reasons(), std::vector<CloseReason>{CloseReason::kServiceClose});
}

INSTANTIATE_TEST_SUITE_P(Backends, GuardedCallbacksTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         [](const ::testing::TestParamInfo<PollerBackend>& info) {
                           return std::string(PollerBackendName(info.param));
                         });

}  // namespace
}  // namespace percore
