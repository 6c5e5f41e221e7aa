#include "services/admin/admin_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/clock.h"
#include "reactor/connection.h"
#include "reactor/uring_poller.h"
#include "services/admin/grpc_status.h"
#include "services/admin/loop_queries.h"
#include "services/admin/prometheus.h"

namespace percore {

namespace v1 = admin::v1;

namespace {

constexpr int64_t kDefaultWatchIntervalNs = 1'000'000'000;
constexpr int64_t kMinWatchIntervalNs = 10'000'000;
// How often a waiting WatchStats looks for cancellation.
constexpr int64_t kWatchPollNs = 50'000'000;
// Left to a call after the loops' wait, to build and send the reply before its deadline.
constexpr absl::Duration kReplyMargin = absl::Milliseconds(100);

bool IsConnectionState(const std::string& name) {
  for (ConnectionState s : {ConnectionState::kOpen, ConnectionState::kReading, ConnectionState::kWriting,
                            ConnectionState::kPaused, ConnectionState::kClosing, ConnectionState::kClosed}) {
    if (ConnectionStateName(s) == name) return true;
  }
  return false;
}

}  // namespace

AdminService::AdminService(Server& server, AdminOptions options)
    : server_(server),
      options_(std::move(options)),
      initial_policy_(server.options().balance),
      collector_(server, options_.server_start.value_or(absl::Now())) {}

void AdminService::EndStreams() {
  std::lock_guard<std::mutex> lock(streams_mu_);
  ending_streams_ = true;
  streams_cv_.notify_all();
}

grpc::Status AdminService::CheckWritable() const {
  if (options_.readonly) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "the admin service is read-only (--admin_readonly)");
  }
  return grpc::Status::OK;
}

absl::Duration AdminService::LoopTimeout(const grpc::ServerContext& context) const {
  const absl::Duration left = absl::FromChrono(context.deadline() - std::chrono::system_clock::now());
  return std::max(absl::ZeroDuration(), std::min(options_.loop_timeout, left - kReplyMargin));
}

grpc::Status AdminService::GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                                    v1::Stats* response) {
  collector_.Collect(response);
  response->mutable_server()->set_serving(serving_.load());
  return grpc::Status::OK;
}

grpc::Status AdminService::WatchStats(grpc::ServerContext* context, const v1::WatchStatsRequest* request,
                                      grpc::ServerWriter<v1::Stats>* writer) {
  int64_t interval = request->interval_ns() == 0 ? kDefaultWatchIntervalNs : request->interval_ns();
  interval = std::max(interval, kMinWatchIntervalNs);
  std::vector<LoopTimeSample> baseline;
  int64_t next = MonotonicNanos();
  while (true) {
    v1::Stats stats;
    collector_.Collect(&baseline, &stats);
    stats.mutable_server()->set_serving(serving_.load());
    if (!writer->Write(stats)) return grpc::Status::OK;  // the client went away
    next += interval;
    // Wait for the next tick in short slices: a cancelled call is only seen by polling.
    std::unique_lock<std::mutex> lock(streams_mu_);
    while (true) {
      if (ending_streams_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the admin service is shutting down");
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      const int64_t now = MonotonicNanos();
      if (now >= next) break;
      streams_cv_.wait_for(lock, std::chrono::nanoseconds(std::min(next - now, kWatchPollNs)));
    }
  }
}

grpc::Status AdminService::GetPrometheus(grpc::ServerContext* context, const v1::GetPrometheusRequest* request,
                                         v1::PrometheusText* response) {
  response->set_text(PrometheusText(server_));
  return grpc::Status::OK;
}

grpc::Status AdminService::ListConnections(grpc::ServerContext* context, const v1::ListConnectionsRequest* request,
                                           v1::ListConnectionsResponse* response) {
  ConnectionFilter filter;
  if (request->has_loop()) {
    if (request->loop() < 0 || request->loop() >= server_.loop_count()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("no loop ", request->loop()));
    }
    filter.loop = request->loop();
  }
  if (!request->service().empty()) {
    bool known = false;
    for (const auto& s : server_.services()) known |= s->name() == request->service();
    if (!known) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("no service '", request->service(), "'"));
    }
    filter.service = request->service();
  }
  if (!request->state().empty()) {
    if (!IsConnectionState(request->state())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("no connection state '", request->state(), "'"));
    }
    filter.state = request->state();
  }
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &filter.after_id)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed page_token");
  }
  if (request->page_size() < 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "negative page_size");
  const size_t page_size = request->page_size() == 0 ? kDefaultPageSize : std::min(request->page_size(), kMaxPageSize);

  ConnectionListing listing = percore::ListConnections(server_, filter, LoopTimeout(*context));
  for (int loop : listing.stalled_loops) response->add_stalled_loops(loop);
  const size_t n = std::min(page_size, listing.connections.size());
  for (size_t k = 0; k < n; ++k) {
    const ConnectionRecord& r = listing.connections[k];
    v1::ConnectionInfo* c = response->add_connections();
    c->set_id(r.id);
    c->set_loop(r.loop);
    c->set_service(r.service);
    c->set_peer(r.peer);
    c->set_state(r.state);
    c->set_age_ns(absl::ToInt64Nanoseconds(r.age));
    c->set_idle_ns(absl::ToInt64Nanoseconds(r.idle));
    c->set_bytes_in(r.bytes_in);
    c->set_bytes_out(r.bytes_out);
    c->set_requests(r.requests);
    c->set_queued_output(r.queued_output);
    c->set_tls_version(r.tls_version);
    c->set_tls_alpn(r.tls_alpn);
    c->set_tls_resumed(r.tls_resumed);
    c->set_tls_ktls(r.tls_ktls);
    c->set_recent_requests_per_sec(r.recent_requests_per_sec);
    c->set_recent_bytes_per_sec(r.recent_bytes_per_sec);
  }
  if (listing.connections.size() > n) response->set_next_page_token(absl::StrCat(listing.connections[n - 1].id));
  return grpc::Status::OK;
}

