#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/counter.h"
#include "core/socket.h"
#include "reactor/balance_policy.h"

namespace percore {

class EventLoop;
class Service;

// What one accepting thread counts (the distributor, or each loop in reuseport mode).
// Single writer: that thread.
struct AcceptCounters {
  static constexpr int kMaxErrno = 134;
  Counter accepted;               // accept4 returned a socket
  Counter rejected_global_limit;  // over max_connections
  Counter rejected_loop_limit;    // every eligible loop is at max_connections_per_loop
  Counter rejected_no_loop;       // every loop is draining
  Counter backoffs;               // accepting paused after EMFILE/ENFILE/ENOBUFS/ENOMEM
  Counter wakeups;                // poll returns of the accepting thread
  // least_loaded's decisions: by load (some loop was busier than the rest by more than
  // kLoadTiePermille) or, among loops of equal load, by connections.
  Counter placed_by_load;
  Counter placed_by_connections;
  std::array<Counter, kMaxErrno + 1> accept_errors;  // by errno (last slot: anything larger)
};

// The distributor's figures: its own counters and, per loop, how many connections it handed
// there. Readable lock-free from any thread.
struct DistributorStats {
  explicit DistributorStats(int loops);
  AcceptCounters counters;
  std::vector<std::unique_ptr<Counter>> handed;  // by loop index
};

class TlsEndpoint;

struct Listener {
  int fd;
  int service_index;
  Service* service;
  TlsEndpoint* tls = nullptr;  // a TLS endpoint's context; null for plaintext
};

struct DistributorOptions {
  int max_connections = 0;           // over all loops; 0 = unlimited
  int max_connections_per_loop = 0;  // 0 = unlimited
  int accepts_per_wakeup = 64;       // bounded so the shutdown eventfd is never starved
  absl::Duration backoff = absl::Milliseconds(100);  // pause after descriptor exhaustion
};

// The accept-distributor thread: blocks in poll() on the listening sockets and
// an eventfd, accepts until EAGAIN (bounded per wake-up) and hands each socket to the loop its
// policy picks, respecting limits and drained loops.
class Distributor {
 public:
  Distributor(std::vector<EventLoop*> loops, std::vector<Listener> listeners,
              BalancePolicyKind policy, DistributorOptions options);
  ~Distributor();
  Distributor(const Distributor&) = delete;
  Distributor& operator=(const Distributor&) = delete;

  absl::Status Start();
  // Stops accepting and joins the thread; connections already handed over are unaffected.
  void Stop();
  // After Stop, on the stopping thread: accepts what waits in the listen backlogs and places
  // it as usual, until the backlogs are empty or descriptors run out.
  void AcceptBacklog();
  static constexpr int kBacklogRounds = 64;  // of accepts_per_wakeup each

  // Thread-safe.
  void SetPolicy(BalancePolicyKind kind);
  BalancePolicyKind policy() const { return static_cast<BalancePolicyKind>(policy_kind_.load()); }
  void SetDraining(int loop, bool draining) { draining_[loop]->store(draining); }
  bool draining(int loop) const { return draining_[loop]->load(); }
  const DistributorStats& stats() const { return stats_; }
  // Live connections of a loop as the distributor sees them (handed there minus closed there).
  int64_t Live(int loop) const;

 private:
  void Run();
  // Accepts up to accepts_per_wakeup connections. False once the backlog is empty or
  // descriptors ran out (a back-off is counted); true if more may be waiting.
  bool AcceptFrom(const Listener& listener);
  void Place(int fd, const SocketAddress& peer, const Listener& listener);
  static void Refuse(int fd, const Listener& listener);

  std::vector<EventLoop*> loops_;
  std::vector<Listener> listeners_;
  DistributorOptions options_;
  std::unique_ptr<BalancePolicy> policy_;  // distributor thread only
  std::atomic<int> policy_kind_;
  std::vector<std::unique_ptr<std::atomic<bool>>> draining_;
  std::vector<LoopLoad> candidates_;       // distributor thread only; reused
  DistributorStats stats_;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace percore
