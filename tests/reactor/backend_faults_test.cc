// Faults every back end must survive, over real loopback sockets: the io_uring receive-buffer
// ring running dry under thousands of connections, peers that reset while a large reply is in
// flight, the server closing connections whose operations are still in the kernel (a receive
// armed, a send in flight), Stop with such operations outstanding, a large reply to a slow
// reader, a handler that pauses while its peer keeps sending, half-close after a large
// request, and pipelined requests interleaved with resets.
//
// Each test runs on poll, epoll and io_uring. What must hold everywhere: no crash (and no ASan
// report), no reply lost or cut short, every connection counted closed exactly once under the
// reason the readiness back ends give, and the server keeps serving. On io_uring, once every
// connection is gone, no completion operation is left in flight (the closed connections' memory,
// which the kernel may use until then, can be freed).
//
// Every wait is on a condition (a socket event, a counter, state read on the loop's thread)
// with a deadline; the deadlines only bound a failure. Under ASan/TSan (PERCORE_TEST_SANITIZER)
// the workloads are smaller.

#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/socket.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/loop_stats.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "reactor/uring_poller.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/connection_test_peer.h"
#include "tests/testing/deadline.h"
#include "tests/testing/multi_client.h"
#include "tests/testing/random_bytes.h"
#include "tests/testing/recording_service.h"
#include "tests/testing/server_probe.h"

namespace percore {

// Names the back end in gtest failure messages (found by ADL, so not in the anonymous namespace).
void PrintTo(PollerBackend backend, std::ostream* os) { *os << PollerBackendName(backend); }

namespace {

using test::ClosedConnection;
using test::Deadline;
using test::MultiClient;
using test::ScopedFd;
using test::WaitUntil;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

#ifdef PERCORE_TEST_SANITIZER
constexpr bool kSanitizer = true;
#else
constexpr bool kSanitizer = false;
#endif

// Workload sizes: plain builds, then ASan/TSan.
constexpr size_t kExhaustionConnections = kSanitizer ? 1000 : 10000;
constexpr size_t kExhaustionMinConnections = kSanitizer ? 500 : 1000;  // fewer descriptors: skip
constexpr size_t kOverflowConnections = kSanitizer ? 500 : 2000;
constexpr size_t kResetters = kSanitizer ? 2 : 6;
constexpr size_t kResetRequest = 8 * kMiB;
constexpr size_t kStopIdle = kSanitizer ? 40 : 200;
constexpr size_t kStopBig = kSanitizer ? 3 : 8;
// More than the server's send buffer can take (it grows to net.ipv4.tcp_wmem's maximum, 4 MiB).
constexpr size_t kStopBigRequest = 8 * kMiB;
constexpr size_t kStreamers = kSanitizer ? 50 : 200;
constexpr size_t kStreamerBytes = kSanitizer ? 1 * kMiB : 2 * kMiB;
constexpr size_t kSlowReply = 10 * kMiB;
constexpr size_t kPausers = kSanitizer ? 4 : 8;
constexpr size_t kPauserRequest = kSanitizer ? 1 * kMiB : 4 * kMiB;
constexpr size_t kHalfClosers = kSanitizer ? 3 : 8;
constexpr size_t kHalfCloseRequest = kSanitizer ? 4 * kMiB : 8 * kMiB;
constexpr size_t kPipeliners = kSanitizer ? 60 : 300;
constexpr int kPipelinedMessages = kSanitizer ? 60 : 200;

Deadline Soon() { return Deadline::In(absl::Seconds(20)); }

// Compares two byte strings without dumping megabytes into the log.
::testing::AssertionResult SameBytes(std::string_view expected, std::string_view actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  size_t at = 0;
  while (at < expected.size() && at < actual.size() && expected[at] == actual[at]) ++at;
  return ::testing::AssertionFailure() << "expected " << expected.size() << " bytes, got " << actual.size()
                                       << "; first difference at offset " << at;
}

// `actual` is the start of `expected` (what a reply cut short by a close may be).
::testing::AssertionResult IsPrefix(std::string_view expected, std::string_view actual) {
  if (actual.size() > expected.size()) {
    return ::testing::AssertionFailure() << "got " << actual.size() << " bytes, more than the " << expected.size()
                                         << " sent";
  }
  return SameBytes(expected.substr(0, actual.size()), actual);
}

// Sends `bytes` on a connected socket and reads the echo back.
::testing::AssertionResult EchoesBack(int fd, const std::string& bytes) {
  if (absl::Status s = test::WriteAll(fd, bytes, Soon()); !s.ok()) return ::testing::AssertionFailure() << s;
  absl::StatusOr<std::string> back = test::ReadExactly(fd, bytes.size(), Soon());
  if (!back.ok()) return ::testing::AssertionFailure() << back.status();
  return SameBytes(bytes, *back);
}

// Bytes waiting in a socket's receive queue.
size_t Readable(int fd) {
  int n = 0;
  if (::ioctl(fd, FIONREAD, &n) != 0 || n < 0) return 0;
  return static_cast<size_t>(n);
}

// A slow reader behind a small receive window: takes `n` bytes 16 KiB per recv, and after
// every 64 KiB stops until its receive queue has stopped growing for a millisecond (the window
// is full and the sender stalled on it) or holds all that is left. So the sender runs into a
// closed window again and again, and its sends come back partial or wait in the kernel.
// `stops` counts the stops.
absl::StatusOr<std::string> ReadSlowly(int fd, size_t n, Deadline deadline, int* stops) {
  std::string out(n, '\0');
  size_t got = 0;
  size_t next_stop = 64 * kKiB;
  while (got < n) {
    if (got >= next_stop) {
      next_stop = got + 64 * kKiB;
      ++*stops;
      size_t last = 0;
      const bool full = WaitUntil(
          [&] {
            const size_t now = Readable(fd);
            const bool stalled = (now > 0 && now == last) || now >= n - got;
            last = now;
            return stalled;
          },
          deadline);
      if (!full) {
        return absl::DeadlineExceededError(absl::StrCat("stopped reader starved after ", got, " of ", n, " bytes"));
      }
    }
    const ssize_t r = ::recv(fd, out.data() + got, std::min(16 * kKiB, n - got), 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return absl::OutOfRangeError(absl::StrCat("EOF after ", got, " of ", n, " bytes"));
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::ErrnoToStatus(errno, absl::StrCat("recv after ", got, " of ", n, " bytes"));
    }
    if (!test::WaitReadable(fd, deadline).ok()) {
      return absl::DeadlineExceededError(absl::StrCat(got, " of ", n, " bytes read"));
    }
  }
  return out;
}

// Caps a socket's receive buffer (and so its window) at `bytes`, also after the connect
// started: a client that does not read then backs its server up after little data.
void CapReceiveBuffer(int fd, int bytes) { ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)); }

// The payload of connection `i` in the exhaustion test: 8-32 KiB, reproducible from `i`, so
// that 10,000 of them need not be kept while they are in flight.
std::string ExhaustionPayload(size_t i) {
  std::mt19937_64 rng(0x5eed0000 + i);
  const size_t size = 8 * kKiB + rng() % (24 * kKiB + 1);
  return test::RandomBytes(rng, size);
}

