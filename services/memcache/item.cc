#include "services/memcache/item.h"

#include <cassert>
#include <cstring>
#include <new>

namespace percore::memcache {
namespace {

// A flat_hash_set slot (one pointer) plus its control byte, rounded up.
constexpr size_t kIndexOverhead = 16;

}  // namespace

void ItemDeleter::operator()(Item* item) const {
  // acq_rel: the thread that frees the item sees every write of the threads that held it.
  if (item->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  item->~Item();
  ::operator delete(item);
}

ItemPtr ShareItem(const Item& item) {
  Item* mutable_item = const_cast<Item*>(&item);
  mutable_item->refs.fetch_add(1, std::memory_order_relaxed);
  return ItemPtr(mutable_item);
}

size_t ItemFootprint(size_t key_size, size_t value_size) {
  return sizeof(Item) + key_size + value_size + 2 + kIndexOverhead;
}

ItemPtr AllocateItem(std::string_view key, uint32_t flags, size_t value_size) {
  assert(key.size() <= kMaxKeySize);
  void* raw = ::operator new(sizeof(Item) + key.size() + value_size + 2);
  ItemPtr item(new (raw) Item);
  item->flags = flags;
  item->key_size = static_cast<uint8_t>(key.size());
  item->value_size = static_cast<uint32_t>(value_size);
  std::memcpy(item->key_data(), key.data(), key.size());
  item->value_data()[value_size] = '\r';
  item->value_data()[value_size + 1] = '\n';
  return item;
}

ItemPtr MakeItem(std::string_view key, uint32_t flags, std::string_view value) {
  ItemPtr item = AllocateItem(key, flags, value.size());
  if (!value.empty()) std::memcpy(item->value_data(), value.data(), value.size());
  return item;
}

}  // namespace percore::memcache
