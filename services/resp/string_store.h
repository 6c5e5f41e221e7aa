#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/counter.h"
#include "services/memcache/key_hash.h"

namespace percore {

// The kind of value a key holds. Only strings are created by the commands served today; the
// tag exists so that type rules (WRONGTYPE, TYPE) are enforced the way Redis does once other
// kinds arrive, and tests can plant a key of another kind with CreateOfType.
enum class ValueType : uint8_t { kString, kList, kSet, kZSet, kHash };
// Redis's name for the type: "string", "list", "set", "zset", "hash".
std::string_view ValueTypeName(ValueType type);

enum class StoreStatus : uint8_t {
  kOk,
  kNotFound,
  kWrongType,   // the key holds another kind of value
  kNotInteger,  // the stored string is not a Redis integer
  kOverflow,    // the arithmetic would leave int64
  kTooLarge,    // the string would pass the size limit
};

struct SetOptions {
  enum class Condition : uint8_t { kAlways, kIfAbsent, kIfPresent };  // -, NX, XX
  Condition condition = Condition::kAlways;
  // Absolute expiry on the store's clock, in ms; 0: the key gets no TTL.
  int64_t expire_at_ms = 0;
  // Keep the key's current TTL instead (KEEPTTL).
  bool keep_ttl = false;
  // When set (SET ... GET, GETSET), receives the previous string value; the key must then not
  // hold another kind of value.
  std::string* old_value = nullptr;
  // With old_value: a previous value of at least share_old_at_least bytes is handed over by
  // reference in *old_shared instead of being copied into *old_value (see GetShared).
  std::shared_ptr<const std::string>* old_shared = nullptr;
  size_t share_old_at_least = std::numeric_limits<size_t>::max();
};

// A string value handed out of the store for a reply: `bytes` stay valid and unchanged for as
// long as `owner` lives.
struct SharedValue {
  std::string_view bytes;
  std::shared_ptr<const void> owner;
};

struct SetResult {
  bool applied = false;     // the value was written (NX/XX satisfied)
  bool had_old = false;     // a previous string went to old_value (or old_shared)
  bool wrong_type = false;  // old_value was asked for and the key holds a non-string
};

// EXPIRE's conditions; any combination, each checked in turn as Redis does.
struct ExpireCondition {
  bool if_no_ttl = false;   // NX
  bool if_has_ttl = false;  // XX
  bool if_greater = false;  // GT: a key without TTL counts as never expiring, so it fails
  bool if_less = false;     // LT: a key without TTL counts as never expiring, so it passes
};

// One shard of the keyspace: a hash table of keys, each with a typed value and an optional
// expiry time. Expired keys disappear lazily (any access finds them gone) and actively
// (ExpireSome samples the keys that carry a TTL, as Redis's cycle does).
//
// Values a reply holds on to (GetShared) are shared, not copied: the entry's string moves into a
// shared_ptr (no byte is copied) and the reply keeps a reference, so the value can be sent from
// where it is, on this loop or another, however long sending takes. The store never again writes
// bytes it handed out that way: SET, INCR and the like replace the string (the reply keeps the
// old one alive), and APPEND writes only past the bytes handed out, or into a new buffer when
// the value has to grow. Small values are not shared unless asked for, so GET and SET of them
// cost what they did.
//
// Threading: owned by one thread (a loop); every method but the two counts is called only
// there. The references handed out may be released on any thread. The clock is injected so
// tests control time; it returns milliseconds, > 0, never decreasing, and is read only when an
// expiry matters.
class StringStore {
 public:
  using Clock = std::function<int64_t()>;
  // CLOCK_MONOTONIC in milliseconds.
  static Clock MonotonicClockMs();

  explicit StringStore(Clock clock = MonotonicClockMs());
  StringStore(const StringStore&) = delete;
  StringStore& operator=(const StringStore&) = delete;

  int64_t NowMs() const { return clock_(); }

