#include "services/resp/resp_service.h"

#include "core/clock.h"
#include "core/socket.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "services/resp/resp_handler.h"
#include "services/resp/resp_limits.h"

namespace percore {
namespace {

// Rounds of sampling one expiry tick may run (each of options.expire_sample keys).
constexpr int kExpireRoundsPerTick = 16;

ServerView MakeView(const RespOptions* options, const std::atomic<int64_t>* clients,
                    const std::atomic<uint64_t>* total) {
  ServerView view;
  view.options = options;
  view.start_ns = MonotonicNanos();
  view.connected_clients = clients;
  view.total_connections = total;
  return view;
}

}  // namespace

absl::Status RespService::CheckLimits(const ConnectionOptions& connection, int loops) const {
  return ValidateRespLimits(options_, connection);
}

RespService::RespService(RespOptions options)
    : options_(options),
      shards_(MakeView(&options_, &connected_clients_, &total_connections_)) {}

void RespService::OnLoopStart(EventLoop& loop) {
  StringStore* store = shards_.AddLoop(loop);
  if (store == nullptr) return;  // started after the shard table froze: owns no keys
  const int sample = options_.expire_sample;
  loop.RunEvery(options_.expire_period_ns,
                [store, sample] { store->ExpireSome(sample, kExpireRoundsPerTick); });
}

std::unique_ptr<Handler> RespService::NewHandler(Connection& conn) {
  // Replies often leave in two writes (those ready at once, then those that waited on another
  // loop's shard); without TCP_NODELAY the second would wait for the peer's delayed ACK. A
  // failure only costs latency, so it is not fatal.
  (void)SetNoDelay(conn.fd(), true);
  return std::make_unique<RespHandler>(*this, conn);
}

void RespService::ClientOpened() {
  connected_clients_.fetch_add(1, std::memory_order_relaxed);
  total_connections_.fetch_add(1, std::memory_order_relaxed);
}

void RespService::ClientClosed() { connected_clients_.fetch_sub(1, std::memory_order_relaxed); }

std::shared_ptr<Service> NewRespService(RespOptions options) {
  return std::make_shared<RespService>(options);
}

}  // namespace percore
