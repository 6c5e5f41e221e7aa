// Fuzzes the connection state machine: the input is a script for a client (write, read,
// half-close, reset) and, inside the bytes it sends, for the handler (echo, flood the output,
// pause and resume, close in every way, throw). The loop is stepped on this thread between
// client actions, so every interleaving is reproducible from the input alone.
//
// Every input runs twice: on a readiness loop (epoll) and on a completion loop (io_uring),
// whose receives, sends and cancellations take a different path through the same machine.
//
// Checked after every input: the connection is gone within a bounded number of steps (no hang,
// no leak), every connection handed in was closed under exactly one counted reason, and
// ASan/UBSan (in --config=fuzz) saw nothing.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/socket.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/fuzz/script_handler.h"

namespace {

using percore::Action;
using percore::Buffer;
using percore::CloseMode;
using percore::CloseReason;
using percore::Connection;

struct World {
  World() {
    loops[0] = MakeLoop(percore::PollerBackend::kEpoll);
    loops[1] = MakeLoop(percore::PollerBackend::kIoUring);
    auto fd = percore::ListenTcp({"127.0.0.1", 0});
    if (!fd.ok()) std::abort();
    listen_fd = *fd;
    port = percore::LocalAddress(listen_fd)->port();
  }
  std::unique_ptr<percore::EventLoop> MakeLoop(percore::PollerBackend backend) {
    percore::EventLoopOptions options;
    options.backend = backend;
    options.services = {&service};
    options.connection.high_water = 64 * 1024;
    options.connection.low_water = 16 * 1024;
    options.connection.output_cap = 1024 * 1024;
    // Time-based closes would make runs irreproducible.
    options.connection.idle_timeout = absl::ZeroDuration();
    options.connection.write_timeout = absl::ZeroDuration();
    options.connection.close_linger = absl::Seconds(1);
    absl::StatusOr<std::unique_ptr<percore::EventLoop>> loop = percore::EventLoop::Create(options);
    if (!loop.ok()) {
      std::fprintf(stderr, "connection_fuzz: no %s loop: %s\n", std::string(percore::PollerBackendName(backend)).c_str(),
                   std::string(loop.status().message()).c_str());
      std::abort();
    }
    (*loop)->BindToCurrentThread();
    return std::move(*loop);
  }
  percore::fuzz::ScriptService service;
  std::unique_ptr<percore::EventLoop> loops[2];
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

void ResetClose(int fd) {
  (void)percore::test::ResetOnClose(fd);
  close(fd);
}

void RunOne(World& w, percore::EventLoop& loop, const uint8_t* data, size_t size) {
  const int small = 8 * 1024;  // small buffers make partial writes and backpressure common
  absl::StatusOr<percore::test::ScopedFd> connected = percore::test::ConnectToLoopback(
      w.port, percore::test::Deadline::In(absl::Seconds(10)), {.receive_buffer = small});
  if (!connected.ok()) {
    std::fprintf(stderr, "connection_fuzz: harness connect failed: %s\n", connected.status().ToString().c_str());
    std::abort();
  }
  const int client = connected->release();
  // On a loaded machine the handshake's last ACK can reach the listener after connect()
  // returns; wait for it rather than mistaking it for a failure.
  WaitFor(w.listen_fd, POLLIN, "the listener to become readable");
  const int server_side = accept4(w.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (server_side < 0) HarnessFailed("accept", errno);
  setsockopt(server_side, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  percore::SocketAddress peer;
  loop.Adopt(server_side, 0, peer);
  loop.Step(0);

  Reader in(data, size);
  bool client_open = true;
  char sink[16 * 1024];
  while (client_open && !in.empty()) {
    switch (in.Byte() % 6) {
      case 0: {  // write a chunk of script
        const std::string chunk = in.Bytes(in.Byte());
        if (!chunk.empty()) (void)send(client, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      }
      case 1:  // read some of what came back
        (void)recv(client, sink, 1 + in.Byte() * 64, MSG_DONTWAIT);
        break;
      case 2:
      case 3:
        loop.Step(0);
        break;
      case 4:
        shutdown(client, SHUT_WR);
        break;
      case 5:
        ResetClose(client);
        client_open = false;
        break;
    }
  }
  if (client_open) {
    // Drain what the server sends until it closes, as a well-behaved peer would; bounded.
    // The bound counts steps without progress, so a large reply drained 8 KiB at a time on a
    // slow machine is not mistaken for a hang.
    shutdown(client, SHUT_WR);
    for (int idle = 0; idle < 2000 && loop.stats().conns_active.Get() > 0; ++idle) {
      loop.Step(1);
      while (recv(client, sink, sizeof(sink), MSG_DONTWAIT) > 0) idle = 0;
    }
    close(client);
  }
  for (int i = 0; i < 2000 && loop.stats().conns_active.Get() > 0; ++i) loop.Step(1);

  const percore::LoopStats& stats = loop.stats();
  if (stats.conns_active.Get() != 0) {
    std::fprintf(stderr, "connection_fuzz: connection still open after the client left\n");
    loop.ForEachConnection([](Connection& c) {
      std::fprintf(stderr, "connection_fuzz:   state %s, in %lu, out %lu, queued output %lu\n",
                   std::string(percore::ConnectionStateName(c.state())).c_str(),
                   static_cast<unsigned long>(c.bytes_in()), static_cast<unsigned long>(c.bytes_out()),
                   static_cast<unsigned long>(c.queued_output()));
    });
    std::abort();
  }
  if (stats.conns_handed_in.Get() != stats.closed_total()) {
    std::fprintf(stderr, "connection_fuzz: %lu handed in but %lu closed\n",
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
