#include "reactor/server_totals.h"

namespace percore {

ServiceTotals ServiceTotals::Read(const ServiceLoopStats& loop) {
  return {loop.requests.Get(), loop.errors.Get(), loop.latency_ns.Snapshot()};
}

void ServiceTotals::Merge(const ServiceTotals& other) {
  requests += other.requests;
  errors += other.errors;
  latency_ns.Merge(other.latency_ns);
}

TlsTotals TlsTotals::Read(const TlsLoopStats& loop) {
  TlsTotals t;
  t.handshakes = loop.handshakes.Get();
  t.resumptions = loop.resumptions.Get();
  t.tls13 = loop.tls13.Get();
  t.tls12 = loop.tls12.Get();
  t.handshake_failures = loop.handshake_failures.Get();
  t.handshake_timeouts = loop.handshake_timeouts.Get();
  t.errors = loop.errors.Get();
  t.ktls = loop.ktls.Get();
  t.handshake_ns = loop.handshake_ns.Snapshot();
  return t;
}

void TlsTotals::Merge(const TlsTotals& other) {
  handshakes += other.handshakes;
  resumptions += other.resumptions;
  tls13 += other.tls13;
  tls12 += other.tls12;
  handshake_failures += other.handshake_failures;
  handshake_timeouts += other.handshake_timeouts;
  errors += other.errors;
  ktls += other.ktls;
  handshake_ns.Merge(other.handshake_ns);
}

uint64_t ServerTotals::closed_total() const {
  uint64_t total = 0;
  for (uint64_t n : closed) total += n;
  return total;
}

ServerTotals SumLoopStats(std::span<const LoopStats* const> loops) {
  ServerTotals t;
  t.loops = static_cast<int>(loops.size());
  for (const LoopStats* loop : loops) {
    const LoopStats& s = *loop;
    t.iterations += s.iterations.Get();
    t.poll_calls += s.poll_calls.Get();
    t.events += s.events.Get();
    t.wakeups += s.wakeups.Get();
    t.tasks_run += s.tasks_run.Get();
    t.timers_fired += s.timers_fired.Get();
    t.memory_trims += s.memory_trims.Get();
    t.memory_trim_ns += s.memory_trim_ns.Get();
    t.task_errors += s.task_errors.Get();
    t.busy_ns += s.busy_ns.Get();
    t.wait_ns += s.wait_ns.Get();

    t.conns_handed_in += s.conns_handed_in.Get();
    t.conns_active += s.conns_active.Get();
    for (int r = 0; r < kCloseReasonCount; ++r) t.closed[r] += s.closed[r].Get();

    t.bytes_in += s.bytes_in.Get();
    t.bytes_out += s.bytes_out.Get();
    t.read_calls += s.read_calls.Get();
    t.write_calls += s.write_calls.Get();
    t.read_eagain += s.read_eagain.Get();
    t.write_eagain += s.write_eagain.Get();
    t.partial_writes += s.partial_writes.Get();
    t.write_budget_yields += s.write_budget_yields.Get();
    t.backpressure_pauses += s.backpressure_pauses.Get();

    t.uring_enters += s.uring_enters.Get();
    t.uring_submissions += s.uring_submissions.Get();
    t.uring_completions += s.uring_completions.Get();
    t.uring_buffer_exhaustions += s.uring_buffer_exhaustions.Get();
    t.uring_multishot_rearms += s.uring_multishot_rearms.Get();
    t.uring_cq_overflows += s.uring_cq_overflows.Get();

    // Every loop of a server has the same services; the vector grows to the longest anyway.
    if (t.services.size() < s.services.size()) t.services.resize(s.services.size());
    for (size_t i = 0; i < s.services.size(); ++i) t.services[i].Merge(ServiceTotals::Read(*s.services[i]));
  }
  return t;
}

}  // namespace percore
