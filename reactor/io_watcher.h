#pragma once

#include <cstdint>

namespace percore {

// Something registered with a loop's Poller: the pointer passed as the poller context.
// OnIoEvent runs on the loop thread with the PollEvents bits that were reported.
class IoWatcher {
 public:
  virtual void OnIoEvent(uint32_t events) = 0;

 protected:
  ~IoWatcher() = default;
};

}  // namespace percore
