#include "services/resp/string_store.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "absl/strings/string_view.h"
#include "core/clock.h"
#include "services/resp/resp_numbers.h"

namespace percore {
namespace {

}  // namespace

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kString: return "string";
    case ValueType::kList: return "list";
    case ValueType::kSet: return "set";
    case ValueType::kZSet: return "zset";
    case ValueType::kHash: return "hash";
  }
  return "none";
}

StringStore::Clock StringStore::MonotonicClockMs() {
  return [] { return MonotonicNanos() / 1'000'000; };
}

StringStore::StringStore(Clock clock) : clock_(std::move(clock)) {}

StringStore::Map::iterator StringStore::FindLive(std::string_view key) {
  auto it = map_.find(key);
  if (it == map_.end()) return it;
  if (it->second.expire_at_ms != 0 && NowMs() >= it->second.expire_at_ms) {
    EraseAt(it);
    return map_.end();
  }
  return it;
}

StringStore::Map::iterator StringStore::Insert(std::string_view key) {
  auto it = map_.emplace(std::string(key), Entry{}).first;
  UpdateCounts();
  return it;
}

void StringStore::EraseAt(Map::iterator it) {
  if (it->second.expiry_slot != kNoSlot) RemoveExpirySlot(it->second.expiry_slot);
  map_.erase(it);
  UpdateCounts();
}

void StringStore::SetExpiry(Map::iterator it, int64_t at_ms) {
  Entry& entry = it->second;
  if (at_ms == 0) {
    if (entry.expiry_slot != kNoSlot) {
      RemoveExpirySlot(entry.expiry_slot);
      entry.expiry_slot = kNoSlot;
    }
  } else if (entry.expiry_slot == kNoSlot) {
    entry.expiry_slot = static_cast<uint32_t>(expiring_.size());
    expiring_.push_back(it->first);
  }
  entry.expire_at_ms = at_ms;
  UpdateCounts();
}

void StringStore::RemoveExpirySlot(uint32_t slot) {
  const size_t last = expiring_.size() - 1;
  if (slot != last) {
    expiring_[slot] = std::move(expiring_[last]);
    map_.find(std::string_view(expiring_[slot]))->second.expiry_slot = slot;
  }
  expiring_.pop_back();
}

void StringStore::UpdateCounts() {
  keys_.Set(static_cast<int64_t>(map_.size()));
  expiring_gauge_.Set(static_cast<int64_t>(expiring_.size()));
}

void StringStore::Share(Entry& entry) {
  if (entry.shared != nullptr) return;
  entry.shared = std::make_shared<std::string>(std::move(entry.value));
  entry.value = std::string();
}

void StringStore::Replace(Entry& entry, std::string_view bytes) {
  if (entry.shared != nullptr) entry.shared.reset();
  entry.value.assign(bytes.data(), bytes.size());
}

StoreStatus StringStore::Get(std::string_view key, std::string_view* value) {
  auto it = FindLive(key);
  if (it == map_.end()) return StoreStatus::kNotFound;
  if (it->second.type != ValueType::kString) return StoreStatus::kWrongType;
  *value = BytesOf(it->second);
  return StoreStatus::kOk;
}

StoreStatus StringStore::GetShared(std::string_view key, size_t share_at_least,
                                   std::string_view* value, std::shared_ptr<const void>* owner) {
  return ReadForReply(key, [&](std::string_view bytes, auto share) {
    *value = bytes;
    if (bytes.size() < share_at_least) return;
    SharedValue shared = share();
    *value = shared.bytes;
    *owner = std::move(shared.owner);
  });
}

bool StringStore::Type(std::string_view key, ValueType* type) {
  auto it = FindLive(key);
  if (it == map_.end()) return false;
  *type = it->second.type;
  return true;
}

bool StringStore::Exists(std::string_view key) { return FindLive(key) != map_.end(); }

int64_t StringStore::TtlMs(std::string_view key) {
  auto it = FindLive(key);
  if (it == map_.end()) return -2;
  if (it->second.expire_at_ms == 0) return -1;
  return std::max<int64_t>(0, it->second.expire_at_ms - NowMs());
}

SetResult StringStore::Set(std::string_view key, std::string_view value,
                           const SetOptions& options) {
  SetResult result;
  auto it = FindLive(key);
  const bool found = it != map_.end();
  if (options.old_value != nullptr && found) {
    if (it->second.type != ValueType::kString) {
      result.wrong_type = true;
      return result;
    }
    Entry& old = it->second;
    if (options.old_shared != nullptr && BytesOf(old).size() >= options.share_old_at_least) {
      Share(old);
      *options.old_shared = old.shared;
    } else {
      options.old_value->assign(BytesOf(old));
    }
    result.had_old = true;
  }
  if ((options.condition == SetOptions::Condition::kIfAbsent && found) ||
      (options.condition == SetOptions::Condition::kIfPresent && !found)) {
    return result;
  }
  if (!found) it = Insert(key);
  Entry& entry = it->second;
  entry.type = ValueType::kString;
  Replace(entry, value);
  if (!options.keep_ttl) SetExpiry(it, options.expire_at_ms);
  result.applied = true;
  return result;
}

