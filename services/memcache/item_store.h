#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "core/counter.h"
#include "services/memcache/item.h"
#include "services/memcache/key_hash.h"

namespace percore::memcache {

// Relative expiry times up to this many seconds (30 days) count from now; larger ones are
// absolute Unix times (protocol.txt, "Expiration times").
inline constexpr int64_t kMaxRelativeExptime = 60 * 60 * 24 * 30;

struct ItemStoreOptions {
  size_t memory_limit = size_t{64} << 20;  // sum of ItemFootprint over stored items
  size_t max_item_size = size_t{1} << 20;  // largest ItemFootprint accepted
  // CAS values are cas_start, cas_start + cas_step, ...: shards of one cache use distinct
  // starts and the shard count as step, so a CAS value is unique across the whole cache.
  uint64_t cas_start = 1;
  uint64_t cas_step = 1;
  // Unix time in seconds. Empty: the real-time clock. Tests inject their own.
  std::function<int64_t()> clock;
};

// Figures one store counts. Written only by the store's thread; readable from any thread
// (single-writer Counter/Gauge), which is how `stats` sums shards without visiting them.
struct ItemStoreStats {
  Counter cmd_get;         // keys looked up by get/gets/gat/gats
  Counter get_hits;
  Counter get_misses;
  Counter get_expired;     // misses because the item had expired
  Counter cmd_set;         // storage commands that reached the store
  Counter cmd_touch;       // touch and gat/gats keys
  Counter touch_hits;
  Counter touch_misses;
  Counter delete_hits;
  Counter delete_misses;
  Counter incr_hits;
  Counter incr_misses;
  Counter decr_hits;
  Counter decr_misses;
  Counter cas_hits;
  Counter cas_misses;
  Counter cas_badval;
  Counter total_items;     // successful stores
  Counter evictions;       // live items removed to make room
  Counter evicted_unfetched;
  Counter reclaimed;       // expired items removed to make room or when found
  Counter expired_unfetched;
  Counter store_too_large;
  Counter store_no_memory;
  Gauge curr_items;
  Gauge bytes;
};

enum class StoreMode : uint8_t { kSet, kAdd, kReplace, kAppend, kPrepend, kCas };
enum class StoreResult : uint8_t { kStored, kNotStored, kExists, kNotFound, kTooLarge, kNoMemory };
enum class DeltaResult : uint8_t { kOk, kNotFound, kNonNumeric, kNoMemory };

// A memcached-semantics cache: hash index, one LRU list, a memory limit enforced by evicting
// from the LRU tail, lazy expiry, delayed flush. Single-threaded: one shard of the cache,
// touched only by the thread that owns it. Every operation reads the clock once.
class ItemStore {
 public:
  explicit ItemStore(ItemStoreOptions options = {});
  ~ItemStore();
  ItemStore(const ItemStore&) = delete;
  ItemStore& operator=(const ItemStore&) = delete;

  // Stores `item` (its key, flags and value are set; expiry and CAS are assigned here) by the
  // rules of `mode`. `exptime` follows the protocol: 0 never, negative already expired,
  // up to kMaxRelativeExptime relative, beyond that absolute. `cas_unique` is for kCas only.
  // Append/prepend keep the existing item's flags and expiry and ignore the new ones.
  StoreResult Store(StoreMode mode, ItemPtr item, int64_t exptime, uint64_t cas_unique = 0);

  // The live item for `key`, moved to the LRU head, or null. The pointer stays valid until
  // the next call that can modify the store. `touch` also sets a new expiry (gat/gats).
  const Item* Get(std::string_view key);
  const Item* GetAndTouch(std::string_view key, int64_t exptime);

  bool Touch(std::string_view key, int64_t exptime);
  bool Delete(std::string_view key);
  // Removes `key` without counting a delete (a failed oversized set drops the old value).
  void Unlink(std::string_view key);

  // incr/decr: the value must be a decimal number below 2^64 (memcached's rule: optional
  // leading spaces, trailing spaces allowed). incr wraps modulo 2^64; decr stops at 0.
  // On kOk, `*result` is the new value, which replaces the old one with a new CAS.
  DeltaResult Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result);

  // Invalidates every item now (delay_s <= 0) or at now + delay_s (relative/absolute as for
  // exptime). A later flush replaces a pending one.
  void FlushAll(int64_t delay_s);

  size_t bytes() const { return bytes_; }
  size_t item_count() const { return index_.size(); }
  const ItemStoreOptions& options() const { return options_; }
  const ItemStoreStats& stats() const { return stats_; }
  ItemStoreStats& mutable_stats() { return stats_; }
  // Keys from most to least recently used (tests and debugging).
  template <typename Fn>
  void ForEachByRecency(Fn&& fn) const {
    for (const Item* it = lru_head_; it != nullptr; it = it->lru_next) fn(*it);
  }

 private:
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return KeyHasher::Hash(key); }
    size_t operator()(const Item* item) const { return (*this)(item->key()); }
  };
  struct KeyEq {
    using is_transparent = void;
    static std::string_view KeyOf(std::string_view key) { return key; }
    static std::string_view KeyOf(const Item* item) { return item->key(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const { return KeyOf(a) == KeyOf(b); }
  };

  int64_t Now();
  // Absolute expiry for a protocol exptime, relative to `now`.
  static int64_t ExpiryFor(int64_t exptime, int64_t now);
  // Finds the live item for `key`, removing it if it has expired (counted as reclaimed).
  Item* FindLive(std::string_view key, int64_t now, bool* expired = nullptr);
  // Evicts from the tail until `footprint` more bytes fit; false if they never can.
  bool MakeRoom(size_t footprint, int64_t now);
  void Link(ItemPtr item);
  ItemPtr Remove(Item* item);
  void Bump(Item* item);
  void Clear();
  uint64_t NextCas();

  ItemStoreOptions options_;
  absl::flat_hash_set<Item*, KeyHash, KeyEq> index_;
  Item* lru_head_ = nullptr;  // most recently used
  Item* lru_tail_ = nullptr;
  size_t bytes_ = 0;
  uint64_t next_cas_;
  int64_t flush_at_s_ = 0;  // pending delayed flush, 0 = none
  ItemStoreStats stats_;
};

}  // namespace percore::memcache
