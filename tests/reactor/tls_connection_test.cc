// TLS endpoints on every back end, against OpenSSL's client over loopback sockets: the echo
// service (which knows nothing of TLS) behind Listen(..., {.tls = ...}). Bytes both ways, both
// versions, ALPN, resumption on another loop, close_notify in both directions, backpressure
// with a slow reader, drain on Stop, and the bad clients: plaintext instead of a ClientHello, a
// truncated or silent handshake, each closed under its counted reason while others are served.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/random_bytes.h"
#include "tests/testing/server_probe.h"
#include "tests/testing/test_certs.h"
#include "tests/testing/tls_client.h"

namespace percore {

void PrintTo(PollerBackend backend, std::ostream* os) { *os << PollerBackendName(backend); }

namespace {

using test::Deadline;
using test::ScopedFd;
using test::TlsClient;
using test::WaitUntil;

Deadline Soon() { return Deadline::In(absl::Seconds(10)); }

const test::TestCertificates& Certs() {
  static const test::TestCertificates* certs = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    auto made = test::MakeTestCertificates(std::string(tmp != nullptr ? tmp : "/tmp") + "/tls_connection_certs");
    if (!made.ok()) std::abort();
    return new test::TestCertificates(*made);
  }();
  return *certs;
}

// Answers each byte it reads with a header, a shared 100,000-byte value (sent from where it
// lives, as the stores send large values) and a trailer.
class SharedValueService final : public Service {
 public:
  SharedValueService() : value_(std::make_shared<const std::string>(test::RandomBytes(rng_, 100000))) {}
  std::string_view name() const override { return "shared"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override {
    class H final : public Handler {
     public:
      explicit H(std::shared_ptr<const std::string> value) : value_(std::move(value)) {}
      Action OnData(Connection& conn, Buffer& input) override {
        for (size_t i = 0; i < input.size(); ++i) {
          conn.Send("VALUE\r\n");
          conn.output().AppendShared(*value_, value_);
          conn.Send("\r\nEND\r\n");
        }
        input.Consume(input.size());
        return Action::Continue();
      }

     private:
      std::shared_ptr<const std::string> value_;
    };
    return std::make_unique<H>(value_);
  }
  const std::string& value() const { return *value_; }

 private:
  std::mt19937_64 rng_{7};
  std::shared_ptr<const std::string> value_;
};

// Answers each byte it reads with `reply_bytes` of copied output: a reply the peer may not read.
class FloodService final : public Service {
 public:
  explicit FloodService(size_t reply_bytes) : reply_(reply_bytes, 'F') {}
  std::string_view name() const override { return "flood"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override {
    class H final : public Handler {
     public:
      explicit H(const std::string& reply) : reply_(reply) {}
      Action OnData(Connection& conn, Buffer& input) override {
        for (size_t i = 0; i < input.size(); ++i) conn.Send(reply_);
        input.Consume(input.size());
        return Action::Continue();
      }

     private:
      const std::string& reply_;
    };
    return std::make_unique<H>(reply_);
  }

 private:
  const std::string reply_;
};

class TlsConnectionTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(int loops = 1, absl::Duration handshake_timeout = absl::Seconds(5),
                   ConnectionOptions connection = {}) {
    ServerOptions options;
    options.loops = loops;
    options.backend = GetParam();
    options.connection = connection;
    options.connection.tls_handshake_timeout = handshake_timeout;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(NewEchoService()).ok());
    EndpointOptions tls;
    tls.tls = TlsOptions{Certs().cert_file, Certs().key_file, {"http/1.1"}};
    absl::StatusOr<ListenerInfo> listener = server_->Listen("echo", HostPort{"127.0.0.1", 0}, tls);
    ASSERT_TRUE(listener.ok()) << listener.status();
    EXPECT_TRUE(listener->tls);
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }

  ScopedFd Connect() {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : ScopedFd();
  }
  // A server running `service` on a TLS endpoint, one loop.
  void StartService(std::shared_ptr<Service> service, ConnectionOptions connection) {
    ServerOptions options;
    options.loops = 1;
    options.backend = GetParam();
    options.connection = connection;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(service).ok());
    EndpointOptions tls;
    tls.tls = TlsOptions{Certs().cert_file, Certs().key_file, {}};
    absl::StatusOr<ListenerInfo> listener = server_->Listen(service->name(), HostPort{"127.0.0.1", 0}, tls);
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }
  std::unique_ptr<TlsClient> Handshaken(int max_version = 0) {
    auto client = std::make_unique<TlsClient>(Connect(), Certs().ca_file, max_version);
    EXPECT_TRUE(client->Handshake());
    return client;
  }
  std::string Random(size_t n) { return test::RandomBytes(rng_, n); }
  uint64_t Closed(CloseReason reason) { return server_->Totals().closed_by(reason); }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::mt19937_64 rng_{42};
};