// Raises RLIMIT_NOFILE's soft limit to the hard limit, and returns how many of `wanted`
// loopback connections fit: two descriptors each (client and server are this one process),
// with some to spare. Says so when that is fewer.
size_t ConnectionsTheDescriptorsAllow(size_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  absl::StatusOr<rlim_t> raised = test::RaiseOpenFileLimit(limit.rlim_max);
  if (!raised.ok()) return 0;
  constexpr rlim_t kSpare = 256;
  if (*raised >= 2 * wanted + kSpare) return wanted;
  const size_t allowed = *raised > kSpare ? static_cast<size_t>((*raised - kSpare) / 2) : 0;
  std::printf("note: RLIMIT_NOFILE (hard limit %llu) allows %zu connections, not %zu\n",
              static_cast<unsigned long long>(limit.rlim_max), allowed, wanted);
  return allowed;
}

// ---------------------------------------------------------------------------------------------
// Services.

// Large replies to a line protocol: "copy\n" answers kSlowReply bytes copied into the output
// at once, "share\n" the same bytes as one shared piece (io_uring: a sendmsg over the shared
// memory), "mixed\n" 1,500 small copied headers each followed by a shared slice (far more
// pieces than one sendmsg takes, so sends end mid-piece); anything else is echoed line by line. Each connection's socket gets a 64 KiB send
// buffer, so most of a reply waits in the server's output and its sends come back partial.
class BigReplyService final : public Service {
 public:
  BigReplyService() {
    std::mt19937_64 rng(20260501);
    reply_ = std::make_shared<const std::string>(test::RandomBytes(rng, kSlowReply));
  }
  // "mixed\n": this many small copied headers, each followed by a shared slice of the reply.
  static constexpr size_t kMixedPieces = 1500;
  static std::string MixedHeader(size_t i) { return absl::StrCat("#", i, ":"); }
  static std::string_view MixedSlice(std::string_view reply, size_t i) {
    const size_t size = 5000 + (i % 7) * 500;
    return reply.substr((i * 6151) % (reply.size() - size), size);
  }
  std::string MixedReply() const {
    std::string out;
    for (size_t i = 0; i < kMixedPieces; ++i) {
      out += MixedHeader(i);
      out += MixedSlice(*reply_, i);
    }
    return out;
  }

  std::string_view name() const override { return "big"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<BigHandler>(*this); }
  const std::string& reply() const { return *reply_; }

 private:
  class BigHandler final : public Handler {
   public:
    explicit BigHandler(BigReplyService& service) : service_(service) {}
    void OnOpen(Connection& conn) override {
      const int size = 64 * 1024;
      ::setsockopt(ConnectionTestPeer::fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
    Action OnData(Connection& conn, Buffer& input) override {
      for (;;) {
        const std::string_view bytes = input.view();
        const size_t newline = bytes.find('\n');
        if (newline == std::string_view::npos) break;
        const std::string_view line = bytes.substr(0, newline);
        if (line == "copy") {
          conn.Send(*service_.reply_);
        } else if (line == "share") {
          conn.output().AppendShared(*service_.reply_, service_.reply_);
        } else if (line == "mixed") {
          for (size_t i = 0; i < kMixedPieces; ++i) {
            conn.Send(MixedHeader(i));
            conn.output().AppendShared(MixedSlice(*service_.reply_, i), service_.reply_);
          }
        } else {
          conn.Send(bytes.substr(0, newline + 1));
        }
        input.Consume(newline + 1);
      }
      return Action::Continue();
    }

   private:
    BigReplyService& service_;
  };

  std::shared_ptr<const std::string> reply_;
};

// Echoes what arrives, then pauses the connection after every read's worth, and resumes it
// from a posted task: alternately from inside a connection task (PostToConnection, Resume
// during the callback) and from a plain posted task (Resume outside any callback). The peer
// keeps sending meanwhile.
class PausingEchoService final : public Service {
 public:
  std::string_view name() const override { return "pause"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<PausingHandler>(*this); }
  uint64_t pauses() const { return pauses_.load(); }

 private:
  class PausingHandler final : public Handler {
   public:
    explicit PausingHandler(PausingEchoService& service) : service_(service) {}
    Action OnData(Connection& conn, Buffer& input) override {
      conn.Send(input.view());
      input.Consume(input.size());
      service_.pauses_.fetch_add(1);
      EventLoop& loop = conn.loop();
      const uint64_t id = conn.id();
      if (++pauses_ % 2 == 0) {
        loop.PostToConnection(id, [](Connection& c) { c.Resume(); });
      } else {
        loop.Post([&loop, id] {
          if (Connection* c = loop.FindConnection(id)) c->Resume();
        });
      }
      return Action::Pause();
    }

   private:
    PausingEchoService& service_;
    uint64_t pauses_ = 0;
  };

  std::atomic<uint64_t> pauses_{0};
};

// Takes the first bytes a connection sends, then pauses it for good (a handler waiting on work
// that does not come back): the peer's further bytes stay unread, the connection holds no output.
class PauseForeverService final : public Service {
 public:
  std::string_view name() const override { return "hold"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<HoldHandler>(); }

 private:
  class HoldHandler final : public Handler {
   public:
    Action OnData(Connection& conn, Buffer& input) override {
      input.Consume(input.size());
      return Action::Pause();
    }
  };
};

// ---------------------------------------------------------------------------------------------
// The fixture.

class BackendFaultsTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void TearDown() override {
    if (server_) server_->Stop();
  }

  bool uring() const { return GetParam() == PollerBackend::kIoUring; }

