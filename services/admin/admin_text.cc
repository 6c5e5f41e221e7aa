#include "services/admin/admin_text.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "services/admin/text_table.h"

namespace percore {

namespace v1 = admin::v1;

namespace {

// Per-second rates of counters between two snapshots, or since start.
class Rates {
 public:
  Rates(const v1::Stats& now, const v1::Stats* previous) : previous_(previous) {
    const int64_t ns = previous != nullptr ? now.taken_unix_ns() - previous->taken_unix_ns() : now.server().uptime_ns();
    seconds_ = ns > 0 ? static_cast<double>(ns) / 1e9 : 0;
  }
  // `get` reads a counter from a snapshot; `then` says whether `previous` has the item.
  template <typename Get>
  double Of(const v1::Stats& now, bool then, Get get) const {
    if (seconds_ == 0) return 0;
    const uint64_t a = get(now);
    const uint64_t b = previous_ != nullptr && then ? get(*previous_) : 0;
    return a >= b ? static_cast<double>(a - b) / seconds_ : 0;
  }
  bool since_start() const { return previous_ == nullptr; }
  double seconds() const { return seconds_; }

 private:
  const v1::Stats* previous_;
  double seconds_;
};

std::string Percent(double fraction) { return absl::StrFormat("%.1f%%", fraction * 100); }

// `part` per `whole` (two rates over the same interval), or "-" when there is no whole.
std::string Ratio(double part, double whole) { return whole > 0 ? absl::StrFormat("%.2f", part / whole) : "-"; }

}  // namespace

std::string StatsText(const v1::Stats& now, const v1::Stats* previous) {
  const Rates rates(now, previous);
  const v1::ServerInfo& s = now.server();
  std::string out = absl::StrCat(s.build(), "  pid ", s.pid(), "  up ",
                                 HumanDuration(absl::Nanoseconds(s.uptime_ns())), "  ", s.backend(), "  ",
                                 s.balance_policy(), "  ", s.loop_count(), " loops  rss ",
                                 HumanBytes(static_cast<double>(s.rss_bytes())), "  fds ", s.open_fds(), "  ",
                                 !s.running() ? "stopped" : s.serving() ? "serving" : "not serving", "\n");
  absl::StrAppend(&out, "rates ",
                  rates.since_start() ? "since start"
                                      : absl::StrFormat("over the last %.1fs", rates.seconds()),
                  "\n\n");

  TextTable loops({"loop", "util", "load", "conns", "pending", "handed", "closed", "conn/s", "iter/s", "events/s",
                   "in/s", "out/s", "p99 iter", "max stall", "state"},
                  "rrrrrrrrrrrrrrl");
  for (int i = 0; i < now.loops_size(); ++i) {
    const v1::LoopStats& l = now.loops(i);
    const bool then = previous != nullptr && i < previous->loops_size();
    auto rate = [&](uint64_t (v1::LoopStats::*field)() const) {
      return rates.Of(now, then, [i, field](const v1::Stats& st) { return (st.loops(i).*field)(); });
    };
    loops.AddRow({absl::StrCat(l.index()), Percent(l.utilization()), Percent(l.load_permille() / 1000.0),
                  absl::StrCat(l.conns_active()), absl::StrCat(l.pending_handoffs()), absl::StrCat(l.conns_handed_in()), absl::StrCat(l.conns_closed()),
                  HumanCount(rate(&v1::LoopStats::conns_handed_in)), HumanCount(rate(&v1::LoopStats::iterations)),
                  HumanCount(rate(&v1::LoopStats::events)), HumanBytes(rate(&v1::LoopStats::bytes_in)),
                  HumanBytes(rate(&v1::LoopStats::bytes_out)),
                  HumanDuration(absl::Nanoseconds(static_cast<int64_t>(l.iteration_ns().p99()))),
                  HumanDuration(absl::Nanoseconds(l.longest_stall_ns())),
                  !l.running() ? "stopped" : l.draining() ? "draining" : "accepting"});
  }
  absl::StrAppend(&out, loops.Render(), "\n");

  // The io_uring back end's figures, when the loops run it: submissions per io_uring_enter and
  // completions per iteration over the same interval as the rates.
  bool uring = s.backend() == "io_uring";
  for (const v1::LoopStats& l : now.loops()) uring |= l.uring_enters() > 0;
  if (uring) {
    TextTable table({"loop", "enters/s", "sub/enter", "cqe/iter", "buf exhausted", "rearms", "cq overflows"}, "r");
    for (int i = 0; i < now.loops_size(); ++i) {
      const v1::LoopStats& l = now.loops(i);
      const bool then = previous != nullptr && i < previous->loops_size();
      auto rate = [&](uint64_t (v1::LoopStats::*field)() const) {
        return rates.Of(now, then, [i, field](const v1::Stats& st) { return (st.loops(i).*field)(); });
      };
      const double enters = rate(&v1::LoopStats::uring_enters);
      table.AddRow({absl::StrCat(l.index()), HumanCount(enters), Ratio(rate(&v1::LoopStats::uring_submissions), enters),
                    Ratio(rate(&v1::LoopStats::uring_completions), rate(&v1::LoopStats::iterations)),
                    absl::StrCat(l.uring_buffer_exhaustions()), absl::StrCat(l.uring_multishot_rearms()),
                    absl::StrCat(l.uring_cq_overflows())});
    }
    absl::StrAppend(&out, table.Render(), "\n");
  }

  const v1::DistributorStats& d = now.distributor();
  std::vector<std::string> errors;
  for (const v1::AcceptErrorCount& e : d.accept_errors()) errors.push_back(absl::StrCat(e.name(), "=", e.count()));
  absl::StrAppend(&out, "accept (", d.mode(), "): accepted ", d.accepted(), " (",
                  HumanCount(rates.Of(now, previous != nullptr,
                                      [](const v1::Stats& st) { return st.distributor().accepted(); })),
                  "/s)  handed [", absl::StrJoin(d.handed(), " "), "]  rejected global_limit=",
                  d.rejected_global_limit(), " loop_limit=", d.rejected_loop_limit(), " no_loop=",
                  d.rejected_no_loop(), "  errors ", errors.empty() ? "none" : absl::StrJoin(errors, " "),
                  "  backoffs ", d.backoffs(),
                  d.placed_by_load() + d.placed_by_connections() == 0
                      ? ""
                      : absl::StrCat("  least_loaded by load=", d.placed_by_load(), " by connections=",
                                     d.placed_by_connections()),
                  "\n");
  if (now.has_rebalance()) {
    const v1::RebalanceStats& r = now.rebalance();
    absl::StrAppend(&out, "rebalance: rounds ", r.rounds(), "  imbalanced ", r.imbalanced_rounds(), "  unmovable ",
                    r.unmovable_rounds(), "  moved ", r.moved(), "  failed ", r.move_failures(), "\n");
  }
  absl::StrAppend(&out, "\n");

  TextTable services({"service", "requests", "req/s", "errors", "p50", "p99", "p99.9", "max", "per loop"});
  for (int k = 0; k < now.services_size(); ++k) {
    const v1::ServiceStats& svc = now.services(k);
    const bool then = previous != nullptr && k < previous->services_size();
    std::vector<std::string> per_loop;
    for (const v1::ServiceLoopStats& pl : svc.per_loop()) per_loop.push_back(absl::StrCat(pl.requests()));
    const v1::Histogram& h = svc.latency_ns();
    services.AddRow({svc.name(), absl::StrCat(svc.requests()),
                     HumanCount(rates.Of(now, then, [k](const v1::Stats& st) { return st.services(k).requests(); })),
                     absl::StrCat(svc.errors()), HumanDuration(absl::Nanoseconds(static_cast<int64_t>(h.p50()))),
                     HumanDuration(absl::Nanoseconds(static_cast<int64_t>(h.p99()))),
                     HumanDuration(absl::Nanoseconds(static_cast<int64_t>(h.p999()))),
                     HumanDuration(absl::Nanoseconds(static_cast<int64_t>(h.max()))), absl::StrJoin(per_loop, "/")});
  }
  absl::StrAppend(&out, services.Render());

  if (now.tls_size() > 0) {
    TextTable tls({"tls endpoint", "handshakes", "hs/s", "resumed", "1.3/1.2", "failed", "timeouts", "errors", "hs p50",
                   "hs p99", "certificate", "expires", "reloads"},
                  "lrrrrrrrrrll");
    for (int k = 0; k < now.tls_size(); ++k) {
      const v1::TlsEndpointStats& t = now.tls(k);
      const v1::TlsLoopStats& a = t.total();
      const bool then = previous != nullptr && k < previous->tls_size();
      tls.AddRow({absl::StrCat(t.service(), " ", t.address()), absl::StrCat(a.handshakes()),
                  HumanCount(rates.Of(now, then, [k](const v1::Stats& st) { return st.tls(k).total().handshakes(); })),
                  absl::StrCat(a.resumptions()), absl::StrCat(a.tls13(), "/", a.tls12()),
                  absl::StrCat(a.handshake_failures()), absl::StrCat(a.handshake_timeouts()), absl::StrCat(a.errors()),
                  HumanDuration(absl::Nanoseconds(static_cast<int64_t>(a.handshake_ns().p50()))),
                  HumanDuration(absl::Nanoseconds(static_cast<int64_t>(a.handshake_ns().p99()))),
                  t.certificate_subject(),
                  absl::FormatTime("%Y-%m-%d", absl::FromUnixNanos(t.certificate_not_after_unix_ns()), absl::UTCTimeZone()),
                  absl::StrCat(t.reloads())});
    }
    absl::StrAppend(&out, "\n", tls.Render());
  }
  return out;
}

std::string ConnectionsText(const v1::ListConnectionsResponse& reply) {
  bool any_tls = false;
  for (const v1::ConnectionInfo& c : reply.connections()) any_tls |= !c.tls_version().empty();
  std::vector<std::string> columns = {"id",  "loop", "service", "peer",     "state", "age",
                                      "idle", "in",   "out",     "requests", "req/s", "bytes/s"};
  if (any_tls) columns.push_back("tls");
  TextTable table(columns, "rrlll");
  for (const v1::ConnectionInfo& c : reply.connections()) {
    std::vector<std::string> row = {absl::StrCat(c.id()), absl::StrCat(c.loop()), c.service(), c.peer(), c.state(),
                                    HumanDuration(absl::Nanoseconds(c.age_ns())),
                                    HumanDuration(absl::Nanoseconds(c.idle_ns())), absl::StrCat(c.bytes_in()),
                                    absl::StrCat(c.bytes_out()), absl::StrCat(c.requests()),
                                    HumanCount(static_cast<double>(c.recent_requests_per_sec())),
                                    HumanBytes(static_cast<double>(c.recent_bytes_per_sec()))};
    if (any_tls) {
      std::string tls = c.tls_version().empty() ? "-" : c.tls_version();
      if (!c.tls_alpn().empty()) absl::StrAppend(&tls, " ", c.tls_alpn());
      if (c.tls_resumed()) absl::StrAppend(&tls, " resumed");
      if (c.tls_ktls()) absl::StrAppend(&tls, " ktls");
      row.push_back(tls);
    }
    table.AddRow(row);
  }
  std::string out = table.Render();
  absl::StrAppend(&out, reply.connections_size(), " connection", reply.connections_size() == 1 ? "" : "s", "\n");
  for (int loop : reply.stalled_loops()) {
    absl::StrAppend(&out, "loop ", loop, " did not answer in time (stalled): its connections are missing\n");
  }
  return out;
}

std::string ConfigText(const v1::Config& c) {
  TextTable table({"setting", "value"}, "ll");
  table.AddRow({"loops", absl::StrCat(c.loops())});
  table.AddRow({"backend", c.backend()});
  table.AddRow({"requested_backend", c.requested_backend()});
  table.AddRow({"backend_reason", c.backend_reason()});
  for (const v1::LoopBackend& lb : c.loop_backends()) {
    table.AddRow({absl::StrCat("loop ", lb.loop(), " backend"),
                  lb.uring_mode().empty()
                      ? lb.backend()
                      : absl::StrCat(lb.backend(), " (", lb.uring_mode(), ", ", lb.uring_buffers(), " buffers)")});
  }
  if (c.has_uring()) {
    table.AddRow({"uring_entries", absl::StrCat(c.uring().entries())});
    table.AddRow({"uring_buffers", absl::StrCat(c.uring().buffers())});
    table.AddRow({"uring_buffer_size", HumanBytes(static_cast<double>(c.uring().buffer_size()))});
  }
  table.AddRow({"balance_policy", c.balance_policy()});
  table.AddRow({"initial_balance_policy", c.initial_balance_policy()});
  const v1::RebalanceConfig& rb = c.rebalance();
  table.AddRow({"rebalance", rb.mode() == "load" ? absl::StrCat("load every ", HumanDuration(absl::Nanoseconds(rb.interval_ns())),
                                                               ", threshold ", rb.threshold(), ", min load ",
                                                               rb.min_load(), ", at most ", rb.max_moves(), " moves")
                                                 : rb.mode()});
  table.AddRow({"pin", c.pin() ? "true" : "false"});
  table.AddRow({"max_connections", absl::StrCat(c.max_connections())});
  table.AddRow({"max_connections_per_loop", absl::StrCat(c.max_connections_per_loop())});
  const v1::ConnectionConfig& conn = c.connection();
  table.AddRow({"high_water", HumanBytes(static_cast<double>(conn.high_water()))});
  table.AddRow({"low_water", HumanBytes(static_cast<double>(conn.low_water()))});
  table.AddRow({"output_cap", HumanBytes(static_cast<double>(conn.output_cap()))});
  table.AddRow({"read_budget", HumanBytes(static_cast<double>(conn.read_budget()))});
  table.AddRow({"idle_timeout", HumanDuration(absl::Nanoseconds(conn.idle_timeout_ns()))});
  table.AddRow({"write_timeout", HumanDuration(absl::Nanoseconds(conn.write_timeout_ns()))});
  table.AddRow({"close_linger", HumanDuration(absl::Nanoseconds(conn.close_linger_ns()))});
  table.AddRow({"tls_handshake_timeout", HumanDuration(absl::Nanoseconds(conn.tls_handshake_timeout_ns()))});
  table.AddRow({"services", absl::StrJoin(c.services(), ",")});
  for (const v1::Endpoint& e : c.endpoints()) {
    table.AddRow({absl::StrCat("endpoint ", e.service(), e.tls() ? "+tls" : ""),
                  absl::StrCat(e.bound(), " (asked ", e.requested(), ")")});
  }
  table.AddRow({"admin_readonly", c.admin_readonly() ? "true" : "false"});
  table.AddRow({"draining_loops", c.draining_loops().empty() ? "none" : absl::StrJoin(c.draining_loops(), ",")});
  for (const v1::Flag& f : c.flags()) table.AddRow({absl::StrCat("--", f.name()), f.value()});
  return table.Render();
}

}  // namespace percore
