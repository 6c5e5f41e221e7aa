#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "core/histogram.h"
#include "reactor/close_reason.h"
#include "reactor/loop_stats.h"

namespace percore {

// One service's figures over loops: the sums of its ServiceLoopStats.
struct ServiceTotals {
  uint64_t requests = 0;         // requests answered (Connection::RecordRequest)
  uint64_t errors = 0;           // those of them recorded as errors
  HistogramSnapshot latency_ns;  // every request's latency: the loops' histograms merged

  // One loop's figures, read lock-free from any thread.
  static ServiceTotals Read(const ServiceLoopStats& loop);
  // Adds `other`'s figures (the latency histograms merge bucket by bucket).
  void Merge(const ServiceTotals& other);
};

// One TLS endpoint's figures (TlsLoopStats) on one loop or summed over loops.
struct TlsTotals {
  uint64_t handshakes = 0;
  uint64_t resumptions = 0;
  uint64_t tls13 = 0;
  uint64_t tls12 = 0;
  uint64_t handshake_failures = 0;
  uint64_t handshake_timeouts = 0;
  uint64_t errors = 0;
  uint64_t ktls = 0;
  HistogramSnapshot handshake_ns;

  static TlsTotals Read(const TlsLoopStats& loop);
  void Merge(const TlsTotals& other);
};

// The figures of LoopStats summed over loops, so that no reader adds them up by hand. Every
// counter here is the sum of the loops' counters of the same name, totals since each loop
// started (see loop_stats.h for what each counts). Left out are the figures read per loop:
// the iteration and handler histograms and the longest stall (a stall is one loop's), and the
// buffer pool's levels.
//
// Each loop's counters are read one after another, not at one instant: while connections come
// and go, related figures (conns_handed_in, closed, conns_active) may disagree by what changed
// during the read. Once the loops are quiet, every figure is exact.
struct ServerTotals {
  int loops = 0;  // how many loops were summed

  // The iteration.
  uint64_t iterations = 0;
  uint64_t poll_calls = 0;
  uint64_t events = 0;
  uint64_t wakeups = 0;
  uint64_t tasks_run = 0;
  uint64_t timers_fired = 0;
  uint64_t memory_trims = 0;
  uint64_t memory_trim_ns = 0;
  uint64_t task_errors = 0;
  uint64_t busy_ns = 0;  // loop-time: with n loops, up to n ns per ns of wall time
  uint64_t wait_ns = 0;

  // Connections. Each one handed in is active until it closes, and closes under one reason:
  // once quiet, conns_handed_in == conns_active + closed_total().
  uint64_t conns_handed_in = 0;
  int64_t conns_active = 0;                          // open now
  std::array<uint64_t, kCloseReasonCount> closed{};  // by CloseReason

  // Socket I/O.
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t read_calls = 0;
  uint64_t write_calls = 0;
  uint64_t read_eagain = 0;
  uint64_t write_eagain = 0;
  uint64_t partial_writes = 0;
  uint64_t write_budget_yields = 0;
  uint64_t backpressure_pauses = 0;

  // The io_uring back end (zero on the others).
  uint64_t uring_enters = 0;
  uint64_t uring_submissions = 0;
  uint64_t uring_completions = 0;
  uint64_t uring_buffer_exhaustions = 0;
  uint64_t uring_multishot_rearms = 0;
  uint64_t uring_cq_overflows = 0;

  // By the service's registration order in the server, as LoopStats::services.
  std::vector<ServiceTotals> services;

  uint64_t closed_by(CloseReason reason) const { return closed[static_cast<int>(reason)]; }
  uint64_t closed_total() const;
};

// Sums `loops`' figures, read lock-free: callable from any thread while the loops run.
ServerTotals SumLoopStats(std::span<const LoopStats* const> loops);

}  // namespace percore
