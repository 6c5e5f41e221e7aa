#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>

namespace percore::memcache {

// Longest key the protocol allows (memcached's KEY_MAX_LENGTH).
inline constexpr size_t kMaxKeySize = 250;

// Expiry times are absolute Unix seconds; these two mark "never" and "already gone".
inline constexpr int64_t kNeverExpires = std::numeric_limits<int64_t>::max();
inline constexpr int64_t kAlreadyExpired = std::numeric_limits<int64_t>::min();

// One cached value: a fixed header followed, in the same allocation, by the key and then the
// value with "\r\n" after it, so a reply can send value and terminator with one append.
// The LRU links belong to the ItemStore that holds the item; an item in flight between loops
// (built on a connection's loop, stored on the owning shard's loop) belongs to nobody's list.
//
// An item is reference-counted: the store holds one reference, and a reply that names the item
// holds another (ShareItem) until its bytes are sent, so a reply is sent from the item itself,
// on any loop, even after the store dropped or replaced it. Key, flags, CAS and value of an
// item that others reference never change (the store replaces such an item instead of
// rewriting it); the LRU links, expiry and `fetched` are the store's alone.
struct Item {
  Item* lru_prev = nullptr;
  Item* lru_next = nullptr;
  int64_t expires_s = kNeverExpires;
  uint64_t cas = 0;
  uint32_t flags = 0;
  uint32_t value_size = 0;
  std::atomic<uint32_t> refs{1};
  uint8_t key_size = 0;
  bool fetched = false;  // read at least once since stored (for the *_unfetched stats)

  char* key_data() { return reinterpret_cast<char*>(this + 1); }
  const char* key_data() const { return reinterpret_cast<const char*>(this + 1); }
  char* value_data() { return key_data() + key_size; }
  const char* value_data() const { return key_data() + key_size; }

  std::string_view key() const { return {key_data(), key_size}; }
  std::string_view value() const { return {value_data(), value_size}; }
  // The value followed by "\r\n": what a retrieval reply sends after the VALUE line.
  std::string_view value_with_crlf() const { return {value_data(), size_t{value_size} + 2}; }
};

// Drops one reference; the last one frees the item (on whichever thread drops it).
struct ItemDeleter {
  void operator()(Item* item) const;
};
// One reference to an item.
using ItemPtr = std::unique_ptr<Item, ItemDeleter>;

// A new reference to `item`. Taken on the thread of the store that holds the item, or by a
// thread that already holds a reference (so only the store's thread turns an item it alone
// holds into a shared one).
ItemPtr ShareItem(const Item& item);
// Whether anyone but the store references `item` (the store's thread only: nobody else can
// add a reference, so a false answer stays true until the store shares the item again).
inline bool IsShared(const Item& item) { return item.refs.load(std::memory_order_acquire) > 1; }

// What an item costs against the memory limit: header, key, value, terminator and an estimate
// of the hash-table slot that indexes it. The item size limit and the memory limit both use it.
size_t ItemFootprint(size_t key_size, size_t value_size);

// Allocates an item for `key` (at most kMaxKeySize bytes) with an uninitialized value of
// `value_size` bytes; the "\r\n" after it is written. The caller fills value_data().
ItemPtr AllocateItem(std::string_view key, uint32_t flags, size_t value_size);

// Allocates an item holding a copy of `value`.
ItemPtr MakeItem(std::string_view key, uint32_t flags, std::string_view value);

}  // namespace percore::memcache
