#include "reactor/server.h"

#include <csignal>
#include <cstdio>
#include <future>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/errno_status.h"
#include "reactor/sharded.h"

namespace percore {

Server::Server(ServerOptions options) : options_(std::move(options)) {
  if (options_.loops <= 0) options_.loops = static_cast<int>(AllowedCpus().size());
}

Server::~Server() {
  Stop(absl::ZeroDuration());
  for (int fd : listen_fds_) CloseFd(fd);
}

absl::Status Server::AddService(std::shared_ptr<Service> service) {
  if (started_) return absl::FailedPreconditionError("AddService after Start");
  for (const auto& s : services_) {
    if (s->name() == service->name()) {
      return absl::AlreadyExistsError(absl::StrCat("service '", std::string(service->name()), "' added twice"));
    }
  }
  services_.push_back(std::move(service));
  return absl::OkStatus();
}

absl::StatusOr<ListenerInfo> Server::Listen(std::string_view service_name, const HostPort& endpoint,
                                            const EndpointOptions& options) {
  if (started_) return absl::FailedPreconditionError("Listen after Start");
  int service_index = -1;
  for (size_t i = 0; i < services_.size(); ++i) {
    if (services_[i]->name() == service_name) service_index = static_cast<int>(i);
  }
  if (service_index < 0) {
    return absl::NotFoundError(absl::StrCat("no service named '", std::string(service_name), "'"));
  }
  std::unique_ptr<TlsEndpoint> tls;
  if (options.tls.has_value()) {
    absl::StatusOr<std::shared_ptr<const TlsContext>> context = TlsContext::Create(*options.tls);
    if (!context.ok()) return context.status();
    int index = 0;
    for (const auto& t : listen_tls_) index += t != nullptr ? 1 : 0;
    tls = std::make_unique<TlsEndpoint>(std::move(*context), index);
  }
  ListenOptions listen_options;
  listen_options.reuse_port = options_.balance == BalancePolicyKind::kReusePort;
  absl::StatusOr<int> fd = ListenTcp(endpoint, listen_options);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<SocketAddress> bound = LocalAddress(*fd);
  if (!bound.ok()) {
    CloseFd(*fd);
    return bound.status();
  }
  ListenerInfo info{std::string(service_name), endpoint, *bound, tls != nullptr};
  listeners_.push_back(info);
  listen_fds_.push_back(*fd);
  listen_service_.push_back(service_index);
  listen_tls_.push_back(std::move(tls));
  return info;
}

absl::Status Server::ReloadCertificates() {
  absl::Status first_error;
  int reloaded = 0;
  for (size_t i = 0; i < listen_tls_.size(); ++i) {
    if (listen_tls_[i] == nullptr) continue;
    if (absl::Status s = listen_tls_[i]->Reload(); !s.ok()) {
      if (first_error.ok()) {
        first_error = absl::Status(s.code(), absl::StrCat(listeners_[i].service, " on ",
                                                         listeners_[i].bound.ToString(), ": ", s.message()));
      }
      continue;
    }
    ++reloaded;
  }
  if (!first_error.ok()) return first_error;
  if (reloaded == 0) return absl::FailedPreconditionError("no TLS endpoint to reload");
  return absl::OkStatus();
}

absl::Status Server::Start() {
  if (started_) return absl::FailedPreconditionError("Start called twice");
  if (services_.empty()) return absl::FailedPreconditionError("no service added");
  if (absl::Status s = CheckConnectionOptions(options_.connection); !s.ok()) return s;
  if (absl::Status s = CheckRebalanceOptions(options_.rebalance); !s.ok()) return s;
  for (const auto& service : services_) {
    if (absl::Status s = service->CheckLimits(options_.connection, options_.loops); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(service->name()), ": ", s.message()));
    }
  }
  absl::StatusOr<PollerBackend> backend = ResolveBackend(options_.backend, options_.uring, &backend_reason_);
  if (!backend.ok()) return backend.status();
  backend_ = *backend;
  // Loops write with write(2), so a peer that vanished must yield EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  const std::vector<int> cpus = AllowedCpus();
  std::vector<Service*> services;
  for (const auto& s : services_) services.push_back(s.get());
  for (int i = 0; i < options_.loops; ++i) {
    EventLoopOptions loop_options;
    loop_options.index = i;
    loop_options.backend = backend_;
    loop_options.uring = options_.uring;
    loop_options.cpu = options_.pin ? cpus[i % cpus.size()] : -1;
    loop_options.connection = options_.connection;
    loop_options.return_free_memory = options_.return_free_memory;
    // The rebalancer ranks connections by the rates of the last period: no older than a round.
    if (options_.rebalance.mode != RebalanceMode::kOff) {
      loop_options.rate_period = std::min(loop_options.rate_period, options_.rebalance.interval);
    }
    loop_options.services = services;
    loop_options.sharded = sharded_;
    for (const auto& t : listen_tls_) loop_options.tls_endpoints += t != nullptr ? 1 : 0;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(std::move(loop_options));
    if (!loop.ok()) return loop.status();
    loops_.push_back(std::move(*loop));
  }

  DistributorOptions limits;
  limits.max_connections = options_.max_connections;
  limits.max_connections_per_loop = options_.max_connections_per_loop;
  limits.backoff = options_.accept_backoff;
  std::vector<Listener> listeners;
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    listeners.push_back({listen_fds_[i], listen_service_[i], services_[listen_service_[i]].get(), listen_tls_[i].get()});
  }

  // Sharded state gets one shard per loop; each loop builds its own on its thread.
  std::vector<EventLoop*> loop_list;
  for (auto& loop : loops_) loop_list.push_back(loop.get());
  for (const auto& service : services_) {
    for (ShardedBase* state : service->sharded_state()) state->Prepare(loop_list);
  }
  for (ShardedBase* state : sharded_) state->Prepare(loop_list);

  started_ = true;
  start_time_ = absl::Now();
  for (auto& loop : loops_) {
    EventLoop* raw = loop.get();
    threads_.emplace_back([raw] { raw->Run(); });
  }

  // Accept only once every loop has run its services' OnLoopStart (shard tables, caches): a
  // connection must never reach a service that is half set up on its loop.
  std::vector<std::future<void>> ready;
  for (auto& loop : loops_) {
    auto started = std::make_shared<std::promise<void>>();
    ready.push_back(started->get_future());
    loop->Post([started] { started->set_value(); });
  }
  for (auto& f : ready) f.wait();

  std::vector<EventLoop*> loop_ptrs;
  for (auto& loop : loops_) loop_ptrs.push_back(loop.get());
  if (options_.balance == BalancePolicyKind::kReusePort) {
    // Without a distributor there is no global view at accept time: the global limit becomes
    // an equal share per loop.
    if (limits.max_connections > 0) {
      const int share = (limits.max_connections + options_.loops - 1) / options_.loops;
      if (limits.max_connections_per_loop == 0 || share < limits.max_connections_per_loop) {
        limits.max_connections_per_loop = share;
      }
    }
    if (absl::Status s = StartReusePort(listeners, limits); !s.ok()) return s;
  } else {
    distributor_ = std::make_unique<Distributor>(loop_ptrs, listeners, options_.balance, limits);
    if (absl::Status s = distributor_->Start(); !s.ok()) return s;
  }
  // Last: it reads what accepting set up (which loops are draining).
  if (options_.rebalance.mode != RebalanceMode::kOff) {
    rebalancer_ = std::make_unique<Rebalancer>(*this, options_.rebalance);
    rebalancer_->Start();
  }
  return absl::OkStatus();
}

