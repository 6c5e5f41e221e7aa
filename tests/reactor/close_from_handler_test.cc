// Connection::Close called by a handler from inside its own callback. connection.cc promises
// that such a close is acted on once the callback returns, "so a handler is never re-entered by
// its own close": after asking to close, the handler is not offered more input, its queued
// reply is flushed, and the connection is counted under the reason it gave.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/server.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;

Deadline Soon() { return Deadline::In(absl::Seconds(10)); }

// Answers each line "x\n" with "X\n" and then closes gracefully from inside OnData, leaving
// whatever follows the first line unconsumed; with `consume_nothing`, it rejects the input as
// a whole (answers "bye\n", consumes nothing).
class CloseInCallbackService final : public Service {
 public:
  explicit CloseInCallbackService(bool consume_nothing) : consume_nothing_(consume_nothing) {}
  std::string_view name() const override { return "closer"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override {
    return std::make_unique<CloserHandler>(*this);
  }
  int on_data_calls() const { return on_data_calls_.load(); }

 private:
  class CloserHandler final : public Handler {
   public:
    explicit CloserHandler(CloseInCallbackService& service) : service_(service) {}
    Action OnData(Connection& conn, Buffer& input) override {
      service_.on_data_calls_.fetch_add(1);
      if (service_.consume_nothing_) {
        conn.Send("bye\n");
      } else {
        const size_t newline = input.view().find('\n');
        if (newline == std::string_view::npos) return Action::Continue();
        std::string reply(input.view().substr(0, newline + 1));
        for (char& c : reply) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        conn.Send(reply);
        input.Consume(newline + 1);
      }
      conn.Close(CloseReason::kProtocolError, CloseMode::kFlush);
      return Action::Continue();
    }

   private:
    CloseInCallbackService& service_;
  };

  const bool consume_nothing_;
  std::atomic<int> on_data_calls_{0};
};

class CloseFromHandlerTest : public ::testing::Test {
 protected:
  void Start(bool consume_nothing) {
    service_ = std::make_shared<CloseInCallbackService>(consume_nothing);
    ServerOptions options;
    options.loops = 1;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(service_).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("closer", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::shared_ptr<CloseInCallbackService> service_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// Pipelined lines arrive together; the handler answers the first and closes. The lines after
// it must not be offered to the handler, which asked to close.
TEST_F(CloseFromHandlerTest, NoMoreInputIsOfferedAfterTheHandlerAsksToClose) {
  Start(/*consume_nothing=*/false);
  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), "a\nb\nc\n", Soon()).ok());
  absl::StatusOr<std::string> reply = test::ReadToEof(fd->get(), Soon());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "A\n");
  fd->reset();  // the server lingers after its FIN until ours arrives
  EXPECT_TRUE(test::WaitUntil([&] { return server_->Totals().closed_by(CloseReason::kProtocolError) == 1; }, Soon()));
  EXPECT_EQ(service_->on_data_calls(), 1);
}

// The handler consumes nothing and asks to close: it must be called once, not again and again
// with the same input (each call asking to close anew).
TEST_F(CloseFromHandlerTest, AHandlerThatConsumesNothingIsCalledOnce) {
  Start(/*consume_nothing=*/true);
  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), "garbage", Soon()).ok());
  absl::StatusOr<std::string> reply = test::ReadToEof(fd->get(), Soon(), 1 << 20);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "bye\n");
  fd->reset();
  EXPECT_TRUE(test::WaitUntil([&] { return server_->Totals().closed_by(CloseReason::kProtocolError) == 1; }, Soon()));
  EXPECT_EQ(service_->on_data_calls(), 1);
}

}  // namespace
}  // namespace percore
