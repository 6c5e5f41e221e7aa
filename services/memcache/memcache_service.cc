#include "services/memcache/memcache_service.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/memcache/memcache_handler.h"
#include "services/memcache/memcache_stats.h"

namespace percore {
namespace {

memcache::ItemStoreOptions StoreOptionsOf(const MemcacheOptions& options) {
  memcache::ItemStoreOptions store;
  store.memory_limit = options.memory_limit;
  store.max_item_size = options.max_item_size;
  store.clock = options.clock;
  return store;
}

memcache::RequestLimits RequestLimitsOf(const MemcacheOptions& options) {
  memcache::RequestLimits limits;
  limits.parser.max_item_size = options.max_item_size;
  limits.parser.max_line = options.max_line;
  limits.parser.max_retrieval_line = options.max_retrieval_line;
  limits.max_inflight = static_cast<size_t>(std::max(options.max_inflight, 1));
  // The largest item, up to 1/64 of the bound on held bytes, so that 64 remote keys may be
  // away at once whatever the item size.
  limits.remote_key_reserve =
      std::min(options.max_item_size, memcache::MemcacheHandler::kMaxHeldBytes / 64);
  return limits;
}

std::string Seconds(const timeval& tv) {
  char text[32];
  std::snprintf(text, sizeof(text), "%ld.%06ld", static_cast<long>(tv.tv_sec),
                static_cast<long>(tv.tv_usec));
  return text;
}

}  // namespace

MemcacheService::MemcacheService(MemcacheOptions options)
    : options_(std::move(options)),
      baseline_(std::make_unique<memcache::StatsBaseline>()),
      started_s_(options_.clock ? options_.clock() : time(nullptr)),
      shards_(*this, [this, whole = StoreOptionsOf(options_),
                      limits = RequestLimitsOf(options_)](const ShardInfo& info) {
        return std::make_unique<memcache::Shard>(whole, info, *this, limits);
      }) {}

MemcacheService::~MemcacheService() = default;

absl::Status MemcacheService::CheckLimits(const ConnectionOptions& connection, int loops) const {
  const size_t shard_memory = options_.memory_limit / static_cast<size_t>(std::max(loops, 1));
  if (options_.max_item_size > shard_memory) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the largest item (", options_.max_item_size, " bytes) exceeds one shard's memory (", shard_memory,
        " bytes: the memory limit split over ", loops, " loops), so it could never be stored; "
        "raise the memory limit or lower the item size"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Handler> MemcacheService::NewHandler(Connection& conn) {
  memcache::Shard& local = shards_.local();
  local.counters.total_connections.Increment();
  local.counters.curr_connections.Add(1);
  return std::make_unique<memcache::MemcacheHandler>(local);
}

bool MemcacheService::AppendStats(std::string_view args, std::string* out) {
  using memcache::AppendStat;
  const int64_t now = options_.clock ? options_.clock() : time(nullptr);
  if (args.empty()) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    AppendStat("pid", static_cast<uint64_t>(getpid()), out);
    AppendStat("uptime", static_cast<uint64_t>(now > started_s_ ? now - started_s_ : 0), out);
    AppendStat("time", static_cast<uint64_t>(now), out);
    AppendStat("version", options_.version, out);
    AppendStat("pointer_size", sizeof(void*) * 8, out);
    AppendStat("rusage_user", Seconds(usage.ru_utime), out);
    AppendStat("rusage_system", Seconds(usage.ru_stime), out);
    for (const memcache::StatFigure& figure : memcache::CollectStats(shards_)) {
      AppendStat(figure.name, baseline_->Since(figure), out);
    }
    AppendStat("limit_maxbytes", options_.memory_limit, out);
    AppendStat("threads", shard_count(), out);
    AppendStat("shards", shard_count(), out);
  } else if (args == "settings") {
    AppendStat("maxbytes", options_.memory_limit, out);
    AppendStat("item_size_max", options_.max_item_size, out);
    AppendStat("evictions", "on", out);
    AppendStat("cas_enabled", "yes", out);
    AppendStat("num_threads", shard_count(), out);
    AppendStat("shards", shard_count(), out);
    AppendStat("max_line", options_.max_line, out);
    AppendStat("max_retrieval_line", options_.max_retrieval_line, out);
  } else if (args == "reset") {
    baseline_->Reset(memcache::CollectStats(shards_));
    out->append("RESET\r\n");
    return true;
  } else if (args == "items" || args == "slabs") {
    // No slab allocator: there are no per-class figures to list.
  } else {
    return false;
  }
  out->append("END\r\n");
  return true;
}

std::shared_ptr<Service> NewMemcacheService(MemcacheOptions options) {
  return std::make_shared<MemcacheService>(std::move(options));
}

}  // namespace percore