absl::Status Server::StartReusePort(const std::vector<Listener>& listeners, const DistributorOptions& limits) {
  for (int i = 0; i < options_.loops; ++i) {
    for (size_t l = 0; l < listeners.size(); ++l) {
      Listener listener = listeners[l];
      if (i > 0) {
        // Loop 0 uses the socket bound in Listen(); the others bind their own to the same port.
        HostPort endpoint = listeners_[l].requested;
        endpoint.port = listeners_[l].bound.port();
        ListenOptions listen_options;
        listen_options.reuse_port = true;
        absl::StatusOr<int> fd = ListenTcp(endpoint, listen_options);
        if (!fd.ok()) return fd.status();
        listen_fds_.push_back(*fd);
        listener.fd = *fd;
      }
      auto acceptor = std::make_unique<ReusePortAcceptor>(*loops_[i], listener, limits);
      ReusePortAcceptor* raw = acceptor.get();
      acceptors_.push_back(std::move(acceptor));
      loops_[i]->Post([raw] { raw->Start(); });
    }
  }
  return absl::OkStatus();
}

ShardedBase::ShardedBase(Server& server) { server.AddShardedState(this); }

void Server::Stop(absl::Duration drain_timeout) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  // Nothing moves while the loops drain.
  if (rebalancer_) rebalancer_->Stop();
  // Connections the kernel has already completed wait in the listen backlog: they are accepted
  // and handed to the loops, which answer what they sent as they drain, rather than reset when
  // the listening sockets close.
  if (distributor_) {
    distributor_->Stop();
    distributor_->AcceptBacklog();
  }
  // Acceptors belong to their loops: stop them there, and wait, before their sockets close.
  std::vector<std::future<void>> stopped;
  for (auto& acceptor : acceptors_) {
    auto done = std::make_shared<std::promise<void>>();
    stopped.push_back(done->get_future());
    ReusePortAcceptor* raw = acceptor.get();
    acceptor_loop(raw).Post([raw, done] {
      raw->AcceptBacklog();
      raw->Stop();
      done->set_value();
    });
  }
  for (auto& f : stopped) f.wait();
  for (int fd : listen_fds_) CloseFd(fd);
  listen_fds_.clear();
  const MonoTime deadline = MonoTime::Now() + std::max(drain_timeout, absl::ZeroDuration());
  // The loops drain as one group: a loop with nothing left of its own still answers the
  // cross-loop work of connections elsewhere until they have drained too.
  std::vector<EventLoop*> loops;
  for (auto& loop : loops_) loops.push_back(loop.get());
  auto group = std::make_shared<DrainGroup>(loops);
  for (auto& loop : loops_) loop->Quit(deadline, group);
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

