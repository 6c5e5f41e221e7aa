#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/counter.h"

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
};

struct SetResult {
  bool applied = false;     // the value was written (NX/XX satisfied)
  bool had_old = false;     // a previous string was copied to old_value
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
// Threading: owned by one thread (a loop); every method but the two counts is called only
// there. The clock is injected so tests control time; it returns milliseconds, > 0, never
// decreasing, and is read only when an expiry matters.
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
    std::string value;
    int64_t expire_at_ms = 0;  // 0: no TTL
    uint32_t expiry_slot = kNoSlot;  // index in expiring_ when expire_at_ms != 0
    ValueType type = ValueType::kString;
  };
  using Map = absl::flat_hash_map<std::string, Entry>;
  static constexpr uint32_t kNoSlot = ~uint32_t{0};

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
