#pragma once

#include <cstdint>
#include <mutex>

#include "core/mutex.h"
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "reactor/sharded.h"
#include "services/memcache/memcache_shard.h"

namespace percore::memcache {

// One "STAT <name> <value>" figure. Counters can be reset by `stats reset`; levels (items,
// bytes, connections) cannot.
struct StatFigure {
  std::string_view name;  // a string literal
  uint64_t value;
  bool counter;
};

// Sums every shard's store figures and loop counters, in memcached's order. Reads
// single-writer counters from any thread (Sharded::ForEachShard): each figure is exact, the
// set is not a snapshot.
std::vector<StatFigure> CollectStats(const Sharded<Shard>& shards);

// `stats reset` without touching counters owned by other threads: remembers their values
// and reports what was counted since. Thread-safe.
class StatsBaseline {
 public:
  void Reset(const std::vector<StatFigure>& now);
  // The figure's value since the last Reset (levels unchanged).
  uint64_t Since(const StatFigure& figure) const;

 private:
  mutable percore::Mutex mu_;
  std::vector<StatFigure> baseline_ ABSL_GUARDED_BY(mu_);
};

// Appends "STAT name value\r\n".
void AppendStat(std::string_view name, std::string_view value, std::string* out);
void AppendStat(std::string_view name, uint64_t value, std::string* out);

}  // namespace percore::memcache
