// How connections end, against a real percore::Server running the echo service: half-close,
// peer reset, idle and write timeouts, the output cap, graceful Stop with data in flight, the
// global connection limit, and draining a loop. Each test runs on both poller back ends.
//
// Every wait is on a condition (a socket event or a stats counter) with a deadline; the
// deadlines only bound a failure. The loops' close counters say why each connection ended, and
// the echo service is wrapped in a RecordingService so that each connection's own byte counts
// can be checked after it closed.

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/socket.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
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


Deadline Soon() { return Deadline::In(absl::Seconds(10)); }

ServerOptions WithLoops(int loops) {
  ServerOptions options;
  options.loops = loops;
  return options;
}

// Compares two byte strings without dumping megabytes into the log.
::testing::AssertionResult SameBytes(const std::string& expected, const std::string& actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  size_t at = 0;
  while (at < expected.size() && at < actual.size() && expected[at] == actual[at]) ++at;
  return ::testing::AssertionFailure() << "expected " << expected.size() << " bytes, got " << actual.size()
                                       << "; first difference at offset " << at;
}

// Sends `bytes` on a connected socket and reads the echo back.
::testing::AssertionResult EchoesBack(int fd, const std::string& bytes) {
  if (absl::Status s = test::WriteAll(fd, bytes, Soon()); !s.ok()) {
    return ::testing::AssertionFailure() << s;
  }
  absl::StatusOr<std::string> back = test::ReadExactly(fd, bytes.size(), Soon());
  if (!back.ok()) return ::testing::AssertionFailure() << back.status();
  return SameBytes(bytes, *back);
}

class ConnectionLifecycleTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // Starts a server with `options` (the back end is the test's parameter) running the echo
  // service, recorded.
  void StartServer(ServerOptions options) {
    options.backend = GetParam();
    server_ = std::make_unique<Server>(options);
    recorder_ = std::make_shared<test::RecordingService>(NewEchoService());
    ASSERT_TRUE(server_->AddService(recorder_).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("echo", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }

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
  uint64_t Active() { return static_cast<uint64_t>(Totals().conns_active); }
  uint64_t BackpressurePauses() { return Totals().backpressure_pauses; }

  // Waits until exactly `n` connections closed, all under `reason`.
  ::testing::AssertionResult ClosedExactly(uint64_t n, CloseReason reason) {
    if (!WaitUntil([&] { return ClosedTotal() >= n; }, Soon())) {
      return ::testing::AssertionFailure() << "only " << ClosedTotal() << " of " << n << " closes counted";
    }
    if (Closed(reason) != n || ClosedTotal() != n) {
      ::testing::AssertionResult failure = ::testing::AssertionFailure();
      failure << "want " << n << " closed as " << CloseReasonName(reason) << "; counted:";
      for (int r = 0; r < kCloseReasonCount; ++r) {
        const uint64_t count = Closed(static_cast<CloseReason>(r));
        if (count > 0) failure << " " << CloseReasonName(static_cast<CloseReason>(r)) << "=" << count;
      }
      return failure;
    }
    return ::testing::AssertionSuccess();
  }

  // The recorded close of the connection whose client port is `port`.
  const ClosedConnection* RecordedClose(const std::vector<ClosedConnection>& closed, uint16_t port) {
    for (const ClosedConnection& c : closed) {
      if (c.peer_port == port) return &c;
    }
    return nullptr;
  }

  // For tests that drive a loop of their own instead of the server: an echo loop (the test's
  // back end) and a loopback listener whose connections the test accepts and hands over itself,
  // as the distributor would.
  ::testing::AssertionResult MakeOwnLoop() {
    EventLoopOptions options;
    options.backend = GetParam();
    options.services = {own_echo_.get()};
    absl::StatusOr<std::unique_ptr<EventLoop>> created = EventLoop::Create(options);
    if (!created.ok()) return ::testing::AssertionFailure() << created.status();
    own_loop_ = std::move(*created);
    absl::StatusOr<int> listen_fd = ListenTcp(HostPort{"127.0.0.1", 0});
    if (!listen_fd.ok()) return ::testing::AssertionFailure() << listen_fd.status();
    own_listener_ = ScopedFd(*listen_fd);
    port_ = LocalAddress(own_listener_.get())->port();
    return ::testing::AssertionSuccess();
  }
  // The server side of the next connection to the own listener; -1 (and a failure) if none.
  ScopedFd AcceptOwn() {
    EXPECT_TRUE(test::WaitReadable(own_listener_.get(), Soon()).ok());
    ScopedFd fd(::accept4(own_listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    EXPECT_GE(fd.get(), 0) << "accept: " << errno;
    return fd;
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<test::RecordingService> recorder_;
  std::shared_ptr<Service> own_echo_ = NewEchoService();
  std::unique_ptr<EventLoop> own_loop_;
  ScopedFd own_listener_;
  uint16_t port_ = 0;
  std::mt19937_64 rng_{20240611};
  // Written by a timer on a loop: lives as long as the fixture, so past the server's Stop.
  std::atomic<size_t> max_queued_output_{0};
};

// The client sends, then shuts its write side: it still gets every byte back, then EOF, and
// the server counts a clean peer close.
TEST_P(ConnectionLifecycleTest, HalfCloseGetsEverythingEchoedThenEof) {
  StartServer(WithLoops(2));
  MultiClient client(test::LoopbackAddress(port_));
  const std::string data = Random(1 << 20);
  const MultiClient::Id id = client.Connect().value();
  client.Send(id, data);
  client.ShutdownWrite(id);
  client.Expect(id, data.size());
  client.ExpectEof(id);
  absl::Status run = client.Run(Soon());
  ASSERT_TRUE(run.ok()) << run;
  EXPECT_TRUE(SameBytes(data, client.received(id)));

  EXPECT_TRUE(ClosedExactly(1, CloseReason::kPeerClosed));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == 1; }, Soon()));
  const ClosedConnection closed = recorder_->closed()[0];
  EXPECT_EQ(closed.peer_port, client.local_port(id));
  EXPECT_EQ(closed.reason, CloseReason::kPeerClosed);
  EXPECT_EQ(closed.bytes_in, data.size());
  EXPECT_EQ(closed.bytes_out, data.size());
}

// The client sends a lot without reading until the server's output backs up, then resets the
// connection (SO_LINGER 0). The server, mid-write, counts a peer reset and carries on.
TEST_P(ConnectionLifecycleTest, PeerResetWhileServerWritesIsCountedAsPeerReset) {
  ServerOptions options = WithLoops(1);
  options.connection.high_water = 64 * 1024;
  options.connection.low_water = 16 * 1024;
  StartServer(options);
  MultiClient client(test::LoopbackAddress(port_));
  const MultiClient::Id id = client.Connect().value();
  client.Send(id, Random(32 << 20));
  client.set_reading(false);
  ASSERT_TRUE(client.RunUntil([&] { return BackpressurePauses() > 0; }, Soon()).ok())
      << "the server never backed up; " << client.Describe(id);
  client.Close(id, /*reset=*/true);
  ASSERT_TRUE(client.Run(Soon()).ok());

  EXPECT_TRUE(ClosedExactly(1, CloseReason::kPeerReset));
  EXPECT_EQ(Closed(CloseReason::kIoError), 0u);
  EXPECT_EQ(Active(), 0u);
  // The loop is unharmed.
  ScopedFd next = Connect();
  EXPECT_TRUE(EchoesBack(next.get(), Random(1000)));
}

// With a 200 ms idle timeout, a silent connection is closed (the client sees EOF) while one
// that keeps talking stays open.
TEST_P(ConnectionLifecycleTest, IdleTimeoutClosesOnlyTheSilentConnection) {
  ServerOptions options = WithLoops(1);
  options.connection.idle_timeout = absl::Milliseconds(200);
  StartServer(options);
  ScopedFd silent = Connect();
  ScopedFd talker = Connect();
  const std::string message = Random(64);

  // Talk without pause until the silent connection has been closed.
  const Deadline deadline = Soon();
  uint64_t round_trips = 0;
  while (!test::WaitReadable(silent.get(), Deadline::In(absl::ZeroDuration())).ok()) {
    ASSERT_FALSE(deadline.expired()) << "the silent connection was not closed";
    ASSERT_TRUE(EchoesBack(talker.get(), message)) << "after " << round_trips << " round trips";
    ++round_trips;
  }
  EXPECT_TRUE(test::ExpectEof(silent.get(), Soon()).ok());
  EXPECT_TRUE(ClosedExactly(1, CloseReason::kIdleTimeout));
  EXPECT_TRUE(EchoesBack(talker.get(), message));
  EXPECT_EQ(ClosedTotal(), 1u);
  EXPECT_EQ(Active(), 1u);
}

// A client that never reads while the server has output queued: with a 200 ms write timeout
// the server gives up on it.
TEST_P(ConnectionLifecycleTest, WriteTimeoutClosesAPeerThatNeverReads) {
  ServerOptions options = WithLoops(1);
  options.connection.high_water = 64 * 1024;
  options.connection.low_water = 16 * 1024;
  options.connection.write_timeout = absl::Milliseconds(200);
  StartServer(options);
  MultiClient client(test::LoopbackAddress(port_));
  const MultiClient::Id id = client.Connect().value();
  client.Send(id, Random(32 << 20));
  client.set_reading(false);
  ASSERT_TRUE(client.RunUntil([&] { return ClosedTotal() > 0; }, Soon()).ok()) << client.Describe(id);

  EXPECT_TRUE(ClosedExactly(1, CloseReason::kWriteTimeout));
  ASSERT_TRUE(WaitUntil([&] { return recorder_->closed_count() == 1; }, Soon()));
  EXPECT_EQ(recorder_->closed()[0].reason, CloseReason::kWriteTimeout);
  EXPECT_GT(recorder_->closed()[0].bytes_in, recorder_->closed()[0].bytes_out);
}

// The design: above the high-water mark the connection stops reading, so an echo of a peer
// that does not read is held by backpressure, not closed. Each wake-up reads at most one read
// budget, so queued output never exceeds high water plus one read budget, and a cap set there
// is never reached (the framework checks the cap after every write attempt and would close the
// connection as output_overflow). Once the peer reads, every byte comes back.
TEST_P(ConnectionLifecycleTest, BackpressureBoundsQueuedOutputBelowTheCap) {
  ServerOptions options = WithLoops(1);
  options.connection.high_water = 64 * 1024;
  options.connection.low_water = 16 * 1024;
  options.connection.read_budget = 32 * 1024;
  options.connection.output_cap = options.connection.high_water + options.connection.read_budget;
  StartServer(options);
  const size_t cap = options.connection.output_cap;

  // Also sample the queued output on the loop every millisecond, whatever the state.
  EventLoop& loop = server_->loop(0);
  EventLoop::TimerId sampler = 0;
  ASSERT_TRUE(test::RunOnLoop(
      loop,
      [&loop, &sampler, max = &max_queued_output_] {
        sampler = loop.RunEvery(absl::Milliseconds(1), [&loop, max] {
          loop.ForEachConnection([max](Connection& c) {
            if (c.queued_output() > max->load()) max->store(c.queued_output());
          });
        });
      },
      Soon()));

  MultiClient client(test::LoopbackAddress(port_));
  const MultiClient::Id id = client.Connect().value();
  const std::string data = Random(16 << 20);
  client.Send(id, data);
  client.Expect(id, data.size());
  client.set_reading(false);
  ASSERT_TRUE(client.RunUntil([&] { return BackpressurePauses() > 0; }, Soon()).ok()) << client.Describe(id);

  // Held, not closed: reading has stopped and the output waits for the peer. (On io_uring a
  // pause can also be brief, while a send is in flight; the state settles once the socket
  // buffers are full.)
  size_t queued = 0;
  ConnectionState state = ConnectionState::kClosed;
  const auto sample = [&] {
    EXPECT_TRUE(test::RunOnLoop(
        loop,
        [&] {
          loop.ForEachConnection([&](Connection& c) {
            queued = c.queued_output();
            state = c.state();
          });
        },
        Soon()));
    return state == ConnectionState::kWriting;
  };
  ASSERT_TRUE(client.RunUntil(sample, Soon()).ok()) << client.Describe(id);
  EXPECT_EQ(state, ConnectionState::kWriting);
  EXPECT_GT(queued, options.connection.high_water);
  EXPECT_LE(queued, cap);

  client.set_reading(true);
  absl::Status run = client.Run(Deadline::In(absl::Seconds(30)));
  ASSERT_TRUE(run.ok()) << run;
  EXPECT_TRUE(SameBytes(data, client.received(id)));
  ASSERT_TRUE(test::RunOnLoop(
      loop, [&loop, sampler] { loop.Cancel(sampler); }, Soon()));
  EXPECT_LE(max_queued_output_.load(), cap);
  EXPECT_EQ(ClosedTotal(), 0u);
  EXPECT_EQ(Active(), 1u);
}

// A read budget much larger than the high-water mark: one wake-up reads on after the echo has
// pushed the output above the mark, so bytes wait in the input buffer. When the write at the
// end of that wake-up drains the output (the client reads), those bytes must still be echoed,
// even though the client, waiting for them, sends nothing more to wake the connection up.
TEST_P(ConnectionLifecycleTest, InputReadPastTheHighWaterMarkIsStillEchoed) {
  ServerOptions options = WithLoops(1);
  options.connection.high_water = 4 * 1024;
  options.connection.low_water = 1024;
  options.connection.read_budget = 4 << 20;
  StartServer(options);
  MultiClient client(test::LoopbackAddress(port_));
  const MultiClient::Id id = client.Connect().value();
  std::string all;
  for (int i = 0; i < 16; ++i) {
    // One message at a time: each is sent whole, then its echo awaited.
    std::string message = Random(256 * 1024);
    all += message;
    client.Send(id, std::move(message));
    client.Expect(id, 256 * 1024);
  }
  absl::Status run = client.Run(Soon());
  ASSERT_TRUE(run.ok()) << run << "; the server read "
                        << Totals().bytes_in << " bytes and wrote " << Totals().bytes_out;
  EXPECT_TRUE(SameBytes(all, client.received(id)));
}

// A cap below the high-water mark: output passes the cap before backpressure would stop
// reading, and the connection is closed as an output overflow.
TEST_P(ConnectionLifecycleTest, OutputBeyondTheCapClosesTheConnection) {
  ServerOptions options = WithLoops(1);
  options.connection.high_water = 1 << 20;
  options.connection.output_cap = 64 * 1024;
  StartServer(options);
  MultiClient client(test::LoopbackAddress(port_));
  const MultiClient::Id id = client.Connect().value();
  client.Send(id, Random(32 << 20));
  client.set_reading(false);
  ASSERT_TRUE(client.RunUntil([&] { return ClosedTotal() > 0; }, Soon()).ok()) << client.Describe(id);
  EXPECT_TRUE(ClosedExactly(1, CloseReason::kOutputOverflow));
  EXPECT_EQ(BackpressurePauses(), 0u);
}

// Stop(5 s) while clients are mid-conversation: whatever the server had read from a client is
// echoed to it in full before its EOF; nothing read is dropped, nothing is cut short.
TEST_P(ConnectionLifecycleTest, GracefulStopEchoesEverythingItRead) {
  ServerOptions options = WithLoops(2);
  options.connection.high_water = 64 * 1024;
  options.connection.low_water = 16 * 1024;
  StartServer(options);
  constexpr int kClients = 8;
  MultiClient client(test::LoopbackAddress(port_));
  std::vector<std::string> sent;
  uint64_t to_send = 0;
  for (int i = 0; i < kClients; ++i) {
    const MultiClient::Id id = client.Connect().value();
    // Up to 8 MiB: more than the kernel buffers between a client and the server hold, so the
    // larger ones back up into the server's own output queue.
    sent.push_back(Random((i + 1) << 20));
    to_send += sent.back().size();
    client.Send(id, sent.back());
    client.ExpectEof(id);
    client.Close(id);
  }
  // Not reading yet: the server's output backs up, so Stop finds connections with replies
  // still queued (and possibly input not yet echoed).
  client.set_reading(false);
  ASSERT_TRUE(
      client.RunUntil([&] { return BackpressurePauses() > 0 && Totals().bytes_in >= to_send / 4; }, Soon()).ok());

  std::thread stopper([this] { server_->Stop(absl::Seconds(5)); });
  client.set_reading(true);
  absl::Status run = client.Run(Deadline::In(absl::Seconds(30)));
  stopper.join();
  ASSERT_TRUE(run.ok()) << run;

  // After Stop returned the loops are gone and their counters final.
  const std::vector<ClosedConnection> closed = recorder_->closed();
  ASSERT_EQ(closed.size(), static_cast<size_t>(kClients));
  uint64_t received = 0;
  for (MultiClient::Id id = 0; id < client.size(); ++id) {
    const std::string& got = client.received(id);
    received += got.size();
    EXPECT_TRUE(SameBytes(sent[id].substr(0, got.size()), got)) << client.Describe(id);
    const ClosedConnection* c = RecordedClose(closed, client.local_port(id));
    ASSERT_NE(c, nullptr) << client.Describe(id);
    EXPECT_EQ(c->reason, CloseReason::kServerDrain) << client.Describe(id);
    EXPECT_EQ(c->bytes_in, got.size()) << "read from the client but not echoed: " << client.Describe(id);
    EXPECT_EQ(c->bytes_out, got.size()) << client.Describe(id);
  }
  EXPECT_EQ(Totals().bytes_in, received);
  EXPECT_EQ(Totals().bytes_out, received);
  EXPECT_EQ(Closed(CloseReason::kServerDrain), static_cast<uint64_t>(kClients));
  EXPECT_EQ(ClosedTotal(), static_cast<uint64_t>(kClients));
}

// max_connections = 10: the eleventh connection is closed at once and counted; the ten are
// unaffected, and a freed slot can be taken again.
TEST_P(ConnectionLifecycleTest, GlobalConnectionLimitRefusesTheEleventh) {
  ServerOptions options = WithLoops(2);
  options.max_connections = 10;
  StartServer(options);
  std::vector<ScopedFd> admitted;
  for (int i = 0; i < 10; ++i) {
    admitted.push_back(Connect());
    ASSERT_TRUE(EchoesBack(admitted.back().get(), Random(100))) << "connection " << i;
  }
  ASSERT_TRUE(WaitUntil([&] { return HandedIn() == 10; }, Soon()));

  ScopedFd eleventh = Connect();
  EXPECT_TRUE(test::ExpectEof(eleventh.get(), Soon()).ok());
  const DistributorStats* stats = server_->distributor_stats();
  ASSERT_NE(stats, nullptr);
  EXPECT_TRUE(WaitUntil([&] { return stats->counters.rejected_global_limit.Get() == 1; }, Soon()));
  EXPECT_EQ(stats->counters.rejected_global_limit.Get(), 1u);
  EXPECT_EQ(stats->counters.accepted.Get(), 11u);
  EXPECT_EQ(HandedIn(), 10u);
  for (ScopedFd& fd : admitted) EXPECT_TRUE(EchoesBack(fd.get(), Random(100)));

  // Free one slot: once the loop has counted the close, a new connection is admitted.
  admitted.pop_back();
  ASSERT_TRUE(ClosedExactly(1, CloseReason::kPeerClosed));
  ScopedFd replacement = Connect();
  EXPECT_TRUE(EchoesBack(replacement.get(), Random(100)));
  EXPECT_EQ(stats->counters.rejected_global_limit.Get(), 1u);
  EXPECT_EQ(HandedIn(), 11u);
}

// DrainLoop(0, false): no new connection lands on loop 0 while it drains, while its existing
// connections carry on; after ResumeLoop(0) it takes its turn again.
TEST_P(ConnectionLifecycleTest, DrainedLoopGetsNoNewConnectionsUntilResumed) {
  constexpr int kLoops = 3;
  StartServer(WithLoops(kLoops));
  const LoopStats& loop0 = server_->loop(0).stats();
  const DistributorStats* stats = server_->distributor_stats();
  ASSERT_NE(stats, nullptr);
  // Round robin: the first connection goes to loop 0.
  ScopedFd on_loop0 = Connect();
  ASSERT_TRUE(EchoesBack(on_loop0.get(), Random(100)));
  ASSERT_EQ(loop0.conns_handed_in.Get(), 1u);

  ASSERT_TRUE(server_->DrainLoop(0, /*close_idle=*/false).ok());
  EXPECT_TRUE(server_->loop_draining(0));
  MultiClient client(test::LoopbackAddress(port_));
  for (int i = 0; i < 30; ++i) {
    const MultiClient::Id id = client.Connect().value();
    client.Send(id, "hello");
    client.Expect(id, 5);
  }
  absl::Status run = client.Run(Soon());
  ASSERT_TRUE(run.ok()) << run;
  ASSERT_TRUE(WaitUntil([&] { return HandedIn() == 31; }, Soon()));
  EXPECT_EQ(loop0.conns_handed_in.Get(), 1u);
  EXPECT_EQ(stats->handed[0]->Get(), 1u);
  EXPECT_EQ(stats->handed[1]->Get() + stats->handed[2]->Get(), 30u);
  // Draining without close_idle leaves the loop's connections alone.
  EXPECT_TRUE(EchoesBack(on_loop0.get(), Random(100)));
  EXPECT_EQ(loop0.closed_total(), 0u);

  // Resumed: among three eligible loops, round robin gives loop 0 one of the next three.
  ASSERT_TRUE(server_->ResumeLoop(0).ok());
  EXPECT_FALSE(server_->loop_draining(0));
  std::vector<ScopedFd> more;
  for (int i = 0; i < kLoops; ++i) {
    more.push_back(Connect());
    ASSERT_TRUE(EchoesBack(more.back().get(), Random(10)));
  }
  ASSERT_TRUE(WaitUntil([&] { return HandedIn() == 34; }, Soon()));
  EXPECT_EQ(loop0.conns_handed_in.Get(), 2u);
  EXPECT_EQ(stats->handed[0]->Get(), 2u);
}

// DrainLoop(i, true) also closes the loop's idle connections (as server_drain); with every
// loop draining, a new connection is refused and counted as having no loop.
TEST_P(ConnectionLifecycleTest, DrainWithCloseIdleClosesIdleConnections) {
  StartServer(WithLoops(2));
  ScopedFd first = Connect();   // round robin: loop 0
  ScopedFd second = Connect();  // loop 1
  ASSERT_TRUE(EchoesBack(first.get(), Random(10)));
  ASSERT_TRUE(EchoesBack(second.get(), Random(10)));

  ASSERT_TRUE(server_->DrainLoop(0, /*close_idle=*/true).ok());
  EXPECT_TRUE(test::ExpectEof(first.get(), Soon()).ok());
  first.reset();  // the server lingers after its FIN until ours arrives
  EXPECT_TRUE(ClosedExactly(1, CloseReason::kServerDrain));
  EXPECT_EQ(server_->loop(0).stats().closed[static_cast<int>(CloseReason::kServerDrain)].Get(), 1u);
  EXPECT_TRUE(EchoesBack(second.get(), Random(10)));

  ASSERT_TRUE(server_->DrainLoop(1, /*close_idle=*/false).ok());
  ScopedFd refused = Connect();
  EXPECT_TRUE(test::ExpectEof(refused.get(), Soon()).ok());
  const DistributorStats* stats = server_->distributor_stats();
  EXPECT_TRUE(WaitUntil([&] { return stats->counters.rejected_no_loop.Get() == 1; }, Soon()));
  EXPECT_EQ(stats->counters.rejected_no_loop.Get(), 1u);
  EXPECT_TRUE(EchoesBack(second.get(), Random(10)));
}

// A connection the distributor handed over just before Stop reaches its loop only once the
// loop drains. It is served like the loop's other connections: what the client had sent by
// then is answered, and the close is a FIN at that boundary, never a reset that would destroy
// the answer. The loop is stepped on this thread, so the hand-over lands after Quit for sure.
TEST_P(ConnectionLifecycleTest, ConnectionHandedInWhileDrainingIsAnsweredThenClosed) {
  ASSERT_TRUE(MakeOwnLoop());
  EventLoop& loop = *own_loop_;
  loop.BindToCurrentThread();

  // The talker's request is in the server's receive queue before the loop sees the connection.
  ScopedFd talker = Connect();
  ScopedFd talker_server = AcceptOwn();
  ScopedFd silent = Connect();
  ScopedFd silent_server = AcceptOwn();
  ASSERT_GE(talker_server.get(), 0);
  ASSERT_GE(silent_server.get(), 0);
  const std::string request = Random(3000);
  ASSERT_TRUE(test::WriteAll(talker.get(), request, Soon()).ok());
  ASSERT_TRUE(test::WaitReadable(talker_server.get(), Soon()).ok());

  loop.Quit(MonoTime::Now() + absl::Seconds(30));
  loop.Adopt(talker_server.release(), 0, SocketAddress{});
  loop.Adopt(silent_server.release(), 0, SocketAddress{});
  loop.Step(0);
  // io_uring sends with the next wait and learns of it in a later one; the readiness back ends
  // have written everything in this first step already.
  for (const Deadline until = Soon(); loop.stats().bytes_out.Get() < request.size() && !until.expired();) {
    loop.Step(10);
  }

  absl::StatusOr<std::string> answer = test::ReadExactly(talker.get(), request.size(), Soon());
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_TRUE(SameBytes(request, *answer));
  EXPECT_TRUE(test::ExpectEof(talker.get(), Soon()).ok());
  EXPECT_TRUE(test::ExpectEof(silent.get(), Soon()).ok());
  talker.reset();
  silent.reset();
  const Deadline deadline = Soon();
  while (loop.stats().conns_active.Get() > 0 && !deadline.expired()) loop.Step(10);

  const LoopStats& stats = loop.stats();
  EXPECT_EQ(stats.conns_active.Get(), 0);
  EXPECT_EQ(stats.conns_handed_in.Get(), 2u);
  EXPECT_EQ(stats.closed[static_cast<int>(CloseReason::kServerDrain)].Get(), 2u);
  EXPECT_EQ(stats.closed_total(), 2u);
  EXPECT_EQ(stats.bytes_in.Get(), request.size());
  EXPECT_EQ(stats.bytes_out.Get(), request.size());
}

// A request that reached the server's socket just before the drain began, but that the loop
// had not read yet (it was busy), is answered before the connection closes: the drain reads
// what has arrived, answers it, then sends its FIN.
TEST_P(ConnectionLifecycleTest, DrainAnswersWhatArrivedBeforeItBegan) {
  ASSERT_TRUE(MakeOwnLoop());
  EventLoop& loop = *own_loop_;
  ScopedFd client = Connect();
  ScopedFd server_side = AcceptOwn();
  ASSERT_GE(server_side.get(), 0);
  std::thread runner([&loop] { loop.Run(); });
  // Whatever fails below, the loop is told to stop and its thread joined.
  struct Joiner {
    EventLoop& loop;
    std::thread& thread;
    ~Joiner() {
      loop.Quit();
      if (thread.joinable()) thread.join();
    }
  } joiner{loop, runner};
  loop.Adopt(server_side.release(), 0, SocketAddress{});
  ASSERT_TRUE(EchoesBack(client.get(), Random(100)));  // adopted and serving

  // Keep the loop busy in a task while the request arrives and the drain is asked for.
  std::promise<void> busy;
  std::future<void> busy_f = busy.get_future();
  std::promise<void> release;
  std::shared_future<void> release_f = release.get_future().share();
  loop.Post([&busy, release_f] {
    busy.set_value();
    release_f.wait();
  });
  ASSERT_EQ(busy_f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const std::string request = Random(5000);
  ASSERT_TRUE(test::WriteAll(client.get(), request, Soon()).ok());
  loop.Quit(MonoTime::Now() + absl::Seconds(30));
  release.set_value();

  absl::StatusOr<std::string> answer = test::ReadExactly(client.get(), request.size(), Soon());
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_TRUE(SameBytes(request, *answer));
  EXPECT_TRUE(test::ExpectEof(client.get(), Soon()).ok());
  client.reset();
  runner.join();
  EXPECT_EQ(loop.stats().closed[static_cast<int>(CloseReason::kServerDrain)].Get(), 1u);
  EXPECT_EQ(loop.stats().bytes_out.Get(), 100u + request.size());
}

// What loop 0 says about its connections' buffers: how many hold some, and how many
// ConnectionIo objects it ever made. Asked on the loop's own thread.
struct IoHeld {
  size_t connections = 0;
  size_t holding = 0;
  size_t made = 0;
};
IoHeld AskIoHeld(Server& server) {
  std::promise<IoHeld> answer;
  EventLoop& loop = server.loop(0);
  loop.Post([&] {
    IoHeld held;
    loop.ForEachConnection([&](Connection& c) {
      ++held.connections;
      if (c.holds_io()) ++held.holding;
    });
    held.made = loop.connection_io().made();
    answer.set_value(held);
  });
  return answer.get_future().get();
}

// An idle connection (nothing partial read, nothing owed to the peer) holds no buffers: it gives
// them back to its loop, and the next connection to read or write takes them from there, so the
// loop makes as many as were busy at once, not one per connection.
TEST_P(ConnectionLifecycleTest, IdleConnectionsHoldNoBuffers) {
  StartServer(WithLoops(1));
  std::vector<ScopedFd> clients;
  for (int i = 0; i < 40; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(EchoesBack(clients.back().get(), Random(200))) << "connection " << i;
  }
  IoHeld held;
  EXPECT_TRUE(WaitUntil([&] {
    held = AskIoHeld(*server_);
    return held.connections == 40 && held.holding == 0;
  }, Soon())) << held.holding << " of " << held.connections << " connections hold buffers";
  EXPECT_LE(held.made, 4u);  // one request at a time: one set in use, whatever the count

  // A peer that does not read keeps its connection's output, and so its buffers, until it
  // does; then they go back.
  ScopedFd slow = Connect();
  const std::string big = Random(64 << 20);  // more than the socket buffers on both sides hold
  std::thread writer([&] { (void)test::WriteAll(slow.get(), big, Soon()); });
  EXPECT_TRUE(WaitUntil([&] { return AskIoHeld(*server_).holding == 1; }, Soon()));
  absl::StatusOr<std::string> back = test::ReadExactly(slow.get(), big.size(), Soon());
  writer.join();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back == big, true);
  EXPECT_TRUE(WaitUntil([&] { return AskIoHeld(*server_).holding == 0; }, Soon()));
  for (ScopedFd& fd : clients) EXPECT_TRUE(EchoesBack(fd.get(), Random(300)));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConnectionLifecycleTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         [](const ::testing::TestParamInfo<PollerBackend>& info) {
                           return std::string(PollerBackendName(info.param));
                         });

}  // namespace
}  // namespace percore