  // Starts a server on the test's back end running `service` (recorded).
  void StartServer(ServerOptions options, std::shared_ptr<Service> service) {
    options.backend = GetParam();
    server_ = std::make_unique<Server>(options);
    recorder_ = std::make_shared<test::RecordingService>(std::move(service));
    ASSERT_TRUE(server_->AddService(recorder_).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen(recorder_->name(), HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_EQ(server_->backend(), GetParam()) << server_->backend_reason();
  }
  void StartEcho(ServerOptions options) { StartServer(std::move(options), NewEchoService()); }

  ScopedFd Connect() {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : ScopedFd();
  }

  std::string Random(size_t n) { return test::RandomBytes(rng_, n); }

  ServerTotals Totals() const { return server_->Totals(); }
  uint64_t Closed(CloseReason reason) { return Totals().closed_by(reason); }
  uint64_t ClosedTotal() { return Totals().closed_total(); }
  uint64_t HandedIn() { return Totals().conns_handed_in; }
  int64_t Active() { return Totals().conns_active; }
  std::string CloseCounts() {
    std::string out;
    for (int r = 0; r < kCloseReasonCount; ++r) {
      const uint64_t count = Closed(static_cast<CloseReason>(r));
      if (count > 0) absl::StrAppend(&out, out.empty() ? "" : " ", std::string(CloseReasonName(static_cast<CloseReason>(r))), "=",
                        count);
    }
    return out.empty() ? "none" : out;
  }

  // Waits until `n` connections closed in all; then every one of them must be under `reason`.
  ::testing::AssertionResult ClosedExactly(uint64_t n, CloseReason reason, Deadline deadline = Soon()) {
    if (!WaitUntil([&] { return ClosedTotal() >= n; }, deadline)) {
      return ::testing::AssertionFailure() << "only " << ClosedTotal() << " of " << n
                                           << " closes counted: " << CloseCounts();
    }
    if (Closed(reason) != n || ClosedTotal() != n) {
      return ::testing::AssertionFailure() << "want " << n << " closed as " << CloseReasonName(reason)
                                           << "; counted: " << CloseCounts();
    }
    return ::testing::AssertionSuccess();
  }

  // Completion operations in flight over all loops (io_uring; 0 on the others), read on each
  // loop's thread; nullopt if a loop did not answer.
  std::optional<uint64_t> InFlight() {
    uint64_t total = 0;
    for (int i = 0; i < server_->loop_count(); ++i) {
      EventLoop& loop = server_->loop(i);
      auto n = std::make_shared<std::atomic<uint64_t>>(0);
      if (!test::RunOnLoop(
              loop, [&loop, n] { n->store(loop.uring() != nullptr ? loop.uring()->operations_in_flight() : 0); },
              Soon())) {
        return std::nullopt;
      }
      total += n->load();
    }
    return total;
  }

  // io_uring: waits until exactly `n` completion operations are in flight. The readiness back
  // ends have none to wait for.
  ::testing::AssertionResult InFlightSettlesAt(uint64_t n) {
    if (!uring()) return ::testing::AssertionSuccess();
    std::optional<uint64_t> last;
    if (WaitUntil(
            [&] {
              last = InFlight();
              return last.has_value() && *last == n;
            },
            Soon())) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "operations in flight: "
                                         << (last.has_value() ? absl::StrCat(*last) : "a loop did not answer")
                                         << ", want " << n;
  }

  // Connections over all loops for which `pred` holds, evaluated on the loops' threads; -1 if a
  // loop did not answer.
  int CountConnections(std::function<bool(const Connection&)> pred) {
    int total = 0;
    for (int i = 0; i < server_->loop_count(); ++i) {
      EventLoop& loop = server_->loop(i);
      auto n = std::make_shared<std::atomic<int>>(0);
      if (!test::RunOnLoop(
              loop,
              [&loop, n, pred] {
                loop.ForEachConnection([&](Connection& c) {
                  if (pred(c)) n->fetch_add(1);
                });
              },
              Soon())) {
        return -1;
      }
      total += n->load();
    }
    return total;
  }
  int BackedUp() {
    return CountConnections([](const Connection& c) { return c.state() == ConnectionState::kWriting; });
  }

  // What the loops say of every open connection, by peer port: state and byte counts.
  struct ConnectionSample {
    ConnectionState state;
    uint64_t bytes_in;
    uint64_t bytes_out;
    size_t queued;
    bool operator==(const ConnectionSample&) const = default;
  };
  std::optional<std::map<uint16_t, ConnectionSample>> Sample() {
    std::map<uint16_t, ConnectionSample> all;
    for (int i = 0; i < server_->loop_count(); ++i) {
      EventLoop& loop = server_->loop(i);
      auto out = std::make_shared<std::map<uint16_t, ConnectionSample>>();
      if (!test::RunOnLoop(
              loop,
              [&loop, out] {
                loop.ForEachConnection([&](Connection& c) {
                  (*out)[c.peer().port()] =
                      ConnectionSample{c.state(), c.bytes_in(), c.bytes_out(), c.queued_output()};
                });
              },
              Soon())) {
        return std::nullopt;
      }
      all.insert(out->begin(), out->end());
    }
    return all;
  }

  // Drives `client` until `n` connections are backed up for good: their server side is in
  // Writing (reading stopped above the high-water mark) with output it could not hand to the
  // kernel, and nothing moved over three samples in a row, with the client's I/O run between
  // them. (On io_uring a connection also passes through Writing while a send is in flight and
  // the socket still takes bytes: that is not backed up.) The client must not be reading.
  absl::Status RunUntilBackedUp(MultiClient& client, size_t n) {
    std::optional<std::map<uint16_t, ConnectionSample>> last;
    int steady = 0;
    size_t stuck = 0;
    absl::Status s = client.RunUntil(
        [&] {
          std::optional<std::map<uint16_t, ConnectionSample>> now = Sample();
          if (!now.has_value()) return false;
          stuck = 0;
          for (const auto& [port, c] : *now) {
            if (c.state == ConnectionState::kWriting && c.bytes_in > c.bytes_out) ++stuck;
          }
          steady = (stuck == n && last.has_value() && *now == *last) ? steady + 1 : 0;
          last = std::move(now);
          return steady >= 3;
        },
        Soon());
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(s.message(), ": ", stuck, " of ", n, " backed up"));
    return s;
  }

  // The recorded closes, by the client's local port.
  std::map<uint16_t, ClosedConnection> ClosesByPort() {
    std::map<uint16_t, ClosedConnection> out;
    for (const ClosedConnection& c : recorder_->closed()) out[c.peer_port] = c;
    return out;
  }

  // `connections` clients connect (in batches that fit the listen backlog, so that no SYN is
  // dropped and retried), then all send their payload (ExhaustionPayload) at once and wait for
  // its echo, then close. Every one must get exactly its bytes back and be counted as a clean
  // peer close with its own byte counts. For a server running the echo service.
  void EchoManyAtOnce(size_t connections) {
    // Connected in batches that fit the listen backlog, so no SYN is dropped and retried.
    MultiClient client(test::LoopbackAddress(port_));
    const Deadline connect_deadline = Deadline::In(absl::Seconds(60));
    constexpr size_t kBatch = 1000;
    for (size_t done = 0; done < connections;) {
      const size_t batch = std::min(kBatch, connections - done);
      for (size_t i = 0; i < batch; ++i) {
        absl::StatusOr<MultiClient::Id> id = client.Connect();
        ASSERT_TRUE(id.ok()) << "connection " << done + i << ": " << id.status();
      }
      done += batch;
      absl::Status connected = client.RunUntil([&] { return HandedIn() >= done; }, connect_deadline);
      ASSERT_TRUE(connected.ok()) << connected << ": " << HandedIn() << " of " << done << " handed in";
    }
    for (MultiClient::Id id = 0; id < client.size(); ++id) ASSERT_FALSE(client.failed(id)) << client.Describe(id);

    // Every connection sends at once (the first Run writes them all), then waits for its echo.
    uint64_t total = 0;
    for (MultiClient::Id id = 0; id < client.size(); ++id) {
      std::string payload = ExhaustionPayload(id);
      total += payload.size();
      const size_t size = payload.size();
      client.Send(id, std::move(payload));
      client.Expect(id, size);
      client.Close(id);
    }
    absl::Status run = client.Run(Deadline::In(absl::Seconds(90)));
    ASSERT_TRUE(run.ok()) << run << "; the server read " << Totals().bytes_in << " and wrote " << Totals().bytes_out
                          << " of " << total << " bytes";
    size_t wrong = 0;
    for (MultiClient::Id id = 0; id < client.size(); ++id) {
      const std::string expected = ExhaustionPayload(id);
      ::testing::AssertionResult same = SameBytes(expected, client.received(id));
      if (!same && ++wrong <= 5) ADD_FAILURE() << "connection " << id << ": " << same.message();
    }
    EXPECT_EQ(wrong, 0u) << "connections whose echo differs";

    ASSERT_TRUE(ClosedExactly(connections, CloseReason::kPeerClosed, Deadline::In(absl::Seconds(60))));
    ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == connections; }, Soon()));
    const std::map<uint16_t, ClosedConnection> closes = ClosesByPort();
    size_t miscounted = 0;
    for (MultiClient::Id id = 0; id < client.size(); ++id) {
      const size_t size = ExhaustionPayload(id).size();
      auto it = closes.find(client.local_port(id));
      if (it == closes.end() || it->second.bytes_in != size || it->second.bytes_out != size) {
        if (++miscounted <= 5) {
          ADD_FAILURE() << "connection " << id << ": "
                        << (it == closes.end() ? std::string("no recorded close")
                                               : absl::StrCat("bytes in ", it->second.bytes_in, ", out ",
                                                              it->second.bytes_out, ", want ", size));
        }
      }
    }
    EXPECT_EQ(miscounted, 0u);
    EXPECT_EQ(Totals().bytes_in, total);
    EXPECT_EQ(Totals().bytes_out, total);
    EXPECT_EQ(Active(), 0);
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<test::RecordingService> recorder_;
  uint16_t port_ = 0;
  std::mt19937_64 rng_{20260502};
};

