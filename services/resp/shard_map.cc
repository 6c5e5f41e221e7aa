#include "services/resp/shard_map.h"

#include <functional>

namespace percore {

int ShardTable::ShardOf(std::string_view key) const {
  if (shards.size() == 1) return 0;
  return static_cast<int>(std::hash<std::string_view>{}(key) % shards.size());
}

int ShardTable::ShardOfLoop(const EventLoop* loop) const {
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards[i].loop == loop) return static_cast<int>(i);
  }
  return -1;
}

StringStore* ShardMap::AddLoop(EventLoop& loop) {
  percore::MutexLock lock(mu_);
  if (table_ != nullptr) return nullptr;
  stores_.push_back(std::make_unique<StringStore>());
  members_.push_back({&loop, stores_.back().get()});
  return stores_.back().get();
}

const ShardTable& ShardMap::Freeze() {
  percore::MutexLock lock(mu_);
  if (table_ == nullptr) {
    auto table = std::make_unique<ShardTable>();
    table->shards = members_;
    for (const ShardTable::Shard& shard : members_) table->stores.push_back(shard.store);
    table->view = view_;
    table->view.shards = table->stores;
    table_ = std::move(table);
    frozen_.store(table_.get(), std::memory_order_release);
  }
  return *table_;
}

}  // namespace percore
