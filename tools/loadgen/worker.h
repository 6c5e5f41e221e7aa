#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/buffer.h"
#include "core/histogram.h"
#include "core/socket.h"
#include "tools/loadgen/codec.h"
#include "tools/loadgen/load_options.h"
#include "tools/loadgen/request_source.h"

namespace percore::loadgen {

// This worker's share of the load.
struct WorkerPlan {
  int index = 0;
  int connections = 0;
  uint64_t quota = 0;        // requests to issue; 0: until the deadline
  double rate = 0;           // open loop: this worker's requests/s; 0: closed loop
  bool preload = false;      // set keys [preload_first, preload_end) in order
  uint64_t preload_first = 0;
  uint64_t preload_end = 0;
};

// What a worker counts. Every issued request ends as exactly one of ok, misses or errors,
// except those a server dropped by announcing a close (HTTP "Connection: close"), which are
// issued again on a new connection and counted in `reissued`.
struct WorkerResult {
  HistogramSnapshot latency_ns;
  uint64_t issued = 0;
  uint64_t ok = 0;      // right replies (hits, for stores)
  uint64_t misses = 0;  // right replies that found no key
  uint64_t errors = 0;  // wrong replies, and requests lost to a failed or timed-out connection
  uint64_t reissued = 0;
  uint64_t connects = 0;          // connections established during the run
  uint64_t connect_failures = 0;  // included in errors
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int64_t last_reply_ns = 0;  // CLOCK_MONOTONIC
  std::vector<std::string> error_samples;  // the first few, for the report
};

// One thread's load: an epoll loop over its own connections.
// Closed loop keeps `depth` requests outstanding per connection and times each from when it
// was written; open loop issues requests at fixed intended times, round-robin over the
// connections, and times each from its intended time, so a slow server cannot slow the
// schedule and hide its own latency (no coordinated omission). With connect_per_request
// every request gets a new connection, timed from the connect.
// Construct, Open and Run on any one thread; not thread-safe.
class Worker {
 public:
  Worker(const LoadOptions& options, const Codec& codec, const SocketAddress& server, WorkerPlan plan);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Creates the epoll instance and connects the connections (not in connect_per_request mode).
  absl::Status Open();
  // Applies the load from `start_ns` until the quota is done or `deadline_ns` (0: none) passes,
  // then waits for outstanding replies (up to options.timeout_ns without progress).
  void Run(int64_t start_ns, int64_t deadline_ns);

  const WorkerResult& result() const { return result_; }

 private:
  struct Pending {
    Request request;
    int64_t start_ns;
  };
  struct Conn {
    enum class State : uint8_t { kClosed, kConnecting, kOpen, kDead };
    State state = State::kClosed;
    int fd = -1;
    uint32_t index = 0;       // in conns_; with `generation`, the epoll cookie
    uint32_t generation = 0;  // bumped per socket, so events of a closed socket are ignored
    uint32_t interest = 0;  // events registered with epoll
    bool touched = false;   // open loop: has new output to flush
    uint64_t next_seq = 0;
    Buffer in;
    Buffer out;
    std::deque<Pending> pending;
  };

  bool MoreToIssue(int64_t now) const;
  bool Done(int64_t now) const;
  void Issue(Conn& c, int64_t start_ns);
  void Fill(Conn& c, int64_t now);
  void IssueDue(int64_t now);
  void OnEvent(Conn& c, uint32_t events, int64_t now);
  void ReadReplies(Conn& c, int64_t now);
  void Flush(Conn& c);
  void SetInterest(Conn& c, uint32_t interest);
  bool StartConnect(Conn& c, int64_t now);
  void Close(Conn& c);
  // The connection failed (`why`): its outstanding requests are errors; it reconnects if
  // there is more to do.
  // `counted`: the error that caused it is already counted, only the requests behind it are
  // added (otherwise at least one error is counted even with nothing outstanding).
  void Fail(Conn& c, const std::string& why, int64_t now, bool counted = false);
  // The server announced a close: outstanding requests go back to be issued again.
  void Reissue(Conn& c, int64_t now);
  void Restart(Conn& c, int64_t now);
  void CountErrors(uint64_t n, const std::string& why);
  void GiveUp();
  int64_t WaitTimeoutNs(int64_t now) const;

  const LoadOptions& options_;
  const Codec& codec_;
  SocketAddress server_;
  WorkerPlan plan_;
  RequestSource source_;
  Histogram latency_;
  WorkerResult result_;
  std::vector<Conn> conns_;
  int epoll_fd_ = -1;
  int64_t deadline_ns_ = 0;
  uint64_t outstanding_ = 0;
  int live_ = 0;  // connections not dead
  int64_t last_progress_ns_ = 0;
  bool gave_up_ = false;
  // Open loop.
  int64_t start_ns_ = 0;
  double interval_ns_ = 0;
  uint64_t scheduled_ = 0;  // requests whose intended time has been taken
  size_t next_conn_ = 0;
  std::vector<Conn*> touched_;  // connections IssueDue wrote to, kept to reuse its storage
};

}  // namespace percore::loadgen