// ---------------------------------------------------------------------------------------------
// 1. The receive-buffer ring runs dry.

// A ring of 8 buffers of 4 KiB per loop, and 10,000 connections (fewer when descriptors are
// short, 1,000 under sanitizers) that each send 8-32 KiB of their own at once: on io_uring the
// multishot receives end with ENOBUFS again and again and are re-armed. Every connection gets
// exactly its own bytes back, in order, and ends as a clean peer close with its byte counts
// right. On io_uring the exhaustion and re-arm counters show the path ran; elsewhere they stay 0.
TEST_P(BackendFaultsTest, BufferRingExhaustionLosesNoBytes) {
  const size_t connections = ConnectionsTheDescriptorsAllow(kExhaustionConnections);
  if (connections < kExhaustionMinConnections) {
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit allows only " << connections << " connections, fewer than "
                 << kExhaustionMinConnections;
  }

  ServerOptions options;
  options.loops = 2;
  options.uring.buffers = 8;
  options.uring.buffer_size = 4096;
  StartEcho(options);

  EchoManyAtOnce(connections);
  if (HasFatalFailure()) return;

  // The counters are folded into the stats at the end of each iteration.
  const auto exhaustions = [&] { return Totals().uring_buffer_exhaustions; };
  const auto rearms = [&] { return Totals().uring_multishot_rearms; };
  if (uring()) {
    EXPECT_TRUE(WaitUntil([&] { return exhaustions() > 0 && rearms() > 0; }, Soon()))
        << "uring_buffer_exhaustions " << exhaustions() << ", uring_multishot_rearms " << rearms();
    // A receive that ends on an empty ring is re-armed by the loop once buffers are back, not
    // at once into the same empty ring (which spun, up to a thousand empty re-arms per read).
    const uint64_t reads = Totals().read_calls;
    EXPECT_LE(exhaustions(), 4 * reads) << "receive completions " << reads;
    std::printf("io_uring: %llu buffer exhaustions, %llu multishot re-arms, %llu cq overflows, %zu connections\n",
                static_cast<unsigned long long>(exhaustions()), static_cast<unsigned long long>(rearms()),
                static_cast<unsigned long long>(Totals().uring_cq_overflows),
                connections);
    EXPECT_TRUE(InFlightSettlesAt(0));
  } else {
    EXPECT_EQ(exhaustions(), 0u);
    EXPECT_EQ(rearms(), 0u);
  }

  // Still serving.
  ScopedFd fresh = Connect();
  EXPECT_TRUE(EchoesBack(fresh.get(), Random(20000)));
}

// The completion queue overflows: rings of 8 submission entries (128 completion entries) and
// 2,000 connections (500 under sanitizers) that all send at once, so one wait has far more
// completions to deliver than the queue holds and the kernel holds the rest back. Nothing is
// lost or reordered: every connection gets exactly its bytes back. On io_uring the overflow
// counter shows the path ran.
TEST_P(BackendFaultsTest, CompletionQueueOverflowLosesNoBytes) {
  const size_t connections = ConnectionsTheDescriptorsAllow(kOverflowConnections);
  if (connections < kOverflowConnections / 2) {
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit allows only " << connections << " connections";
  }
  ServerOptions options;
  options.loops = 2;
  options.uring.entries = 8;
  options.uring.buffers = 64;
  options.uring.buffer_size = 4096;
  StartEcho(options);
  EchoManyAtOnce(connections);
  if (HasFatalFailure()) return;
  const auto overflows = [&] { return Totals().uring_cq_overflows; };
  if (uring()) {
#ifndef PERCORE_TEST_SANITIZER
    // Whether one wait finds more completions than the queue holds depends on how fast the
    // clients' bytes arrive: under ThreadSanitizer they trickle in and the queue may never fill,
    // so there the test checks only that nothing was lost.
    EXPECT_TRUE(WaitUntil([&] { return overflows() > 0; }, Soon())) << "no completion queue overflow";
#endif
    std::printf("io_uring: %llu cq overflows, %llu buffer exhaustions, %llu multishot re-arms\n",
                static_cast<unsigned long long>(overflows()),
                static_cast<unsigned long long>(Totals().uring_buffer_exhaustions),
                static_cast<unsigned long long>(Totals().uring_multishot_rearms));
    EXPECT_TRUE(InFlightSettlesAt(0));
  } else {
    EXPECT_EQ(overflows(), 0u);
  }
  ScopedFd fresh = Connect();
  EXPECT_TRUE(EchoesBack(fresh.get(), Random(20000)));
}

// ---------------------------------------------------------------------------------------------
// 2. A peer resets while a large reply is in flight.

// Several clients send 8 MiB each to echo without reading, until the server holds each one's
// output above the high-water mark (on io_uring a send is in flight, blocked on the full
// socket), then reset (SO_LINGER 0). Every one is closed as a peer reset (as the readiness back
// ends count it: ECONNRESET or EPIPE, never io_error), none is left active, a bystander that was
// open all along still echoes, and so does a fresh connection.
TEST_P(BackendFaultsTest, PeerResetWithLargeReplyInFlight) {
  ServerOptions options;
  options.loops = 2;
  options.connection.high_water = 64 * kKiB;
  options.connection.low_water = 16 * kKiB;
  StartEcho(options);
  ScopedFd bystander = Connect();
  ASSERT_TRUE(EchoesBack(bystander.get(), Random(1000)));

  MultiClient client(test::LoopbackAddress(port_));
  client.set_reading(false);
  for (size_t i = 0; i < kResetters; ++i) {
    const MultiClient::Id id = client.Connect().value();
    CapReceiveBuffer(client.fd(id), 64 * 1024);
    client.Send(id, Random(kResetRequest));
  }
  absl::Status backed = RunUntilBackedUp(client, kResetters);
  ASSERT_TRUE(backed.ok()) << backed;
  if (uring()) {
    // The bystander's receive, and for each resetter its receive and/or its send.
    std::optional<uint64_t> in_flight = InFlight();
    ASSERT_TRUE(in_flight.has_value());
    EXPECT_GE(*in_flight, 1 + kResetters);
  }
  EXPECT_EQ(ClosedTotal(), 0u);

  for (MultiClient::Id id = 0; id < client.size(); ++id) client.Close(id, /*reset=*/true);
  ASSERT_TRUE(client.Run(Soon()).ok());

  EXPECT_TRUE(ClosedExactly(kResetters, CloseReason::kPeerReset));
  EXPECT_EQ(Closed(CloseReason::kIoError), 0u);
  EXPECT_TRUE(WaitUntil([&] { return Active() == 1; }, Soon())) << Active() << " active";
  EXPECT_TRUE(InFlightSettlesAt(1));  // io_uring: only the bystander's receive
  ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == kResetters; }, Soon()));
  for (const ClosedConnection& c : recorder_->closed()) {
    EXPECT_EQ(c.reason, CloseReason::kPeerReset);
    EXPECT_GT(c.bytes_in, c.bytes_out) << "the reply was still in flight";
    EXPECT_LE(c.bytes_in, kResetRequest);
  }

  EXPECT_TRUE(EchoesBack(bystander.get(), Random(100000)));
  bystander.reset();
  EXPECT_TRUE(WaitUntil([&] { return Active() == 0; }, Soon()));
  EXPECT_EQ(Closed(CloseReason::kPeerClosed), 1u);
  EXPECT_TRUE(InFlightSettlesAt(0));
  ScopedFd fresh = Connect();
  EXPECT_TRUE(EchoesBack(fresh.get(), Random(100000)));
}

