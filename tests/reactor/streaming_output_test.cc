// Large replies over real loopback sockets: a reply streamed in shared pieces with
// RequestWritable/OnWritable to a slow reader, streams started from OnOpen and OnDeadline, the
// per-iteration write budget, and the output cap, which measures the bytes a connection copied
// (its own memory), not shared pieces. Each test runs on both poller back ends.
//
// Every wait is on a condition (a socket event or state read on the loop's thread) with a
// deadline; the deadlines only bound a failure.

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "core/socket.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/connection_test_peer.h"
#include "tests/testing/deadline.h"
#include "tests/testing/random_bytes.h"
#include "tests/testing/server_probe.h"

namespace percore {

// Names the back end in gtest failure messages (found by ADL, so not in the anonymous namespace).
void PrintTo(PollerBackend backend, std::ostream* os) { *os << PollerBackendName(backend); }

namespace {

using test::Deadline;
using test::ScopedFd;
using test::WaitUntil;

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kKiB = size_t{1} << 10;

Deadline Soon() { return Deadline::In(absl::Seconds(20)); }

// A line protocol whose replies are large:
//   "stream N\n"  N MiB: N times one shared 1 MiB buffer, each piece queued (AppendShared) only
//                 when OnWritable says the previous ones drained (RequestWritable);
//   "later N\n"   the same with N pieces of 16 KiB (the buffer's first 16 KiB), started by the
//                 handler's deadline (OnDeadline) 1 ms later instead of by OnData;
//   "copy N\n"    the first N bytes of an 8 MiB buffer, copied into the output at once;
//   "share N\n"   "VALUE\r\n", those N bytes as one shared piece, "END\r\n";
//   anything else is echoed, line by line.
// With `open_pieces` > 0, OnOpen starts a stream of that many 16 KiB pieces. A handler finishes
// queuing a stream before it reads the next request.
class StreamService final : public Service {
 public:
  static constexpr size_t kSmallPiece = 16 * 1024;

  // `server_sndbuf` > 0: each connection's socket gets that send buffer, so that the kernel
  // holds little of a reply and a reader that pauses backs the server up at once.
  explicit StreamService(int server_sndbuf, size_t open_pieces = 0)
      : server_sndbuf_(server_sndbuf), open_pieces_(open_pieces) {
    std::mt19937_64 rng(20260412);
    piece_ = std::make_shared<const std::string>(test::RandomBytes(rng, kMiB));
    big_ = std::make_shared<const std::string>(test::RandomBytes(rng, 8 * kMiB));
  }

  std::string_view name() const override { return "stream"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<StreamHandler>(*this); }

  const std::string& piece() const { return *piece_; }
  std::string_view small_piece() const { return std::string_view(*piece_).substr(0, kSmallPiece); }
  const std::string& big() const { return *big_; }
  // The most output any connection had queued right after the handler added to it.
  size_t max_queued() const { return max_queued_.load(); }
  int pieces_added() const { return pieces_added_.load(); }
  int on_writable_calls() const { return on_writable_calls_.load(); }

 private:
  class StreamHandler final : public Handler {
   public:
    explicit StreamHandler(StreamService& service) : service_(service) {}

