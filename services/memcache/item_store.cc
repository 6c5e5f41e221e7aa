#include "services/memcache/item_store.h"

#include <time.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <utility>


namespace percore::memcache {
namespace {

int64_t RealTimeSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// memcached's number rule for incr/decr values: optional leading white space, an optional
// '+', at least one digit, no overflow, then the end of the value or white space.
bool ParseCounter(std::string_view text, uint64_t* value) {
  size_t i = 0;
  while (i < text.size() && IsSpace(text[i])) ++i;
  if (i < text.size() && text[i] == '+') ++i;
  const char* begin = text.data() + i;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, *value);
  if (ec != std::errc() || ptr == begin) return false;
  return ptr == end || IsSpace(*ptr);
}

size_t FootprintOf(const Item& item) { return ItemFootprint(item.key_size, item.value_size); }

}  // namespace

ItemStore::ItemStore(ItemStoreOptions options)
    : options_(std::move(options)), next_cas_(options_.cas_start) {
  if (options_.cas_step == 0) options_.cas_step = 1;
}

ItemStore::~ItemStore() { Clear(); }

int64_t ItemStore::Now() {
  const int64_t now = options_.clock ? options_.clock() : RealTimeSeconds();
  if (flush_at_s_ != 0 && now >= flush_at_s_) {
    // Everything in the store now was stored before the flush time (any operation at or
    // after it clears first), which is exactly the set a delayed flush invalidates.
    Clear();
    flush_at_s_ = 0;
  }
  return now;
}

int64_t ItemStore::ExpiryFor(int64_t exptime, int64_t now) {
  if (exptime == 0) return kNeverExpires;
  if (exptime < 0) return kAlreadyExpired;
  if (exptime <= kMaxRelativeExptime) return now + exptime;
  return exptime;
}

uint64_t ItemStore::NextCas() {
  const uint64_t cas = next_cas_;
  next_cas_ += options_.cas_step;
  return cas;
}

Item* ItemStore::FindLive(std::string_view key, int64_t now, bool* expired) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  Item* item = *it;
  if (item->expires_s > now) return item;
  if (!item->fetched) stats_.expired_unfetched.Increment();
  stats_.reclaimed.Increment();
  Remove(item);
  if (expired != nullptr) *expired = true;
  return nullptr;
}

void ItemStore::Link(ItemPtr owned) {
  Item* item = owned.release();
  index_.insert(item);
  item->lru_prev = nullptr;
  item->lru_next = lru_head_;
  if (lru_head_ != nullptr) lru_head_->lru_prev = item;
  lru_head_ = item;
  if (lru_tail_ == nullptr) lru_tail_ = item;
  bytes_ += FootprintOf(*item);
  stats_.curr_items.Set(static_cast<int64_t>(index_.size()));
  stats_.bytes.Set(static_cast<int64_t>(bytes_));
}

ItemPtr ItemStore::Remove(Item* item) {
  index_.erase(item->key());
  if (item->lru_prev != nullptr) item->lru_prev->lru_next = item->lru_next;
  else lru_head_ = item->lru_next;
  if (item->lru_next != nullptr) item->lru_next->lru_prev = item->lru_prev;
  else lru_tail_ = item->lru_prev;
  item->lru_prev = item->lru_next = nullptr;
  bytes_ -= FootprintOf(*item);
  stats_.curr_items.Set(static_cast<int64_t>(index_.size()));
  stats_.bytes.Set(static_cast<int64_t>(bytes_));
  return ItemPtr(item);
}

void ItemStore::Bump(Item* item) {
  if (item == lru_head_) return;
  item->lru_prev->lru_next = item->lru_next;
  if (item->lru_next != nullptr) item->lru_next->lru_prev = item->lru_prev;
  else lru_tail_ = item->lru_prev;
  item->lru_prev = nullptr;
  item->lru_next = lru_head_;
  lru_head_->lru_prev = item;
  lru_head_ = item;
}

void ItemStore::Clear() {
  Item* item = lru_head_;
  while (item != nullptr) {
    Item* next = item->lru_next;
    ItemDeleter()(item);
    item = next;
  }
  lru_head_ = lru_tail_ = nullptr;
  index_.clear();
  bytes_ = 0;
  stats_.curr_items.Set(0);
  stats_.bytes.Set(0);
}

bool ItemStore::MakeRoom(size_t footprint, int64_t now) {
  if (footprint > options_.memory_limit) return false;
  while (bytes_ + footprint > options_.memory_limit && lru_tail_ != nullptr) {
    Item* victim = lru_tail_;
    if (victim->expires_s <= now) {
      stats_.reclaimed.Increment();
      if (!victim->fetched) stats_.expired_unfetched.Increment();
    } else {
      stats_.evictions.Increment();
      if (!victim->fetched) stats_.evicted_unfetched.Increment();
    }
    Remove(victim);
  }
  return true;
}

