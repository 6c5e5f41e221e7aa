#include "tests/testing/deadline.h"

#include <poll.h>

#include <algorithm>

#include "core/clock.h"

namespace percore::test {

Deadline Deadline::In(absl::Duration timeout) {
  return Deadline(MonotonicNanos() + absl::ToInt64Nanoseconds(timeout));
}

bool Deadline::expired() const { return MonotonicNanos() >= at_ns_; }

absl::Duration Deadline::remaining() const {
  return absl::Nanoseconds(std::max<int64_t>(0, at_ns_ - MonotonicNanos()));
}

int Deadline::PollTimeoutMs(int cap_ms) const {
  const int64_t left_ns = std::max<int64_t>(0, at_ns_ - MonotonicNanos());
  const int64_t ms = (left_ns + 999'999) / 1'000'000;
  return static_cast<int>(std::min<int64_t>(ms, cap_ms));
}

bool WaitUntil(absl::FunctionRef<bool()> done, Deadline deadline, absl::Duration interval) {
  const int interval_ms = static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(interval)));
  for (;;) {
    if (done()) return true;
    if (deadline.expired()) return false;
    ::poll(nullptr, 0, deadline.PollTimeoutMs(interval_ms));
  }
}

}  // namespace percore::test
