#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "reactor/handler.h"
#include "services/resp/resp_options.h"
#include "services/resp/shard_map.h"

namespace percore {

// The Redis protocol service ("resp"): RESP2 strings and keys (see services/resp/README.md).
// Each loop owns one shard of the keyspace, created in OnLoopStart; a connection's commands
// run on the loops that own their keys. One RespService serves one Server.
class RespService final : public Service {
 public:
  explicit RespService(RespOptions options);

  std::string_view name() const override { return "resp"; }
  // ValidateRespLimits (resp_limits.h).
  absl::Status CheckLimits(const ConnectionOptions& connection, int loops) const override;
  void OnLoopStart(EventLoop& loop) override;
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;

  const RespOptions& options() const { return options_; }
  ShardMap& shard_map() { return shards_; }

  // Thread-safe connection counts, for INFO.
  void ClientOpened();
  void ClientClosed();

 private:
  const RespOptions options_;
  std::atomic<int64_t> connected_clients_{0};
  std::atomic<uint64_t> total_connections_{0};
  ShardMap shards_;
};

std::shared_ptr<Service> NewRespService(RespOptions options = {});

}  // namespace percore
