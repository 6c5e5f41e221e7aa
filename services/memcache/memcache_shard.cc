#include "services/memcache/memcache_shard.h"

#include <algorithm>
#include <cstdint>

namespace percore::memcache {
namespace {

ItemStoreOptions ShareOf(ItemStoreOptions options, const ShardInfo& info) {
  const uint64_t count = static_cast<uint64_t>(std::max(info.count, 1));
  options.memory_limit /= count;
  options.cas_start = static_cast<uint64_t>(info.index) + 1;
  options.cas_step = count;
  return options;
}

}  // namespace

Shard::Shard(const ItemStoreOptions& whole, const ShardInfo& info, MemcacheService& service,
             const RequestLimits& limits)
    : store(ShareOf(whole, info)), service(service), index(info.index), request_limits(limits) {}

}  // namespace percore::memcache
