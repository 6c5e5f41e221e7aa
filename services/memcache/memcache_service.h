#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/memcache/memcache_shard.h"

namespace percore {

namespace memcache {
class StatsBaseline;
}  // namespace memcache

struct MemcacheOptions {
  size_t memory_limit = size_t{64} << 20;   // like memcached -m: item bytes over all shards
  size_t max_item_size = size_t{1} << 20;   // like memcached -I: key + value + item header
  size_t max_line = 2048;                   // longest command line other than retrievals
  size_t max_retrieval_line = size_t{1} << 20;  // longest get/gets/gat/gats line
  // Requests of one connection that may wait on other loops at once; beyond it the
  // connection stops reading until replies come back.
  int max_inflight = 64;
  // Sent by `version` and `stats`. Clients parse the leading number as memcached's version.
  std::string version = "1.6.0-percore";
  // Unix time in seconds for expiry; empty means the real-time clock. For tests.
  std::function<int64_t()> clock;
};

// The memcached text protocol (services/memcache/README.md). The cache is a Sharded<Shard>, one
// shard per loop, each touched only by the loop that owns it: a key owned by the connection's
// own loop is served inline; any other is sent to its owner with Sharded::Call and the reply
// comes back in request order. Created before Server::Start and shared by all loops.
class MemcacheService final : public Service {
 public:
  explicit MemcacheService(MemcacheOptions options);
  ~MemcacheService() override;

  std::string_view name() const override { return "memcache"; }
  // The largest item must fit one shard (memory_limit is split evenly over the loops), or
  // items the parser accepts could never be stored, nor read back.
  absl::Status CheckLimits(const ConnectionOptions& connection, int loops) const override;
  // Counts the connection on its loop's shard and makes its handler.
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;

  const MemcacheOptions& options() const { return options_; }
  // Thread-safe once the server started: one shard per loop.
  size_t shard_count() const { return static_cast<size_t>(shards_.count()); }

  // The cache: handlers reach their own loop's shard with local() and the others with Call;
  // OwnerOf(key) places a key (tests use it to pick keys per owner).
  Sharded<memcache::Shard>& shards() { return shards_; }
  // Any thread. Appends the reply to `stats [args]`; false if `args` names no known group (ERROR).
  bool AppendStats(std::string_view args, std::string* out);

 private:
  MemcacheOptions options_;
  std::unique_ptr<memcache::StatsBaseline> baseline_;
  int64_t started_s_;
  Sharded<memcache::Shard> shards_;  // after options_: its factory reads them
};

std::shared_ptr<Service> NewMemcacheService(MemcacheOptions options = {});

}  // namespace percore
