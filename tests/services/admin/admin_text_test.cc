// The human-readable renderings percorectl prints.

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/admin/admin.pb.h"
#include "services/admin/admin_text.h"
#include "services/admin/text_table.h"

namespace percore {
namespace {

namespace v1 = admin::v1;

TEST(TextTableTest, AlignsColumns) {
  TextTable table({"name", "count"});
  table.AddRow({"a", "1"});
  table.AddRow({"longer", "12345"});
  EXPECT_EQ(table.Render(),
            "name    count\n"
            "a           1\n"
            "longer  12345\n");
  TextTable left({"k", "v"}, "ll");
  left.AddRow({"key", "x"});
  EXPECT_EQ(left.Render(), "k    v\nkey  x\n");
}

TEST(TextTableTest, HumanUnits) {
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(0)), "0ns");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(850)), "850ns");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(12'345)), "12.3us");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(4'500'000)), "4.50ms");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(1'200'000'000)), "1.20s");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(185'000'000'000)), "3m05s");
  EXPECT_EQ(HumanDuration(absl::Nanoseconds(7'380'000'000'000)), "2h03m");
  EXPECT_EQ(HumanDuration(-absl::Microseconds(4'500)), "-4.50ms");
  EXPECT_EQ(HumanBytes(512), "512B");
  EXPECT_EQ(HumanBytes(1536), "1.50KiB");
  EXPECT_EQ(HumanBytes(12.0 * 1024 * 1024), "12.0MiB");
  EXPECT_EQ(HumanCount(0), "0");
  EXPECT_EQ(HumanCount(0.5), "0.5");
  EXPECT_EQ(HumanCount(950), "950");
  EXPECT_EQ(HumanCount(12'345), "12.3k");
  EXPECT_EQ(HumanCount(4'560'000), "4.56M");
}

v1::Stats Snapshot(int64_t at_ns, uint64_t bytes_in, uint64_t requests) {
  v1::Stats s;
  s.set_taken_unix_ns(at_ns);
  s.mutable_server()->set_uptime_ns(at_ns);
  s.mutable_server()->set_build("percore test");
  s.mutable_server()->set_loop_count(1);
  s.mutable_server()->set_running(true);
  s.mutable_server()->set_serving(true);
  v1::LoopStats* l = s.add_loops();
  l->set_running(true);
  l->set_bytes_in(bytes_in);
  l->set_utilization(0.25);
  l->mutable_iteration_ns()->set_p99(2'000);
  s.mutable_distributor()->set_mode("distributor");
  s.mutable_distributor()->set_accepted(3);
  s.mutable_distributor()->add_handed(3);
  v1::ServiceStats* svc = s.add_services();
  svc->set_name("echo");
  svc->set_requests(requests);
  svc->add_per_loop()->set_requests(requests);
  return s;
}

TEST(AdminTextTest, StatsRatesSinceStartAndBetweenSnapshots) {
  const v1::Stats first = Snapshot(2'000'000'000, 4096, 100);
  std::string text = StatsText(first, nullptr);
  EXPECT_NE(text.find("rates since start"), std::string::npos) << text;
  EXPECT_NE(text.find("25.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("2.00KiB"), std::string::npos) << text;  // 4096 bytes over 2 s
  EXPECT_NE(text.find("accepted 3 (1.5/s)"), std::string::npos) << text;
  EXPECT_NE(text.find("handed [3]"), std::string::npos) << text;
  EXPECT_NE(text.find("echo"), std::string::npos) << text;
  EXPECT_NE(text.find("accepting"), std::string::npos) << text;

  const v1::Stats second = Snapshot(3'000'000'000, 4096 + 1024, 150);
  text = StatsText(second, &first);
  EXPECT_NE(text.find("rates over the last 1.0s"), std::string::npos) << text;
  EXPECT_NE(text.find("1.00KiB"), std::string::npos) << text;
  EXPECT_NE(text.find("  50  "), std::string::npos) << text;  // 50 requests in 1 s
}

// The cells of the row under the header line that holds `header`, split at runs of spaces.
std::vector<std::string> RowBelow(const std::string& text, const std::string& header) {
  const size_t at = text.find(header);
  if (at == std::string::npos) return {};
  const size_t begin = text.find('\n', at) + 1;
  return absl::StrSplit(text.substr(begin, text.find('\n', begin) - begin), ' ', absl::SkipEmpty());
}

TEST(AdminTextTest, StatsShowEachLoopsLoadAndPendingHandOffs) {
  v1::Stats s = Snapshot(2'000'000'000, 0, 0);
  s.mutable_loops(0)->set_load_permille(625);
  s.mutable_loops(0)->set_pending_handoffs(4);
  s.mutable_loops(0)->set_conns_active(9);
  std::string text = StatsText(s, nullptr);
  const std::vector<std::string> row = RowBelow(text, "load");
  ASSERT_GE(row.size(), 5u) << text;
  EXPECT_EQ(row[2], "62.5%") << text;  // loop, util, load, conns, pending
  EXPECT_EQ(row[3], "9") << text;
  EXPECT_EQ(row[4], "4") << text;
  EXPECT_EQ(text.find("least_loaded"), std::string::npos) << "no placements, no line: " << text;
  s.mutable_distributor()->set_placed_by_load(5);
  s.mutable_distributor()->set_placed_by_connections(2);
  text = StatsText(s, nullptr);
  EXPECT_NE(text.find("least_loaded by load=5 by connections=2"), std::string::npos) << text;
  EXPECT_EQ(text.find("rebalance:"), std::string::npos) << "no rebalancer, no line: " << text;
  v1::RebalanceStats* r = s.mutable_rebalance();
  r->set_rounds(40);
  r->set_imbalanced_rounds(3);
  r->set_unmovable_rounds(1);
  r->set_moved(5);
  r->set_move_failures(2);
  text = StatsText(s, nullptr);
  EXPECT_NE(text.find("rebalance: rounds 40  imbalanced 3  unmovable 1  moved 5  failed 2\n"), std::string::npos)
      << text;
}

TEST(AdminTextTest, StatsShowTheRingsOnIoUringOnly) {
  v1::Stats first = Snapshot(2'000'000'000, 4096, 100);
  EXPECT_EQ(StatsText(first, nullptr).find("sub/enter"), std::string::npos);

  first.mutable_server()->set_backend("io_uring");
  v1::LoopStats* l = first.mutable_loops(0);
  l->set_iterations(100);
  l->set_uring_enters(100);
  l->set_uring_submissions(150);
  l->set_uring_completions(250);
  l->set_uring_buffer_exhaustions(7);
  std::string text = StatsText(first, nullptr);
  EXPECT_NE(text.find("  io_uring  "), std::string::npos) << text;
  EXPECT_NE(text.find("sub/enter"), std::string::npos) << text;
  EXPECT_NE(text.find("cqe/iter"), std::string::npos) << text;
  // 100 enters over 2 s; 1.5 submissions per enter; 2.5 completions per iteration.
  EXPECT_EQ(RowBelow(text, "sub/enter"), (std::vector<std::string>{"0", "50", "1.50", "2.50", "7", "0", "0"}))
      << text;

  // Between snapshots: the ratios of what happened in between.
  v1::Stats second = first;
  second.set_taken_unix_ns(3'000'000'000);
  l = second.mutable_loops(0);
  l->set_iterations(200);
  l->set_uring_enters(110);
  l->set_uring_submissions(190);
  l->set_uring_completions(300);
  text = StatsText(second, &first);
  EXPECT_EQ(RowBelow(text, "sub/enter"), (std::vector<std::string>{"0", "10", "4.00", "0.50", "7", "0", "0"}))
      << text;
  // Nothing happened in the interval: no ratio.
  v1::Stats third = second;
  third.set_taken_unix_ns(4'000'000'000);
  text = StatsText(third, &second);
  EXPECT_EQ(RowBelow(text, "sub/enter"), (std::vector<std::string>{"0", "0", "-", "-", "7", "0", "0"})) << text;
}

TEST(AdminTextTest, ConfigShowsTheBackEndOfEachLoop) {
  v1::Config c;
  c.set_loops(2);
  c.set_backend("io_uring");
  c.set_requested_backend("auto");
  c.set_backend_reason("io_uring (auto: available)");
  for (int i = 0; i < 2; ++i) {
    v1::LoopBackend* lb = c.add_loop_backends();
    lb->set_loop(i);
    lb->set_backend("io_uring");
    lb->set_uring_mode("defer_taskrun");
    lb->set_uring_buffers(256);
  }
  c.mutable_uring()->set_entries(1024);
  c.mutable_uring()->set_buffers(256);
  c.mutable_uring()->set_buffer_size(16384);
  std::string text = ConfigText(c);
  EXPECT_NE(text.find("requested_backend         auto\n"), std::string::npos) << text;
  EXPECT_NE(text.find("backend_reason            io_uring (auto: available)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("loop 1 backend            io_uring (defer_taskrun, 256 buffers)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("uring_entries             1024\n"), std::string::npos) << text;
  EXPECT_NE(text.find("uring_buffer_size         16.0KiB\n"), std::string::npos) << text;

  c.set_backend("epoll");
  c.clear_uring();
  for (v1::LoopBackend& lb : *c.mutable_loop_backends()) {
    lb.set_backend("epoll");
    lb.clear_uring_mode();
    lb.clear_uring_buffers();
  }
  text = ConfigText(c);
  EXPECT_NE(text.find("loop 0 backend            epoll\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("uring_entries"), std::string::npos) << text;
}

TEST(AdminTextTest, ConnectionsListStalledLoops) {
  v1::ListConnectionsResponse reply;
  v1::ConnectionInfo* c = reply.add_connections();
  c->set_id(281474976710657);
  c->set_loop(1);
  c->set_service("echo");
  c->set_peer("127.0.0.1:5000");
  c->set_state("reading");
  c->set_recent_requests_per_sec(12500);
  c->set_recent_bytes_per_sec(3 << 20);
  reply.add_stalled_loops(0);
  const std::string text = ConnectionsText(reply);
  const std::vector<std::string> row = RowBelow(text, "req/s");
  ASSERT_EQ(row.size(), 12u) << text;
  EXPECT_EQ(row[10], HumanCount(12500)) << text;
  EXPECT_EQ(row[11], HumanBytes(3 << 20)) << text;
  EXPECT_NE(text.find("281474976710657     1  echo     127.0.0.1:5000  reading"), std::string::npos) << text;
  EXPECT_NE(text.find("1 connection\n"), std::string::npos) << text;
  EXPECT_NE(text.find("loop 0 did not answer in time (stalled)"), std::string::npos) << text;
}

TEST(AdminTextTest, StatsShowTlsEndpointsOnlyWhenThereAreAny) {
  v1::Stats first = Snapshot(2'000'000'000, 4096, 100);
  EXPECT_EQ(StatsText(first, nullptr).find("tls endpoint"), std::string::npos);
  v1::TlsEndpointStats* t = first.add_tls();
  t->set_service("http");
  t->set_address("127.0.0.1:8443");
  t->set_certificate_subject("/CN=localhost");
  t->set_certificate_not_after_unix_ns(int64_t{1'800'000'000} * 1'000'000'000);  // 2027-01-15
  t->set_reloads(2);
  v1::TlsLoopStats* total = t->mutable_total();
  total->set_handshakes(40);
  total->set_resumptions(10);
  total->set_tls13(30);
  total->set_tls12(10);
  total->set_handshake_failures(3);
  total->set_handshake_timeouts(1);
  total->mutable_handshake_ns()->set_p50(250'000);
  const std::string text = StatsText(first, nullptr);
  const std::vector<std::string> row = RowBelow(text, "tls endpoint");
  ASSERT_GE(row.size(), 13u) << text;
  EXPECT_EQ(row[0], "http");
  EXPECT_EQ(row[1], "127.0.0.1:8443");
  EXPECT_EQ(row[2], "40");   // handshakes
  EXPECT_EQ(row[3], "20");   // per second over the 2 s since start
  EXPECT_EQ(row[4], "10");   // resumed
  EXPECT_EQ(row[5], "30/10");
  EXPECT_EQ(row[6], "3");
  EXPECT_EQ(row[7], "1");
  EXPECT_EQ(row[11], "/CN=localhost");
  EXPECT_EQ(row[12], "2027-01-15");
}

TEST(AdminTextTest, ConnectionsShowTlsWhenAnyHasIt) {
  v1::ListConnectionsResponse reply;
  v1::ConnectionInfo* plain = reply.add_connections();
  plain->set_id(1);
  plain->set_service("echo");
  EXPECT_EQ(ConnectionsText(reply).find("tls"), std::string::npos);
  v1::ConnectionInfo* tls = reply.add_connections();
  tls->set_id(2);
  tls->set_service("http");
  tls->set_tls_version("TLSv1.3");
  tls->set_tls_alpn("http/1.1");
  tls->set_tls_resumed(true);
  const std::string text = ConnectionsText(reply);
  EXPECT_NE(text.find("TLSv1.3 http/1.1 resumed"), std::string::npos) << text;
  EXPECT_NE(text.find(" -\n"), std::string::npos) << text;  // the plaintext one
}

}  // namespace
}  // namespace percore
