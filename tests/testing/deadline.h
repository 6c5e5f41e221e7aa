#pragma once

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace percore::test {

// A point on CLOCK_MONOTONIC by which a test step must be done. Tests wait on conditions with
// a Deadline instead of sleeping: the deadline only bounds a failure, it never paces a pass.
class Deadline {
 public:
  // `timeout` from now.
  static Deadline In(absl::Duration timeout);

  bool expired() const;
  // Time left, never negative.
  absl::Duration remaining() const;
  // Time left in whole milliseconds rounded up, capped at `cap_ms`: a timeout for poll() that
  // never wakes before the deadline only to find it has not passed yet.
  int PollTimeoutMs(int cap_ms = 1 << 30) const;

 private:
  explicit Deadline(int64_t at_ns) : at_ns_(at_ns) {}
  int64_t at_ns_;
};

// Evaluates `done` until it returns true or `deadline` passes, waiting `interval` (in poll(),
// which sleeps in the kernel) between evaluations. Returns the last result, so a caller writes
// ASSERT_TRUE(WaitUntil([&] { return counter.Get() == 3; }, deadline)).
// `done` runs on the calling thread; it is always evaluated at least once.
bool WaitUntil(absl::FunctionRef<bool()> done, Deadline deadline,
               absl::Duration interval = absl::Milliseconds(1));

}  // namespace percore::test