// A TLS connection moves between loops with its session: records keep flowing both ways,
// many times over, in both versions; one whose handshake is not done is not at a boundary.
TEST_P(TlsConnectionTest, ASessionMovesBetweenLoopsWithItsConnection) {
  StartServer(/*loops=*/2);
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    auto client = Handshaken(version);
    ASSERT_TRUE(client->Write("hello"));
    ASSERT_EQ(client->Read(5), "hello");
    const uint16_t port = test::LocalPort(client->fd()).value_or(0);
    uint64_t id = test::IdByPeerPort(*server_, Soon()).at(port);
    for (int move = 0; move < 200; ++move) {
      const MigrationResult r = server_->MigrateConnection(id, 1 - static_cast<int>(id >> 48));
      ASSERT_EQ(r.status, MigrationStatus::kMoved) << r.detail;
      id = r.new_id;
      const std::string bytes = Random(1 + (move * 7919) % 40000);
      ASSERT_TRUE(client->Write(bytes));
      ASSERT_EQ(client->Read(bytes.size()), bytes) << "after move " << move;
    }
    EXPECT_EQ(test::LoopByPeerPort(*server_, Soon()).at(port), static_cast<int>(id >> 48));
    client->Shutdown();
  }
  // Connected, no handshake yet: not at a boundary, and untouched.
  ScopedFd silent = Connect();
  ASSERT_TRUE(WaitUntil([&] { return server_->Totals().conns_active >= 1; }, Soon()));
  const uint16_t port = test::LocalPort(silent.get()).value_or(0);
  std::map<uint16_t, uint64_t> ids;
  ASSERT_TRUE(WaitUntil([&] { return (ids = test::IdByPeerPort(*server_, Soon())).count(port) == 1; }, Soon()));
  const uint64_t id = ids.at(port);
  const MigrationResult r = server_->MigrateConnection(id, 1 - static_cast<int>(id >> 48), absl::Milliseconds(50));
  EXPECT_EQ(r.status, MigrationStatus::kNotAtBoundary) << r.detail;
  TlsClient late(std::move(silent), Certs().ca_file);
  ASSERT_TRUE(late.Handshake());
  ASSERT_TRUE(late.Write("late"));
  EXPECT_EQ(late.Read(4), "late");
}

TEST_P(TlsConnectionTest, EchoesOverBothVersions) {
  StartServer();
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    auto client = Handshaken(version);
    EXPECT_EQ(SSL_version(client->ssl()), version);
    EXPECT_EQ(SSL_get_verify_result(client->ssl()), X509_V_OK);
    const unsigned char* alpn = nullptr;
    unsigned int alpn_length = 0;
    SSL_get0_alpn_selected(client->ssl(), &alpn, &alpn_length);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(alpn), alpn_length), "http/1.1");
    for (size_t size : {1ul, 100ul, 16384ul, 16385ul, 1ul << 20}) {
      const std::string bytes = Random(size);
      ASSERT_TRUE(client->Write(bytes));
      ASSERT_EQ(client->Read(size), bytes) << size;
    }
  }
}

TEST_P(TlsConnectionTest, SharedOutputPiecesAreEncryptedWhereTheyLive) {
  auto service = std::make_shared<SharedValueService>();
  StartService(service, ConnectionOptions());
  auto client = Handshaken();
  const std::string one = "VALUE\r\n" + service->value() + "\r\nEND\r\n";
  ASSERT_TRUE(client->Write("a"));
  ASSERT_EQ(client->Read(one.size()), one);
  ASSERT_TRUE(client->Write("bcd"));  // three pipelined: three values, in order
  EXPECT_TRUE(client->Read(3 * one.size()) == one + one + one);
}

// The output cap counts what a TLS connection holds, plaintext and ciphertext: a peer that
// asks for more than the cap and reads nothing is closed as output_overflow.
TEST_P(TlsConnectionTest, TheOutputCapHoldsOverTls) {
  ConnectionOptions connection;
  connection.high_water = 256 << 10;
  connection.low_water = 64 << 10;
  connection.output_cap = 1 << 20;
  StartService(std::make_shared<FloodService>(300 << 10), connection);
  auto client = Handshaken();
  ASSERT_TRUE(client->Write("0123456789"));  // 3 MB of replies asked for in one read
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kOutputOverflow) == 1; }, Soon()));
}

