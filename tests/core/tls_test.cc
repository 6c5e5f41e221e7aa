// TlsContext and TlsSession against OpenSSL's own client, in memory: the session's ciphertext
// buffers are pumped to and from a client SSL over memory BIOs, so every byte is accounted for
// and no socket timing is involved. The kernel TLS cases put a loopback TCP connection between
// the session's sends and the client, since the offload is the socket's.

#include "core/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <fstream>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/random_bytes.h"
#include "tests/testing/test_certs.h"

namespace percore {
namespace {

using test::MakeTestCertificates;
using test::TestCertificates;

std::string Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return test::RandomBytes(rng, n);
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    auto made = MakeTestCertificates(std::string(tmp != nullptr ? tmp : "/tmp") + "/tls_test_certs");
    ASSERT_TRUE(made.ok()) << made.status();
    certs_ = new TestCertificates(*made);
  }
  static void TearDownTestSuite() { delete certs_; }

  std::shared_ptr<const TlsContext> Context(std::vector<std::string> alpn = {"http/1.1"}) {
    TlsOptions options;
    options.cert_file = certs_->cert_file;
    options.key_file = certs_->key_file;
    options.alpn = std::move(alpn);
    auto context = TlsContext::Create(options);
    EXPECT_TRUE(context.ok()) << context.status();
    return context.ok() ? *context : nullptr;
  }

  static TestCertificates* certs_;
  BufferPool pool_;
};

TestCertificates* TlsTest::certs_ = nullptr;

// OpenSSL's client, verifying the chain against the test root and the name "localhost".
class Client {
 public:
  explicit Client(const std::string& ca_file, int max_version = 0, const char* alpn = "\x08http/1.1") {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_, max_version);
    ssl_ = SSL_new(ctx_);
    SSL_set1_host(ssl_, "localhost");
    SSL_set_tlsext_host_name(ssl_, "localhost");
    if (alpn != nullptr) SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(alpn), strlen(alpn));
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set_connect_state(ssl_);
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }

  SSL* ssl() { return ssl_; }
  // Moves the client's ciphertext to the session and the session's to the client.
  void ToServer(TlsSession& session) {
    char chunk[4096];
    int n;
    while ((n = BIO_read(out_, chunk, sizeof(chunk))) > 0) session.Receive(std::string_view(chunk, n));
  }
  void FromServer(TlsSession& session) {
    Buffer& wire = session.wire_out();
    if (!wire.empty()) {
      BIO_write(in_, wire.data(), static_cast<int>(wire.size()));
      wire.Consume(wire.size());
    }
  }
  // Ciphertext from the server that came some other way (a socket).
  void Feed(std::string_view bytes) { BIO_write(in_, bytes.data(), static_cast<int>(bytes.size())); }
  // Reads what plaintext the client has now.
  std::string Read() {
    std::string got;
    char chunk[16384];
    size_t n = 0;
    while (SSL_read_ex(ssl_, chunk, sizeof(chunk), &n) == 1) got.append(chunk, n);
    return got;
  }

 private:
  SSL_CTX* ctx_;
  SSL* ssl_;
  BIO* in_;
  BIO* out_;
};

// Runs the handshake to its end on both sides; false if either fails.
bool Handshake(Client& client, TlsSession& session, Buffer& plain) {
  for (int round = 0; round < 10; ++round) {
    const int r = SSL_do_handshake(client.ssl());
    const int client_error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(client.ssl(), r);
    client.ToServer(session);
    if (session.Decrypt(plain, 1 << 20) != TlsSession::Result::kOk) {
      ADD_FAILURE() << "server: " << session.error();
      return false;
    }
    client.FromServer(session);
    if (r == 1 && session.handshake_done()) return true;
    if (r != 1 && client_error != SSL_ERROR_WANT_READ) {
      char text[256];
      ERR_error_string_n(ERR_get_error(), text, sizeof(text));
      ADD_FAILURE() << "client: " << text;
      return false;
    }
  }
  return false;
}

