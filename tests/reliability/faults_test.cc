// Faults from the peer's side and from a handler's: connection storms, resets, a client killed
// in the middle of a pipeline, a handler that throws. Each costs the offending connection and
// nothing else, and is counted.

#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "services/http/http_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::ConnectToLoopback;
using test::Deadline;

#ifdef PERCORE_TEST_SANITIZER
constexpr int kStormCloses = 1500;
constexpr int kStormResets = 500;
#else
constexpr int kStormCloses = 8000;
constexpr int kStormResets = 2000;
#endif

Deadline Soon() { return Deadline::In(absl::Seconds(30)); }

std::unique_ptr<Server> StartServer(std::shared_ptr<Service> service, uint16_t* port) {
  ServerOptions options;
  options.loops = 2;
  auto server = std::make_unique<Server>(options);
  EXPECT_TRUE(server->AddService(service).ok());
  auto listener = server->Listen(std::string(service->name()), {"127.0.0.1", 0});
  EXPECT_TRUE(listener.ok()) << listener.status();
  *port = listener->bound.port();
  EXPECT_TRUE(server->Start().ok());
  return server;
}

uint64_t Active(Server& server) { return static_cast<uint64_t>(server.Totals().conns_active); }

void ExpectEcho(uint16_t port, const std::string& message) {
  auto fd = ConnectToLoopback(port, Soon());
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), message, Soon()).ok());
  auto got = test::ReadExactly(fd->get(), message.size(), Soon());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, message);
}

// Thousands of connections opened and closed at once (FIN) or reset (RST): every one is handed
// to a loop and closed there under a counted reason; nothing stays open, the server serves on.
TEST(FaultsTest, ConnectionStormLeavesNothingBehind) {
  uint16_t port = 0;
  std::unique_ptr<Server> server = StartServer(NewEchoService(), &port);
  for (int i = 0; i < kStormCloses + kStormResets; ++i) {
    auto fd = ConnectToLoopback(port, Soon());
    ASSERT_TRUE(fd.ok()) << "connection " << i << ": " << fd.status();
    if (i >= kStormCloses) {
      ASSERT_TRUE(test::ResetOnClose(fd->get()).ok());
    }
  }  // each ScopedFd closes as it goes out of scope
  constexpr uint64_t kTotal = kStormCloses + kStormResets;
  const auto handed = [&] { return server->Totals().conns_handed_in; };
  const auto closed = [&] { return server->Totals().closed_total(); };
  ASSERT_TRUE(test::WaitUntil([&] { return handed() == kTotal && closed() == kTotal; }, Soon()))
      << "handed in " << handed() << ", closed " << closed() << " of " << kTotal;
  EXPECT_EQ(Active(*server), 0u);
  const ServerTotals totals = server->Totals();
  EXPECT_EQ(totals.closed_by(CloseReason::kPeerClosed) + totals.closed_by(CloseReason::kPeerReset), kTotal);
  EXPECT_EQ(server->distributor_stats()->counters.accepted.Get(), kTotal);
  ExpectEcho(port, "still serving");
  server->Stop();
}

// A client that pipelines requests and dies (RST) before reading the answers: the server counts
// a peer reset for it and goes on serving others.
TEST(FaultsTest, ClientKilledMidPipelineIsCountedAsReset) {
  uint16_t port = 0;
  std::unique_ptr<Server> server = StartServer(NewHttpService(), &port);
  {
    auto fd = ConnectToLoopback(port, Soon());
    ASSERT_TRUE(fd.ok());
    std::string pipeline;
    for (int i = 0; i < 200; ++i) pipeline += "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
    ASSERT_TRUE(test::WriteAll(fd->get(), pipeline, Soon()).ok());
    // Wait until the server has answered at least one request, so the reset lands mid-stream.
    ASSERT_TRUE(test::WaitReadable(fd->get(), Soon()).ok());
    ASSERT_TRUE(test::ResetOnClose(fd->get()).ok());
  }
  ASSERT_TRUE(test::WaitUntil([&] { return Active(*server) == 0; }, Soon()));
  EXPECT_EQ(server->Totals().closed_by(CloseReason::kPeerReset), 1u);

  auto fd = ConnectToLoopback(port, Soon());
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(test::WriteAll(fd->get(), "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", Soon()).ok());
  ASSERT_TRUE(test::WaitReadable(fd->get(), Soon()).ok());
  char head[16] = {};
  ASSERT_GT(read(fd->get(), head, 15), 0);
  EXPECT_EQ(std::string(head, 15), "HTTP/1.1 200 OK");
  server->Stop();
}

// Echoes, except that a message containing "boom" makes the handler throw.
class ThrowingService final : public Service {
 public:
  std::string_view name() const override { return "throwing"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override { return std::make_unique<ThrowingHandler>(); }

 private:
  class ThrowingHandler final : public Handler {
   public:
    Action OnData(Connection& conn, Buffer& input) override {
      if (input.view().find("boom") != std::string_view::npos) throw std::runtime_error("boom");
      conn.Send(input.view());
      input.Consume(input.size());
      return Action::Continue();
    }
  };
};

// A handler that throws costs its own connection (closed, counted as handler_error); another
// connection on the same loop is served before and after.
TEST(FaultsTest, ThrowingHandlerClosesOnlyItsOwnConnection) {
  ServerOptions options;
  options.loops = 1;  // both connections share the loop the failure happens on
  Server server(options);
  ASSERT_TRUE(server.AddService(std::make_shared<ThrowingService>()).ok());
  auto listener = server.Listen("throwing", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok());
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = listener->bound.port();

  auto good = ConnectToLoopback(port, Soon());
  auto bad = ConnectToLoopback(port, Soon());
  ASSERT_TRUE(good.ok() && bad.ok());
  ASSERT_TRUE(test::WriteAll(good->get(), "one", Soon()).ok());
  EXPECT_EQ(test::ReadExactly(good->get(), 3, Soon()).value_or(""), "one");
  ASSERT_TRUE(test::WriteAll(bad->get(), "boom", Soon()).ok());
  auto rest = test::ReadToEof(bad->get(), Soon());
  ASSERT_TRUE(rest.ok() || absl::IsUnavailable(rest.status())) << rest.status();
  ASSERT_TRUE(test::WaitUntil([&] { return server.Totals().closed_by(CloseReason::kHandlerError) == 1; }, Soon()));

  ASSERT_TRUE(test::WriteAll(good->get(), "two", Soon()).ok());
  EXPECT_EQ(test::ReadExactly(good->get(), 3, Soon()).value_or(""), "two");
  EXPECT_EQ(Active(server), 1u);
  server.Stop();
}

}  // namespace
}  // namespace percore