// A reply that makes no progress (the peer stopped reading) is closed by the write timeout.
TEST_P(TlsConnectionTest, TheWriteTimeoutHoldsOverTls) {
  ConnectionOptions connection;
  connection.write_timeout = absl::Milliseconds(300);
  StartService(std::make_shared<FloodService>(4 << 20), connection);
  auto client = Handshaken();
  ASSERT_TRUE(client->Write("x"));
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kWriteTimeout) == 1; }, Soon()));
}

TEST_P(TlsConnectionTest, PipelinedWritesComeBackInOrderThenCloseNotifyEndsIt) {
  StartServer();
  auto client = Handshaken();
  std::string all;
  for (int i = 0; i < 2000; ++i) {
    const std::string piece = Random(1 + i % 300);
    all += piece;
    ASSERT_TRUE(client->Write(piece));
  }
  // close_notify from the client: everything sent before it is still echoed, then the server
  // answers with its own close_notify and closes.
  ASSERT_EQ(client->Drive([&] { return SSL_shutdown(client->ssl()) >= 0 ? 1 : -1; }, Soon()), 1);
  ASSERT_EQ(client->Read(all.size()), all);
  EXPECT_TRUE(client->SeesCloseNotify());
  // The server lingers for our FIN (bytes could still follow a close_notify).
  ASSERT_EQ(::shutdown(client->fd(), SHUT_WR), 0);
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kPeerClosed) == 1; }, Soon()));
}

TEST_P(TlsConnectionTest, ASlowReaderIsBackedUpNotBuffered) {
  ConnectionOptions connection;
  connection.high_water = 256 << 10;
  connection.low_water = 64 << 10;
  StartServer(1, absl::Seconds(5), connection);
  auto client = Handshaken();
  // 32 MiB sent while nothing is read: the server stops reading at its high-water mark, so
  // the client's writes stall instead of the server buffering it all. (The kernel's socket
  // buffers on both sides, autotuned on loopback, and io_uring's receive buffers hold up to
  // about 16 MiB between them: less than that would not tell a stall from buffering.)
  const std::string chunk = Random(1 << 20);
  size_t written = 0;
  ::fcntl(client->fd(), F_SETFL, ::fcntl(client->fd(), F_GETFL) | O_NONBLOCK);
  for (int i = 0; i < 32; ++i) {
    size_t n = 0;
    const int r = client->Drive([&] { return SSL_write_ex(client->ssl(), chunk.data(), chunk.size(), &n); },
                                Deadline::In(absl::Milliseconds(300)));
    if (r != 1) break;
    written += n;
  }
  EXPECT_LT(written, 32u << 20);
  EXPECT_TRUE(WaitUntil([&] { return server_->Totals().backpressure_pauses >= 1; }, Soon()));
  // Reading everything back resumes it; the bytes are the ones sent, in order.
  std::string expected;
  for (size_t i = 0; i < written / chunk.size(); ++i) expected += chunk;
  std::string got = client->Read(expected.size());
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

TEST_P(TlsConnectionTest, TicketsResumeOnAnotherLoop) {
  StartServer(2);
  SSL_SESSION* ticket = nullptr;
  for (int round = 0; round < 4; ++round) {  // round robin: consecutive connections, other loops
    auto client = std::make_unique<TlsClient>(Connect(), Certs().ca_file);
    ASSERT_TRUE(client->Handshake(ticket));
    const std::string bytes = Random(1000);
    ASSERT_TRUE(client->Write(bytes));
    ASSERT_EQ(client->Read(bytes.size()), bytes);  // the ticket arrives before the echo
    if (round > 0) {
      EXPECT_EQ(SSL_session_reused(client->ssl()), 1) << round;
    }
    if (ticket != nullptr) SSL_SESSION_free(ticket);
    ticket = SSL_get1_session(client->ssl());
    client->Drive([&] { return SSL_shutdown(client->ssl()) >= 0 ? 1 : -1; }, Soon());
  }
  SSL_SESSION_free(ticket);
}

TEST_P(TlsConnectionTest, PlaintextInsteadOfAClientHelloIsCountedAndOthersAreServed) {
  StartServer();
  for (const std::string& garbage : {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Random(5000)}) {
    ScopedFd fd = Connect();
    ASSERT_TRUE(test::WriteAll(fd.get(), garbage, Soon()).ok());
    // Closed (an alert, then EOF), never answered in plaintext.
    absl::StatusOr<std::string> rest = test::ReadUntilEofOrReset(fd.get(), Soon());
    if (rest.ok()) {
      EXPECT_EQ(rest->find("HTTP"), std::string::npos);
    }
  }
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kTlsHandshakeFailed) == 2; }, Soon()));
  auto client = Handshaken();
  ASSERT_TRUE(client->Write("still here"));
  EXPECT_EQ(client->Read(10), "still here");
}

