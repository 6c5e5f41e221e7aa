// GetStats, WatchStats and GetPrometheus against a real server with known traffic.

#include <new>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "reactor/migration.h"
#include "tests/services/admin/admin_fixture.h"

namespace percore::testing {
namespace {

uint64_t SumLoops(const v1::Stats& s, uint64_t (v1::LoopStats::*field)() const) {
  uint64_t total = 0;
  for (const v1::LoopStats& l : s.loops()) total += (l.*field)();
  return total;
}

uint64_t BucketTotal(const v1::Histogram& h) {
  uint64_t total = 0;
  for (const v1::HistogramBucket& b : h.buckets()) total += b.count();
  return total;
}

// A migration shows in the figures of both loops, and in the connection list under the new id.
TEST_F(AdminTest, MigrationsAreCountedPerLoop) {
  StartAll();
  const test::Deadline deadline = test::Deadline::In(absl::Seconds(10));
  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(echo_port_, deadline);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), "ping", deadline).ok());
  ASSERT_TRUE(test::ReadExactly(fd->get(), 4, deadline).ok());
  v1::ListConnectionsRequest request;
  request.set_service("echo");
  v1::ListConnectionsResponse list;
  ASSERT_TRUE(stub_->ListConnections(Context().get(), request, &list).ok());
  ASSERT_EQ(list.connections_size(), 1);
  const uint64_t id = list.connections(0).id();
  const int from = list.connections(0).loop();
  const MigrationResult moved = server_->MigrateConnection(id, 1 - from);
  ASSERT_EQ(moved.status, MigrationStatus::kMoved) << moved.detail;
  EXPECT_EQ(server_->MigrateConnection(id, 1 - from).status, MigrationStatus::kUnknownConnection);

  const v1::Stats stats = GetStats();
  EXPECT_EQ(stats.loops(from).migrations_out(), 1u);
  EXPECT_EQ(stats.loops(1 - from).migrations_in(), 1u);
  EXPECT_EQ(stats.loops(from).migrations_refused(), 1u);
  EXPECT_EQ(stats.loops(from).conns_active(), 0);
  EXPECT_EQ(stats.loops(1 - from).conns_active(), 1);
  ASSERT_TRUE(stub_->ListConnections(Context().get(), request, &list).ok());
  ASSERT_EQ(list.connections_size(), 1);
  EXPECT_EQ(list.connections(0).id(), moved.new_id);
  EXPECT_EQ(list.connections(0).loop(), 1 - from);
  EXPECT_EQ(list.connections(0).bytes_in(), 4u) << "its figures moved with it";
}