StoreStatus StringStore::IncrBy(std::string_view key, int64_t delta, int64_t* result) {
  auto it = FindLive(key);
  int64_t current = 0;
  if (it != map_.end()) {
    if (it->second.type != ValueType::kString) return StoreStatus::kWrongType;
    if (!ParseRedisInt64(BytesOf(it->second), &current)) return StoreStatus::kNotInteger;
  }
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if ((delta < 0 && current < 0 && delta < kMin - current) ||
      (delta > 0 && current > 0 && delta > kMax - current)) {
    return StoreStatus::kOverflow;
  }
  const int64_t next = current + delta;
  if (it == map_.end()) it = Insert(key);
  char digits[24];
  const char* end = std::to_chars(digits, digits + sizeof(digits), next).ptr;
  Replace(it->second, std::string_view(digits, static_cast<size_t>(end - digits)));
  *result = next;
  return StoreStatus::kOk;
}

StoreStatus StringStore::Append(std::string_view key, std::string_view suffix, size_t max_size,
                                size_t* new_size) {
  auto it = FindLive(key);
  if (it == map_.end()) {
    if (suffix.size() > max_size) return StoreStatus::kTooLarge;
    it = Insert(key);
  } else {
    if (it->second.type != ValueType::kString) return StoreStatus::kWrongType;
    if (BytesOf(it->second).size() + suffix.size() > max_size) return StoreStatus::kTooLarge;
  }
  Entry& entry = it->second;
  if (entry.shared == nullptr) {
    entry.value.append(suffix.data(), suffix.size());
    *new_size = entry.value.size();
    return StoreStatus::kOk;
  }
  std::string& shared = *entry.shared;
  if (shared.capacity() - shared.size() >= suffix.size()) {
    // Writes only past size(): the bytes replies hold are [0, size()) of this same buffer, and
    // stay as they are.
    shared.append(suffix.data(), suffix.size());
  } else {
    // Growing in place would move the bytes replies hold and free them under their feet: the
    // value moves to a new buffer instead (the copy growing costs anyway), and the replies keep
    // the old one alive for as long as they need it.
    std::string grown;
    grown.reserve(std::max(shared.size() + suffix.size(), 2 * shared.capacity()));
    grown.append(shared).append(suffix.data(), suffix.size());
    entry.shared.reset();
    entry.value = std::move(grown);
  }
  *new_size = BytesOf(entry).size();
  return StoreStatus::kOk;
}

StoreStatus StringStore::StrLen(std::string_view key, size_t* length) {
  auto it = FindLive(key);
  if (it == map_.end()) {
    *length = 0;
    return StoreStatus::kOk;
  }
  if (it->second.type != ValueType::kString) return StoreStatus::kWrongType;
  *length = BytesOf(it->second).size();
  return StoreStatus::kOk;
}

bool StringStore::Delete(std::string_view key) {
  auto it = FindLive(key);
  if (it == map_.end()) return false;
  EraseAt(it);
  return true;
}

bool StringStore::Expire(std::string_view key, int64_t at_ms, ExpireCondition condition) {
  auto it = FindLive(key);
  if (it == map_.end()) return false;
  const int64_t current = it->second.expire_at_ms;  // 0: none, i.e. never
  if (condition.if_no_ttl && current != 0) return false;
  if (condition.if_has_ttl && current == 0) return false;
  if (condition.if_greater && (current == 0 || at_ms <= current)) return false;
  if (condition.if_less && current != 0 && at_ms >= current) return false;
  if (at_ms <= NowMs()) {
    EraseAt(it);
    return true;
  }
  SetExpiry(it, at_ms);
  return true;
}

bool StringStore::Persist(std::string_view key) {
  auto it = FindLive(key);
  if (it == map_.end() || it->second.expire_at_ms == 0) return false;
  SetExpiry(it, 0);
  return true;
}

void StringStore::Clear() {
  map_.clear();
  expiring_.clear();
  sample_cursor_ = 0;
  UpdateCounts();
}

void StringStore::CreateOfType(std::string_view key, ValueType type) {
  auto it = FindLive(key);
  if (it == map_.end()) it = Insert(key);
  SetExpiry(it, 0);
  Replace(it->second, {});
  it->second.type = type;
}

size_t StringStore::ExpireSome(int sample, int max_rounds) {
  size_t removed = 0;
  if (expiring_.empty()) return 0;
  const int64_t now = NowMs();
  for (int round = 0; round < max_rounds && !expiring_.empty(); ++round) {
    int checked = 0;
    int expired = 0;
    while (checked < sample && !expiring_.empty()) {
      if (sample_cursor_ >= expiring_.size()) sample_cursor_ = 0;
      auto it = map_.find(std::string_view(expiring_[sample_cursor_]));
      if (it->second.expire_at_ms <= now) {
        // The last key moves into this slot; it is examined next without advancing.
        EraseAt(it);
        ++expired;
      } else {
        ++sample_cursor_;
      }
      ++checked;
    }
    removed += static_cast<size_t>(expired);
    if (expired * 4 <= checked) break;
  }
  return removed;
}

}  // namespace percore
