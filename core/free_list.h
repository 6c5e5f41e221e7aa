#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace percore {

// Reusable objects for one thread: Take hands out one given back earlier (or a new one), Give
// keeps one for the next Take, up to `max_free`, and frees the rest. State a connection needs
// only while it has a request in progress lives in one of these per loop, so an idle
// connection holds a pointer instead of the object, and a busy one reuses what the last request
// grew (a parser's slots, a vector's capacity) without allocating. The owner resets an object
// before giving it back; Take returns it as it was given.
//
// Take and Give run once per request on a loop's hot path: each is an index step on a fixed
// array, with making and freeing out of line.
template <typename T>
class FreeList {
 public:
  static constexpr size_t kDefaultMaxFree = 1024;

  explicit FreeList(size_t max_free = kDefaultMaxFree)
      : slots_(std::make_unique<T*[]>(max_free)), max_free_(max_free) {}
  FreeList(const FreeList&) = delete;
  FreeList& operator=(const FreeList&) = delete;
  ~FreeList() {
    for (size_t i = 0; i < count_; ++i) delete slots_[i];
  }

  // A kept object, or a new one made from `args` when none is kept.
  template <typename... Args>
  std::unique_ptr<T> Take(Args&&... args) {
    if (count_ == 0) return Make(std::forward<Args>(args)...);
    T* const item = slots_[--count_];
    if (count_ < low_water_) low_water_ = count_;
    return std::unique_ptr<T>(item);
  }

  // The same, for an owner that keeps a raw pointer (and gives it back, or deletes it).
  template <typename... Args>
  T* TakeRaw(Args&&... args) {
    if (count_ == 0) return Make(std::forward<Args>(args)...).release();
    T* const item = slots_[--count_];
    if (count_ < low_water_) low_water_ = count_;
    return item;
  }

  void Give(std::unique_ptr<T> item) {
    if (item != nullptr) Give(item.release());
  }
  // The same for an object released from its unique_ptr (no unique_ptr crosses a call).
  void Give(T* item) {
    if (item == nullptr) return;
    if (count_ < max_free_) {
      slots_[count_++] = item;
    } else {
      Free(item);
    }
  }

  // Frees the kept objects no Take needed since the previous Trim (the fewest kept in between),
  // so what a burst left behind is not kept for good. The owner calls it periodically.
  void Trim() {
    while (low_water_ > 0 && count_ > 0) {
      Free(slots_[--count_]);
      --low_water_;
    }
    low_water_ = count_;
  }

  size_t free_count() const { return count_; }
  size_t made() const { return made_; }    // objects made by Take since construction
  size_t freed() const { return freed_; }  // given back beyond max_free, and freed

 private:
  template <typename... Args>
  [[gnu::noinline]] std::unique_ptr<T> Make(Args&&... args) {
    ++made_;
    return std::make_unique<T>(std::forward<Args>(args)...);
  }
  [[gnu::noinline]] void Free(T* item) {
    delete item;
    ++freed_;
  }

  const std::unique_ptr<T*[]> slots_;  // the kept objects, owned: slots_[0, count_)
  const size_t max_free_;
  size_t count_ = 0;
  size_t low_water_ = 0;  // the fewest kept since the last Trim
  size_t made_ = 0;
  size_t freed_ = 0;
};

}  // namespace percore
