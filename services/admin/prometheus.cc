#include "services/admin/prometheus.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/histogram.h"
#include "reactor/close_reason.h"
#include "reactor/loop_stats.h"
#include "reactor/tls_endpoint.h"
#include "services/admin/accept_totals.h"
#include "services/admin/process_figures.h"
#include "services/admin/prometheus_writer.h"

namespace percore {
namespace {

std::string_view View(const std::string& s) { return std::string_view(s); }

// One family with one sample per loop, read from that loop's stats by `get`.
template <typename Get>
void PerLoopCounter(PrometheusWriter& w, Server& server, const std::vector<std::string>& loops,
                    std::string_view name, std::string_view help, Get get) {
  w.Family(name, "counter", help);
  for (int i = 0; i < server.loop_count(); ++i) w.Sample(name, {{"loop", View(loops[i])}}, get(server.loop(i).stats()));
}

template <typename Get>
void PerLoopSeconds(PrometheusWriter& w, Server& server, const std::vector<std::string>& loops,
                    std::string_view name, std::string_view type, std::string_view help, Get get) {
  w.Family(name, type, help);
  for (int i = 0; i < server.loop_count(); ++i) {
    w.SampleSeconds(name, {{"loop", View(loops[i])}}, get(server.loop(i).stats()));
  }
}

void WriteProcess(PrometheusWriter& w, Server& server) {
  w.Family("percore_build_info", "gauge", "Always 1; the labels describe the build and the loops' back end.");
  const std::string build = BuildDescription();
  const std::string backend(PollerBackendName(server.backend()));
  w.Sample("percore_build_info", {{"version", kPercoreVersion}, {"build", View(build)}, {"backend", View(backend)}}, 1);
  w.Family("percore_balance_policy_info", "gauge", "Always 1; the label is the balancing policy in force.");
  const std::string policy(BalancePolicyName(server.balance_policy()));
  w.Sample("percore_balance_policy_info", {{"policy", View(policy)}}, 1);
  w.Family("percore_loops", "gauge", "Event loops (threads) of the server.");
  w.Sample("percore_loops", {}, static_cast<uint64_t>(server.loop_count()));
  w.Family("percore_process_start_time_seconds", "gauge", "When the process started, Unix time.");
  w.SampleSeconds("percore_process_start_time_seconds", {}, static_cast<uint64_t>(ProcessStartUnixNanos()));
  w.Family("percore_process_resident_memory_bytes", "gauge", "Resident set size of the process.");
  w.Sample("percore_process_resident_memory_bytes", {}, ResidentMemoryBytes());
  w.Family("percore_process_open_fds", "gauge", "File descriptors the process has open.");
  w.SampleSigned("percore_process_open_fds", {}, OpenFileDescriptors());
}

void WriteLoops(PrometheusWriter& w, Server& server, const std::vector<std::string>& loops) {
  PerLoopCounter(w, server, loops, "percore_loop_iterations_total", "Event loop iterations.",
                 [](const LoopStats& s) { return s.iterations.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_poll_calls_total", "Calls of the poller's wait.",
                 [](const LoopStats& s) { return s.poll_calls.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_events_total", "Ready file descriptors dispatched.",
                 [](const LoopStats& s) { return s.events.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_wakeups_total", "Wake-ups of the loop by other threads.",
                 [](const LoopStats& s) { return s.wakeups.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_tasks_run_total", "Tasks posted to the loop and run.",
                 [](const LoopStats& s) { return s.tasks_run.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_timers_fired_total", "Timers fired.",
                 [](const LoopStats& s) { return s.timers_fired.Get(); });
  PerLoopSeconds(w, server, loops, "percore_loop_busy_seconds_total", "counter",
                 "Time spent outside the poller's wait.", [](const LoopStats& s) { return s.busy_ns.Get(); });
  PerLoopSeconds(w, server, loops, "percore_loop_wait_seconds_total", "counter",
                 "Time spent inside the poller's wait.", [](const LoopStats& s) { return s.wait_ns.Get(); });
  PerLoopSeconds(w, server, loops, "percore_loop_cpu_seconds_total", "counter",
                 "CPU time of the loop's thread (as of its last load sample).",
                 [](const LoopStats& s) { return s.cpu_ns.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_migrations_in_total", "Connections that moved here from another loop.",
                 [](const LoopStats& s) { return s.migrations_in.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_migrations_out_total", "Connections that moved to another loop.",
                 [](const LoopStats& s) { return s.migrations_out.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_migrations_refused_total",
                 "Migrations of this loop's connections that were refused.",
                 [](const LoopStats& s) { return s.migrations_refused.Get(); });
  w.Family("percore_loop_load_ratio", "gauge",
           "The load signal: CPU time of the loop's thread over the last ~500 ms, over that time.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.SampleThousandths("percore_loop_load_ratio", {{"loop", View(loops[i])}},
                        static_cast<uint64_t>(server.loop(i).stats().load_permille.Get()));
  }

  w.Family("percore_loop_iteration_seconds", "histogram", "Busy part of each loop iteration (stalls show here).");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.HistogramSeconds("percore_loop_iteration_seconds", {{"loop", View(loops[i])}},
                       server.loop(i).stats().iteration_ns.Snapshot());
  }
  w.Family("percore_loop_handler_seconds", "histogram", "Duration of each handler callback.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.HistogramSeconds("percore_loop_handler_seconds", {{"loop", View(loops[i])}},
                       server.loop(i).stats().handler_ns.Snapshot());
  }
  PerLoopSeconds(w, server, loops, "percore_loop_longest_stall_seconds", "gauge",
                 "Longest busy part of one iteration so far.",
                 [](const LoopStats& s) { return static_cast<uint64_t>(s.longest_stall_ns.Get()); });
  PerLoopSeconds(w, server, loops, "percore_loop_longest_stall_timestamp_seconds", "gauge",
                 "When the longest stall ended, Unix time; 0 if none yet.",
                 [](const LoopStats& s) { return static_cast<uint64_t>(s.longest_stall_wall_ns.Get()); });
  w.Family("percore_loop_draining", "gauge", "1 while the loop is drained (given no new connection).");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.Sample("percore_loop_draining", {{"loop", View(loops[i])}}, server.loop_draining(i) ? 1 : 0);
  }

  PerLoopCounter(w, server, loops, "percore_loop_connections_handed_in_total", "Connections handed to the loop.",
                 [](const LoopStats& s) { return s.conns_handed_in.Get(); });
  w.Family("percore_loop_connections_active", "gauge", "Connections open on the loop.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.SampleSigned("percore_loop_connections_active", {{"loop", View(loops[i])}},
                   server.loop(i).stats().conns_active.Get());
  }
  w.Family("percore_loop_connections_closed_total", "counter", "Connections closed, by reason.");
  for (int i = 0; i < server.loop_count(); ++i) {
    const LoopStats& s = server.loop(i).stats();
    for (int r = 0; r < kCloseReasonCount; ++r) {
      w.Sample("percore_loop_connections_closed_total",
               {{"loop", View(loops[i])}, {"reason", CloseReasonName(static_cast<CloseReason>(r))}}, s.closed[r].Get());
    }
  }

  PerLoopCounter(w, server, loops, "percore_loop_received_bytes_total", "Bytes read from sockets.",
                 [](const LoopStats& s) { return s.bytes_in.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_sent_bytes_total", "Bytes written to sockets.",
                 [](const LoopStats& s) { return s.bytes_out.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_read_calls_total", "Reads: read/readv system calls, or receive completions on io_uring.",
                 [](const LoopStats& s) { return s.read_calls.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_write_calls_total", "write/writev system calls.",
                 [](const LoopStats& s) { return s.write_calls.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_read_eagain_total", "Reads that found nothing (EAGAIN).",
                 [](const LoopStats& s) { return s.read_eagain.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_write_eagain_total", "Writes that found the socket full (EAGAIN).",
                 [](const LoopStats& s) { return s.write_eagain.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_partial_writes_total", "Writes that took only part of the output.",
                 [](const LoopStats& s) { return s.partial_writes.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_backpressure_pauses_total",
                 "Times reading stopped because queued output passed the high-water mark.",
                 [](const LoopStats& s) { return s.backpressure_pauses.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_write_budget_yields_total",
                 "Writes cut short by the per-iteration write budget (a large reply yielding the loop).",
                 [](const LoopStats& s) { return s.write_budget_yields.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_task_errors_total",
                 "Posted tasks and timer callbacks that threw (logged, then dropped).",
                 [](const LoopStats& s) { return s.task_errors.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_memory_trims_total",
                 "malloc_trim calls by the loop after a burst, to return freed memory.",
                 [](const LoopStats& s) { return s.memory_trims.Get(); });
  PerLoopSeconds(w, server, loops, "percore_loop_memory_trim_seconds_total", "counter", "Time those calls took.",
                 [](const LoopStats& s) { return s.memory_trim_ns.Get(); });
  w.Family("percore_loop_buffer_blocks_free", "gauge", "Idle 16 KiB buffer blocks the loop keeps for reuse.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.SampleSigned("percore_loop_buffer_blocks_free", {{"loop", View(loops[i])}},
                   server.loop(i).stats().buffer_blocks_free.Get());
  }
  w.Family("percore_loop_connection_buffers_free", "gauge",
           "Idle connections' buffer sets (with up to two 16 KiB blocks each) the loop keeps for reuse.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.SampleSigned("percore_loop_connection_buffers_free", {{"loop", View(loops[i])}},
                   server.loop(i).stats().connection_buffers_free.Get());
  }
  PerLoopCounter(w, server, loops, "percore_loop_buffer_blocks_allocated_total",
                 "16 KiB buffer blocks the loop's pool has allocated.",
                 [](const LoopStats& s) { return static_cast<uint64_t>(s.buffer_blocks_allocated.Get()); });

  // The io_uring back end; zero on poll and epoll.
  PerLoopCounter(w, server, loops, "percore_loop_uring_enters_total",
                 "io_uring_enter calls (submitting and waiting in one).",
                 [](const LoopStats& s) { return s.uring_enters.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_uring_submissions_total",
                 "Operations handed to the kernel through the io_uring.",
                 [](const LoopStats& s) { return s.uring_submissions.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_uring_completions_total", "io_uring completions reaped.",
                 [](const LoopStats& s) { return s.uring_completions.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_uring_buffer_exhaustions_total",
                 "Receives ended because the loop's provided-buffer ring was empty.",
                 [](const LoopStats& s) { return s.uring_buffer_exhaustions.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_uring_multishot_rearms_total",
                 "Multishot receives re-armed after the kernel ended one.",
                 [](const LoopStats& s) { return s.uring_multishot_rearms.Get(); });
  PerLoopCounter(w, server, loops, "percore_loop_uring_cq_overflows_total",
                 "Times the kernel held completions back for lack of room in the completion queue (none lost).",
                 [](const LoopStats& s) { return s.uring_cq_overflows.Get(); });
}

void WriteAccepting(PrometheusWriter& w, Server& server, const std::vector<std::string>& loops) {
  const AcceptTotals totals = SumAcceptCounters(server);
  w.Family("percore_accepted_total", "counter", "Sockets accepted (over every accepting thread).");
  w.Sample("percore_accepted_total", {}, totals.accepted);
  w.Family("percore_handed_total", "counter", "Accepted connections handed to each loop.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.Sample("percore_handed_total", {{"loop", View(loops[i])}}, totals.handed[i]);
  }
  w.Family("percore_handoffs_pending", "gauge", "Connections handed to each loop that it has not taken in yet.");
  for (int i = 0; i < server.loop_count(); ++i) {
    w.Sample("percore_handoffs_pending", {{"loop", View(loops[i])}}, totals.pending[i]);
  }
  w.Family("percore_least_loaded_placements_total", "counter",
           "least_loaded's placements: by load, or among loops of equal load by fewest connections.");
  w.Sample("percore_least_loaded_placements_total", {{"by", "load"}}, totals.placed_by_load);
  w.Sample("percore_least_loaded_placements_total", {{"by", "connections"}}, totals.placed_by_connections);
  if (const RebalanceStats* rb = server.rebalance_stats(); rb != nullptr) {
    w.Family("percore_rebalance_rounds_total", "counter",
             "Rebalancer load checks: all, those that found an overloaded loop, and those of these where no "
             "connection's move would have helped.");
    w.Sample("percore_rebalance_rounds_total", {{"outcome", "all"}}, rb->rounds.load(std::memory_order_relaxed));
    w.Sample("percore_rebalance_rounds_total", {{"outcome", "imbalanced"}},
             rb->imbalanced_rounds.load(std::memory_order_relaxed));
    w.Sample("percore_rebalance_rounds_total", {{"outcome", "unmovable"}},
             rb->unmovable_rounds.load(std::memory_order_relaxed));
    w.Family("percore_rebalance_moves_total", "counter",
             "Connections the rebalancer moved to another loop, and moves refused or not at a boundary in time.");
    w.Sample("percore_rebalance_moves_total", {{"result", "moved"}}, rb->moved.load(std::memory_order_relaxed));
    w.Sample("percore_rebalance_moves_total", {{"result", "failed"}}, rb->move_failures.load(std::memory_order_relaxed));
  }
  w.Family("percore_accept_rejected_total", "counter", "Accepted connections refused at once, by reason.");
  w.Sample("percore_accept_rejected_total", {{"reason", "global_limit"}}, totals.rejected_global_limit);
  w.Sample("percore_accept_rejected_total", {{"reason", "loop_limit"}}, totals.rejected_loop_limit);
  w.Sample("percore_accept_rejected_total", {{"reason", "no_loop"}}, totals.rejected_no_loop);
  w.Family("percore_accept_errors_total", "counter", "accept4 failures by errno (only those that happened).");
  for (size_t e = 0; e < totals.accept_errors.size(); ++e) {
    if (totals.accept_errors[e] == 0) continue;
    const std::string name = ErrnoName(static_cast<int>(e));
    w.Sample("percore_accept_errors_total", {{"errno", View(name)}}, totals.accept_errors[e]);
  }
  w.Family("percore_accept_backoffs_total", "counter", "Pauses of accepting after descriptor or memory exhaustion.");
  w.Sample("percore_accept_backoffs_total", {}, totals.backoffs);
  w.Family("percore_accept_wakeups_total", "counter", "Wake-ups of the accepting threads.");
  w.Sample("percore_accept_wakeups_total", {}, totals.wakeups);
}

void WriteServices(PrometheusWriter& w, Server& server, const std::vector<std::string>& loops) {
  const auto& services = server.services();
  auto for_each = [&](auto fn) {
    for (size_t s = 0; s < services.size(); ++s) {
      const std::string name(services[s]->name());
      for (int i = 0; i < server.loop_count(); ++i) {
        const auto& per_loop = server.loop(i).stats().services;
        if (s < per_loop.size()) fn(View(name), View(loops[i]), *per_loop[s]);
      }
    }
  };
  w.Family("percore_service_requests_total", "counter", "Requests served, per service and loop.");
  for_each([&](std::string_view service, std::string_view loop, const ServiceLoopStats& st) {
    w.Sample("percore_service_requests_total", {{"service", service}, {"loop", loop}}, st.requests.Get());
  });
  w.Family("percore_service_errors_total", "counter", "Requests that failed, per service and loop.");
  for_each([&](std::string_view service, std::string_view loop, const ServiceLoopStats& st) {
    w.Sample("percore_service_errors_total", {{"service", service}, {"loop", loop}}, st.errors.Get());
  });
  w.Family("percore_service_latency_seconds", "histogram",
           "From the first byte of a request to its reply being queued, per service and loop.");
  for_each([&](std::string_view service, std::string_view loop, const ServiceLoopStats& st) {
    w.HistogramSeconds("percore_service_latency_seconds", {{"service", service}, {"loop", loop}},
                       st.latency_ns.Snapshot());
  });
}

// One sample per TLS endpoint and loop; the endpoint is labelled by its service and address.
void WriteTls(PrometheusWriter& w, Server& server, const std::vector<std::string>& loops) {
  struct Endpoint {
    std::string service, address;
    const TlsEndpoint* tls;
  };
  std::vector<Endpoint> endpoints;
  for (size_t l = 0; l < server.listeners().size(); ++l) {
    if (const TlsEndpoint* tls = server.listener_tls(l)) {
      endpoints.push_back({server.listeners()[l].service, server.listeners()[l].bound.ToString(), tls});
    }
  }
  if (endpoints.empty()) return;
  auto per_loop = [&](std::string_view name, std::string_view help, auto get) {
    w.Family(name, "counter", help);
    for (const Endpoint& e : endpoints) {
      for (int i = 0; i < server.loop_count(); ++i) {
        const auto& stats = server.loop(i).stats().tls;
        if (static_cast<size_t>(e.tls->index()) >= stats.size()) continue;
        w.Sample(name, {{"service", View(e.service)}, {"endpoint", View(e.address)}, {"loop", View(loops[i])}},
                 get(*stats[e.tls->index()]));
      }
    }
  };
  per_loop("percore_tls_handshakes_total", "TLS handshakes completed, full or resumed.",
           [](const TlsLoopStats& s) { return s.handshakes.Get(); });
  per_loop("percore_tls_resumptions_total", "TLS handshakes that resumed a session from a ticket.",
           [](const TlsLoopStats& s) { return s.resumptions.Get(); });
  w.Family("percore_tls_handshakes_by_version_total", "counter", "Completed TLS handshakes by negotiated version.");
  for (const Endpoint& e : endpoints) {
    for (int i = 0; i < server.loop_count(); ++i) {
      const auto& stats = server.loop(i).stats().tls;
      if (static_cast<size_t>(e.tls->index()) >= stats.size()) continue;
      const TlsLoopStats& s = *stats[e.tls->index()];
      for (const auto& [version, count] : {std::pair<std::string_view, uint64_t>{"TLSv1.3", s.tls13.Get()},
                                           std::pair<std::string_view, uint64_t>{"TLSv1.2", s.tls12.Get()}}) {
        w.Sample("percore_tls_handshakes_by_version_total",
                 {{"service", View(e.service)}, {"endpoint", View(e.address)}, {"loop", View(loops[i])}, {"version", version}},
                 count);
      }
    }
  }
  w.Family("percore_tls_failures_total", "counter", "TLS connections closed on a failure, by reason.");
  for (const Endpoint& e : endpoints) {
    for (int i = 0; i < server.loop_count(); ++i) {
      const auto& stats = server.loop(i).stats().tls;
      if (static_cast<size_t>(e.tls->index()) >= stats.size()) continue;
      const TlsLoopStats& s = *stats[e.tls->index()];
      for (const auto& [reason, count] :
           {std::pair<std::string_view, uint64_t>{"tls_handshake_failed", s.handshake_failures.Get()},
            std::pair<std::string_view, uint64_t>{"tls_handshake_timeout", s.handshake_timeouts.Get()},
            std::pair<std::string_view, uint64_t>{"tls_error", s.errors.Get()}}) {
        w.Sample("percore_tls_failures_total",
                 {{"service", View(e.service)}, {"endpoint", View(e.address)}, {"loop", View(loops[i])}, {"reason", reason}},
                 count);
      }
    }
  }
  per_loop("percore_tls_ktls_connections_total", "TLS connections whose records the kernel does (kTLS).",
           [](const TlsLoopStats& s) { return s.ktls.Get(); });
  w.Family("percore_tls_handshake_seconds", "histogram", "From accept to the TLS handshake's completion.");
  for (const Endpoint& e : endpoints) {
    for (int i = 0; i < server.loop_count(); ++i) {
      const auto& stats = server.loop(i).stats().tls;
      if (static_cast<size_t>(e.tls->index()) >= stats.size()) continue;
      w.HistogramSeconds("percore_tls_handshake_seconds",
                         {{"service", View(e.service)}, {"endpoint", View(e.address)}, {"loop", View(loops[i])}},
                         stats[e.tls->index()]->handshake_ns.Snapshot());
    }
  }
  w.Family("percore_tls_certificate_expiry_timestamp_seconds", "gauge",
           "When the certificate new connections get expires, Unix time.");
  for (const Endpoint& e : endpoints) {
    w.SampleSeconds("percore_tls_certificate_expiry_timestamp_seconds",
                    {{"service", View(e.service)}, {"endpoint", View(e.address)}},
                    static_cast<uint64_t>(absl::ToUnixNanos(e.tls->current()->not_after())));
  }
  w.Family("percore_tls_certificate_reloads_total", "counter", "Successful certificate reloads.");
  for (const Endpoint& e : endpoints) {
    w.Sample("percore_tls_certificate_reloads_total", {{"service", View(e.service)}, {"endpoint", View(e.address)}},
             e.tls->reloads());
  }
}

}  // namespace

std::string PrometheusText(Server& server) {
  std::vector<std::string> loops;
  for (int i = 0; i < server.loop_count(); ++i) loops.push_back(absl::StrCat(i));
  PrometheusWriter w;
  WriteProcess(w, server);
  WriteLoops(w, server, loops);
  WriteAccepting(w, server, loops);
  WriteServices(w, server, loops);
  WriteTls(w, server, loops);
  return w.Take();
}

}  // namespace percore