TEST_P(TlsConnectionTest, ASilentOrTruncatedHandshakeTimesOut) {
  StartServer(1, absl::Milliseconds(300));
  ScopedFd silent = Connect();
  // Half a ClientHello, then nothing.
  ScopedFd truncated = Connect();
  ASSERT_TRUE(test::WriteAll(truncated.get(), std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), Soon()).ok());
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kTlsHandshakeTimeout) == 2; }, Soon()));
  EXPECT_TRUE(test::ReadUntilEofOrReset(silent.get(), Soon()).ok());
  // A handshake that completes is not cut by that deadline afterwards.
  auto client = Handshaken();
  const absl::Time after = absl::Now() + absl::Milliseconds(600);
  ASSERT_TRUE(client->Write("ping"));
  EXPECT_EQ(client->Read(4), "ping");
  ASSERT_TRUE(WaitUntil([&] { return absl::Now() >= after; }, Soon()));
  ASSERT_TRUE(client->Write("pong"));
  EXPECT_EQ(client->Read(4), "pong");
  EXPECT_EQ(Closed(CloseReason::kTlsHandshakeTimeout), 2u);
}

// The peer's FIN behind a partial record (half a ClientHello) ends the connection: nothing
// can complete that record, so it is not waited for.
TEST_P(TlsConnectionTest, AFinAfterAPartialRecordCloses) {
  StartServer(1, absl::ZeroDuration());  // no handshake deadline: only the FIN can end it
  ScopedFd fd = Connect();
  ASSERT_TRUE(test::WriteAll(fd.get(), std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), Soon()).ok());
  ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
  EXPECT_TRUE(test::ReadUntilEofOrReset(fd.get(), Soon()).ok());
  EXPECT_TRUE(WaitUntil([&] { return server_->Totals().closed_total() == 1; }, Soon()));
  EXPECT_EQ(Closed(CloseReason::kPeerClosed), 1u);
}

// Bytes after the peer's close_notify are not read: the close completes as it would without
// them (they may be anything; here, not even TLS).
TEST_P(TlsConnectionTest, BytesAfterCloseNotifyAreIgnored) {
  StartServer();
  auto client = Handshaken();
  ASSERT_TRUE(client->Write("before"));
  ASSERT_EQ(client->Read(6), "before");
  client->Shutdown();
  ASSERT_TRUE(test::WriteAll(client->fd(), std::string("\x6e\xae\x0e\x00\x00\x00", 6), Soon()).ok());
  ASSERT_EQ(::shutdown(client->fd(), SHUT_WR), 0);
  EXPECT_TRUE(WaitUntil([&] { return server_->Totals().closed_total() == 1; }, Soon()));
  EXPECT_EQ(Closed(CloseReason::kPeerClosed), 1u);
}

TEST_P(TlsConnectionTest, StopDrainsWithCloseNotify) {
  StartServer();
  auto client = Handshaken();
  ASSERT_TRUE(client->Write("last words"));
  ASSERT_EQ(client->Read(10), "last words");
  server_->Stop();
  EXPECT_TRUE(client->SeesCloseNotify());
  EXPECT_EQ(Closed(CloseReason::kServerDrain), 1u);
}

TEST_P(TlsConnectionTest, ListenRefusesBadFilesWithTheReason) {
  ServerOptions options;
  options.backend = GetParam();
  Server server(options);
  ASSERT_TRUE(server.AddService(NewEchoService()).ok());
  EndpointOptions tls;
  tls.tls = TlsOptions{Certs().expired_cert_file, Certs().key_file, {}};
  absl::StatusOr<ListenerInfo> listener = server.Listen("echo", HostPort{"127.0.0.1", 0}, tls);
  ASSERT_FALSE(listener.ok());
  EXPECT_NE(listener.status().message().find("expired"), std::string_view::npos) << listener.status();
  tls.tls = TlsOptions{Certs().cert_file, Certs().other_key_file, {}};
  listener = server.Listen("echo", HostPort{"127.0.0.1", 0}, tls);
  ASSERT_FALSE(listener.ok());
  EXPECT_NE(listener.status().message().find("does not match"), std::string_view::npos) << listener.status();
}

INSTANTIATE_TEST_SUITE_P(Backends, TlsConnectionTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         [](const ::testing::TestParamInfo<PollerBackend>& info) {
                           return std::string(PollerBackendName(info.param));
                         });

}  // namespace
}  // namespace percore