    void OnOpen(Connection& conn) override {
      if (service_.server_sndbuf_ > 0) {
        const int size = service_.server_sndbuf_;
        ::setsockopt(ConnectionTestPeer::fd(conn), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
      }
      StartStream(conn, service_.open_pieces_, kSmallPiece);
    }

    Action OnData(Connection& conn, Buffer& input) override {
      while (pieces_left_ == 0) {
        const std::string_view bytes = input.view();
        const size_t newline = bytes.find('\n');
        if (newline == std::string_view::npos) break;
        absl::string_view line(bytes.data(), newline);
        size_t n = 0;
        if (absl::ConsumePrefix(&line, "stream ") && absl::SimpleAtoi(line, &n)) {
          StartStream(conn, n, kMiB);
        } else if (absl::ConsumePrefix(&line, "later ") && absl::SimpleAtoi(line, &n)) {
          later_pieces_ = n;
          conn.SetDeadline(absl::Milliseconds(1));
        } else if (absl::ConsumePrefix(&line, "copy ") && absl::SimpleAtoi(line, &n)) {
          conn.Send(std::string_view(*service_.big_).substr(0, n));
          service_.NoteQueued(conn.queued_output());
        } else if (absl::ConsumePrefix(&line, "share ") && absl::SimpleAtoi(line, &n)) {
          conn.Send("VALUE\r\n");
          conn.output().AppendShared(std::string_view(*service_.big_).substr(0, n), service_.big_);
          conn.Send("END\r\n");
          service_.NoteQueued(conn.queued_output());
        } else {
          conn.Send(bytes.substr(0, newline + 1));
        }
        input.Consume(newline + 1);
      }
      return Action::Continue();
    }

    void OnWritable(Connection& conn) override {
      service_.on_writable_calls_.fetch_add(1);
      if (pieces_left_ > 0) AddPiece(conn);
    }

    Action OnDeadline(Connection& conn) override {
      StartStream(conn, std::exchange(later_pieces_, 0), kSmallPiece);
      return Action::Continue();
    }

   private:
    void StartStream(Connection& conn, size_t pieces, size_t piece_size) {
      pieces_left_ = pieces;
      piece_size_ = piece_size;
      if (pieces_left_ > 0) AddPiece(conn);
    }

    void AddPiece(Connection& conn) {
      conn.output().AppendShared(std::string_view(*service_.piece_).substr(0, piece_size_), service_.piece_);
      --pieces_left_;
      service_.pieces_added_.fetch_add(1);
      service_.NoteQueued(conn.queued_output());
      if (pieces_left_ > 0) conn.RequestWritable();
    }

    StreamService& service_;
    size_t pieces_left_ = 0;
    size_t piece_size_ = kMiB;
    size_t later_pieces_ = 0;
  };

  void NoteQueued(size_t queued) {
    size_t seen = max_queued_.load();
    while (queued > seen && !max_queued_.compare_exchange_weak(seen, queued)) {
    }
  }

