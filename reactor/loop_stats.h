#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/counter.h"
#include "core/histogram.h"
#include "reactor/close_reason.h"

namespace percore {

// One service's figures on one loop. Written by that loop only; merged across loops by readers.
struct ServiceLoopStats {
  Counter requests;
  Counter errors;
  Histogram latency_ns;  // from the first byte of a request to its reply being queued
};

// One TLS endpoint's handshakes on one loop. Written by that loop only.
struct TlsLoopStats {
  Counter handshakes;          // completed, full or resumed
  Counter resumptions;         // of those, resumed from a session ticket
  Counter tls13;               // completed handshakes by negotiated version
  Counter tls12;
  Counter handshake_failures;  // closed as tls_handshake_failed
  Counter handshake_timeouts;  // closed as tls_handshake_timeout
  Counter errors;              // closed as tls_error (after the handshake)
  Counter ktls;                // connections whose records the kernel does (kTLS)
  Histogram handshake_ns;      // from accept to the handshake's completion
};

// Everything one loop counts. Written only by the loop's thread (Counter's single-writer
// contract); read lock-free from any thread. Counters are totals since the loop started.
struct LoopStats {
  // The iteration: Wait, dispatch, timers, tasks.
  Counter iterations;
  Counter poll_calls;
  Counter events;        // ready fds dispatched
  Counter wakeups;       // eventfd wake-ups by other threads
  Counter tasks_run;     // posted tasks executed
  Counter timers_fired;
  Counter memory_trims;    // malloc_trim calls after a burst (EventLoop::ReturnFreeMemory)
  Counter memory_trim_ns;  // time they took
  Counter task_errors;   // posted tasks and timer callbacks that threw (logged, then dropped)
  Counter busy_ns;       // time outside the poller's Wait
  Counter wait_ns;       // time inside it
  // The load signal: the CPU time the loop's thread used over the last load window (about
  // 500 ms, sampled every 125 ms; EventLoop::SampleLoad) over the window's length, in
  // thousandths. From the thread's own CPU clock, so time the thread spent preempted (loops
  // outnumbering cores) is not counted as busy.
  Gauge load_permille;
  Counter cpu_ns;        // the thread's CPU time, as of the last sample
  Histogram iteration_ns;  // busy part of each iteration: stalls show here
  Histogram handler_ns;    // each handler callback
  Gauge longest_stall_ns;
  Gauge longest_stall_wall_ns;  // when it ended, Unix time in ns

  // Connections.
  Counter conns_handed_in;
  Gauge conns_active;
  // Live migration: connections that arrived from another loop, that left for another, and
  // migrations asked of this loop's connections that did not happen (reactor/migration.h).
  Counter migrations_in;
  Counter migrations_out;
  Counter migrations_refused;
  std::array<Counter, kCloseReasonCount> closed;

  // Socket I/O.
  Counter bytes_in;
  Counter bytes_out;
  Counter read_calls;
  Counter write_calls;
  Counter read_eagain;
  Counter write_eagain;
  Counter partial_writes;
  Counter write_budget_yields;  // writes cut short by the per-iteration write budget
  Counter backpressure_pauses;

  // The io_uring back end (zero on the others).
  Counter uring_enters;               // io_uring_enter calls: submit and wait in one
  Counter uring_submissions;          // operations handed to the kernel
  Counter uring_completions;          // completions reaped
  Counter uring_buffer_exhaustions;   // receives ended because the loop's buffer ring was empty
  Counter uring_multishot_rearms;     // multishot receives re-armed after the kernel ended one
  Counter uring_cq_overflows;         // completions the kernel had to hold back (none lost)

  // The loop's buffer pool (BufferPool), as of the end of the last iteration.
  Gauge buffer_blocks_free;       // idle blocks the pool keeps for reuse
  Gauge buffer_blocks_allocated;  // blocks it has allocated since the loop started
  Gauge connection_buffers_free;  // idle connections' buffer sets kept for reuse (ConnectionIo)

  // Indexed by the service's registration order in the server.
  std::vector<std::unique_ptr<ServiceLoopStats>> services;
  // Indexed by TLS endpoint, in the order they were added (Server::Listen).
  std::vector<std::unique_ptr<TlsLoopStats>> tls;

  uint64_t closed_total() const {
    uint64_t total = 0;
    for (const Counter& c : closed) total += c.Get();
    return total;
  }
};

}  // namespace percore