TEST_F(TlsTest, HandshakeVerifiesTheChainAndCarriesDataBothWays) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    auto context = Context();
    TlsSession session(context, &pool_);
    Client client(certs_->ca_file, version);
    Buffer plain(&pool_);
    ASSERT_TRUE(Handshake(client, session, plain)) << session.error();
    EXPECT_EQ(SSL_get_verify_result(client.ssl()), X509_V_OK);
    EXPECT_EQ(session.version(), version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    EXPECT_EQ(session.alpn(), "http/1.1");
    EXPECT_FALSE(session.resumed());
    EXPECT_TRUE(session.TakeHandshakeCompleted());
    EXPECT_FALSE(session.TakeHandshakeCompleted());

    // A megabyte each way, in pieces the record layer splits and joins.
    const std::string request = Random(1 << 20, 7);
    size_t sent = 0;
    while (sent < request.size()) {
      const size_t piece = std::min<size_t>(request.size() - sent, 10000);
      size_t n = 0;
      ASSERT_EQ(SSL_write_ex(client.ssl(), request.data() + sent, piece, &n), 1);
      sent += n;
      client.ToServer(session);
      ASSERT_EQ(session.Decrypt(plain, 1 << 21), TlsSession::Result::kOk) << session.error();
      client.FromServer(session);  // TLS 1.3 session tickets, after the handshake
    }
    ASSERT_EQ(plain.view(), request);

    const std::string reply = Random(1 << 20, 8);
    EXPECT_EQ(session.Encrypt(reply), reply.size());
    client.FromServer(session);
    EXPECT_EQ(client.Read(), reply);

    // close_notify from the client: the peer will send nothing more.
    SSL_shutdown(client.ssl());
    client.ToServer(session);
    EXPECT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kPeerClosed);
    // And ours reaches the client.
    session.Shutdown();
    client.FromServer(session);
    char byte;
    const int r = SSL_read(client.ssl(), &byte, 1);
    EXPECT_EQ(r, 0);
    EXPECT_EQ(SSL_get_error(client.ssl(), r), SSL_ERROR_ZERO_RETURN);
  }
}

TEST_F(TlsTest, DecryptStopsAtItsLimitAndKeepsTheRest) {
  auto context = Context();
  TlsSession session(context, &pool_);
  Client client(certs_->ca_file);
  Buffer plain(&pool_);
  ASSERT_TRUE(Handshake(client, session, plain));
  const std::string data = Random(100000, 9);
  size_t n = 0;
  ASSERT_EQ(SSL_write_ex(client.ssl(), data.data(), data.size(), &n), 1);
  client.ToServer(session);
  ASSERT_EQ(session.Decrypt(plain, 30000), TlsSession::Result::kOk);
  EXPECT_GE(plain.size(), 30000u);
  EXPECT_LT(plain.size(), data.size());
  while (plain.size() < data.size()) {
    const size_t before = plain.size();
    ASSERT_EQ(session.Decrypt(plain, 30000), TlsSession::Result::kOk);
    ASSERT_GT(plain.size(), before);
  }
  EXPECT_EQ(plain.view(), data);
}

TEST_F(TlsTest, NothingIsEncryptedBeforeTheHandshake) {
  auto context = Context();
  TlsSession session(context, &pool_);
  EXPECT_EQ(session.Encrypt("early"), 0u);
  EXPECT_TRUE(session.wire_out().empty());
  session.Shutdown();  // before the handshake: nothing to say
  EXPECT_TRUE(session.wire_out().empty());
}

// Resumption with tickets across two sessions of one context (two loops sharing an endpoint's
// context), for both versions, and across a certificate reload (the ticket keys carry over).
TEST_F(TlsTest, TicketsResumeOnAnotherSessionAndAcrossAReload) {
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SCOPED_TRACE(version);
    auto context = Context();
    SSL_SESSION* ticket = nullptr;
    {
      TlsSession first(context, &pool_);
      Client client(certs_->ca_file, version);
      Buffer plain(&pool_);
      ASSERT_TRUE(Handshake(client, first, plain));
      client.Read();  // takes in the NewSessionTicket (TLS 1.3 sends it after the handshake)
      ticket = SSL_get1_session(client.ssl());
      ASSERT_NE(ticket, nullptr);
      // A client freed without close_notify marks its session not resumable.
      SSL_shutdown(client.ssl());
    }
    ASSERT_EQ(SSL_SESSION_is_resumable(ticket), 1);
    auto reloaded = context->Reload();
    ASSERT_TRUE(reloaded.ok()) << reloaded.status();
    for (const auto& ctx : {context, *reloaded}) {
      TlsSession second(ctx, &pool_);
      Client client(certs_->ca_file, version);
      SSL_set_session(client.ssl(), ticket);
      Buffer plain(&pool_);
      ASSERT_TRUE(Handshake(client, second, plain));
      EXPECT_TRUE(second.resumed());
      EXPECT_EQ(SSL_session_reused(client.ssl()), 1);
      SSL_shutdown(client.ssl());  // keeps the ticket resumable for the next round
    }
    SSL_SESSION_free(ticket);
  }
}