EventLoop& Server::acceptor_loop(const ReusePortAcceptor* acceptor) {
  for (size_t i = 0; i < acceptors_.size(); ++i) {
    if (acceptors_[i].get() == acceptor) return *loops_[i / listeners_.size()];
  }
  return *loops_[0];
}

const DistributorStats* Server::distributor_stats() const {
  return distributor_ ? &distributor_->stats() : nullptr;
}

std::vector<const AcceptCounters*> Server::accept_counters() const {
  std::vector<const AcceptCounters*> out;
  if (distributor_) out.push_back(&distributor_->stats().counters);
  for (const auto& a : acceptors_) out.push_back(&a->counters());
  return out;
}

ServerTotals Server::Totals() const {
  std::vector<const LoopStats*> stats;
  for (const auto& loop : loops_) stats.push_back(&loop->stats());
  return SumLoopStats(stats);
}

BalancePolicyKind Server::balance_policy() const {
  return distributor_ ? distributor_->policy() : options_.balance;
}

absl::Status Server::SetBalancePolicy(BalancePolicyKind kind) {
  if (!distributor_) {
    if (kind == options_.balance) return absl::OkStatus();
    return absl::FailedPreconditionError("the server runs in reuseport mode; its policy cannot change while running");
  }
  if (kind == BalancePolicyKind::kReusePort) {
    return absl::FailedPreconditionError("reuseport mode must be chosen at start (--balance=reuseport)");
  }
  distributor_->SetPolicy(kind);
  return absl::OkStatus();
}

absl::Status Server::DrainLoop(int i, bool close_idle) {
  if (i < 0 || i >= loop_count()) return absl::OutOfRangeError(absl::StrCat("no loop ", i));
  if (!distributor_) return absl::FailedPreconditionError("draining a loop needs the distributor (not reuseport)");
  distributor_->SetDraining(i, true);
  if (close_idle) {
    EventLoop* loop = loops_[i].get();
    loop->Post([loop] {
      std::vector<Connection*> idle;
      loop->ForEachConnection([&](Connection& c) {
        if (c.state() == ConnectionState::kReading && c.queued_output() == 0) idle.push_back(&c);
      });
      for (Connection* c : idle) c->Close(CloseReason::kServerDrain, CloseMode::kFlush);
    });
  }
  return absl::OkStatus();
}

absl::Status Server::ResumeLoop(int i) {
  if (i < 0 || i >= loop_count()) return absl::OutOfRangeError(absl::StrCat("no loop ", i));
  if (!distributor_) return absl::FailedPreconditionError("no distributor in reuseport mode");
  distributor_->SetDraining(i, false);
  return absl::OkStatus();
}

bool Server::loop_draining(int i) const { return distributor_ && distributor_->draining(i); }

void Server::MigrateConnection(uint64_t id, int target, absl::Duration wait, MigrationDone done) {
  auto refuse = [&](MigrationStatus status, std::string detail) {
    std::move(done)(MigrationResult{status, -1, 0, std::move(detail)});
  };
  if (!running()) return refuse(MigrationStatus::kNotRunning, "the server is not running");
  if (target < 0 || target >= loop_count()) {
    return refuse(MigrationStatus::kNoSuchLoop, absl::StrCat("no loop ", target, " (", loop_count(), " loops)"));
  }
  const uint64_t source = id >> 48;
  if (source >= static_cast<uint64_t>(loop_count())) {
    return refuse(MigrationStatus::kUnknownConnection, absl::StrCat("no connection ", id, " (no loop ", source, ")"));
  }
  if (loop_draining(target) || !loops_[target]->running()) {
    return refuse(MigrationStatus::kTargetDraining, absl::StrCat("loop ", target, " takes no new connections (draining)"));
  }
  loops_[source]->Migrate(id, *loops_[target], wait, std::move(done));
}

MigrationResult Server::MigrateConnection(uint64_t id, int target, absl::Duration wait, absl::Duration timeout) {
  auto outcome = std::make_shared<std::promise<MigrationResult>>();
  std::future<MigrationResult> result = outcome->get_future();
  MigrateConnection(id, target, wait, [outcome](MigrationResult r) { outcome->set_value(std::move(r)); });
  if (result.wait_for(absl::ToChronoNanoseconds(wait + timeout)) != std::future_status::ready) {
    return MigrationResult{MigrationStatus::kNoAnswer, -1, 0,
                           "the loops did not answer in time; the connection may still move (list the connections)"};
  }
  return result.get();
}

}  // namespace percore