  const int server_sndbuf_;
  const size_t open_pieces_;
  std::shared_ptr<const std::string> piece_;
  std::shared_ptr<const std::string> big_;
  std::atomic<size_t> max_queued_{0};
  std::atomic<int> pieces_added_{0};
  std::atomic<int> on_writable_calls_{0};
};

// A connection's output as its loop sees it.
struct OutputState {
  size_t queued = 0;
  size_t copied = 0;
  ConnectionState state = ConnectionState::kClosed;
};

// Reads exactly `n` bytes, at most `chunk` per recv; errors say how far it got, without
// quoting megabytes. A reader behind a small receive window reads 16 KiB at a time: one recv
// that empties the socket each time leaves the sender waiting on delayed ACKs, so the transfer
// would be paced by TCP timers instead of by the reader.
absl::StatusOr<std::string> ReadBytes(int fd, size_t n, size_t chunk, Deadline deadline) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, std::min(chunk, n - got), 0);
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

// Compares two byte strings without dumping megabytes into the log.
::testing::AssertionResult SameBytes(std::string_view expected, std::string_view actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  size_t at = 0;
  while (at < expected.size() && at < actual.size() && expected[at] == actual[at]) ++at;
  return ::testing::AssertionFailure() << "expected " << expected.size() << " bytes, got " << actual.size()
                                       << "; first difference at offset " << at;
}

class StreamingOutputTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(ServerOptions options, int server_sndbuf = 0, size_t open_pieces = 0) {
    options.loops = 1;  // every connection on one loop: they compete for it
    options.backend = GetParam();
    server_ = std::make_unique<Server>(options);
    service_ = std::make_shared<StreamService>(server_sndbuf, open_pieces);
    ASSERT_TRUE(server_->AddService(service_).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("stream", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  ScopedFd Connect() {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : ScopedFd();
  }

  EventLoop& loop() { return server_->loop(0); }
  const LoopStats& stats() { return loop().stats(); }
  uint64_t ClosedTotal() { return stats().closed_total(); }
  uint64_t Closed(CloseReason reason) { return stats().closed[static_cast<int>(reason)].Get(); }

  // The output of the connection whose client side is `client_fd`, read on the loop's thread;
  // nullopt if the server has no such connection (any more).
  std::optional<OutputState> OutputOf(int client_fd) {
    absl::StatusOr<uint16_t> port = test::LocalPort(client_fd);
    if (!port.ok()) return std::nullopt;
    std::optional<OutputState> out;
    EventLoop& l = loop();
    const bool ran = test::RunOnLoop(
        l,
        [&l, &out, peer_port = *port] {
          l.ForEachConnection([&](Connection& c) {
            if (c.peer().port() == peer_port) {
              out = OutputState{c.queued_output(), c.output().copied_size(), c.state()};
            }
          });
        },
        Soon());
    EXPECT_TRUE(ran) << "the loop did not answer";
    return out;
  }

  // Sends `line` and expects it echoed back.
  ::testing::AssertionResult Echoes(int fd, const std::string& line) {
    if (absl::Status s = test::WriteAll(fd, line, Soon()); !s.ok()) return ::testing::AssertionFailure() << s;
    absl::StatusOr<std::string> back = test::ReadExactly(fd, line.size(), Soon());
    if (!back.ok()) return ::testing::AssertionFailure() << back.status();
    if (*back != line) return ::testing::AssertionFailure() << "echo of \"" << line << "\" was \"" << *back << "\"";
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<StreamService> service_;
  uint16_t port_ = 0;
};

// A 64 MiB reply streamed one shared 1 MiB piece at a time, each added by OnWritable once the
// output drained to the low-water mark, read by a client that reads 16 KiB at a time and pauses
// every 8 MiB until the server holds more than the low-water mark for it (it is backed up on
// the reader). During each pause a second connection on the same loop is answered, while the
// big reply is still unfinished: the server still holds output for it. Every byte arrives, in
// order, and the output never exceeds the low-water mark plus one piece (so never the
// high-water mark plus one piece).
TEST_P(StreamingOutputTest, LargeReplyInPiecesReachesASlowReaderWhileAnotherConnectionIsServed) {
  ServerOptions options;
  options.connection.high_water = 1 * kMiB;
  options.connection.low_water = 256 * kKiB;
  StartServer(options, /*server_sndbuf=*/64 * kKiB);
  constexpr size_t kPieces = 64;
  const size_t total = kPieces * kMiB;
  const std::string& piece = service_->piece();

  absl::StatusOr<ScopedFd> big = test::ConnectToLoopback(port_, Soon(), {.receive_buffer = 64 * kKiB});
  ASSERT_TRUE(big.ok()) << big.status();
  ScopedFd other = Connect();
  ASSERT_TRUE(Echoes(other.get(), "hello\n"));
  ASSERT_TRUE(test::WriteAll(big->get(), "stream 64\n", Soon()).ok());

  size_t received = 0;
  size_t next_pause = 8 * kMiB;
  int pauses = 0;
  char chunk[16 * kKiB];
  const Deadline deadline = Deadline::In(absl::Seconds(120));
  while (received < total) {
    const ssize_t n = ::recv(big->get(), chunk, std::min(sizeof(chunk), total - received), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      ASSERT_TRUE(test::WaitReadable(big->get(), deadline).ok()) << "stalled after " << received << " bytes";
      continue;
    }
    ASSERT_GT(n, 0) << "after " << received << " bytes: " << (n == 0 ? "EOF" : std::strerror(errno));
    // The reply is the piece, again and again.
    for (size_t done = 0; done < static_cast<size_t>(n);) {
      const size_t at = (received + done) % kMiB;
      const size_t len = std::min(static_cast<size_t>(n) - done, kMiB - at);
      ASSERT_EQ(std::memcmp(chunk + done, piece.data() + at, len), 0) << "at byte " << received + done;
      done += len;
    }
    received += static_cast<size_t>(n);

    if (received >= next_pause && next_pause < total) {
      next_pause += 8 * kMiB;
      ++pauses;
      // Stop reading until the server is backed up on this reader.
      std::optional<OutputState> state;
      ASSERT_TRUE(WaitUntil(
          [&] {
            state = OutputOf(big->get());
            return state.has_value() && state->queued > options.connection.low_water;
          },
          Soon()))
          << "the server never backed up; pause " << pauses;
      // Meanwhile the other connection is served...
      ASSERT_TRUE(Echoes(other.get(), absl::StrCat("ping ", pauses, "\n"))) << "pause " << pauses;
      // ... before the big reply is finished: the server still holds part of it.
      state = OutputOf(big->get());
      ASSERT_TRUE(state.has_value());
      EXPECT_GT(state->queued, 0u) << "pause " << pauses;
      EXPECT_LE(state->queued, options.connection.high_water + kMiB) << "pause " << pauses;
      EXPECT_EQ(state->copied, 0u) << "the stream is all shared pieces";
      EXPECT_LT(stats().bytes_out.Get(), total);
    }
  }
  EXPECT_EQ(received, total);
  EXPECT_EQ(pauses, 7);
  // Nothing follows the stream but the answer to the next request.
  ASSERT_TRUE(Echoes(big->get(), "done\n"));
  EXPECT_TRUE(Echoes(other.get(), "bye\n"));

  EXPECT_EQ(service_->pieces_added(), static_cast<int>(kPieces));
  // One OnWritable per piece after the first (and perhaps one more once the last one drained).
  EXPECT_GE(service_->on_writable_calls(), static_cast<int>(kPieces) - 1);
  EXPECT_LE(service_->on_writable_calls(), static_cast<int>(kPieces));
  // A piece is added only once the output is at or below the low-water mark.
  EXPECT_LE(service_->max_queued(), options.connection.low_water + kMiB);
  EXPECT_LE(service_->max_queued(), options.connection.high_water + kMiB);
  EXPECT_GE(service_->max_queued(), kMiB);
  EXPECT_EQ(ClosedTotal(), 0u);
}

// With a 64 KiB write budget, a 4 MiB reply to a reader that takes everything at once goes
// out 64 KiB per loop iteration: it arrives whole, the budget made the connection yield, and
// the loop needed at least 64 iterations for it. Copied and streamed (shared) replies alike.
TEST_P(StreamingOutputTest, WriteBudgetSpreadsALargeReplyOverIterationsAndItArrivesWhole) {
  ServerOptions options;
  options.connection.write_budget = 64 * kKiB;
  StartServer(options);
  const size_t size = 4 * kMiB;
  ScopedFd fd = Connect();
  ASSERT_TRUE(fd.valid());

  const uint64_t iterations_before = stats().iterations.Get();
  ASSERT_TRUE(test::WriteAll(fd.get(), absl::StrCat("copy ", size, "\n"), Soon()).ok());
  absl::StatusOr<std::string> copied = ReadBytes(fd.get(), size, size, Soon());
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_TRUE(SameBytes(std::string_view(service_->big()).substr(0, size), *copied));
  EXPECT_GT(stats().write_budget_yields.Get(), 0u);
  EXPECT_TRUE(WaitUntil([&] { return stats().iterations.Get() >= iterations_before + size / (64 * kKiB); }, Soon()))
      << stats().iterations.Get() - iterations_before << " iterations";

  const uint64_t yields_before = stats().write_budget_yields.Get();
  ASSERT_TRUE(test::WriteAll(fd.get(), "stream 4\n", Soon()).ok());
  absl::StatusOr<std::string> streamed = ReadBytes(fd.get(), size, size, Soon());
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  const std::string& piece = service_->piece();
  EXPECT_TRUE(SameBytes(piece + piece + piece + piece, *streamed));
  EXPECT_GT(stats().write_budget_yields.Get(), yields_before);
  EXPECT_EQ(service_->pieces_added(), 4);

  EXPECT_TRUE(Echoes(fd.get(), "after\n"));
  EXPECT_TRUE(WaitUntil([&] { return stats().bytes_out.Get() == 2 * size + 6; }, Soon()))
      << stats().bytes_out.Get() << " bytes written";
  EXPECT_EQ(ClosedTotal(), 0u);
}

// With a 1 MiB output cap, an 8 MiB value queued as one shared piece is delivered whole (the
// connection's own memory is its 12 copied bytes), while copying the same 8 MiB into the
// output closes that connection as output_overflow. Small socket buffers keep most of each
// reply in the server's output queue, so the cap is checked with megabytes queued.
TEST_P(StreamingOutputTest, OutputCapCountsCopiedBytesOnly) {
  ServerOptions options;
  options.connection.high_water = 256 * kKiB;
  options.connection.low_water = 64 * kKiB;
  options.connection.output_cap = 1 * kMiB;
  StartServer(options, /*server_sndbuf=*/64 * kKiB);
  const size_t size = 8 * kMiB;
  const size_t cap = options.connection.output_cap;

  absl::StatusOr<ScopedFd> shared = test::ConnectToLoopback(port_, Soon(), {.receive_buffer = 64 * kKiB});
  ASSERT_TRUE(shared.ok()) << shared.status();
  ASSERT_TRUE(test::WriteAll(shared->get(), absl::StrCat("share ", size, "\n"), Soon()).ok());
  // Not reading yet: the server's queue stays far above the cap, and the connection open.
  std::optional<OutputState> state;
  ASSERT_TRUE(WaitUntil(
      [&] {
        state = OutputOf(shared->get());
        return state.has_value() && state->queued > cap;
      },
      Soon()));
  EXPECT_LE(state->copied, std::string_view("VALUE\r\nEND\r\n").size());
  EXPECT_EQ(ClosedTotal(), 0u);
  absl::StatusOr<std::string> value = ReadBytes(shared->get(), 7 + size + 5, 16 * kKiB, Soon());
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_TRUE(SameBytes("VALUE\r\n" + service_->big().substr(0, size) + "END\r\n",
                        *value));
  EXPECT_GT(service_->max_queued(), size);
  EXPECT_EQ(ClosedTotal(), 0u);

  absl::StatusOr<ScopedFd> copied = test::ConnectToLoopback(port_, Soon(), {.receive_buffer = 64 * kKiB});
  ASSERT_TRUE(copied.ok()) << copied.status();
  ASSERT_TRUE(test::WriteAll(copied->get(), absl::StrCat("copy ", size, "\n"), Soon()).ok());
  ASSERT_TRUE(WaitUntil([&] { return Closed(CloseReason::kOutputOverflow) == 1; }, Soon()));
  // What the socket took before the close arrives, then the end: a prefix, far short.
  absl::StatusOr<std::string> cut = test::ReadToEof(copied->get(), Soon());
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_LT(cut->size(), size - cap);
  EXPECT_TRUE(SameBytes(std::string_view(service_->big()).substr(0, cut->size()), *cut));
  EXPECT_EQ(ClosedTotal(), 1u);

  // The connection that received the shared value is unaffected.
  EXPECT_TRUE(Echoes(shared->get(), "still here\n"));
}

// RequestWritable from OnOpen: a stream of 16 KiB pieces that starts as the connection opens,
// before the client sends anything. Each piece fits in the socket at once, so the output is
// empty after every write: nothing but the request itself can bring the next OnWritable.
TEST_P(StreamingOutputTest, StreamStartedInOnOpenIsDeliveredWithoutARequest) {
  constexpr size_t kPieces = 32;
  StartServer(ServerOptions{}, /*server_sndbuf=*/0, /*open_pieces=*/kPieces);
  ScopedFd fd = Connect();
  ASSERT_TRUE(fd.valid());
  absl::StatusOr<std::string> got = ReadBytes(fd.get(), kPieces * StreamService::kSmallPiece, kMiB, Soon());
  ASSERT_TRUE(got.ok()) << got.status() << "; " << service_->pieces_added() << " pieces queued";
  std::string expected;
  for (size_t i = 0; i < kPieces; ++i) expected += service_->small_piece();
  EXPECT_TRUE(SameBytes(expected, *got));
  EXPECT_EQ(service_->pieces_added(), static_cast<int>(kPieces));
  EXPECT_TRUE(Echoes(fd.get(), "after\n"));
}

// RequestWritable from OnDeadline, likewise with pieces the socket takes whole.
TEST_P(StreamingOutputTest, StreamStartedInOnDeadlineIsDeliveredWithoutFurtherInput) {
  constexpr size_t kPieces = 32;
  StartServer(ServerOptions{});
  ScopedFd fd = Connect();
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(test::WriteAll(fd.get(), absl::StrCat("later ", kPieces, "\n"), Soon()).ok());
  absl::StatusOr<std::string> got = ReadBytes(fd.get(), kPieces * StreamService::kSmallPiece, kMiB, Soon());
  ASSERT_TRUE(got.ok()) << got.status() << "; " << service_->pieces_added() << " pieces queued";
  std::string expected;
  for (size_t i = 0; i < kPieces; ++i) expected += service_->small_piece();
  EXPECT_TRUE(SameBytes(expected, *got));
  EXPECT_EQ(service_->pieces_added(), static_cast<int>(kPieces));
  EXPECT_TRUE(Echoes(fd.get(), "after\n"));
}

INSTANTIATE_TEST_SUITE_P(Backends, StreamingOutputTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         [](const ::testing::TestParamInfo<PollerBackend>& info) {
                           return std::string(PollerBackendName(info.param));
                         });

}  // namespace
}  // namespace percore