TEST_F(TlsTest, NoCommonAlpnStillConnectsWithout) {
  auto context = Context();
  TlsSession session(context, &pool_);
  Client client(certs_->ca_file, 0, "\x02h2");
  Buffer plain(&pool_);
  ASSERT_TRUE(Handshake(client, session, plain));
  EXPECT_EQ(session.alpn(), "");
}

TEST_F(TlsTest, PlaintextInsteadOfAClientHelloIsAnErrorThatSaysSo) {
  auto context = Context();
  for (std::string garbage : {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), std::string("\x16\x03\x01\xff\xff"),
                              Random(3000, 11)}) {
    TlsSession session(context, &pool_);
    Buffer plain(&pool_);
    session.Receive(garbage);
    ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kError);
    EXPECT_FALSE(session.error().empty());
    EXPECT_TRUE(plain.empty());
    EXPECT_FALSE(session.handshake_done());
  }
  TlsSession http(context, &pool_);
  Buffer plain(&pool_);
  http.Receive("GET / HTTP/1.1\r\n\r\n");
  ASSERT_EQ(http.Decrypt(plain, 1 << 20), TlsSession::Result::kError);
  EXPECT_TRUE(http.error_was_not_tls()) << http.error();
}

TEST_F(TlsTest, ATruncatedClientHelloWaitsForTheRest) {
  auto context = Context();
  TlsSession session(context, &pool_);
  Client client(certs_->ca_file);
  SSL_do_handshake(client.ssl());
  TlsSession scratch(context, &pool_);
  client.ToServer(scratch);
  const std::string hello(scratch.wire_in().view());
  Buffer plain(&pool_);
  for (size_t i = 0; i < hello.size(); ++i) {  // byte by byte: nothing until the last
    session.Receive(hello.substr(i, 1));
    ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk) << i;
    if (i + 1 < hello.size()) {
      ASSERT_TRUE(session.wire_out().empty()) << i;
    }
  }
  EXPECT_FALSE(session.wire_out().empty());  // the ServerHello
}

TEST_F(TlsTest, RenegotiationIsRefused) {
  auto context = Context();
  TlsSession session(context, &pool_);
  Client client(certs_->ca_file, TLS1_2_VERSION);
  Buffer plain(&pool_);
  ASSERT_TRUE(Handshake(client, session, plain));
  ASSERT_EQ(SSL_renegotiate(client.ssl()), 1);
  bool renegotiated = false;
  for (int round = 0; round < 5; ++round) {
    const int r = SSL_do_handshake(client.ssl());
    client.ToServer(session);
    session.Decrypt(plain, 1 << 20);
    client.FromServer(session);
    if (r == 1 && SSL_renegotiate_pending(client.ssl()) == 0) renegotiated = true;
  }
  EXPECT_FALSE(renegotiated);
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsTest, BadFilesAreRefusedWithTheReason) {
  auto make = [](std::string cert, std::string key) {
    TlsOptions options;
    options.cert_file = std::move(cert);
    options.key_file = std::move(key);
    return TlsContext::Create(options);
  };
  const std::string garbage = certs_->dir + "/garbage.pem";
  std::ofstream(garbage) << "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";

  struct Case {
    std::string cert, key, says;
  } cases[] = {
      {"", certs_->key_file, "--tls_cert"},
      {certs_->cert_file, "", "--tls_key"},
      {certs_->dir + "/missing.pem", certs_->key_file, "No such file"},
      {certs_->cert_file, certs_->dir + "/missing.pem", "No such file"},
      {garbage, certs_->key_file, "not usable PEM"},
      {certs_->cert_file, garbage, "not usable PEM"},
      {certs_->cert_file, certs_->other_key_file, "does not match"},
      {certs_->cert_file, certs_->rsa_key_file, "does not match"},
      {certs_->expired_cert_file, certs_->key_file, "expired on"},
      {certs_->future_cert_file, certs_->key_file, "not valid until"},
  };
  for (const Case& c : cases) {
    auto context = make(c.cert, c.key);
    ASSERT_FALSE(context.ok()) << c.cert << " " << c.key;
    EXPECT_NE(context.status().message().find(c.says), std::string_view::npos) << context.status();
  }
  EXPECT_TRUE(make(certs_->rsa_cert_file, certs_->rsa_key_file).ok());
  // Nothing of a refused attempt is left on the thread's error queue.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsTest, ReloadReadsTheFilesAgainAndABadFileLeavesTheOldContext) {
  const std::string cert = certs_->dir + "/live_cert.pem";
  auto copy = [&](const std::string& from) {
    std::ifstream in(from);
    std::ofstream(cert) << in.rdbuf();
  };
  copy(certs_->cert_file);
  TlsOptions options;
  options.cert_file = cert;
  options.key_file = certs_->key_file;
  auto context = TlsContext::Create(options);
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_NE((*context)->subject().find("CN=localhost"), std::string::npos) << (*context)->subject();

  copy(certs_->second_cert_file);
  auto reloaded = (*context)->Reload();
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_NE((*reloaded)->subject().find("CN=percore-reloaded"), std::string::npos);
  EXPECT_NE((*context)->subject().find("CN=localhost"), std::string::npos);  // the old one unchanged

  copy(certs_->expired_cert_file);
  auto refused = (*reloaded)->Reload();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("expired"), std::string_view::npos);
  // The context in use still serves.
  TlsSession session(*reloaded, &pool_);
  Client client(certs_->ca_file);
  Buffer plain(&pool_);
  EXPECT_TRUE(Handshake(client, session, plain)) << session.error();
}

