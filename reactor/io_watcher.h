#pragma once

#include <cstdint>

namespace percore {

struct PollEvent;

// Something registered with a loop's Poller: the pointer passed as the poller context.
// OnIoEvent runs on the loop thread with the PollEvents bits that were reported; OnCompletion
// with an operation the completion back end (io_uring) finished for this watcher.
class IoWatcher {
 public:
  virtual void OnIoEvent(uint32_t events) = 0;
  virtual void OnCompletion(const PollEvent& event) {}

 protected:
  ~IoWatcher() = default;
};

}  // namespace percore