// ---------------------------------------------------------------------------------------------
// 3. The server closes a connection with operations in the kernel.

// An idle connection (on io_uring: its multishot receive armed) closed by the server at once,
// as the admin API does: the client sees the end (EOF or reset), the close is counted once as
// admin_close, and no operation is left in flight. A second idle connection on the same loop is
// unaffected, and closing it too leaves nothing in flight either.
TEST_P(BackendFaultsTest, ServerClosesAnIdleConnectionWithItsReceiveArmed) {
  ServerOptions options;
  options.loops = 1;
  StartEcho(options);
  ScopedFd victim = Connect();
  ScopedFd other = Connect();
  ASSERT_TRUE(EchoesBack(victim.get(), Random(100)));
  ASSERT_TRUE(EchoesBack(other.get(), Random(100)));
  absl::StatusOr<uint16_t> victim_port = test::LocalPort(victim.get());
  ASSERT_TRUE(victim_port.ok());
  ASSERT_TRUE(InFlightSettlesAt(2));  // one receive each

  EventLoop& loop = server_->loop(0);
  auto closed = std::make_shared<std::atomic<int>>(0);
  ASSERT_TRUE(test::RunOnLoop(
      loop,
      [&loop, closed, port = *victim_port] {
        loop.ForEachConnectionThatMayClose([&](Connection& c) {
          if (c.peer().port() != port) return;
          c.Close(CloseReason::kAdminClose, CloseMode::kNow);
          closed->fetch_add(1);
        });
      },
      Soon()));
  ASSERT_EQ(closed->load(), 1);

  absl::StatusOr<std::string> rest = test::ReadUntilEofOrReset(victim.get(), Soon());
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->size(), 0u);
  EXPECT_TRUE(ClosedExactly(1, CloseReason::kAdminClose));
  EXPECT_EQ(Active(), 1);
  EXPECT_TRUE(InFlightSettlesAt(1));
  EXPECT_TRUE(EchoesBack(other.get(), Random(5000)));

  // A second admin close of everything: the survivor; counted once more, never the first again.
  ASSERT_TRUE(test::RunOnLoop(
      loop,
      [&loop] {
        loop.ForEachConnectionThatMayClose([](Connection& c) { c.Close(CloseReason::kAdminClose, CloseMode::kNow); });
      },
      Soon()));
  absl::StatusOr<std::string> other_rest = test::ReadUntilEofOrReset(other.get(), Soon());
  ASSERT_TRUE(other_rest.ok()) << other_rest.status();
  EXPECT_TRUE(ClosedExactly(2, CloseReason::kAdminClose));
  EXPECT_EQ(Active(), 0);
  EXPECT_TRUE(InFlightSettlesAt(0));

  // The client closing its end afterwards changes nothing on the server.
  victim.reset();
  other.reset();
  ScopedFd fresh = Connect();
  EXPECT_TRUE(EchoesBack(fresh.get(), Random(5000)));
  EXPECT_EQ(ClosedTotal(), 2u);
}

// The same with a send in flight: a client that sends 8 MiB without reading, so the server's
// echo is backed up (io_uring: a send blocked in the kernel, its bytes pinned), closed by the
// server at once. The client reads what had reached it, a prefix of what it sent, then the end;
// admin_close is counted once and nothing is left in flight.
TEST_P(BackendFaultsTest, ServerClosesAConnectionWithASendInFlight) {
  ServerOptions options;
  options.loops = 1;
  options.connection.high_water = 64 * kKiB;
  options.connection.low_water = 16 * kKiB;
  StartEcho(options);
  MultiClient client(test::LoopbackAddress(port_));
  client.set_reading(false);
  const MultiClient::Id id = client.Connect().value();
  CapReceiveBuffer(client.fd(id), 64 * 1024);
  const std::string sent = Random(8 * kMiB);
  client.Send(id, sent);
  absl::Status backed = RunUntilBackedUp(client, 1);
  ASSERT_TRUE(backed.ok()) << backed << "; " << client.Describe(id);

  EventLoop& loop = server_->loop(0);
  ASSERT_TRUE(test::RunOnLoop(
      loop,
      [&loop] {
        loop.ForEachConnectionThatMayClose([](Connection& c) { c.Close(CloseReason::kAdminClose, CloseMode::kNow); });
      },
      Soon()));
  EXPECT_TRUE(ClosedExactly(1, CloseReason::kAdminClose));
  EXPECT_EQ(Active(), 0);
  EXPECT_TRUE(InFlightSettlesAt(0));

  // Read what the client's socket holds directly: the end comes after a prefix of the echo.
  client.set_reading(true);
  absl::Status ended = client.RunUntil([&] { return client.eof(id) || client.failed(id); }, Soon());
  ASSERT_TRUE(ended.ok()) << ended << "; " << client.Describe(id);
  EXPECT_TRUE(IsPrefix(sent, client.received(id)));
  EXPECT_LT(client.received(id).size(), sent.size());

  ScopedFd fresh = Connect();
  EXPECT_TRUE(EchoesBack(fresh.get(), Random(100000)));
  EXPECT_EQ(ClosedTotal(), 1u);
}

