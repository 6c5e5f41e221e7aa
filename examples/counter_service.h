#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "core/counter.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"

namespace counter {

struct CounterOptions {
  // Longest request line, its newline excluded. A longer one is refused and the connection
  // closed (protocol_error), before the rest of it is waited for.
  size_t max_line = 1024;
  // Distinct keys the whole service holds, split evenly over the shards (at least one each).
  // INCR of a new key on a full shard is answered "ERROR too many keys"; the connection stays.
  size_t max_keys = 1'000'000;
  // A request line begun but not finished within this is answered "ERROR timeout" and the
  // connection closed (read_timeout): a peer cannot hold a connection with a trickle of bytes.
  absl::Duration line_timeout = absl::Seconds(10);
};

// One loop's counters: the keys whose owner (Sharded::OwnerOf) is that loop. Touched only by
// its loop's thread, except increments() and keys(), which any thread may read.
class CounterShard {
 public:
  explicit CounterShard(size_t max_keys) : max_keys_(max_keys) {}

  // The key's new value; nullopt when the key is new and the shard already holds max_keys.
  std::optional<uint64_t> Increment(std::string_view key);
  // The key's value; 0 for a key never incremented.
  uint64_t Get(std::string_view key) const;

  const percore::Counter& increments() const { return increments_; }
  const percore::Gauge& keys() const { return keys_; }

 private:
  const size_t max_keys_;
  absl::flat_hash_map<std::string, uint64_t> counts_;
  percore::Counter increments_;
  percore::Gauge keys_;
};

// What one shard holds, read from any thread.
struct ShardFigures {
  percore::ShardId shard = 0;
  uint64_t increments = 0;
  int64_t keys = 0;
};

// Per-key counters over a line protocol (README.md):
//   "INCR key\n" -> "<new value>\n"    "GET key\n" -> "<value>\n"
// Each key lives on one loop; a request for a key of another loop is answered by that loop and
// the reply continues on the connection's own loop, in request order.
class CounterService final : public percore::Service {
 public:
  explicit CounterService(CounterOptions options = {});

  std::string_view name() const override { return "counter"; }
  std::unique_ptr<percore::Handler> NewHandler(percore::Connection& conn) override;

  // Any thread, once the server has started: every shard's figures, by shard id.
  std::vector<ShardFigures> Figures() const;
  // The shard that owns `key` (thread-safe once the server has started).
  percore::ShardId OwnerOf(std::string_view key) const { return shards_.OwnerOf(key); }

 private:
  const CounterOptions options_;
  percore::Sharded<CounterShard> shards_{*this, [this](const percore::ShardInfo& info) {
    // An even split, the remainder to the first shards: the shares add up to max_keys.
    const size_t count = static_cast<size_t>(info.count);
    const size_t index = static_cast<size_t>(info.index);
    return std::make_unique<CounterShard>(options_.max_keys / count + (index < options_.max_keys % count ? 1 : 0));
  }};
};

}  // namespace counter
