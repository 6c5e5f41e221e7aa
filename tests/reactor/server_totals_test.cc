// reactor/server_totals.*: SumLoopStats over hand-filled LoopStats, and Server::Totals of a real
// server running the echo service on three loops, checked against the traffic the clients made
// and against the per-loop figures it sums.

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "core/counter.h"
#include "core/histogram.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/loop_stats.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "reactor/server_totals.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;
using test::ScopedFd;
using test::WaitUntil;

Deadline Soon() { return Deadline::In(absl::Seconds(10)); }

// Each counter of ServerTotals with the LoopStats counter of the same name it sums.
struct CounterField {
  const char* name;
  uint64_t ServerTotals::*total;
  Counter LoopStats::*loop;
};
#define PERCORE_COUNTER_FIELD(f) CounterField{#f, &ServerTotals::f, &LoopStats::f}
const CounterField kCounterFields[] = {
    PERCORE_COUNTER_FIELD(iterations),
    PERCORE_COUNTER_FIELD(poll_calls),
    PERCORE_COUNTER_FIELD(events),
    PERCORE_COUNTER_FIELD(wakeups),
    PERCORE_COUNTER_FIELD(tasks_run),
    PERCORE_COUNTER_FIELD(timers_fired),
    PERCORE_COUNTER_FIELD(memory_trims),
    PERCORE_COUNTER_FIELD(memory_trim_ns),
    PERCORE_COUNTER_FIELD(task_errors),
    PERCORE_COUNTER_FIELD(busy_ns),
    PERCORE_COUNTER_FIELD(wait_ns),
    PERCORE_COUNTER_FIELD(conns_handed_in),
    PERCORE_COUNTER_FIELD(bytes_in),
    PERCORE_COUNTER_FIELD(bytes_out),
    PERCORE_COUNTER_FIELD(read_calls),
    PERCORE_COUNTER_FIELD(write_calls),
    PERCORE_COUNTER_FIELD(read_eagain),
    PERCORE_COUNTER_FIELD(write_eagain),
    PERCORE_COUNTER_FIELD(partial_writes),
    PERCORE_COUNTER_FIELD(write_budget_yields),
    PERCORE_COUNTER_FIELD(backpressure_pauses),
    PERCORE_COUNTER_FIELD(uring_enters),
    PERCORE_COUNTER_FIELD(uring_submissions),
    PERCORE_COUNTER_FIELD(uring_completions),
    PERCORE_COUNTER_FIELD(uring_buffer_exhaustions),
    PERCORE_COUNTER_FIELD(uring_multishot_rearms),
    PERCORE_COUNTER_FIELD(uring_cq_overflows),
};
#undef PERCORE_COUNTER_FIELD

TEST(SumLoopStatsTest, NoLoopsSumToZero) {
  const ServerTotals t = SumLoopStats({});
  EXPECT_EQ(t.loops, 0);
  for (const CounterField& f : kCounterFields) EXPECT_EQ(t.*f.total, 0u) << f.name;
  EXPECT_EQ(t.conns_active, 0);
  EXPECT_EQ(t.closed_total(), 0u);
  EXPECT_TRUE(t.services.empty());
}

TEST(SumLoopStatsTest, AddsEveryCounterAndMergesEachServiceOverLoops) {
  LoopStats a;
  LoopStats b;
  // Distinct values per field and loop, so that a field summed from the wrong counter shows.
  uint64_t v = 1;
  for (const CounterField& f : kCounterFields) {
    (a.*f.loop).Add(v);
    (b.*f.loop).Add(1000 * v);
    ++v;
  }
  a.conns_active.Set(4);
  b.conns_active.Set(7);
  a.closed[static_cast<int>(CloseReason::kPeerClosed)].Add(3);
  b.closed[static_cast<int>(CloseReason::kPeerClosed)].Add(2);
  b.closed[static_cast<int>(CloseReason::kIdleTimeout)].Add(5);
  for (LoopStats* s : {&a, &b}) {
    for (int i = 0; i < 2; ++i) s->services.push_back(std::make_unique<ServiceLoopStats>());
  }
  a.services[0]->requests.Add(10);
  a.services[0]->errors.Add(1);
  a.services[0]->latency_ns.Record(100);
  a.services[0]->latency_ns.Record(300);
  b.services[0]->requests.Add(20);
  b.services[0]->latency_ns.Record(5000);
  b.services[1]->requests.Add(6);
  b.services[1]->errors.Add(6);

  const LoopStats* loops[] = {&a, &b};
  const ServerTotals t = SumLoopStats(loops);
  EXPECT_EQ(t.loops, 2);
  v = 1;
  for (const CounterField& f : kCounterFields) {
    EXPECT_EQ(t.*f.total, 1001 * v) << f.name;
    ++v;
  }
  EXPECT_EQ(t.conns_active, 11);
  EXPECT_EQ(t.closed_by(CloseReason::kPeerClosed), 5u);
  EXPECT_EQ(t.closed_by(CloseReason::kIdleTimeout), 5u);
  EXPECT_EQ(t.closed_by(CloseReason::kPeerReset), 0u);
  EXPECT_EQ(t.closed_total(), 10u);

  ASSERT_EQ(t.services.size(), 2u);
  EXPECT_EQ(t.services[0].requests, 30u);
  EXPECT_EQ(t.services[0].errors, 1u);
  const HistogramSnapshot& latency = t.services[0].latency_ns;
  EXPECT_EQ(latency.count, 3u);
  EXPECT_EQ(latency.sum, 5400u);
  EXPECT_EQ(latency.max, 5000u);
  EXPECT_EQ(latency.counts[Histogram::BucketIndex(100)], 1u);
  EXPECT_EQ(latency.counts[Histogram::BucketIndex(300)], 1u);
  EXPECT_EQ(latency.counts[Histogram::BucketIndex(5000)], 1u);
  EXPECT_EQ(t.services[1].requests, 6u);
  EXPECT_EQ(t.services[1].errors, 6u);
  EXPECT_EQ(t.services[1].latency_ns.count, 0u);
}

