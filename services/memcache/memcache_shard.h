#pragma once

#include "core/counter.h"
#include "core/free_list.h"
#include "reactor/sharded.h"
#include "services/memcache/item_store.h"
#include "services/memcache/request_state.h"

namespace percore {
class MemcacheService;
}  // namespace percore

namespace percore::memcache {

// What a loop counts for the service beyond its store. Single writer: the loop; readable from
// any thread (Counter, Gauge), which is how `stats` sums them.
struct LoopCounters {
  Gauge curr_connections;
  Counter total_connections;
  Counter cmd_flush;
  Counter store_too_large;  // oversized data blocks refused before reaching a store
};

// One loop's part of the cache: the T of MemcacheService's Sharded<Shard>. Built on its loop's
// thread and touched only there; other loops reach it through Sharded::Call and Post (which
// use only `store`).
struct Shard {
  // `whole` describes the whole cache: this shard takes memory_limit / count of its memory, and
  // CAS values index + 1, index + 1 + count, ..., so that no two shards hand out the same one.
  Shard(const ItemStoreOptions& whole, const ShardInfo& info, MemcacheService& service,
        const RequestLimits& limits);

  ItemStore store;
  LoopCounters counters;

  // What this loop's connections reach through their one pointer to the shard: the service,
  // which shard this is, and the request state they borrow while they have requests in
  // progress (an idle connection holds none).
  MemcacheService& service;
  const ShardId index;
  const RequestLimits request_limits;
  FreeList<RequestState> request_states;
};

}  // namespace percore::memcache
