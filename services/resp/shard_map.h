#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "core/mutex.h"
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "reactor/event_loop.h"
#include "services/resp/commands.h"
#include "services/resp/string_store.h"

namespace percore {

// Which loop owns which part of the keyspace. Immutable once built.
struct ShardTable {
  struct Shard {
    EventLoop* loop = nullptr;
    StringStore* store = nullptr;  // touched only on `loop`'s thread
  };
  std::vector<Shard> shards;
  std::vector<StringStore*> stores;  // the same stores, for ServerView
  ServerView view;

  // The shard that owns `key`. The hash is not the store's own (absl's), so keys of one shard
  // still spread evenly over that store's table.
  int ShardOf(std::string_view key) const;
  // The index of the shard `loop` owns, or -1.
  int ShardOfLoop(const EventLoop* loop) const;
};

// Builds the ShardTable: every loop that starts before the first request that needs the table
// gets a shard (a StringStore of its own); the first such request freezes the membership.
// A loop that starts later owns no shard and sends all its keyed commands to other loops,
// which is correct, only less balanced. The data path never takes the mutex: it reads the
// frozen table through an atomic pointer.
class ShardMap {
 public:
  // `view` is copied into the table with its shard list filled in.
  explicit ShardMap(const ServerView& view) : view_(view) {}
  ShardMap(const ShardMap&) = delete;
  ShardMap& operator=(const ShardMap&) = delete;

  // Thread-safe; called on `loop`'s thread from Service::OnLoopStart. Returns the store the
  // loop owns (valid for the map's lifetime), or null when membership is already frozen.
  StringStore* AddLoop(EventLoop& loop);

  // Thread-safe. The table; the first call freezes the membership.
  const ShardTable& Table() {
    const ShardTable* table = frozen_.load(std::memory_order_acquire);
    return table != nullptr ? *table : Freeze();
  }

 private:
  const ShardTable& Freeze();

  const ServerView view_;
  percore::Mutex mu_;
  std::vector<std::unique_ptr<StringStore>> stores_ ABSL_GUARDED_BY(mu_);
  std::vector<ShardTable::Shard> members_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ShardTable> table_ ABSL_GUARDED_BY(mu_);
  std::atomic<const ShardTable*> frozen_{nullptr};
};

}  // namespace percore
