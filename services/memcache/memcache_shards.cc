#include "services/memcache/memcache_shards.h"

#include <algorithm>

#include "reactor/event_loop.h"

namespace percore::memcache {
namespace {

// FNV-1a: independent of the hash the stores' tables use, so a shard's keys still spread over
// its whole table.
uint64_t KeyHash(std::string_view key) {
  uint64_t h = 14695981039346656037ull;
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

ShardDirectory::ShardDirectory(ItemStoreOptions store_options)
    : store_options_(std::move(store_options)) {}

ShardDirectory::~ShardDirectory() = default;

LoopCounters& ShardDirectory::RegisterLoop(EventLoop& loop) {
  percore::MutexLock lock(mu_);
  for (const Registration& r : loops_) {
    if (r.loop == &loop) return *r.counters;
  }
  loops_.push_back({&loop, std::make_unique<LoopCounters>()});
  return *loops_.back().counters;
}

LoopCounters* ShardDirectory::CountersOf(const EventLoop& loop) {
  percore::MutexLock lock(mu_);
  for (const Registration& r : loops_) {
    if (r.loop == &loop) return r.counters.get();
  }
  return nullptr;
}

int ShardDirectory::registered_loops() {
  percore::MutexLock lock(mu_);
  return static_cast<int>(loops_.size());
}

void ShardDirectory::Seal() {
  std::call_once(sealed_, [this] {
    std::vector<EventLoop*> owners;
    {
      percore::MutexLock lock(mu_);
      for (const Registration& r : loops_) owners.push_back(r.loop);
    }
    std::sort(owners.begin(), owners.end(),
              [](EventLoop* a, EventLoop* b) { return a->index() < b->index(); });
    const size_t n = std::max<size_t>(owners.size(), 1);
    for (size_t i = 0; i < owners.size(); ++i) {
      ItemStoreOptions options = store_options_;
      options.memory_limit = store_options_.memory_limit / n;
      options.cas_start = i + 1;
      options.cas_step = n;
      shards_.push_back(std::make_unique<Shard>(owners[i], std::move(options)));
    }
    published_.store(shards_.size(), std::memory_order_release);
  });
}

size_t ShardDirectory::ShardIndexFor(std::string_view key) const {
  if (shards_.size() == 1) return 0;
  return static_cast<size_t>(KeyHash(key) % shards_.size());
}

Shard* ShardDirectory::OwnedBy(const EventLoop& loop) const {
  for (const auto& shard : shards_) {
    if (shard->owner == &loop) return shard.get();
  }
  return nullptr;
}

}  // namespace percore::memcache