TEST_F(TlsTest, KernelTlsIsReportedHonestly) {
  auto context = Context();
  TlsSession session(context, &pool_);
  Client client(certs_->ca_file);
  Buffer plain(&pool_);
  ASSERT_TRUE(Handshake(client, session, plain));
  // Over buffers the kernel cannot take the record layer: never reported as offloaded.
  EXPECT_FALSE(session.ktls_send());
  EXPECT_FALSE(session.ktls_receive());
}

// Nothing of OpenSSL exists until the client's first record is whole; the bytes wait, in
// order, however they are split.
TEST_F(TlsTest, TheSessionBeginsWithTheFirstWholeRecord) {
  TlsSession session(Context(), &pool_);
  Client client(certs_->ca_file);
  Buffer plain(&pool_);
  EXPECT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
  EXPECT_EQ(session.native(), nullptr);
  ASSERT_EQ(SSL_do_handshake(client.ssl()), -1);
  std::string hello;
  {
    TlsSession scratch(Context(), &pool_);
    client.ToServer(scratch);
    hello.assign(scratch.wire_in().data(), scratch.wire_in().size());
  }
  ASSERT_GT(hello.size(), 5u);
  for (size_t i = 0; i + 1 < hello.size(); ++i) {  // byte by byte, all but the last
    session.Receive(hello.substr(i, 1));
    ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
    ASSERT_EQ(session.native(), nullptr) << "after " << i + 1 << " of " << hello.size() << " bytes";
    ASSERT_TRUE(session.wire_out().empty());
    ASSERT_FALSE(session.has_pending());
  }
  session.Receive(hello.substr(hello.size() - 1));
  ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
  EXPECT_NE(session.native(), nullptr);
  EXPECT_FALSE(session.wire_out().empty()) << "the server's flight";
  client.FromServer(session);
  ASSERT_TRUE(Handshake(client, session, plain));
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(client.ssl(), "ping", 4, &written), 1);
  client.ToServer(session);
  ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
  EXPECT_EQ(std::string(plain.data(), plain.size()), "ping");
}

// What cannot be the start of a TLS handshake record goes to OpenSSL at once, which refuses it:
// a plaintext client is not kept waiting for a "record" of its first bytes' length.
TEST_F(TlsTest, BytesThatAreNotAHandshakeRecordAreRefusedAtOnce) {
  for (const std::string& first : {std::string("GET / HTTP/1.1\r\n\r\n"), std::string("\x16\x02\x00\x00\x10", 5),
                                  std::string("\x17\x03\x03\x00\x02" "ab", 7)}) {
    TlsSession session(Context(), &pool_);
    Buffer plain(&pool_);
    session.Receive(first);
    EXPECT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kError) << testing::PrintToString(first);
    EXPECT_FALSE(session.error().empty());
  }
  // One byte is enough when it cannot start a record: a plaintext client that sends "G" and
  // waits is refused now, not at the handshake deadline.
  for (const std::string& first : {std::string("G"), std::string("\r\n"), std::string(1, '\0')}) {
    TlsSession session(Context(), &pool_);
    Buffer plain(&pool_);
    session.Receive(first);
    EXPECT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kError) << testing::PrintToString(first);
    EXPECT_TRUE(session.error_was_not_tls());
  }
  // The start of a real record waits for the rest.
  TlsSession session(Context(), &pool_);
  Buffer plain(&pool_);
  session.Receive(std::string("\x16\x03", 2));
  EXPECT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
}