// A graceful admin close (flush first) of a connection whose echo is backed up on a client that
// does not read (on io_uring: a send in flight, and bytes received behind backpressure waiting
// in the stash): everything the server had read is answered before its FIN, nothing is cut
// short. The client then reads exactly the first bytes_in bytes of what it sent, then EOF; the
// close is counted once, as admin_close, with bytes in equal to bytes out.
TEST_P(BackendFaultsTest, GracefulCloseOfABackedUpConnectionAnswersEverythingRead) {
  ServerOptions options;
  options.loops = 1;
  options.connection.high_water = 64 * kKiB;
  options.connection.low_water = 16 * kKiB;
  StartEcho(options);
  MultiClient client(test::LoopbackAddress(port_));
  client.set_reading(false);
  const MultiClient::Id id = client.Connect().value();
  CapReceiveBuffer(client.fd(id), 64 * 1024);
  const std::string sent = Random(8 * kMiB);
  client.Send(id, sent);
  absl::Status backed = RunUntilBackedUp(client, 1);
  ASSERT_TRUE(backed.ok()) << backed << "; " << client.Describe(id);

  EventLoop& loop = server_->loop(0);
  ASSERT_TRUE(test::RunOnLoop(
      loop,
      [&loop] {
        loop.ForEachConnectionThatMayClose([](Connection& c) { c.Close(CloseReason::kAdminClose, CloseMode::kFlush); });
      },
      Soon()));
  client.set_reading(true);
  absl::Status ended = client.RunUntil([&] { return client.eof(id) || client.failed(id); }, Soon());
  ASSERT_TRUE(ended.ok()) << ended << "; " << client.Describe(id);
  EXPECT_TRUE(client.status(id).ok()) << "the reply was cut by a reset: " << client.Describe(id);
  const std::string& got = client.received(id);
  EXPECT_TRUE(IsPrefix(sent, got));
  client.Close(id);
  ASSERT_TRUE(client.Run(Soon()).ok());

  EXPECT_TRUE(ClosedExactly(1, CloseReason::kAdminClose));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == 1; }, Soon()));
  const ClosedConnection closed = recorder_->closed()[0];
  EXPECT_EQ(closed.bytes_out, got.size());
  EXPECT_EQ(closed.bytes_in, closed.bytes_out) << "read from the client but not answered";
  EXPECT_EQ(Active(), 0);
  EXPECT_TRUE(InFlightSettlesAt(0));
}

// A connection paused for good while its peer keeps sending (on io_uring: a read budget
// stashed, the receive cancelled) closed by the server, at once and gracefully: each close is
// counted once, the client sees its end, and nothing is left in flight.
TEST_P(BackendFaultsTest, ServerClosesAPausedConnection) {
  ServerOptions options;
  options.loops = 1;
  options.connection.read_budget = 64 * kKiB;
  StartServer(options, std::make_shared<PauseForeverService>());
  uint64_t closed = 0;
  for (const CloseMode mode : {CloseMode::kNow, CloseMode::kFlush}) {
    SCOPED_TRACE(mode == CloseMode::kFlush ? "graceful close" : "immediate close");
    ScopedFd fd = Connect();
    ASSERT_TRUE(test::WriteAll(fd.get(), Random(1 * kMiB), Soon()).ok());
    ASSERT_TRUE(WaitUntil(
        [&] {
          std::optional<std::map<uint16_t, ConnectionSample>> sample = Sample();
          return sample.has_value() && sample->size() == 1 &&
                 sample->begin()->second.state == ConnectionState::kPaused &&
                 // io_uring stashes a read budget before it cancels the receive; the readiness
                 // back ends stop after the read the handler paused on, however short.
                 sample->begin()->second.bytes_in >= (uring() ? options.connection.read_budget : 1);
        },
        Soon()));
    EventLoop& loop = server_->loop(0);
    ASSERT_TRUE(test::RunOnLoop(
        loop,
        [&loop, mode] {
          // Neither close waits for the paused request (the handler never resumes): a graceful
          // one flushes what is queued, nothing here, and sends its FIN at once.
          loop.ForEachConnectionThatMayClose([mode](Connection& c) { c.Close(CloseReason::kAdminClose, mode); });
        },
        Soon()));
    absl::StatusOr<std::string> rest = test::ReadUntilEofOrReset(fd.get(), Soon());
    ASSERT_TRUE(rest.ok()) << rest.status();
    EXPECT_EQ(rest->size(), 0u);
    ++closed;
    EXPECT_TRUE(ClosedExactly(closed, CloseReason::kAdminClose));
    EXPECT_EQ(Active(), 0);
    EXPECT_TRUE(InFlightSettlesAt(0));
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Stop with operations in flight.

// Hundreds of idle connections (receives armed) and a few whose multi-MiB echoes back up to
// clients that do not read (sends in flight): Stop with a 200 ms deadline returns promptly,
// every connection is counted closed as server_drain, nothing is left in flight, and each client
// then sees its end after at most a prefix of its echo.
TEST_P(BackendFaultsTest, StopWithOperationsInFlightReturnsPromptly) {
  ServerOptions options;
  options.loops = 2;
  options.connection.high_water = 64 * kKiB;
  options.connection.low_water = 16 * kKiB;
  StartEcho(options);
  MultiClient client(test::LoopbackAddress(port_));
  client.set_reading(false);
  std::vector<std::string> sent;
  for (size_t i = 0; i < kStopBig + kStopIdle; ++i) {
    const MultiClient::Id id = client.Connect().value();
    sent.push_back(i < kStopBig ? Random(kStopBigRequest) : std::string());
    if (i < kStopBig) {
      CapReceiveBuffer(client.fd(id), 64 * 1024);
      client.Send(id, sent.back());
    }
  }
  const size_t total = kStopBig + kStopIdle;
  absl::Status connected = client.RunUntil([&] { return HandedIn() == total; }, Soon());
  ASSERT_TRUE(connected.ok()) << connected << ": " << HandedIn() << " of " << total << " handed in";
  absl::Status ready = RunUntilBackedUp(client, kStopBig);
  ASSERT_TRUE(ready.ok()) << ready;
  if (uring()) {
    std::optional<uint64_t> in_flight = InFlight();
    ASSERT_TRUE(in_flight.has_value());
    EXPECT_GE(*in_flight, total) << "a receive or send for every connection";
  }

  const auto start = std::chrono::steady_clock::now();
  server_->Stop(absl::Milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(5))
      << "Stop took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";

  // The loops' threads are joined: their figures are final and safe to read here.
  EXPECT_EQ(HandedIn(), total);
  EXPECT_EQ(ClosedTotal(), total) << CloseCounts();
  EXPECT_EQ(Closed(CloseReason::kServerDrain), total) << CloseCounts();
  EXPECT_EQ(Active(), 0);
  for (int i = 0; i < server_->loop_count(); ++i) {
    if (UringPoller* ring = server_->loop(i).uring()) {
      EXPECT_EQ(ring->operations_in_flight(), 0u) << "loop " << i;
    }
  }
  EXPECT_EQ(recorder_->closed_count(), total);

  client.set_reading(true);
  absl::Status ended = client.RunUntil(
      [&] {
        for (MultiClient::Id id = 0; id < client.size(); ++id) {
          if (!client.eof(id) && !client.failed(id)) return false;
        }
        return true;
      },
      Soon());
  ASSERT_TRUE(ended.ok()) << ended;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    EXPECT_TRUE(IsPrefix(sent[id], client.received(id))) << client.Describe(id);
  }
}

// A graceful Stop while hundreds of clients stream into the echo service. On io_uring the
// receive buffers are tiny (512 bytes), so the data in flight is thousands of completions, more
// than the drain collects before it starts closing. Whatever the server read must be answered,
// in order, before its FIN: each client receives exactly a prefix of what it sent, of exactly
// the length the server reports reading and writing, and then EOF.
TEST_P(BackendFaultsTest, GracefulStopWhileClientsStreamAnswersEverythingReadInOrder) {
  ServerOptions options;
  options.loops = 1;
  options.uring.buffers = 4096;
  options.uring.buffer_size = 512;
  StartEcho(options);
  MultiClient client(test::LoopbackAddress(port_));
  std::vector<std::string> sent;
  uint64_t total = 0;
  for (size_t i = 0; i < kStreamers; ++i) {
    const MultiClient::Id id = client.Connect().value();
    sent.push_back(Random(kStreamerBytes));
    total += sent.back().size();
    for (size_t at = 0; at < sent.back().size(); at += 64 * kKiB) client.Send(id, sent.back().substr(at, 64 * kKiB));
    client.ExpectEof(id);
    client.Close(id);
  }
  absl::Status streaming = client.RunUntil([&] { return Totals().bytes_in >= total / 4; }, Soon());
  ASSERT_TRUE(streaming.ok()) << streaming << ": the server read " << Totals().bytes_in << " of " << total;

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    server_->Stop(absl::Seconds(20));
    stopped = true;
  });
  absl::Status run = client.Run(Deadline::In(absl::Seconds(30)));
  stopper.join();
  ASSERT_TRUE(stopped);
  ASSERT_TRUE(run.ok()) << run;

  const std::map<uint16_t, ClosedConnection> closes = ClosesByPort();
  ASSERT_EQ(closes.size(), kStreamers);
  size_t wrong = 0;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    const std::string& got = client.received(id);
    auto it = closes.find(client.local_port(id));
    ASSERT_NE(it, closes.end()) << client.Describe(id);
    ::testing::AssertionResult prefix = IsPrefix(sent[id], got);
    const bool ok = prefix && it->second.reason == CloseReason::kServerDrain && it->second.bytes_in == got.size() &&
                    it->second.bytes_out == got.size();
    if (!ok && ++wrong <= 5) {
      ADD_FAILURE() << client.Describe(id) << ": " << (prefix ? "a prefix" : prefix.message()) << "; the server read "
                    << it->second.bytes_in << " and wrote " << it->second.bytes_out << ", closed as "
                    << CloseReasonName(it->second.reason);
    }
  }
  EXPECT_EQ(wrong, 0u) << "connections not answered exactly what the server read";
  EXPECT_EQ(Closed(CloseReason::kServerDrain), kStreamers) << CloseCounts();
  if (uring()) {
    std::printf("io_uring: %llu cq overflows, %llu buffer exhaustions, %llu completions\n",
                static_cast<unsigned long long>(Totals().uring_cq_overflows),
                static_cast<unsigned long long>(Totals().uring_buffer_exhaustions),
                static_cast<unsigned long long>(Totals().uring_completions));
  }
}

