#pragma once

#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/mutex.h"

namespace percore {

// A multi-producer, single-consumer queue of T. Producers Push from any thread; the one
// consumer takes everything queued so far with TakeAll, swapping vectors so that the lock is
// held for a pointer swap, never while tasks run. The consumer's vector keeps its capacity,
// so a steady load allocates nothing.
template <typename T>
class TaskQueue {
 public:
  // Thread-safe. Returns true when the queue was empty before this push: the caller uses it to
  // decide whether the consumer needs a wake-up.
  bool Push(T item) {
    MutexLock lock(mu_);
    items_.push_back(std::move(item));
    return items_.size() == 1;
  }

  // Consumer only. Moves all queued items into `*out` (which must be empty) in push order.
  void TakeAll(std::vector<T>* out) {
    MutexLock lock(mu_);
    out->swap(items_);
  }

  // Thread-safe; a snapshot that may be stale by the time the caller reads it.
  bool Empty() const {
    MutexLock lock(mu_);
    return items_.empty();
  }

 private:
  mutable Mutex mu_;
  std::vector<T> items_ ABSL_GUARDED_BY(mu_);
};

}  // namespace percore
