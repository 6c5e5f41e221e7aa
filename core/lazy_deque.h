#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <utility>

namespace percore {

// A std::deque that exists only while it holds something. libstdc++'s deque is 80 bytes and
// allocates its map and a first block (about 600 bytes) as soon as it is constructed, so a deque
// member costs that on every idle connection; this one is a pointer, allocates with its first
// element and frees everything when its last is popped. References to elements stay valid as a deque's do (across push_back and
// pop_front of other elements), until the queue empties.
template <typename T>
class LazyDeque {
 public:
  bool empty() const { return items_ == nullptr; }
  size_t size() const { return items_ ? items_->size() : 0; }
  T& front() { return items_->front(); }
  const T& front() const { return items_->front(); }
  T& back() { return items_->back(); }
  T& operator[](size_t i) { return (*items_)[i]; }
  const T& operator[](size_t i) const { return (*items_)[i]; }

  template <typename... Args>
  T& emplace_back(Args&&... args) {
    if (!items_) items_ = std::make_unique<std::deque<T>>();
    return items_->emplace_back(std::forward<Args>(args)...);
  }
  void push_back(T value) { emplace_back(std::move(value)); }
  void pop_front() {
    items_->pop_front();
    if (items_->empty()) items_.reset();
  }
  void clear() { items_.reset(); }

 private:
  std::unique_ptr<std::deque<T>> items_;  // non-null only while non-empty
};

}  // namespace percore
