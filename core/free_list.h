#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace percore {

// Reusable objects for one thread: Take hands out one given back earlier (or a new one), Give
// keeps one for the next Take, up to `max_free`, and frees the rest. State a connection needs
// only while it has a request in progress lives in one of these per loop, so an idle
// connection holds a pointer instead of the object, and a busy one reuses what the last request
// grew (a parser's slots, a vector's capacity) without allocating. The owner resets an object
// before giving it back; Take returns it as it was given.
template <typename T>
class FreeList {
 public:
  explicit FreeList(size_t max_free = kDefaultMaxFree) : max_free_(max_free) {}
  FreeList(const FreeList&) = delete;
  FreeList& operator=(const FreeList&) = delete;

  static constexpr size_t kDefaultMaxFree = 1024;

  // A kept object, or a new one made from `args` when none is kept.
  template <typename... Args>
  std::unique_ptr<T> Take(Args&&... args) {
    if (free_.empty()) {
      ++made_;
      return std::make_unique<T>(std::forward<Args>(args)...);
    }
    std::unique_ptr<T> item = std::move(free_.back());
    free_.pop_back();
    return item;
  }

  // Inline where there is room: a Give per request is a store and a compare or two, and the
  // growth of the list (or a free beyond max_free) is a call.
  [[gnu::always_inline]] void Give(std::unique_ptr<T> item) {
    const size_t kept = free_.size();
    if (item != nullptr && kept < free_.capacity() && kept < max_free_) [[likely]] {
      free_.push_back(std::move(item));
      return;
    }
    GiveSlow(std::move(item));
  }

  size_t free_count() const { return free_.size(); }
  size_t made() const { return made_; }    // objects made by Take since construction
  size_t freed() const { return freed_; }  // given back beyond max_free, and freed

 private:
  [[gnu::noinline]] void GiveSlow(std::unique_ptr<T> item) {
    if (item == nullptr) return;
    if (free_.size() < max_free_) {
      free_.push_back(std::move(item));
    } else {
      ++freed_;
    }
  }

  std::vector<std::unique_ptr<T>> free_;
  const size_t max_free_;
  size_t made_ = 0;
  size_t freed_ = 0;
};

}  // namespace percore