// A connected loopback TCP pair: {server side, client side}.
std::pair<int, int> TcpPair() {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::listen(listener, 1), 0);
  EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const int server = ::accept(listener, nullptr, nullptr);
  ::close(listener);
  return {server, client};
}

// The session offloading its sends to `server_fd`, the client reading what arrives on
// `client_fd`: every step sends what the session queued and gives the client everything the
// socket has (loopback delivers within the sending call).
class OffloadPump {
 public:
  OffloadPump(TlsSession& session, Client& client, int server_fd, int client_fd)
      : session_(session), client_(client), server_fd_(server_fd), client_fd_(client_fd) {}

  void Send() {
    Buffer& wire = session_.wire_out();
    while (!wire.empty()) {
      const ssize_t n = ::send(server_fd_, wire.data(), wire.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0);
      wire.Consume(static_cast<size_t>(n));
    }
    char chunk[16384];
    ssize_t n;
    while ((n = ::recv(client_fd_, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0) {
      client_.Feed(std::string_view(chunk, static_cast<size_t>(n)));
    }
  }

  bool Handshake(Buffer& plain) {
    for (int round = 0; round < 10; ++round) {
      const int r = SSL_do_handshake(client_.ssl());
      const int client_error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(client_.ssl(), r);
      client_.ToServer(session_);
      if (session_.Decrypt(plain, 1 << 20) != TlsSession::Result::kOk) {
        ADD_FAILURE() << "server: " << session_.error();
        return false;
      }
      Send();
      if (r == 1 && session_.handshake_done()) return true;
      if (r != 1 && client_error != SSL_ERROR_WANT_READ) {
        char text[256];
        ERR_error_string_n(ERR_get_error(), text, sizeof(text));
        ADD_FAILURE() << "client: " << text;
        return false;
      }
    }
    ADD_FAILURE() << "no handshake in 10 rounds";
    return false;
  }

 private:
  TlsSession& session_;
  Client& client_;
  int server_fd_;
  int client_fd_;
};

// Data both ways, a ticket and close_notify through an offloading session, whether the kernel
// took the keys or not: the bytes on the socket are what the client expects either way.
void CarryEverythingThroughTheSocket(TlsSession& session, Client& client, BufferPool& pool) {
  auto [server_fd, client_fd] = TcpPair();
  session.OffloadSendsTo(server_fd);
  OffloadPump pump(session, client, server_fd, client_fd);
  Buffer plain(&pool);
  ASSERT_TRUE(pump.Handshake(plain));

  const std::string reply = Random(100000, 7);  // several records
  size_t offset = 0;
  std::string got;
  while (offset < reply.size() || got.size() < reply.size()) {
    if (offset < reply.size()) {
      offset += session.Encrypt(std::string_view(reply).substr(offset, 20000));
      pump.Send();
    }
    got += client.Read();
  }
  EXPECT_EQ(got, reply);

  const std::string request = Random(30000, 8);
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(client.ssl(), request.data(), request.size(), &written), 1);
  client.ToServer(session);
  ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
  EXPECT_EQ(std::string(plain.data(), plain.size()), request);

  // The ticket came through: the client holds a session it can resume.
  SSL_SESSION* ticket = SSL_get1_session(client.ssl());
  ASSERT_NE(ticket, nullptr);
  EXPECT_TRUE(SSL_SESSION_is_resumable(ticket));
  SSL_SESSION_free(ticket);

  session.Shutdown();
  pump.Send();
  char byte;
  size_t n = 0;
  EXPECT_EQ(SSL_read_ex(client.ssl(), &byte, 1, &n), 0);
  EXPECT_EQ(SSL_get_error(client.ssl(), 0), SSL_ERROR_ZERO_RETURN) << "close_notify";
  ::close(server_fd);
  ::close(client_fd);
}

class KernelTlsTest : public TlsTest, public ::testing::WithParamInterface<int> {};

TEST_P(KernelTlsTest, TheKernelEncryptsWhatTheSessionSends) {
  if (!KernelHasTls()) {
    GTEST_SKIP() << "this kernel has no tls module (/proc/sys/net/ipv4/tcp_available_ulp lists no tls), "
                    "so it cannot take the record layer";
  }
  TlsSession session(Context(), &pool_);
  Client client(certs_->ca_file, GetParam());
  CarryEverythingThroughTheSocket(session, client, pool_);
  EXPECT_TRUE(session.ktls_send()) << session.ktls_refusal();
  EXPECT_EQ(session.ktls_refusal(), "");
}

TEST_P(KernelTlsTest, AnOffloadThatDoesNotHappenLeavesTheSessionInUserspaceAndSaysWhy) {
  if (KernelHasTls()) GTEST_SKIP() << "this kernel has the tls module: the offload can happen";
  TlsSession session(Context(), &pool_);
  Client client(certs_->ca_file, GetParam());
  CarryEverythingThroughTheSocket(session, client, pool_);
  EXPECT_FALSE(session.ktls_send());
  // OpenSSL offered the keys and the kernel refused them, or it never offered them.
  EXPECT_TRUE(session.ktls_refusal().find("no tls module") != std::string::npos ||
              session.ktls_refusal().find("OpenSSL did not offer the keys") != std::string::npos)
      << session.ktls_refusal();
}

// OpenSSL's request to the BIO, made by hand (a libssl built without kTLS never makes it): the
// queued handshake bytes go out on the socket first, then the kernel is asked for the tls
// layer; a kernel without it refuses and the session carries on in userspace.
TEST_F(TlsTest, TheBioFlushesTheHandshakeBeforeHandingKeysToTheKernel) {
  if (KernelHasTls()) GTEST_SKIP() << "this kernel has the tls module: it would take the made-up keys";
  auto [server_fd, client_fd] = TcpPair();
  TlsSession session(Context(), &pool_);
  session.OffloadSendsTo(server_fd);
  // The ClientHello in: the server's flight is queued.
  Client client(certs_->ca_file);
  Buffer plain(&pool_);
  ASSERT_EQ(SSL_do_handshake(client.ssl()), -1);
  client.ToServer(session);
  ASSERT_EQ(session.Decrypt(plain, 1 << 20), TlsSession::Result::kOk);
  const std::string flight(session.wire_out().data(), session.wire_out().size());
  ASSERT_FALSE(flight.empty());
  tls12_crypto_info_aes_gcm_128 keys{};
  keys.info.version = TLS_1_3_VERSION;
  keys.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  EXPECT_EQ(BIO_ctrl(SSL_get_wbio(session.native()), 72, 1, &keys), 0);
  EXPECT_FALSE(session.ktls_send());
  EXPECT_NE(session.ktls_refusal().find("TCP_ULP tls: No such file or directory (the kernel has no tls module)"),
            std::string::npos)
      << session.ktls_refusal();
  EXPECT_TRUE(session.wire_out().empty());
  std::string got(flight.size() + 1, '\0');
  EXPECT_EQ(::recv(client_fd, got.data(), got.size(), MSG_DONTWAIT), static_cast<ssize_t>(flight.size()));
  got.resize(flight.size());
  EXPECT_EQ(got, flight);
  // Receiving stays in userspace whatever the kernel has.
  EXPECT_EQ(BIO_ctrl(SSL_get_wbio(session.native()), 72, 0, &keys), 0);
  // A cipher the kernel has no structure for is refused before any system call.
  keys.info.cipher_type = 9999;
  EXPECT_EQ(BIO_ctrl(SSL_get_wbio(session.native()), 72, 1, &keys), 0);
  EXPECT_NE(session.ktls_refusal().find("cipher 9999"), std::string::npos) << session.ktls_refusal();
  ::close(server_fd);
  ::close(client_fd);
}

TEST_P(KernelTlsTest, AContextWithoutKtlsNeverAsks) {
  TlsOptions options;
  options.cert_file = certs_->cert_file;
  options.key_file = certs_->key_file;
  options.ktls = false;
  auto context = TlsContext::Create(options);
  ASSERT_TRUE(context.ok()) << context.status();
  TlsSession session(*context, &pool_);
  Client client(certs_->ca_file, GetParam());
  CarryEverythingThroughTheSocket(session, client, pool_);
  EXPECT_FALSE(session.ktls_send());
  EXPECT_EQ(session.ktls_refusal(), "");
}

INSTANTIATE_TEST_SUITE_P(Versions, KernelTlsTest, ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == TLS1_2_VERSION ? std::string("tls12") : std::string("tls13");
                         });

}  // namespace
}  // namespace percore