  // The string at `key`: kOk (with *value viewing it until the next write), kNotFound, or
  // kWrongType.
  StoreStatus Get(std::string_view key, std::string_view* value);
  // Get for a reply that may hold the value past the next write, even on another thread: a
  // value of at least `share_at_least` bytes comes with *owner set, and *value stays valid and
  // unchanged for as long as *owner lives. A shorter value leaves *owner empty, and *value valid
  // until the next write, as Get does.
  StoreStatus GetShared(std::string_view key, size_t share_at_least, std::string_view* value,
                        std::shared_ptr<const void>* owner);
  // The same, deciding after the lookup: on kOk, calls `fn(value, share)` where `value` is the
  // string (valid until the next write) and `share()` returns it as a SharedValue, as
  // GetShared hands it out. Sharing may move the bytes (a short string lives inside its
  // object), so after share() the caller uses the SharedValue's bytes, not `value`. A reply
  // calls share() only for a value it holds on to, so a short value costs what Get does.
  template <typename Fn>
  StoreStatus ReadForReply(std::string_view key, Fn&& fn) {
    auto it = FindLive(key);
    if (it == map_.end()) return StoreStatus::kNotFound;
    Entry& entry = it->second;
    if (entry.type != ValueType::kString) return StoreStatus::kWrongType;
    fn(BytesOf(entry), [&entry] {
      Share(entry);
      return SharedValue{*entry.shared, entry.shared};
    });
    return StoreStatus::kOk;
  }
  // Whether `key` exists; its type in *type when it does.
  bool Type(std::string_view key, ValueType* type);
  bool Exists(std::string_view key);
  // The remaining time to live in ms (>= 0), -1 for a key without TTL, -2 for no key.
  int64_t TtlMs(std::string_view key);

  SetResult Set(std::string_view key, std::string_view value, const SetOptions& options);
  // Adds `delta` to the integer stored at `key` (a missing key counts as 0), keeping its TTL.
  // kOk with the new value in *result, or kWrongType, kNotInteger, kOverflow.
  StoreStatus IncrBy(std::string_view key, int64_t delta, int64_t* result);
  // Appends to the string at `key` (creating it), keeping its TTL. kOk with the new length,
  // kWrongType, or kTooLarge when the result would pass `max_size` bytes.
  StoreStatus Append(std::string_view key, std::string_view suffix, size_t max_size,
                     size_t* new_size);
  // kOk with the length (0 for no key), or kWrongType.
  StoreStatus StrLen(std::string_view key, size_t* length);
  bool Delete(std::string_view key);
  // Sets the expiry of an existing key to `at_ms` if `condition` holds; a time not in the
  // future deletes the key instead. Returns whether anything was changed (Redis's 1 / 0).
  bool Expire(std::string_view key, int64_t at_ms, ExpireCondition condition = {});
  // Drops the key's TTL; returns whether it had one.
  bool Persist(std::string_view key);
  // Removes every key.
  void Clear();
  // Replaces `key` with an empty value of `type` and no TTL.
  void CreateOfType(std::string_view key, ValueType type);

  // Active expiry: examines up to `sample` keys that carry a TTL, removing the expired ones,
  // and repeats (at most `max_rounds` times) while more than a quarter of a round had expired.
  // Returns how many keys were removed.
  size_t ExpireSome(int sample, int max_rounds);

  // Thread-safe: counts readable from any thread (INFO, DBSIZE), exact on the owning thread.
  size_t key_count() const { return static_cast<size_t>(keys_.Get()); }
  size_t expiring_count() const { return static_cast<size_t>(expiring_gauge_.Get()); }

 private:
  struct Entry {
    // The bytes, unless `shared` is set: then they live there and `value` is empty.
    std::string value;
    // Set once a reply was given a reference to the value (GetShared). Bytes before size() may
    // be held by replies (of this loop or others) and are never written while it is set.
    std::shared_ptr<std::string> shared;
    int64_t expire_at_ms = 0;  // 0: no TTL
    uint32_t expiry_slot = kNoSlot;  // index in expiring_ when expire_at_ms != 0
    ValueType type = ValueType::kString;
  };
  // Looked up by std::string_view (the request's bytes) without making a string.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return KeyHasher::Hash(key); }
  };
  struct KeyEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  using Map = absl::flat_hash_map<std::string, Entry, KeyHash, KeyEq>;
  static constexpr uint32_t kNoSlot = ~uint32_t{0};

  static std::string_view BytesOf(const Entry& entry) {
    return entry.shared != nullptr ? std::string_view(*entry.shared)
                                   : std::string_view(entry.value);
  }
  // Moves the entry's string into `shared` (no byte is copied) if it is not there yet.
  static void Share(Entry& entry);
  // Replaces the entry's bytes, letting go of a shared string (its holders keep it).
  static void Replace(Entry& entry, std::string_view bytes);

  // The live entry for `key`, erasing it first if it has expired.
  Map::iterator FindLive(std::string_view key);
  Map::iterator Insert(std::string_view key);
  void EraseAt(Map::iterator it);
  void SetExpiry(Map::iterator it, int64_t at_ms);
  void RemoveExpirySlot(uint32_t slot);
  void UpdateCounts();

  Clock clock_;
  Map map_;
  // Keys that carry a TTL, for sampling; each such entry knows its index here, so removal is a
  // swap with the last element.
  std::vector<std::string> expiring_;
  size_t sample_cursor_ = 0;
  Gauge keys_;
  Gauge expiring_gauge_;
};

}  // namespace percore