grpc::Status AdminService::GetConfig(grpc::ServerContext* context, const v1::GetConfigRequest* request,
                                     v1::Config* response) {
  const ServerOptions& o = server_.options();
  response->set_loops(server_.loop_count() > 0 ? server_.loop_count() : o.loops);
  // Before Start nothing is resolved yet: the back end is what was asked for.
  const bool started = server_.loop_count() > 0;
  const PollerBackend backend = started ? server_.backend() : o.backend;
  response->set_backend(std::string(PollerBackendName(backend)));
  response->set_requested_backend(std::string(PollerBackendName(o.backend)));
  response->set_backend_reason(server_.backend_reason());
  for (int i = 0; i < server_.loop_count(); ++i) {
    EventLoop& loop = server_.loop(i);
    v1::LoopBackend* lb = response->add_loop_backends();
    lb->set_loop(i);
    lb->set_backend(std::string(PollerBackendName(loop.backend())));
    if (const UringPoller* uring = loop.uring(); uring != nullptr) {
      lb->set_uring_mode(std::string(uring->mode()));
      lb->set_uring_buffers(uring->buffer_count());
    }
  }
  if (started && backend == PollerBackend::kIoUring) {
    v1::UringConfig* u = response->mutable_uring();
    u->set_entries(o.uring.entries);
    u->set_buffers(o.uring.buffers);
    u->set_buffer_size(o.uring.buffer_size);
  }
  response->set_balance_policy(std::string(BalancePolicyName(server_.balance_policy())));
  response->set_initial_balance_policy(std::string(BalancePolicyName(initial_policy_)));
  response->set_pin(o.pin);
  response->set_max_connections(o.max_connections);
  response->set_max_connections_per_loop(o.max_connections_per_loop);
  v1::ConnectionConfig* c = response->mutable_connection();
  c->set_high_water(o.connection.high_water);
  c->set_low_water(o.connection.low_water);
  c->set_output_cap(o.connection.output_cap);
  c->set_read_budget(o.connection.read_budget);
  c->set_idle_timeout_ns(absl::ToInt64Nanoseconds(o.connection.idle_timeout));
  c->set_write_timeout_ns(absl::ToInt64Nanoseconds(o.connection.write_timeout));
  c->set_close_linger_ns(absl::ToInt64Nanoseconds(o.connection.close_linger));
  c->set_tls_handshake_timeout_ns(absl::ToInt64Nanoseconds(o.connection.tls_handshake_timeout));
  for (const auto& s : server_.services()) response->add_services(std::string(s->name()));
  for (const ListenerInfo& l : server_.listeners()) {
    v1::Endpoint* e = response->add_endpoints();
    e->set_service(l.service);
    e->set_requested(l.requested.ToString());
    e->set_bound(l.bound.ToString());
    e->set_tls(l.tls);
  }
  for (const auto& [name, value] : options_.flags) {
    v1::Flag* f = response->add_flags();
    f->set_name(name);
    f->set_value(value);
  }
  response->set_admin_readonly(options_.readonly);
  v1::RebalanceConfig* rb = response->mutable_rebalance();
  rb->set_mode(std::string(RebalanceModeName(o.rebalance.mode)));
  rb->set_interval_ns(absl::ToInt64Nanoseconds(o.rebalance.interval));
  rb->set_threshold(o.rebalance.threshold);
  rb->set_min_load(o.rebalance.min_load);
  rb->set_max_moves(o.rebalance.max_moves);
  for (int i = 0; i < server_.loop_count(); ++i) {
    if (server_.loop_draining(i)) response->add_draining_loops(i);
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::SetBalancePolicy(grpc::ServerContext* context, const v1::SetBalancePolicyRequest* request,
                                            v1::SetBalancePolicyResponse* response) {
  if (grpc::Status s = CheckWritable(); !s.ok()) return s;
  BalancePolicyKind kind;
  if (!ParseBalancePolicy(request->policy(), &kind)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("unknown balance policy '", request->policy(),
                                     "' (round_robin, least_connections, power_of_two, least_loaded)"));
  }
  response->set_previous(std::string(BalancePolicyName(server_.balance_policy())));
  if (absl::Status s = server_.SetBalancePolicy(kind); !s.ok()) return ToGrpcStatus(s);
  response->set_current(std::string(BalancePolicyName(server_.balance_policy())));
  return grpc::Status::OK;
}

grpc::Status AdminService::DrainLoop(grpc::ServerContext* context, const v1::DrainLoopRequest* request,
                                     v1::DrainLoopResponse* response) {
  if (grpc::Status s = CheckWritable(); !s.ok()) return s;
  return ToGrpcStatus(server_.DrainLoop(request->loop(), request->close_idle()));
}

grpc::Status AdminService::ResumeLoop(grpc::ServerContext* context, const v1::ResumeLoopRequest* request,
                                      v1::ResumeLoopResponse* response) {
  if (grpc::Status s = CheckWritable(); !s.ok()) return s;
  return ToGrpcStatus(server_.ResumeLoop(request->loop()));
}

grpc::Status AdminService::CloseConnection(grpc::ServerContext* context, const v1::CloseConnectionRequest* request,
                                           v1::CloseConnectionResponse* response) {
  if (grpc::Status s = CheckWritable(); !s.ok()) return s;
  return ToGrpcStatus(percore::CloseConnection(server_, request->id(), LoopTimeout(*context)));
}

grpc::Status AdminService::MigrateConnection(grpc::ServerContext* context, const v1::MigrateConnectionRequest* request,
                                             v1::MigrateConnectionResponse* response) {
  if (grpc::Status s = CheckWritable(); !s.ok()) return s;
  if (request->wait_ns() < 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "negative wait_ns");
  const absl::Duration asked = request->wait_ns() == 0 ? absl::Seconds(1) : absl::Nanoseconds(request->wait_ns());
  // The loops' answer must come back within the call's deadline: the wait for a boundary
  // gets what is left of it after the loops' own time to answer.
  const absl::Duration budget = LoopTimeout(*context);
  // Too little time left to hear the answer: nothing is tried, so that an answer never comes
  // after the caller has been told something else.
  if (budget < absl::Milliseconds(10)) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "the call's deadline leaves no time to wait for the loops; nothing was moved");
  }
  const absl::Duration answer_time = std::min(absl::Milliseconds(500), budget / 2);
  const absl::Duration wait = std::min(asked, budget - answer_time);
  const MigrationResult r = server_.MigrateConnection(request->id(), request->loop(), wait, answer_time);
  const std::string message = absl::StrCat(std::string(MigrationStatusName(r.status)), ": ", r.detail);
  switch (r.status) {
    case MigrationStatus::kMoved:
      response->set_loop(r.loop);
      response->set_new_id(r.new_id);
      return grpc::Status::OK;
    case MigrationStatus::kUnknownConnection: return grpc::Status(grpc::StatusCode::NOT_FOUND, message);
    case MigrationStatus::kNoSuchLoop: return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
    case MigrationStatus::kNotRunning: return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
    case MigrationStatus::kNoAnswer: return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, message);
    case MigrationStatus::kSameLoop:
    case MigrationStatus::kTargetDraining:
    case MigrationStatus::kSourceDraining:
    case MigrationStatus::kClosing:
    case MigrationStatus::kPaused:
    case MigrationStatus::kDeclined:
    case MigrationStatus::kNotAtBoundary:
    case MigrationStatus::kAlreadyMoving: return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, message);
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, message);
}

grpc::Status AdminService::ReloadCertificates(grpc::ServerContext* context, const v1::ReloadCertificatesRequest* request,
                                              v1::ReloadCertificatesResponse* response) {
  if (grpc::Status s = CheckWritable(); !s.ok()) return s;
  if (absl::Status s = server_.ReloadCertificates(); !s.ok()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, std::string(s.message()));
  }
  int endpoints = 0;
  for (size_t i = 0; i < server_.listeners().size(); ++i) endpoints += server_.listener_tls(i) != nullptr ? 1 : 0;
  response->set_endpoints(endpoints);
  return grpc::Status::OK;
}

}  // namespace percore
