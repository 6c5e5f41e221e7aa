#include "services/admin/stats_collector.h"

#include <unistd.h>

#include <string>

#include "core/clock.h"
#include "reactor/close_reason.h"
#include "reactor/loop_stats.h"
#include "reactor/server_totals.h"
#include "reactor/tls_endpoint.h"
#include "services/admin/accept_totals.h"
#include "services/admin/process_figures.h"

namespace percore {

namespace v1 = admin::v1;

void FillHistogram(const HistogramSnapshot& h, v1::Histogram* out) {
  out->set_count(h.count);
  out->set_sum(h.sum);
  out->set_max(h.max);
  out->set_mean(h.Mean());
  out->set_p50(h.Percentile(50));
  out->set_p90(h.Percentile(90));
  out->set_p99(h.Percentile(99));
  out->set_p999(h.Percentile(99.9));
  for (int i = 0; i < kHistogramBuckets; ++i) {
    if (h.counts[i] == 0) continue;
    v1::HistogramBucket* b = out->add_buckets();
    b->set_upper_bound(Histogram::BucketUpperBound(i));
    b->set_count(h.counts[i]);
  }
}

namespace {

void FillTls(const TlsTotals& t, int loop, v1::TlsLoopStats* out) {
  out->set_loop(loop);
  out->set_handshakes(t.handshakes);
  out->set_resumptions(t.resumptions);
  out->set_tls13(t.tls13);
  out->set_tls12(t.tls12);
  out->set_handshake_failures(t.handshake_failures);
  out->set_handshake_timeouts(t.handshake_timeouts);
  out->set_errors(t.errors);
  out->set_ktls(t.ktls);
  FillHistogram(t.handshake_ns, out->mutable_handshake_ns());
}

}  // namespace

StatsCollector::StatsCollector(Server& server, absl::Time start)
    : server_(server),
      start_unix_ns_(absl::ToUnixNanos(start)),
      start_mono_ns_(MonotonicNanos() - (WallNanos() - start_unix_ns_)) {}

std::vector<LoopTimeSample> StatsCollector::Sample() {
  std::vector<LoopTimeSample> samples;
  const int64_t now = MonotonicNanos();
  for (int i = 0; i < server_.loop_count(); ++i) {
    const LoopStats& s = server_.loop(i).stats();
    samples.push_back({s.busy_ns.Get(), s.wait_ns.Get(), now});
  }
  return samples;
}

void StatsCollector::Collect(v1::Stats* out) {
  std::vector<LoopTimeSample> now = Sample();
  std::vector<LoopTimeSample> base;
  {
    std::lock_guard<std::mutex> lock(mu_);
    base = baseline_;
    if (base.size() != now.size() || now.empty() || now[0].taken_ns - base[0].taken_ns >= kMinBaselineAge) {
      baseline_ = now;
    }
  }
  Fill(base, now, out);
}

void StatsCollector::Collect(std::vector<LoopTimeSample>* baseline, v1::Stats* out) {
  std::vector<LoopTimeSample> now = Sample();
  Fill(*baseline, now, out);
  *baseline = std::move(now);
}

void StatsCollector::Fill(const std::vector<LoopTimeSample>& base, const std::vector<LoopTimeSample>& now,
                          v1::Stats* out) {
  const int64_t wall = WallNanos();
  out->set_taken_unix_ns(wall);

  v1::ServerInfo* info = out->mutable_server();
  info->set_uptime_ns(wall - start_unix_ns_);
  info->set_start_unix_ns(start_unix_ns_);
  info->set_build(BuildDescription());
  info->set_backend(std::string(PollerBackendName(server_.backend())));
  info->set_balance_policy(std::string(BalancePolicyName(server_.balance_policy())));
  info->set_loop_count(server_.loop_count());
  info->set_rss_bytes(ResidentMemoryBytes());
  info->set_open_fds(OpenFileDescriptors());
  info->set_running(server_.running());
  info->set_serving(true);
  info->set_pid(static_cast<int32_t>(getpid()));

  for (int i = 0; i < server_.loop_count(); ++i) {
    EventLoop& loop = server_.loop(i);
    const LoopStats& s = loop.stats();
    v1::LoopStats* l = out->add_loops();
    l->set_index(i);
    l->set_running(loop.running());
    l->set_draining(server_.loop_draining(i));
    l->set_iterations(s.iterations.Get());
    l->set_poll_calls(s.poll_calls.Get());
    l->set_events(s.events.Get());
    l->set_wakeups(s.wakeups.Get());
    l->set_tasks_run(s.tasks_run.Get());
    l->set_timers_fired(s.timers_fired.Get());
    l->set_busy_ns(s.busy_ns.Get());
    l->set_wait_ns(s.wait_ns.Get());

    const LoopTimeSample from = base.size() == now.size() ? base[i] : LoopTimeSample{0, 0, start_mono_ns_};
    const uint64_t busy = now[i].busy_ns - from.busy_ns;
    const uint64_t wait = now[i].wait_ns - from.wait_ns;
    l->set_utilization(busy + wait == 0 ? 0.0 : static_cast<double>(busy) / static_cast<double>(busy + wait));
    l->set_utilization_interval_ns(now[i].taken_ns - from.taken_ns);

    FillHistogram(s.iteration_ns.Snapshot(), l->mutable_iteration_ns());
    FillHistogram(s.handler_ns.Snapshot(), l->mutable_handler_ns());
    l->set_longest_stall_ns(s.longest_stall_ns.Get());
    l->set_longest_stall_unix_ns(s.longest_stall_wall_ns.Get());

    l->set_conns_handed_in(s.conns_handed_in.Get());
    l->set_conns_active(s.conns_active.Get());
    uint64_t closed_total = 0;
    for (int r = 0; r < kCloseReasonCount; ++r) {
      v1::CloseCount* c = l->add_closed();
      c->set_reason(std::string(CloseReasonName(static_cast<CloseReason>(r))));
      c->set_count(s.closed[r].Get());
      closed_total += c->count();
    }
    l->set_conns_closed(closed_total);

    l->set_bytes_in(s.bytes_in.Get());
    l->set_bytes_out(s.bytes_out.Get());
    l->set_read_calls(s.read_calls.Get());
    l->set_write_calls(s.write_calls.Get());
    l->set_read_eagain(s.read_eagain.Get());
    l->set_write_eagain(s.write_eagain.Get());
    l->set_partial_writes(s.partial_writes.Get());
    l->set_backpressure_pauses(s.backpressure_pauses.Get());
    l->set_buffer_blocks_free(static_cast<uint64_t>(s.buffer_blocks_free.Get()));
    l->set_buffer_blocks_allocated(static_cast<uint64_t>(s.buffer_blocks_allocated.Get()));
    l->set_connection_buffers_free(static_cast<uint64_t>(s.connection_buffers_free.Get()));
    l->set_write_budget_yields(s.write_budget_yields.Get());
    l->set_task_errors(s.task_errors.Get());
    l->set_memory_trims(s.memory_trims.Get());
    l->set_memory_trim_ns(s.memory_trim_ns.Get());
    l->set_uring_enters(s.uring_enters.Get());
    l->set_uring_submissions(s.uring_submissions.Get());
    l->set_uring_completions(s.uring_completions.Get());
    l->set_uring_buffer_exhaustions(s.uring_buffer_exhaustions.Get());
    l->set_uring_multishot_rearms(s.uring_multishot_rearms.Get());
    l->set_uring_cq_overflows(s.uring_cq_overflows.Get());
    l->set_load_permille(static_cast<uint32_t>(s.load_permille.Get()));
    l->set_cpu_ns(s.cpu_ns.Get());
    l->set_migrations_in(s.migrations_in.Get());
    l->set_migrations_out(s.migrations_out.Get());
    l->set_migrations_refused(s.migrations_refused.Get());
  }

  const AcceptTotals totals = SumAcceptCounters(server_);
  for (int i = 0; i < out->loops_size() && i < static_cast<int>(totals.pending.size()); ++i) {
    out->mutable_loops(i)->set_pending_handoffs(totals.pending[i]);
  }
  v1::DistributorStats* d = out->mutable_distributor();
  d->set_mode(totals.reuseport ? "reuseport" : "distributor");
  d->set_accepted(totals.accepted);
  for (uint64_t h : totals.handed) d->add_handed(h);
  d->set_rejected_global_limit(totals.rejected_global_limit);
  d->set_rejected_loop_limit(totals.rejected_loop_limit);
  d->set_rejected_no_loop(totals.rejected_no_loop);
  for (size_t e = 0; e < totals.accept_errors.size(); ++e) {
    if (totals.accept_errors[e] == 0) continue;
    v1::AcceptErrorCount* err = d->add_accept_errors();
    err->set_errno_value(static_cast<int32_t>(e));
    err->set_name(ErrnoName(static_cast<int>(e)));
    err->set_count(totals.accept_errors[e]);
  }
  d->set_backoffs(totals.backoffs);
  d->set_wakeups(totals.wakeups);
  d->set_placed_by_load(totals.placed_by_load);
  d->set_placed_by_connections(totals.placed_by_connections);
  if (const RebalanceStats* rb = server_.rebalance_stats(); rb != nullptr) {
    v1::RebalanceStats* r = out->mutable_rebalance();
    r->set_rounds(rb->rounds.load(std::memory_order_relaxed));
    r->set_imbalanced_rounds(rb->imbalanced_rounds.load(std::memory_order_relaxed));
    r->set_unmovable_rounds(rb->unmovable_rounds.load(std::memory_order_relaxed));
    r->set_moves_started(rb->moves_started.load(std::memory_order_relaxed));
    r->set_moved(rb->moved.load(std::memory_order_relaxed));
    r->set_move_failures(rb->move_failures.load(std::memory_order_relaxed));
  }

  const auto& services = server_.services();
  for (size_t si = 0; si < services.size(); ++si) {
    v1::ServiceStats* svc = out->add_services();
    svc->set_name(std::string(services[si]->name()));
    // The totals merge the very figures listed per loop, so that they add up exactly even
    // while requests arrive (Server::Totals would read the counters a second time).
    ServiceTotals total;
    for (int i = 0; i < server_.loop_count(); ++i) {
      const auto& per_loop = server_.loop(i).stats().services;
      if (si >= per_loop.size()) continue;
      const ServiceTotals one = ServiceTotals::Read(*per_loop[si]);
      total.Merge(one);
      v1::ServiceLoopStats* pl = svc->add_per_loop();
      pl->set_loop(i);
      pl->set_requests(one.requests);
      pl->set_errors(one.errors);
      FillHistogram(one.latency_ns, pl->mutable_latency_ns());
    }
    svc->set_requests(total.requests);
    svc->set_errors(total.errors);
    FillHistogram(total.latency_ns, svc->mutable_latency_ns());
  }

  const auto& listeners = server_.listeners();
  for (size_t li = 0; li < listeners.size(); ++li) {
    const TlsEndpoint* endpoint = server_.listener_tls(li);
    if (endpoint == nullptr) continue;
    v1::TlsEndpointStats* t = out->add_tls();
    t->set_service(listeners[li].service);
    t->set_address(listeners[li].bound.ToString());
    const std::shared_ptr<const TlsContext> context = endpoint->current();
    t->set_certificate_subject(context->subject());
    t->set_certificate_not_after_unix_ns(absl::ToUnixNanos(context->not_after()));
    t->set_reloads(endpoint->reloads());
    t->set_kernel_tls(KernelHasTls());
    TlsTotals total;
    for (int i = 0; i < server_.loop_count(); ++i) {
      const auto& per_loop = server_.loop(i).stats().tls;
      if (static_cast<size_t>(endpoint->index()) >= per_loop.size()) continue;
      const TlsTotals one = TlsTotals::Read(*per_loop[endpoint->index()]);
      total.Merge(one);
      FillTls(one, i, t->add_per_loop());
    }
    FillTls(total, -1, t->mutable_total());
  }
}

}  // namespace percore