// ---------------------------------------------------------------------------------------------
// 5. A large reply to a slow reader.

// A 10 MiB reply copied into the output, then the same 10 MiB as one shared piece, then 10 MiB
// in 3,000 interleaved copied and shared pieces, to a reader with a small receive window that
// stops every 64 KiB until the kernel has refilled it: each arrives whole and identical, and the
// connection still echoes afterwards.
TEST_P(BackendFaultsTest, TenMiBReplyReachesASlowReaderWhole) {
  ServerOptions options;
  options.loops = 1;
  options.connection.high_water = 256 * kKiB;
  options.connection.low_water = 64 * kKiB;
  auto service = std::make_shared<BigReplyService>();
  StartServer(options, service);
  absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Soon(), {.receive_buffer = 32 * 1024});
  ASSERT_TRUE(fd.ok()) << fd.status();
  // Another connection on the same loop is served while the big reply is stuck on the reader.
  ScopedFd other = Connect();

  const Deadline deadline = Deadline::In(absl::Seconds(60));
  const std::string mixed = service->MixedReply();
  for (const char* request : {"copy\n", "share\n", "mixed\n"}) {
    const std::string_view expected = std::string_view(request) == "mixed\n" ? mixed : service->reply();
    ASSERT_TRUE(test::WriteAll(fd->get(), request, Soon()).ok());
    ASSERT_TRUE(WaitUntil([&] { return BackedUp() == 1; }, Soon())) << request << ": the server never backed up";
    ASSERT_TRUE(EchoesBack(other.get(), "meanwhile\n"));
    int stops = 0;
    absl::StatusOr<std::string> got = ReadSlowly(fd->get(), expected.size(), deadline, &stops);
    ASSERT_TRUE(got.ok()) << request << ": " << got.status();
    EXPECT_TRUE(SameBytes(expected, *got)) << request;
    EXPECT_GE(stops, static_cast<int>(expected.size() / (64 * kKiB)) - 1);
  }
  EXPECT_TRUE(EchoesBack(fd->get(), "after\n"));
  EXPECT_GT(Totals().partial_writes + Totals().write_eagain, 0u);
  EXPECT_EQ(ClosedTotal(), 0u);
  EXPECT_EQ(Active(), 2);
}

// ---------------------------------------------------------------------------------------------
// 6. Other faults.

// A handler that pauses after every read and resumes from a posted task, while its peers keep
// sending megabytes (on io_uring: bytes arrive into the stash while paused, the receive is
// cancelled at the read budget and re-armed on resume). Half of the clients also half-close
// right after sending. Every byte comes back, in order; half-closers get EOF after it.
TEST_P(BackendFaultsTest, PausedConnectionKeepsEveryByteItIsSent) {
  ServerOptions options;
  options.loops = 2;
  options.connection.read_budget = 64 * kKiB;
  auto service = std::make_shared<PausingEchoService>();
  StartServer(options, service);
  MultiClient client(test::LoopbackAddress(port_));
  std::vector<std::string> sent;
  for (size_t i = 0; i < kPausers; ++i) {
    const MultiClient::Id id = client.Connect().value();
    sent.push_back(Random(kPauserRequest));
    // Sent in pieces of random sizes, so reads and pauses fall at no particular boundary.
    for (size_t at = 0; at < sent.back().size();) {
      const size_t n = std::min<size_t>(1 + rng_() % (256 * kKiB), sent.back().size() - at);
      client.Send(id, sent.back().substr(at, n));
      at += n;
    }
    if (i % 2 == 1) client.ShutdownWrite(id);
    client.Expect(id, sent.back().size());
    if (i % 2 == 1) client.ExpectEof(id);
  }
  absl::Status run = client.Run(Deadline::In(absl::Seconds(60)));
  ASSERT_TRUE(run.ok()) << run;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    EXPECT_TRUE(SameBytes(sent[id], client.received(id))) << client.Describe(id);
  }
  EXPECT_GT(service->pauses(), kPausers);
  EXPECT_TRUE(ClosedExactly(kPausers / 2, CloseReason::kPeerClosed));
  EXPECT_EQ(Active(), static_cast<int64_t>(kPausers - kPausers / 2));
  for (MultiClient::Id id = 0; id < client.size(); id += 2) client.Close(id);
  ASSERT_TRUE(client.Run(Soon()).ok());
  EXPECT_TRUE(ClosedExactly(kPausers, CloseReason::kPeerClosed));
  EXPECT_TRUE(WaitUntil([&] { return Active() == 0; }, Soon()));
  EXPECT_TRUE(InFlightSettlesAt(0));
}

