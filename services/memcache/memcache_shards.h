#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "core/mutex.h"
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/counter.h"
#include "services/memcache/item_store.h"

namespace percore {
class EventLoop;
}  // namespace percore

namespace percore::memcache {

// One partition of the cache. Owned by one loop: only `owner`'s thread touches `store`; other
// loops reach it by posting work to `owner` (EventLoop::Post).
struct Shard {
  Shard(EventLoop* owner_loop, ItemStoreOptions options)
      : owner(owner_loop), store(std::move(options)) {}
  EventLoop* const owner;
  ItemStore store;
};

// What a loop counts for the service beyond its shard's store. Single writer: the loop.
struct LoopCounters {
  Gauge curr_connections;
  Counter total_connections;
  Counter cmd_flush;
  Counter store_too_large;  // oversized data blocks refused before reaching a store
};

// The map from keys to shards, and from loops to their counters.
//
// Loops register from Service::OnLoopStart. The first connection seals the directory: it
// creates one shard per loop registered by then (memory limit split evenly, CAS values
// interleaved so they stay unique across shards). After that the shard set never changes and
// is read without any lock; a loop that registers later owns no shard and sends every key
// elsewhere. The mutex guards only registration, sealing and the stats walk — never a request.
class ShardDirectory {
 public:
  // `store_options` is the template for every shard: memory_limit is the total to split.
  explicit ShardDirectory(ItemStoreOptions store_options);
  ~ShardDirectory();
  ShardDirectory(const ShardDirectory&) = delete;
  ShardDirectory& operator=(const ShardDirectory&) = delete;

  // On `loop`'s thread. Returns the loop's counters (stable for the directory's life).
  LoopCounters& RegisterLoop(EventLoop& loop);
  // Thread-safe. The counters of a registered loop, or null.
  LoopCounters* CountersOf(const EventLoop& loop);

  // Thread-safe and idempotent: fixes the shard set. Call before using the accessors below.
  void Seal();

  // Thread-safe at any time: 0 until sealed.
  size_t sealed_shard_count() const { return published_.load(std::memory_order_acquire); }

  // After Seal, from any thread, lock-free.
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) const { return *shards_[i]; }
  size_t ShardIndexFor(std::string_view key) const;
  Shard& ShardFor(std::string_view key) const { return *shards_[ShardIndexFor(key)]; }
  // The shard `loop` owns, or null.
  Shard* OwnedBy(const EventLoop& loop) const;

  // Thread-safe. Visits every registered loop's counters.
  template <typename Fn>
  void ForEachLoop(Fn&& fn) {
    percore::MutexLock lock(mu_);
    for (const Registration& r : loops_) fn(*r.counters);
  }
  int registered_loops();

 private:
  struct Registration {
    EventLoop* loop;
    std::unique_ptr<LoopCounters> counters;
  };

  const ItemStoreOptions store_options_;
  percore::Mutex mu_;
  std::vector<Registration> loops_ ABSL_GUARDED_BY(mu_);
  std::once_flag sealed_;
  // Written once inside Seal's call_once, read-only afterwards.
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> published_{0};
};

}  // namespace percore::memcache
