#pragma once

#include <poll.h>

#include <cstdint>

#include "reactor/poller.h"

namespace percore {

// PollEvents as poll(2) bits, and back: shared by the poll back end and the io_uring back end's
// POLL_ADD watches.
inline uint32_t ToPollMask(uint32_t interest) {
  uint32_t mask = 0;
  // POLLRDHUP only with read interest: it is level-triggered, so asking for it while reads are
  // off (backpressure) would wake the loop on every iteration after a peer's half-close.
  if (interest & kPollIn) mask |= POLLIN | POLLRDHUP;
  if (interest & kPollOut) mask |= POLLOUT;
  return mask;
}

inline uint32_t FromPollMask(uint32_t revents) {
  uint32_t events = 0;
  if (revents & POLLIN) events |= kPollIn;
  if (revents & POLLOUT) events |= kPollOut;
  if (revents & (POLLHUP | POLLRDHUP)) events |= kPollHangup;
  if (revents & (POLLERR | POLLNVAL)) events |= kPollError;
  return events;
}

}  // namespace percore