// Clients send a large request, then half-close at once, while reading the echo: behind low
// water marks, the FIN reaches the server long before it has echoed what came before (on
// io_uring it is received behind stashed bytes). Each gets its whole echo, then EOF, and the
// server counts clean peer closes with the right byte counts.
TEST_P(BackendFaultsTest, HalfCloseAfterALargeRequestGetsTheWholeEcho) {
  ServerOptions options;
  options.loops = 2;
  options.connection.high_water = 64 * kKiB;
  options.connection.low_water = 16 * kKiB;
  StartEcho(options);
  MultiClient client(test::LoopbackAddress(port_));
  std::vector<std::string> sent;
  for (size_t i = 0; i < kHalfClosers; ++i) {
    const MultiClient::Id id = client.Connect().value();
    sent.push_back(Random(kHalfCloseRequest));
    client.Send(id, sent.back());
    client.ShutdownWrite(id);
    client.Expect(id, sent.back().size());
    client.ExpectEof(id);
  }
  absl::Status run = client.Run(Deadline::In(absl::Seconds(60)));
  ASSERT_TRUE(run.ok()) << run;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    EXPECT_TRUE(SameBytes(sent[id], client.received(id))) << client.Describe(id);
  }
  EXPECT_TRUE(ClosedExactly(kHalfClosers, CloseReason::kPeerClosed));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == kHalfClosers; }, Soon()));
  const std::map<uint16_t, ClosedConnection> closes = ClosesByPort();
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    auto it = closes.find(client.local_port(id));
    ASSERT_NE(it, closes.end()) << client.Describe(id);
    EXPECT_EQ(it->second.bytes_in, sent[id].size());
    EXPECT_EQ(it->second.bytes_out, sent[id].size());
  }
  EXPECT_EQ(Active(), 0);
  EXPECT_TRUE(InFlightSettlesAt(0));
}

// Hundreds of connections pipeline many small requests (on io_uring into a ring of 8 small
// buffers); every other one resets in the middle of its stream (after part of its echo
// arrived, with more requests in flight). The others get
// exactly their bytes back and close cleanly; the resetters are counted as peer resets, and
// nothing else is counted.
TEST_P(BackendFaultsTest, PipelinedRequestsInterleavedWithResets) {
  ServerOptions options;
  options.loops = 2;
  // io_uring: a small buffer ring, so receives also end for want of buffers meanwhile.
  options.uring.buffers = 8;
  options.uring.buffer_size = 4096;
  StartEcho(options);
  MultiClient client(test::LoopbackAddress(port_));
  std::vector<std::string> sent(kPipeliners);
  for (size_t i = 0; i < kPipeliners; ++i) {
    const MultiClient::Id id = client.Connect().value();
    const bool resets = i % 2 == 1;
    size_t first_half = 0;
    for (int m = 0; m < kPipelinedMessages; ++m) {
      std::string message = Random(1 + rng_() % 300);
      sent[i] += message;
      if (m == kPipelinedMessages / 2) first_half = sent[i].size();
      client.Send(id, std::move(message));
    }
    if (resets) {
      // Part of the echo, then the reset with the rest of the replies on their way.
      client.Expect(id, first_half);
      client.Close(id, /*reset=*/true);
    } else {
      client.Expect(id, sent[i].size());
      client.Close(id);
    }
  }
  absl::Status run = client.Run(Deadline::In(absl::Seconds(60)));
  ASSERT_TRUE(run.ok()) << run;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    if (id % 2 == 0) {
      EXPECT_TRUE(SameBytes(sent[id], client.received(id))) << client.Describe(id);
    } else {
      EXPECT_TRUE(IsPrefix(sent[id], client.received(id))) << client.Describe(id);
    }
  }
  const uint64_t resetters = kPipeliners / 2;
  const uint64_t survivors = kPipeliners - resetters;
  ASSERT_TRUE(WaitUntil([&] { return ClosedTotal() >= kPipeliners; }, Soon())) << CloseCounts();
  EXPECT_EQ(Closed(CloseReason::kPeerClosed), survivors) << CloseCounts();
  EXPECT_EQ(Closed(CloseReason::kPeerReset), resetters) << CloseCounts();
  EXPECT_EQ(ClosedTotal(), kPipeliners) << CloseCounts();
  ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == kPipeliners; }, Soon()));
  const std::map<uint16_t, ClosedConnection> closes = ClosesByPort();
  for (MultiClient::Id id = 0; id < client.size(); id += 2) {
    auto it = closes.find(client.local_port(id));
    ASSERT_NE(it, closes.end()) << client.Describe(id);
    EXPECT_EQ(it->second.reason, CloseReason::kPeerClosed);
    EXPECT_EQ(it->second.bytes_out, sent[id].size());
  }
  EXPECT_EQ(Active(), 0);
  EXPECT_TRUE(InFlightSettlesAt(0));
  ScopedFd fresh = Connect();
  EXPECT_TRUE(EchoesBack(fresh.get(), Random(3000)));
}

// A connection paused by its handler (no output queued) whose peer then resets. The readiness
// back ends report the hang-up whatever the interest, so the connection is closed as a peer
// reset at once, paused or not. io_uring must notice it as well: when the peer sent less than a
// read budget (the receive stays armed while paused) and when it sent far more (the receive was
// cancelled once a read budget had been stashed, and a one-shot poll for errors and hang-ups
// takes its place: one operation in flight either way).
TEST_P(BackendFaultsTest, PausedConnectionNoticesAPeerReset) {
  ServerOptions options;
  options.loops = 1;
  options.connection.read_budget = 64 * kKiB;
  StartServer(options, std::make_shared<PauseForeverService>());
  uint64_t closed = 0;
  for (const size_t sent : {size_t{1000}, 1 * kMiB}) {
    SCOPED_TRACE(absl::StrCat("the peer sent ", sent, " bytes, read budget ", options.connection.read_budget));
    ScopedFd fd = Connect();
    ASSERT_TRUE(test::WriteAll(fd.get(), Random(sent), Soon()).ok());
    // Paused; on io_uring the receive still armed (under a read budget) or, beyond, cancelled
    // and replaced by the hang-up watch.
    const uint64_t want_in_flight = 1;
    std::optional<std::map<uint16_t, ConnectionSample>> sample;
    std::optional<uint64_t> in_flight;
    ASSERT_TRUE(WaitUntil(
        [&] {
          sample = Sample();
          if (!sample.has_value() || sample->size() != 1) return false;
          if (sample->begin()->second.state != ConnectionState::kPaused) return false;
          if (!uring()) return true;
          in_flight = InFlight();
          return in_flight.has_value() && *in_flight == want_in_flight;
        },
        Soon()))
        << "in flight " << (in_flight.has_value() ? absl::StrCat(*in_flight) : "?") << ", want " << want_in_flight;
    EXPECT_EQ(ClosedTotal(), closed);

    ASSERT_TRUE(test::ResetOnClose(fd.get()).ok());
    fd.reset();
    ++closed;
    EXPECT_TRUE(ClosedExactly(closed, CloseReason::kPeerReset, Deadline::In(absl::Seconds(2))))
        << "active " << Active() << ": the paused connection did not notice its peer's reset";
    EXPECT_TRUE(WaitUntil([&] { return Active() == 0; }, Deadline::In(absl::Seconds(1))));
    EXPECT_TRUE(InFlightSettlesAt(0));
    if (Active() != 0) break;
  }
  // A paused connection left open waits for a Resume that never comes: stop without waiting.
  server_->Stop(absl::Milliseconds(100));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendFaultsTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         [](const ::testing::TestParamInfo<PollerBackend>& info) {
                           return std::string(PollerBackendName(info.param));
                         });

}  // namespace
}  // namespace percore
