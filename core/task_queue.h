#pragma once

#include <atomic>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/mutex.h"

namespace percore {

// A multi-producer, single-consumer queue of T. Producers Push from any thread; the one
// consumer takes everything queued so far with TakeAll, swapping vectors so that the lock is
// held for a pointer swap, never while tasks run. The consumer's vector keeps its capacity,
// so a steady load allocates nothing, and a TakeAll that finds the queue empty takes no lock.
template <typename T>
class TaskQueue {
 public:
  // Thread-safe. Returns true when the queue was empty before this push: the caller uses it to
  // decide whether the consumer needs a wake-up.
  bool Push(T item) {
    MutexLock lock(mu_);
    items_.push_back(std::move(item));
    queued_.store(true, std::memory_order_seq_cst);
    return items_.size() == 1;
  }

  // Consumer only. Moves all queued items into `*out` (which must be empty) in push order.
  //
  // It first reads a flag without the lock, so a push racing with it may be left for the next
  // call. The producer must therefore wake the consumer after pushing, through a flag of its
  // own written with a sequentially consistent exchange, and the consumer must clear that flag
  // (sequentially consistent too) before it calls TakeAll. Then either the producer's exchange
  // sees the cleared flag and wakes the consumer again, or this call sees the push: the two
  // cannot both miss (EventLoop::Wake and EventLoop::OnIoEvent are that pair).
  void TakeAll(std::vector<T>* out) {
    if (!queued_.load(std::memory_order_seq_cst)) return;
    MutexLock lock(mu_);
    out->swap(items_);
    queued_.store(false, std::memory_order_seq_cst);
  }

  // Consumer only. Whether TakeAll may find something: the flag it reads first, for a caller
  // that skips the call when it would return at once.
  bool MaybeNonEmpty() const { return queued_.load(std::memory_order_seq_cst); }
  // Thread-safe; a snapshot that may be stale by the time the caller reads it.
  bool Empty() const {
    MutexLock lock(mu_);
    return items_.empty();
  }

 private:
  mutable Mutex mu_;
  std::vector<T> items_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> queued_{false};  // items_ may be non-empty; written under mu_
};

}  // namespace percore
