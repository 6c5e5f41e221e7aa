#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/socket.h"
#include "reactor/balance_policy.h"
#include "reactor/connection.h"
#include "reactor/distributor.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/poller.h"
#include "reactor/rebalancer.h"
#include "reactor/reuseport_acceptor.h"
#include "reactor/server_totals.h"
#include "reactor/tls_endpoint.h"

namespace percore {

struct ServerOptions {
  int loops = 0;  // 0: one per CPU this process may run on
  // kAuto: io_uring where it can run, else epoll (ResolveBackend); Start says which and why.
  PollerBackend backend = PollerBackend::kAuto;
  UringOptions uring = {};  // the io_uring back end's ring and receive-buffer sizes
  BalancePolicyKind balance = BalancePolicyKind::kRoundRobin;
  bool pin = false;  // pin loop i to the i-th allowed CPU
  int max_connections = 100'000;        // over all loops (reuseport: an equal share each); 0 = none
  int max_connections_per_loop = 0;     // 0 = unlimited
  absl::Duration accept_backoff = absl::Milliseconds(100);  // accepting pauses this long after EMFILE and the like
  bool return_free_memory = true;       // quiet loops return a burst's freed memory (malloc_trim)
  // Moving connections off busy loops while they run (reactor/rebalancer.h); off by default.
  RebalanceOptions rebalance = {};
  ConnectionOptions connection = {};
};

// How Listen serves an endpoint.
struct EndpointOptions {
  // Set: the endpoint speaks TLS with this certificate and key (its handlers still see
  // plaintext). Listen refuses files that do not load.
  std::optional<TlsOptions> tls;
};

// One listening endpoint after Listen(): the service it serves and where it really listens.
struct ListenerInfo {
  std::string service;
  HostPort requested;
  SocketAddress bound;  // the real address (port filled in when 0 was asked)
  bool tls = false;
};

// Owns the loops, their threads, the listeners and the distributor.
// Configure (AddService, Listen) before Start; Start and Stop from one controlling thread.
// Introspection and control methods are thread-safe.
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Stops with a zero deadline if still running.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers a service; its name() is what Listen refers to. Before Start.
  absl::Status AddService(std::shared_ptr<Service> service);
  // Binds and listens now (so a port-0 endpoint's real port is known at once). Before Start.
  absl::StatusOr<ListenerInfo> Listen(std::string_view service_name, const HostPort& endpoint,
                                      const EndpointOptions& options = {});
  // Every TLS endpoint reads its certificate and key again: connections accepted afterwards
  // get the new ones, open connections keep theirs. An endpoint whose files do not load keeps
  // its old certificate, and the error names it. Thread-safe.
  absl::Status ReloadCertificates();

  // Creates the loops and their threads, then starts accepting.
  absl::Status Start();
  // Stops accepting, lets handlers finish what they have read and flushes output, closes every
  // connection (kServerDrain) and joins all threads. The loops drain as a group (DrainGroup):
  // cross-loop work of a connection still draining is answered by a loop that has no
  // connections left. Connections still flushing `drain_timeout` from now are closed anyway.
  // Idempotent.
  void Stop(absl::Duration drain_timeout = absl::Seconds(5));

  // --- Introspection (thread-safe after Start) ---
  const ServerOptions& options() const { return options_; }
  // The back end every loop runs (options().backend resolved by Start), and why: one line such
  // as "io_uring (auto: available)" or "epoll (auto: io_uring unavailable: ...)".
  PollerBackend backend() const { return backend_; }
  const std::string& backend_reason() const { return backend_reason_; }
  int loop_count() const { return static_cast<int>(loops_.size()); }
  EventLoop& loop(int i) { return *loops_[i]; }
  const EventLoop& loop(int i) const { return *loops_[i]; }
  // When Start() ran (absl::InfinitePast() before).
  absl::Time start_time() const { return start_time_; }
  const std::vector<ListenerInfo>& listeners() const { return listeners_; }
  // Listener i's TLS endpoint (its context now, its index into LoopStats::tls); null when it
  // is plaintext.
  const TlsEndpoint* listener_tls(size_t i) const { return listen_tls_[i].get(); }
  const std::vector<std::shared_ptr<Service>>& services() const { return services_; }
  // The distributor's figures; null in reuseport mode (see accept_counters).
  const DistributorStats* distributor_stats() const;
  // Every accepting thread's counters: the distributor's, or one per loop and endpoint.
  std::vector<const AcceptCounters*> accept_counters() const;
  // Every loop's statistics summed (SumLoopStats), read lock-free; zero before Start.
  ServerTotals Totals() const;
  bool running() const { return started_ && !stopped_; }

  // --- Control (thread-safe) ---
  BalancePolicyKind balance_policy() const;
  absl::Status SetBalancePolicy(BalancePolicyKind kind);  // not to/from reuseport while running
  // Stops handing new connections to loop i; with close_idle, also closes its connections
  // that have no request in progress (admin drain).
  absl::Status DrainLoop(int i, bool close_idle);
  absl::Status ResumeLoop(int i);
  bool loop_draining(int i) const;
  // What the rebalancer did; null unless it runs (ServerOptions::rebalance, mode kLoad).
  const RebalanceStats* rebalance_stats() const { return rebalancer_ ? &rebalancer_->stats() : nullptr; }
  // Moves connection `id` to loop `target` at its next request boundary, waiting at most `wait`
  // for it to reach one (reactor/migration.h); `done` hears the outcome once, on some thread
  // (this one, for what is refused at once: not running, no such loop, target draining).
  void MigrateConnection(uint64_t id, int target, absl::Duration wait, MigrationDone done);
  // The same, waiting here for the outcome (at most `wait` plus `timeout` for the loops to
  // answer: kNoAnswer if they do not, and then the move may still happen).
  MigrationResult MigrateConnection(uint64_t id, int target, absl::Duration wait = absl::Seconds(1),
                                    absl::Duration timeout = absl::Seconds(5));

 private:
  friend class ShardedBase;
  // Sharded<T>(Server&): state built on every loop, not one service's. Before Start.
  void AddShardedState(ShardedBase* state) { sharded_.push_back(state); }
  absl::Status StartReusePort(const std::vector<Listener>& listeners, const DistributorOptions& limits);
  EventLoop& acceptor_loop(const ReusePortAcceptor* acceptor);

  ServerOptions options_;
  PollerBackend backend_ = PollerBackend::kEpoll;
  std::string backend_reason_;
  std::vector<std::shared_ptr<Service>> services_;
  std::vector<ShardedBase*> sharded_;  // registered with the server itself
  std::vector<ListenerInfo> listeners_;
  std::vector<int> listen_fds_;
  std::vector<int> listen_service_;
  std::vector<std::unique_ptr<TlsEndpoint>> listen_tls_;  // by listener; null for plaintext
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
  std::unique_ptr<Distributor> distributor_;
  std::unique_ptr<Rebalancer> rebalancer_;
  std::vector<std::unique_ptr<ReusePortAcceptor>> acceptors_;  // loop-major: loop i, endpoint l
  absl::Time start_time_ = absl::InfinitePast();
  // Read by running() from any thread (the admin's, the rebalancer's).
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace percore
