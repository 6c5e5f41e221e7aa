#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/resp/commands.h"
#include "services/resp/resp_options.h"
#include "services/resp/string_store.h"

namespace percore {

// The keyspace, one StringStore per loop.
using RespShards = Sharded<StringStore>;

struct RespLoopContext;  // services/resp/request_state.h

// The Redis protocol service ("resp"): RESP2 strings and keys (see services/resp/README.md).
// Each loop owns the shard of the keyspace its keys hash to (RespShards::OwnerOf); a
// connection's commands run on the loops that own their keys. One RespService serves one Server.
class RespService final : public Service {
 public:
  explicit RespService(RespOptions options);
  ~RespService() override;

  std::string_view name() const override { return "resp"; }
  // ValidateRespLimits (resp_limits.h).
  absl::Status CheckLimits(const ConnectionOptions& connection, int loops) const override;
  // Starts the loop's active expiry and readies what the loop's connections share.
  void OnLoopStart(EventLoop& loop) override;
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;

  const RespOptions& options() const { return options_; }
  const ServerView& server_view() const { return view_; }
  RespShards& shards() { return shards_; }
  // Thread-safe once the server started: the loop index that owns `key`.
  ShardId OwnerOf(std::string_view key) const { return shards_.OwnerOf(key); }

  // Loop thread only: the request states this loop has made, and how many of them its free
  // list holds (the rest are with connections that have requests in progress).
  struct RequestStateCounts {
    size_t made = 0;
    size_t free = 0;
    bool operator==(const RequestStateCounts&) const = default;
  };
  RequestStateCounts LocalRequestStatesForTest() const;

  // Loop thread only: this loop's context (what a connection that moved here re-binds to).
  RespLoopContext& local_context() const { return loop_contexts_.local(); }

  // Thread-safe connection counts, for INFO.
  void ClientOpened();
  void ClientClosed();

 private:
  KeyspaceFigures Keyspace() const;

  const RespOptions options_;
  std::atomic<int64_t> connected_clients_{0};
  std::atomic<uint64_t> total_connections_{0};
  RespShards shards_{*this};
  Sharded<RespLoopContext> loop_contexts_;
  ServerView view_;
};

std::shared_ptr<Service> NewRespService(RespOptions options = {});

}  // namespace percore
