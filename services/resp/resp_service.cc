#include "services/resp/resp_service.h"

#include <algorithm>

#include "core/clock.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "services/resp/resp_handler.h"
#include "services/resp/resp_limits.h"
#include "services/resp/request_state.h"

namespace percore {
namespace {

// Rounds of sampling one expiry tick may run (each of options.expire_sample keys).
constexpr int kExpireRoundsPerTick = 16;

}  // namespace

RespService::RespService(RespOptions options)
    : options_(options),
      loop_contexts_(*this, [this](const ShardInfo&) { return std::make_unique<RespLoopContext>(*this); }) {
  view_.options = &options_;
  view_.keyspace = [this] { return Keyspace(); };
  view_.started = MonoTime::Now();
  view_.connected_clients = &connected_clients_;
  view_.total_connections = &total_connections_;
}

RespService::~RespService() = default;

absl::Status RespService::CheckLimits(const ConnectionOptions& connection, int loops) const {
  return ValidateRespLimits(options_, connection);
}

void RespService::OnLoopStart(EventLoop& loop) {
  StringStore& store = shards_.local();
  const int sample = options_.expire_sample;
  loop.RunEvery(options_.expire_period,
                [&store, sample] { store.ExpireSome(sample, kExpireRoundsPerTick); });

  RespLoopContext& context = loop_contexts_.local();
  context.store = &store;
  context.here = shards_.here();
  RespStateSettings& settings = context.state_settings;
  settings.options = &options_;
  settings.shard_count = shards_.count();
  const ConnectionOptions& limits = loop.connection_options();
  settings.batch_copy_budget = std::max(OutputQueue::kShareAtLeast,
                                        limits.high_water / static_cast<size_t>(shards_.count()));
  settings.pending_copy_budget = std::max(OutputQueue::kShareAtLeast, limits.low_water);
}

std::unique_ptr<Handler> RespService::NewHandler(Connection& conn) {
  // Replies often leave in two writes (those ready at once, then those that waited on another
  // loop's shard); without TCP_NODELAY the second would wait for the peer's delayed ACK. A
  // failure only costs latency, so it is not fatal.
  (void)conn.SetNoDelay(true);
  return std::make_unique<RespHandler>(loop_contexts_.local());
}

RespService::RequestStateCounts RespService::LocalRequestStatesForTest() const {
  const FreeList<RespRequestState>& states = loop_contexts_.local().request_states;
  return {states.made(), states.free_count()};
}

KeyspaceFigures RespService::Keyspace() const {
  // The stores' counts are published for other threads; each owner updates its own before it
  // answers a write, so a client sees its acknowledged writes counted.
  KeyspaceFigures figures;
  figures.shards = static_cast<size_t>(shards_.count());
  shards_.ForEachShard([&figures](ShardId, const StringStore& store) {
    figures.keys += store.key_count();
    figures.expiring += store.expiring_count();
  });
  return figures;
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