StoreResult ItemStore::Store(StoreMode mode, ItemPtr item, int64_t exptime, uint64_t cas_unique) {
  const int64_t now = Now();
  stats_.cmd_set.Increment();
  if (FootprintOf(*item) > options_.max_item_size) {
    stats_.store_too_large.Increment();
    return StoreResult::kTooLarge;
  }
  Item* old = FindLive(item->key(), now);
  int64_t expires = ExpiryFor(exptime, now);
  switch (mode) {
    case StoreMode::kSet:
      break;
    case StoreMode::kAdd:
      if (old != nullptr) {
        Bump(old);  // memcached treats a failed add as a use of the item
        return StoreResult::kNotStored;
      }
      break;
    case StoreMode::kReplace:
      if (old == nullptr) return StoreResult::kNotStored;
      break;
    case StoreMode::kAppend:
    case StoreMode::kPrepend: {
      if (old == nullptr) return StoreResult::kNotStored;
      const size_t total = size_t{old->value_size} + item->value_size;
      if (ItemFootprint(old->key_size, total) > options_.max_item_size) {
        stats_.store_too_large.Increment();
        return StoreResult::kTooLarge;
      }
      ItemPtr joined = AllocateItem(old->key(), old->flags, total);
      const std::string_view first = mode == StoreMode::kAppend ? old->value() : item->value();
      const std::string_view second = mode == StoreMode::kAppend ? item->value() : old->value();
      std::memcpy(joined->value_data(), first.data(), first.size());
      std::memcpy(joined->value_data() + first.size(), second.data(), second.size());
      item = std::move(joined);
      expires = old->expires_s;
      break;
    }
    case StoreMode::kCas:
      if (old == nullptr) {
        stats_.cas_misses.Increment();
        return StoreResult::kNotFound;
      }
      if (old->cas != cas_unique) {
        stats_.cas_badval.Increment();
        return StoreResult::kExists;
      }
      stats_.cas_hits.Increment();
      break;
  }
  item->expires_s = expires;
  item->cas = NextCas();
  item->fetched = false;
  if (old != nullptr) Remove(old);
  stats_.total_items.Increment();
  // An item stored already expired (negative exptime, absolute time in the past) replaces the
  // old value and is gone at once: memcached answers STORED and then misses.
  if (expires <= now) return StoreResult::kStored;
  if (!MakeRoom(FootprintOf(*item), now)) {
    stats_.store_no_memory.Increment();
    return StoreResult::kNoMemory;
  }
  Link(std::move(item));
  return StoreResult::kStored;
}

const Item* ItemStore::Get(std::string_view key) {
  const int64_t now = Now();
  stats_.cmd_get.Increment();
  bool expired = false;
  Item* item = FindLive(key, now, &expired);
  if (item == nullptr) {
    stats_.get_misses.Increment();
    if (expired) stats_.get_expired.Increment();
    return nullptr;
  }
  stats_.get_hits.Increment();
  item->fetched = true;
  Bump(item);
  return item;
}

const Item* ItemStore::GetAndTouch(std::string_view key, int64_t exptime) {
  const int64_t now = Now();
  stats_.cmd_get.Increment();
  stats_.cmd_touch.Increment();
  Item* item = FindLive(key, now);
  if (item == nullptr) {
    stats_.touch_misses.Increment();
    return nullptr;
  }
  stats_.touch_hits.Increment();
  item->expires_s = ExpiryFor(exptime, now);
  item->fetched = true;
  Bump(item);
  return item;
}

bool ItemStore::Touch(std::string_view key, int64_t exptime) {
  const int64_t now = Now();
  stats_.cmd_touch.Increment();
  Item* item = FindLive(key, now);
  if (item == nullptr) {
    stats_.touch_misses.Increment();
    return false;
  }
  stats_.touch_hits.Increment();
  item->expires_s = ExpiryFor(exptime, now);
  Bump(item);
  return true;
}

bool ItemStore::Delete(std::string_view key) {
  Item* item = FindLive(key, Now());
  if (item == nullptr) {
    stats_.delete_misses.Increment();
    return false;
  }
  stats_.delete_hits.Increment();
  Remove(item);
  return true;
}

void ItemStore::Unlink(std::string_view key) {
  Item* item = FindLive(key, Now());
  if (item != nullptr) Remove(item);
}

DeltaResult ItemStore::Delta(std::string_view key, bool incr, uint64_t delta, uint64_t* result) {
  const int64_t now = Now();
  Counter& hits = incr ? stats_.incr_hits : stats_.decr_hits;
  Item* item = FindLive(key, now);
  if (item == nullptr) {
    (incr ? stats_.incr_misses : stats_.decr_misses).Increment();
    return DeltaResult::kNotFound;
  }
  uint64_t value = 0;
  if (!ParseCounter(item->value(), &value)) return DeltaResult::kNonNumeric;
  hits.Increment();
  value = incr ? value + delta : (delta > value ? 0 : value - delta);  // incr wraps mod 2^64
  *result = value;

  char digits[20];
  const char* end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
  const size_t n = static_cast<size_t>(end - digits);
  if (n == item->value_size && !IsShared(*item)) {
    // Same length and no reply holds it: rewrite in place (a counter's usual case).
    std::memcpy(item->value_data(), digits, n);
    item->cas = NextCas();
    Bump(item);
    return DeltaResult::kOk;
  }
  ItemPtr updated = MakeItem(item->key(), item->flags, std::string_view(digits, n));
  updated->expires_s = item->expires_s;
  updated->cas = NextCas();
  updated->fetched = item->fetched;
  Remove(item);
  if (!MakeRoom(FootprintOf(*updated), now)) {
    stats_.store_no_memory.Increment();
    return DeltaResult::kNoMemory;
  }
  Link(std::move(updated));
  return DeltaResult::kOk;
}

void ItemStore::FlushAll(int64_t delay_s) {
  const int64_t now = Now();
  const int64_t at = delay_s <= 0 ? now : ExpiryFor(delay_s, now);
  if (at <= now) {
    Clear();
    flush_at_s_ = 0;
  } else {
    flush_at_s_ = at;
  }
}

}  // namespace percore::memcache
