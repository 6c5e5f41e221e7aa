#include "services/memcache/memcache_stats.h"

#include <charconv>

namespace percore::memcache {

std::vector<StatFigure> CollectStats(const Sharded<Shard>& shards) {
  uint64_t curr_connections = 0, total_connections = 0, cmd_flush = 0, too_large = 0;
  shards.ForEachShard([&](ShardId, const Shard& shard) {
    const LoopCounters& c = shard.counters;
    const int64_t current = c.curr_connections.Get();
    curr_connections += current > 0 ? static_cast<uint64_t>(current) : 0;
    total_connections += c.total_connections.Get();
    cmd_flush += c.cmd_flush.Get();
    too_large += c.store_too_large.Get();
  });

  std::vector<StatFigure> figures = {
      {"curr_connections", curr_connections, false},
      {"total_connections", total_connections, true},
  };
  auto sum = [&](Counter ItemStoreStats::*field) {
    uint64_t total = 0;
    shards.ForEachShard([&](ShardId, const Shard& shard) { total += (shard.store.stats().*field).Get(); });
    return total;
  };
  auto level = [&](Gauge ItemStoreStats::*field) {
    int64_t total = 0;
    shards.ForEachShard([&](ShardId, const Shard& shard) { total += (shard.store.stats().*field).Get(); });
    return total > 0 ? static_cast<uint64_t>(total) : 0;
  };
  const std::pair<std::string_view, Counter ItemStoreStats::*> kCommands[] = {
      {"cmd_get", &ItemStoreStats::cmd_get},
      {"cmd_set", &ItemStoreStats::cmd_set},
  };
  for (const auto& [name, field] : kCommands) figures.push_back({name, sum(field), true});
  figures.push_back({"cmd_flush", cmd_flush, true});
  const std::pair<std::string_view, Counter ItemStoreStats::*> kCounters[] = {
      {"cmd_touch", &ItemStoreStats::cmd_touch},
      {"get_hits", &ItemStoreStats::get_hits},
      {"get_misses", &ItemStoreStats::get_misses},
      {"get_expired", &ItemStoreStats::get_expired},
      {"delete_misses", &ItemStoreStats::delete_misses},
      {"delete_hits", &ItemStoreStats::delete_hits},
      {"incr_misses", &ItemStoreStats::incr_misses},
      {"incr_hits", &ItemStoreStats::incr_hits},
      {"decr_misses", &ItemStoreStats::decr_misses},
      {"decr_hits", &ItemStoreStats::decr_hits},
      {"cas_misses", &ItemStoreStats::cas_misses},
      {"cas_hits", &ItemStoreStats::cas_hits},
      {"cas_badval", &ItemStoreStats::cas_badval},
      {"touch_hits", &ItemStoreStats::touch_hits},
      {"touch_misses", &ItemStoreStats::touch_misses},
  };
  for (const auto& [name, field] : kCounters) figures.push_back({name, sum(field), true});
  figures.push_back({"store_too_large", sum(&ItemStoreStats::store_too_large) + too_large, true});
  figures.push_back({"store_no_memory", sum(&ItemStoreStats::store_no_memory), true});
  figures.push_back({"bytes", level(&ItemStoreStats::bytes), false});
  figures.push_back({"curr_items", level(&ItemStoreStats::curr_items), false});
  const std::pair<std::string_view, Counter ItemStoreStats::*> kItems[] = {
      {"total_items", &ItemStoreStats::total_items},
      {"expired_unfetched", &ItemStoreStats::expired_unfetched},
      {"evicted_unfetched", &ItemStoreStats::evicted_unfetched},
      {"evictions", &ItemStoreStats::evictions},
      {"reclaimed", &ItemStoreStats::reclaimed},
  };
  for (const auto& [name, field] : kItems) figures.push_back({name, sum(field), true});
  return figures;
}

void StatsBaseline::Reset(const std::vector<StatFigure>& now) {
  percore::MutexLock lock(mu_);
  baseline_ = now;
}

uint64_t StatsBaseline::Since(const StatFigure& figure) const {
  if (!figure.counter) return figure.value;
  percore::MutexLock lock(mu_);
  for (const StatFigure& b : baseline_) {
    if (b.name == figure.name) return figure.value >= b.value ? figure.value - b.value : 0;
  }
  return figure.value;
}

void AppendStat(std::string_view name, std::string_view value, std::string* out) {
  out->append("STAT ");
  out->append(name.data(), name.size());
  out->push_back(' ');
  out->append(value.data(), value.size());
  out->append("\r\n");
}

void AppendStat(std::string_view name, uint64_t value, std::string* out) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
  AppendStat(name, std::string_view(digits, static_cast<size_t>(end - digits)), out);
}

}  // namespace percore::memcache