TEST_F(AdminTest, GetStatsCountsExactlyTheTrafficSent) {
  StartAll();
  // 10 connections x 100 messages x 100 bytes, each reply awaited: 100,000 bytes each way.
  std::vector<int> fds;
  for (int c = 0; c < 10; ++c) fds.push_back(Connect(echo_port_));
  const std::string message(100, 'x');
  for (int m = 0; m < 100; ++m) {
    for (int fd : fds) ASSERT_NO_FATAL_FAILURE(Echo(fd, message));
  }
  const v1::Stats s = StatsWhen([](const v1::Stats& st) { return SumLoops(st, &v1::LoopStats::bytes_out) == 100'000; });

  EXPECT_EQ(SumLoops(s, &v1::LoopStats::bytes_in), 100'000u);
  EXPECT_EQ(SumLoops(s, &v1::LoopStats::bytes_out), 100'000u);
  ASSERT_EQ(s.loops_size(), 2);
  // Round robin over two loops: 5 and 5.
  EXPECT_EQ(s.loops(0).conns_handed_in(), 5u);
  EXPECT_EQ(s.loops(1).conns_handed_in(), 5u);
  EXPECT_EQ(s.loops(0).conns_active(), 5);
  EXPECT_EQ(s.loops(1).conns_active(), 5);
  // Buffer blocks circulate through each loop's pool: a connection holds at most an input and
  // an output block at a time, so 500 messages per loop need at most 10 blocks, and the pool
  // never keeps more idle blocks than it handed out.
  for (const v1::LoopStats& l : s.loops()) {
    EXPECT_GE(l.buffer_blocks_allocated(), 1u);
    EXPECT_LE(l.buffer_blocks_allocated(), 10u);
    EXPECT_LE(l.buffer_blocks_free(), l.buffer_blocks_allocated());
  }
  EXPECT_EQ(s.distributor().mode(), "distributor");
  EXPECT_EQ(s.distributor().accepted(), 10u);
  ASSERT_EQ(s.distributor().handed_size(), 2);
  EXPECT_EQ(s.distributor().handed(0), 5u);
  EXPECT_EQ(s.distributor().handed(1), 5u);
  EXPECT_EQ(s.distributor().rejected_global_limit() + s.distributor().rejected_loop_limit() +
                s.distributor().rejected_no_loop(),
            0u);
  EXPECT_EQ(s.distributor().accept_errors_size(), 0);

  const v1::ServerInfo& info = s.server();
  EXPECT_EQ(info.loop_count(), 2);
  // The back end the loops really run: auto resolved, never "auto" itself.
  EXPECT_EQ(info.backend(), PollerBackendName(server_->backend()));
  EXPECT_NE(info.backend(), "auto");
  EXPECT_EQ(info.balance_policy(), "round_robin");
  EXPECT_TRUE(info.running());
  EXPECT_TRUE(info.serving());
  EXPECT_GT(info.rss_bytes(), 0u);
  EXPECT_GE(info.open_fds(), 10);  // at least the server's ends of the 10 connections
  EXPECT_GE(info.uptime_ns(), 0);
  EXPECT_EQ(info.pid(), getpid());
  EXPECT_NE(info.build().find("percore"), std::string::npos);

  for (const v1::LoopStats& l : s.loops()) {
    SCOPED_TRACE(l.index());
    EXPECT_TRUE(l.running());
    EXPECT_FALSE(l.draining());
    EXPECT_GT(l.iterations(), 0u);
    EXPECT_GE(l.utilization(), 0.0);
    EXPECT_LE(l.utilization(), 1.0);
    EXPECT_GT(l.utilization_interval_ns(), 0);
    EXPECT_GT(l.read_calls(), 0u);
    EXPECT_GT(l.write_calls(), 0u);
    EXPECT_EQ(l.bytes_in(), 50'000u);
    // Every non-empty bucket is listed, so buckets add up to the count.
    EXPECT_GT(l.iteration_ns().count(), 0u);
    EXPECT_EQ(BucketTotal(l.iteration_ns()), l.iteration_ns().count());
    EXPECT_LE(l.iteration_ns().p50(), l.iteration_ns().p99());
    EXPECT_LE(l.iteration_ns().p99(), l.iteration_ns().max());
    for (int b = 1; b < l.iteration_ns().buckets_size(); ++b) {
      EXPECT_LT(l.iteration_ns().buckets(b - 1).upper_bound(), l.iteration_ns().buckets(b).upper_bound());
      EXPECT_GT(l.iteration_ns().buckets(b).count(), 0u);
    }
    // The stall is read after the histogram, and both only grow.
    EXPECT_GE(static_cast<uint64_t>(l.longest_stall_ns()), l.iteration_ns().max());
    EXPECT_GT(l.longest_stall_unix_ns(), 0);
    ASSERT_EQ(l.closed_size(), kCloseReasonCount);
    EXPECT_EQ(l.closed(0).reason(), "peer_closed");
    EXPECT_EQ(l.conns_closed(), 0u);
  }

  ASSERT_EQ(s.services_size(), 2);
  const v1::ServiceStats& echo = s.services(0);
  EXPECT_EQ(echo.name(), "echo");
  EXPECT_GE(echo.requests(), 1000u);  // one per read; a message may in principle arrive in parts
  EXPECT_EQ(echo.errors(), 0u);
  EXPECT_EQ(echo.latency_ns().count(), echo.requests());
  ASSERT_EQ(echo.per_loop_size(), 2);
  EXPECT_EQ(echo.per_loop(0).requests() + echo.per_loop(1).requests(), echo.requests());
  EXPECT_EQ(echo.per_loop(0).latency_ns().count() + echo.per_loop(1).latency_ns().count(), echo.latency_ns().count());
  EXPECT_LE(echo.latency_ns().p50(), echo.latency_ns().p999());
  EXPECT_EQ(s.services(1).name(), "blocker");
  EXPECT_EQ(s.services(1).requests(), 0u);

  // Closing every client: 10 closes by the peer, none active.
  fds_.clear();
  const v1::Stats after =
      StatsWhen([](const v1::Stats& st) { return SumLoops(st, &v1::LoopStats::conns_closed) == 10; });
  EXPECT_EQ(after.loops(0).closed(0).count() + after.loops(1).closed(0).count(), 10u);
  EXPECT_EQ(after.loops(0).conns_active() + after.loops(1).conns_active(), 0);
}

TEST_F(AdminTest, WatchStatsCountersNeverDecreaseAndCancelEndsTheStream) {
  StartAll();
  const int fd = Connect(echo_port_);
  grpc::ClientContext context;
  v1::WatchStatsRequest request;
  request.set_interval_ns(20'000'000);
  auto reader = stub_->WatchStats(&context, request);
  v1::Stats previous;
  for (int i = 0; i < 8; ++i) {
    ASSERT_NO_FATAL_FAILURE(Echo(fd, std::string(10 + i, 'w')));
    v1::Stats s;
    ASSERT_TRUE(reader->Read(&s));
    if (i > 0) {
      EXPECT_GE(s.taken_unix_ns(), previous.taken_unix_ns());
      EXPECT_GE(s.distributor().accepted(), previous.distributor().accepted());
      EXPECT_GE(s.services(0).requests(), previous.services(0).requests());
      for (int l = 0; l < 2; ++l) {
        EXPECT_GE(s.loops(l).iterations(), previous.loops(l).iterations());
        EXPECT_GE(s.loops(l).bytes_in(), previous.loops(l).bytes_in());
        EXPECT_GE(s.loops(l).bytes_out(), previous.loops(l).bytes_out());
        EXPECT_GE(s.loops(l).busy_ns(), previous.loops(l).busy_ns());
        EXPECT_GE(s.loops(l).wait_ns(), previous.loops(l).wait_ns());
        EXPECT_GE(s.loops(l).iteration_ns().count(), previous.loops(l).iteration_ns().count());
        // Each snapshot of a stream measures utilization over its own interval.
        EXPECT_GT(s.loops(l).utilization_interval_ns(), 0);
        EXPECT_LT(s.loops(l).utilization_interval_ns(), s.server().uptime_ns());
      }
    }
    previous = s;
  }
  context.TryCancel();
  v1::Stats ignored;
  while (reader->Read(&ignored)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(AdminTest, AdminShutdownEndsWatchStreams) {
  StartAll();
  grpc::ClientContext context;
  v1::WatchStatsRequest request;
  request.set_interval_ns(3'600'000'000'000);  // one snapshot, then a long wait
  auto reader = stub_->WatchStats(&context, request);
  v1::Stats s;
  ASSERT_TRUE(reader->Read(&s));
  admin_->Shutdown();
  EXPECT_FALSE(reader->Read(&s));
  EXPECT_FALSE(reader->Finish().ok());
}

// A posted task that throws is counted on its loop, in GetStats and in the Prometheus text,
// and the loop keeps serving.
TEST_F(AdminTest, ATaskThatThrowsIsCountedAndTheLoopServesOn) {
  StartAll();
  server_->loop(1).Post([] { throw std::bad_alloc(); });
  const v1::Stats s = StatsWhen([](const v1::Stats& st) { return st.loops(1).task_errors() == 1; });
  EXPECT_EQ(s.loops(0).task_errors(), 0u);
  EXPECT_EQ(s.loops(1).task_errors(), 1u);
  // Round robin: the second connection lands on loop 1, which still answers.
  const int first = Connect(echo_port_);
  const int second = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(first, "a"));
  ASSERT_NO_FATAL_FAILURE(Echo(second, "b"));
  v1::PrometheusText text;
  ASSERT_TRUE(stub_->GetPrometheus(Context().get(), v1::GetPrometheusRequest(), &text).ok());
  EXPECT_NE(text.text().find("percore_loop_task_errors_total{loop=\"1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.text().find("percore_loop_write_budget_yields_total{loop=\"0\"} 0\n"), std::string::npos);
}

uint64_t Metric(const std::string& text, const std::string& series) {
  const std::string prefix = series + " ";
  const size_t at = text.find("\n" + prefix);
  EXPECT_NE(at, std::string::npos) << series << " missing in\n" << text;
  if (at == std::string::npos) return 0;
  uint64_t value = 0;
  const size_t begin = at + 1 + prefix.size();
  EXPECT_TRUE(absl::SimpleAtoi(text.substr(begin, text.find('\n', begin) - begin), &value)) << series;
  return value;
}

// The io_uring families, percore_loop_uring_*_total.
constexpr const char* kUringCounters[] = {"enters", "submissions", "completions",
                                          "buffer_exhaustions", "multishot_rearms", "cq_overflows"};

// On io_uring, traffic shows in the loops' ring counters, in GetStats and in the Prometheus text.
TEST_F(AdminTest, UringCountersCountTheRingsWork) {
  if (!IoUringAvailable()) GTEST_SKIP() << "io_uring cannot run here";
  AdminSetup setup;
  setup.backend = PollerBackend::kIoUring;
  StartAll(setup);
  ASSERT_EQ(server_->backend(), PollerBackend::kIoUring);
  // Round robin: one connection on each loop.
  const int first = Connect(echo_port_);
  const int second = Connect(echo_port_);
  for (int m = 0; m < 20; ++m) {
    ASSERT_NO_FATAL_FAILURE(Echo(first, "uring one"));
    ASSERT_NO_FATAL_FAILURE(Echo(second, "uring two"));
  }
  const v1::Stats s = StatsWhen([](const v1::Stats& st) {
    for (const v1::LoopStats& l : st.loops()) {
      if (l.uring_enters() == 0 || l.uring_completions() == 0) return false;
    }
    return SumLoops(st, &v1::LoopStats::bytes_out) == 360;
  });
  EXPECT_EQ(s.server().backend(), "io_uring");
  ASSERT_EQ(s.loops_size(), 2);
  for (const v1::LoopStats& l : s.loops()) {
    SCOPED_TRACE(l.index());
    EXPECT_GT(l.uring_enters(), 0u);
    EXPECT_GT(l.uring_submissions(), 0u);
    EXPECT_GT(l.uring_completions(), 0u);
    // 20 small echoes fit in the default ring and queue.
    EXPECT_EQ(l.uring_buffer_exhaustions(), 0u);
    EXPECT_EQ(l.uring_cq_overflows(), 0u);
  }

  v1::PrometheusText text;
  ASSERT_TRUE(stub_->GetPrometheus(Context().get(), v1::GetPrometheusRequest(), &text).ok());
  EXPECT_NE(text.text().find("backend=\"io_uring\""), std::string::npos) << text.text();
  for (const char* counter : kUringCounters) {
    const std::string family = absl::StrCat("percore_loop_uring_", counter, "_total");
    EXPECT_NE(text.text().find("# TYPE " + family + " counter\n"), std::string::npos) << family;
    for (int loop = 0; loop < 2; ++loop) Metric(text.text(), absl::StrCat(family, "{loop=\"", loop, "\"}"));
  }
  for (int loop = 0; loop < 2; ++loop) {
    EXPECT_GT(Metric(text.text(), absl::StrCat("percore_loop_uring_enters_total{loop=\"", loop, "\"}")), 0u);
    EXPECT_GT(Metric(text.text(), absl::StrCat("percore_loop_uring_completions_total{loop=\"", loop, "\"}")), 0u);
  }
}

// On epoll the ring counters are there, and zero.
TEST_F(AdminTest, UringCountersAreZeroOnEpoll) {
  AdminSetup setup;
  setup.backend = PollerBackend::kEpoll;
  StartAll(setup);
  const int fd = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "epoll"));
  const v1::Stats s = StatsWhen([](const v1::Stats& st) { return SumLoops(st, &v1::LoopStats::bytes_out) == 5; });
  EXPECT_EQ(s.server().backend(), "epoll");
  EXPECT_EQ(SumLoops(s, &v1::LoopStats::bytes_out), 5u);
  for (auto field : {&v1::LoopStats::uring_enters, &v1::LoopStats::uring_submissions,
                     &v1::LoopStats::uring_completions, &v1::LoopStats::uring_buffer_exhaustions,
                     &v1::LoopStats::uring_multishot_rearms, &v1::LoopStats::uring_cq_overflows}) {
    EXPECT_EQ(SumLoops(s, field), 0u);
  }
  v1::PrometheusText text;
  ASSERT_TRUE(stub_->GetPrometheus(Context().get(), v1::GetPrometheusRequest(), &text).ok());
  EXPECT_NE(text.text().find("backend=\"epoll\""), std::string::npos) << text.text();
  for (const char* counter : kUringCounters) {
    for (int loop = 0; loop < 2; ++loop) {
      EXPECT_EQ(Metric(text.text(), absl::StrCat("percore_loop_uring_", counter, "_total{loop=\"", loop, "\"}")), 0u);
    }
  }
}

TEST_F(AdminTest, GetPrometheusServesTheTextExposition) {
  StartAll();
  const int fd = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "ping"));
  v1::PrometheusText text;
  ASSERT_TRUE(stub_->GetPrometheus(Context().get(), v1::GetPrometheusRequest(), &text).ok());
  EXPECT_EQ(text.text().rfind("# HELP percore_build_info ", 0), 0u);
  EXPECT_NE(text.text().find("percore_accepted_total 1\n"), std::string::npos);
  EXPECT_NE(text.text().find("percore_loop_received_bytes_total{loop=\"0\"}"), std::string::npos);
  EXPECT_NE(text.text().find("percore_service_requests_total{service=\"echo\",loop=\"1\"}"), std::string::npos);
}

}  // namespace
}  // namespace percore::testing