TEST(ServerTotalsTest, ZeroBeforeStart) {
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  ASSERT_TRUE(server.AddService(NewEchoService()).ok());
  const ServerTotals t = server.Totals();
  EXPECT_EQ(t.loops, 0);
  EXPECT_EQ(t.conns_handed_in, 0u);
  EXPECT_TRUE(t.services.empty());
}

// Nine clients over three loops (round robin: three each), each echoing four 25-byte messages
// one at a time: 36 requests, since the echo service counts each read as one and every
// message arrives in one read. Then four clients close, two reset, and Stop drains the rest.
class ServerTotalsEchoTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  static constexpr int kLoops = 3;
  static constexpr int kClients = 9;
  static constexpr int kMessages = 4;
  static constexpr size_t kMessageSize = 25;
  static constexpr uint64_t kRequests = kClients * kMessages;   // 36
  static constexpr uint64_t kBytes = kRequests * kMessageSize;  // 900 each way
  static constexpr int kClosedByClient = 4;                     // with a FIN
  static constexpr int kResetByClient = 2;                      // with an RST
  static constexpr int kLeftOpen = kClients - kClosedByClient - kResetByClient;  // for Stop to drain

  void SetUp() override {
    ServerOptions options;
    options.loops = kLoops;
    options.backend = GetParam();
    options.balance = BalancePolicyKind::kRoundRobin;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(NewEchoService()).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("echo", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  // The per-loop figures added up here, as the oracle Totals is compared with.
  uint64_t LoopSum(Counter LoopStats::*counter) const {
    uint64_t total = 0;
    for (int i = 0; i < server_->loop_count(); ++i) total += (server_->loop(i).stats().*counter).Get();
    return total;
  }
  uint64_t LoopSumClosed(CloseReason reason) const {
    uint64_t total = 0;
    for (int i = 0; i < server_->loop_count(); ++i) {
      total += server_->loop(i).stats().closed[static_cast<int>(reason)].Get();
    }
    return total;
  }
  int64_t LoopSumActive() const {
    int64_t total = 0;
    for (int i = 0; i < server_->loop_count(); ++i) total += server_->loop(i).stats().conns_active.Get();
    return total;
  }
  uint64_t LoopSumRequests() const {
    uint64_t total = 0;
    for (int i = 0; i < server_->loop_count(); ++i) total += server_->loop(i).stats().services[0]->requests.Get();
    return total;
  }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_P(ServerTotalsEchoTest, TotalsAddUpTheClientsTrafficAndTheLoopsFigures) {
  std::vector<ScopedFd> clients;
  for (int c = 0; c < kClients; ++c) {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    ASSERT_TRUE(fd.ok()) << fd.status();
    clients.push_back(std::move(*fd));
  }
  for (int m = 0; m < kMessages; ++m) {
    for (int c = 0; c < kClients; ++c) {
      const std::string message(kMessageSize, static_cast<char>('a' + c));
      ASSERT_TRUE(test::WriteAll(clients[c].get(), message, Soon()).ok());
      absl::StatusOr<std::string> echo = test::ReadExactly(clients[c].get(), message.size(), Soon());
      ASSERT_TRUE(echo.ok()) << echo.status();
      ASSERT_EQ(*echo, message);
    }
  }
  // A loop counts bytes written just after the write: the last echo may arrive first.
  ASSERT_TRUE(WaitUntil([&] { return server_->Totals().bytes_out == kBytes; }, Soon()))
      << "bytes out " << server_->Totals().bytes_out;

  ServerTotals t = server_->Totals();
  EXPECT_EQ(t.loops, kLoops);
  EXPECT_EQ(t.conns_handed_in, static_cast<uint64_t>(kClients));
  EXPECT_EQ(t.conns_active, kClients);
  EXPECT_EQ(t.closed_total(), 0u);
  EXPECT_EQ(t.bytes_in, kBytes);
  EXPECT_EQ(t.bytes_out, kBytes);
  ASSERT_EQ(t.services.size(), 1u);
  EXPECT_EQ(t.services[0].requests, kRequests);
  EXPECT_EQ(t.services[0].errors, 0u);
  EXPECT_EQ(t.services[0].latency_ns.count, kRequests);
  for (int i = 0; i < kLoops; ++i) {
    EXPECT_EQ(server_->loop(i).stats().conns_handed_in.Get(), static_cast<uint64_t>(kClients / kLoops))
        << "loop " << i;
  }
  // While the clients are quiet these figures hold still, so they match the loops' exactly.
  EXPECT_EQ(t.conns_handed_in, LoopSum(&LoopStats::conns_handed_in));
  EXPECT_EQ(t.conns_active, LoopSumActive());
  EXPECT_EQ(t.bytes_in, LoopSum(&LoopStats::bytes_in));
  EXPECT_EQ(t.bytes_out, LoopSum(&LoopStats::bytes_out));
  EXPECT_EQ(t.services[0].requests, LoopSumRequests());

  for (int c = 0; c < kClosedByClient + kResetByClient; ++c) {
    if (c >= kClosedByClient) {
      ASSERT_TRUE(test::ResetOnClose(clients[c].get()).ok());
    }
    clients[c].reset();
  }
  ASSERT_TRUE(WaitUntil(
      [&] { return server_->Totals().closed_total() == static_cast<uint64_t>(kClosedByClient + kResetByClient); },
      Soon()))
      << "closed " << server_->Totals().closed_total();
  t = server_->Totals();
  EXPECT_EQ(t.closed_by(CloseReason::kPeerClosed), static_cast<uint64_t>(kClosedByClient));
  EXPECT_EQ(t.closed_by(CloseReason::kPeerReset), static_cast<uint64_t>(kResetByClient));
  EXPECT_EQ(t.conns_active, kLeftOpen);
  EXPECT_EQ(t.conns_handed_in, static_cast<uint64_t>(kClients));

  // Stop sends each remaining client a FIN and lingers for theirs: answer it beside Stop.
  std::thread stopper([this] { server_->Stop(); });
  for (int c = kClosedByClient + kResetByClient; c < kClients; ++c) {
    EXPECT_TRUE(test::ExpectEof(clients[c].get(), Soon()).ok()) << "client " << c;
    clients[c].reset();
  }
  stopper.join();

  // The loops' threads are joined: every figure is final, including the ones that move with
  // each iteration, and each must be exactly the sum of its loops'.
  t = server_->Totals();
  EXPECT_EQ(t.closed_by(CloseReason::kPeerClosed), static_cast<uint64_t>(kClosedByClient));
  EXPECT_EQ(t.closed_by(CloseReason::kPeerReset), static_cast<uint64_t>(kResetByClient));
  EXPECT_EQ(t.closed_by(CloseReason::kServerDrain), static_cast<uint64_t>(kLeftOpen));
  EXPECT_EQ(t.closed_total(), static_cast<uint64_t>(kClients));
  EXPECT_EQ(t.conns_active, 0);
  EXPECT_EQ(t.bytes_in, kBytes);
  EXPECT_EQ(t.bytes_out, kBytes);
  EXPECT_GT(t.iterations, 0u);
  EXPECT_GT(t.read_calls, 0u);
  EXPECT_GT(t.write_calls, 0u);
  if (server_->backend() == PollerBackend::kIoUring) {
    EXPECT_GT(t.uring_completions, 0u);
  } else {
    EXPECT_EQ(t.uring_completions, 0u);
  }

  for (const CounterField& f : kCounterFields) EXPECT_EQ(t.*f.total, LoopSum(f.loop)) << f.name;
  for (int r = 0; r < kCloseReasonCount; ++r) {
    const CloseReason reason = static_cast<CloseReason>(r);
    EXPECT_EQ(t.closed_by(reason), LoopSumClosed(reason)) << CloseReasonName(reason);
  }
  EXPECT_EQ(t.conns_active, LoopSumActive());
  HistogramSnapshot latency;
  for (int i = 0; i < kLoops; ++i) latency.Merge(server_->loop(i).stats().services[0]->latency_ns.Snapshot());
  EXPECT_EQ(t.services[0].requests, LoopSumRequests());
  EXPECT_TRUE(t.services[0].latency_ns == latency);
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerTotalsEchoTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         [](const ::testing::TestParamInfo<PollerBackend>& info) {
                           return std::string(PollerBackendName(info.param));
                         });

}  // namespace
}  // namespace percore
