// Fuzzes a TLS endpoint's connection path. The first byte picks how the client starts:
//
//   even: it sends the input's bytes as they are, as a client that is not TLS, or a broken or
//         hostile one, would: garbage, a mangled ClientHello, records out of order;
//   odd:  it completes a real handshake (OpenSSL's client, TLS 1.2 or 1.3 by the byte), then
//         follows a script: encrypted chunks of handler script (the connection fuzzer's
//         ScriptHandler: echo, floods, pauses, every kind of close, throws), raw bytes injected
//         into the stream between records, reads, half-close, close_notify, reset.
//
// The loop is stepped on this thread between client actions, so each run is reproducible, and
// every input runs on a readiness loop (epoll) and a completion loop (io_uring). Checked after
// each: the connection is gone within a bounded number of steps, every connection handed in
// was closed under exactly one counted reason, and ASan/UBSan (--config=fuzz) saw nothing.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/socket.h"
#include "core/tls.h"
#include "reactor/event_loop.h"
#include "reactor/tls_endpoint.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/fuzz/script_handler.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/test_certs.h"

namespace {

struct World {
  World() {
    // The client writes with OpenSSL's socket BIO (write(2)): a server that closed first must
    // give it EPIPE, not end the fuzzer.
    std::signal(SIGPIPE, SIG_IGN);
    auto certs = percore::test::MakeTestCertificates("/tmp/percore_tls_fuzz_certs." + std::to_string(getpid()));
    if (!certs.ok()) std::abort();
    ca_file = certs->ca_file;
    percore::TlsOptions tls;
    tls.cert_file = certs->cert_file;
    tls.key_file = certs->key_file;
    tls.alpn = {"http/1.1"};
    auto context = percore::TlsContext::Create(tls);
    if (!context.ok()) std::abort();
    endpoint = std::make_unique<percore::TlsEndpoint>(*context, 0);
    loops[0] = MakeLoop(percore::PollerBackend::kEpoll);
    loops[1] = MakeLoop(percore::PollerBackend::kIoUring);
    auto fd = percore::ListenTcp({"127.0.0.1", 0});
    if (!fd.ok()) std::abort();
    listen_fd = *fd;
    port = percore::LocalAddress(listen_fd)->port();
    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(client_ctx, ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, nullptr);
  }
  std::unique_ptr<percore::EventLoop> MakeLoop(percore::PollerBackend backend) {
    percore::EventLoopOptions options;
    options.backend = backend;
    options.services = {&service};
    options.tls_endpoints = 1;
    options.connection.high_water = 64 * 1024;
    options.connection.low_water = 16 * 1024;
    options.connection.output_cap = 1024 * 1024;
    // Time-based closes would make runs irreproducible.
    options.connection.idle_timeout = absl::ZeroDuration();
    options.connection.write_timeout = absl::ZeroDuration();
    options.connection.tls_handshake_timeout = absl::ZeroDuration();
    options.connection.close_linger = absl::Seconds(1);
    absl::StatusOr<std::unique_ptr<percore::EventLoop>> loop = percore::EventLoop::Create(options);
    if (!loop.ok()) {
      std::fprintf(stderr, "tls_connection_fuzz: no %s loop: %s\n",
                   std::string(percore::PollerBackendName(backend)).c_str(), std::string(loop.status().message()).c_str());
      std::abort();
    }
    (*loop)->BindToCurrentThread();
    return std::move(*loop);
  }
  percore::fuzz::ScriptService service;
  std::string ca_file;
  std::unique_ptr<percore::TlsEndpoint> endpoint;
  std::unique_ptr<percore::EventLoop> loops[2];
  SSL_CTX* client_ctx = nullptr;
  int listen_fd = -1;
  uint16_t port = 0;
};

World& TheWorld() {
  static World* world = new World();
  return *world;
}

using percore::fuzz::Reader;
using percore::fuzz::WaitFor;

using percore::fuzz::HarnessFailed;

// Runs a client SSL call, stepping the loop while it waits for the server; its last result.
template <typename Fn>
int Drive(percore::EventLoop& loop, SSL* ssl, Fn fn) {
  for (int i = 0; i < 200; ++i) {
    const int r = fn();
    if (r > 0) return r;
    const int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return r;
    loop.Step(1);
  }
  return -1;
}

void RunOne(World& w, percore::EventLoop& loop, const uint8_t* data, size_t size) {
  const int small = 8 * 1024;
  absl::StatusOr<percore::test::ScopedFd> connected = percore::test::ConnectToLoopback(
      w.port, percore::test::Deadline::In(absl::Seconds(10)), {.receive_buffer = small});
  if (!connected.ok()) std::abort();
  const int client = connected->release();
  WaitFor(w.listen_fd, POLLIN, "the listener to become readable");
  const int server_side = accept4(w.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (server_side < 0) HarnessFailed("accept", errno);
  setsockopt(server_side, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  loop.Adopt(server_side, 0, percore::SocketAddress(), w.endpoint.get());
  loop.Step(0);

  Reader in(data, size);
  const uint8_t mode = in.Byte();
  bool client_open = true;
  char sink[16 * 1024];
  SSL* ssl = nullptr;
  if (mode % 2 == 0) {
    const std::string bytes = in.Rest();
    if (!bytes.empty()) (void)send(client, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    loop.Step(0);
  } else {
    ssl = SSL_new(w.client_ctx);
    SSL_set_max_proto_version(ssl, (mode & 2) != 0 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_set1_host(ssl, "localhost");
    SSL_set_fd(ssl, client);
    (void)fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK);
    ERR_clear_error();
    if (Drive(loop, ssl, [&] { return SSL_connect(ssl); }) != 1) {
      std::fprintf(stderr, "tls_connection_fuzz: a real client's handshake failed\n");
      std::abort();
    }
    while (client_open && !in.empty()) {
      switch (in.Byte() % 8) {
        case 0:
        case 1: {  // an encrypted chunk of handler script
          const std::string chunk = in.Bytes(in.Byte());
          size_t n = 0;
          if (!chunk.empty()) (void)Drive(loop, ssl, [&] { return SSL_write_ex(ssl, chunk.data(), chunk.size(), &n); });
          break;
        }
        case 2: {  // raw bytes between records: a corrupt stream
          const std::string raw = in.Bytes(1 + in.Byte() % 32);
          (void)send(client, raw.data(), raw.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          break;
        }
        case 3: {  // read some of what came back
          size_t n = 0;
          (void)SSL_read_ex(ssl, sink, 1 + in.Byte() * 64, &n);
          break;
        }
        case 4:
        case 5:
          loop.Step(0);
          break;
        case 6:
          if (in.Byte() % 2 == 0) {
            (void)SSL_shutdown(ssl);  // close_notify
          } else {
            shutdown(client, SHUT_WR);
          }
          break;
        case 7:
          (void)percore::test::ResetOnClose(client);
          close(client);
          client_open = false;
          break;
      }
      ERR_clear_error();
    }
  }
  if (client_open) {
    shutdown(client, SHUT_WR);
    for (int idle = 0; idle < 2000 && loop.stats().conns_active.Get() > 0; ++idle) {
      loop.Step(1);
      while (recv(client, sink, sizeof(sink), MSG_DONTWAIT) > 0) idle = 0;
    }
    close(client);
  }
  if (ssl != nullptr) SSL_free(ssl);  // its descriptor is closed already
  ERR_clear_error();
  for (int i = 0; i < 2000 && loop.stats().conns_active.Get() > 0; ++i) loop.Step(1);

  const percore::LoopStats& stats = loop.stats();
  if (stats.conns_active.Get() != 0) {
    std::fprintf(stderr, "tls_connection_fuzz: connection still open after the client left\n");
    std::abort();
  }
  if (stats.conns_handed_in.Get() != stats.closed_total()) {
    std::fprintf(stderr, "tls_connection_fuzz: %lu handed in but %lu closed\n",
                 static_cast<unsigned long>(stats.conns_handed_in.Get()),
                 static_cast<unsigned long>(stats.closed_total()));
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = TheWorld();
  for (auto& loop : w.loops) RunOne(w, *loop, data, size);
  return 0;
}
