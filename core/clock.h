#pragma once

#include <time.h>

#include <cstdint>

#include "absl/time/time.h"

namespace percore {

// Nanoseconds on CLOCK_MONOTONIC: for durations, deadlines and timers. vDSO-backed, ~20 ns.
inline int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Nanoseconds since the Unix epoch on CLOCK_REALTIME: for time stamps shown to people.
inline int64_t WallNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// CPU time the calling thread has used, in nanoseconds (CLOCK_THREAD_CPUTIME_ID: a system call,
// ~100-200 ns; for periodic samples, not per event).
inline int64_t ThreadCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// An instant on CLOCK_MONOTONIC: the one instant type of percore's public API (deadlines, when a
// connection opened, the loop's current time). It never jumps with the wall clock, so the
// difference of two is a true elapsed time; it means nothing across machines or reboots (use
// absl::Time for instants shown to people). Differences and offsets are absl::Duration.
class MonoTime {
 public:
  constexpr MonoTime() = default;
  static MonoTime Now() { return MonoTime(MonotonicNanos()); }
  static constexpr MonoTime FromNanos(int64_t ns) { return MonoTime(ns); }
  // Nanoseconds since an arbitrary origin (the boot, on Linux).
  constexpr int64_t nanos() const { return ns_; }

  friend absl::Duration operator-(MonoTime a, MonoTime b) { return absl::Nanoseconds(a.ns_ - b.ns_); }
  friend MonoTime operator+(MonoTime t, absl::Duration d) {
    return MonoTime(t.ns_ + absl::ToInt64Nanoseconds(d));
  }
  friend MonoTime operator-(MonoTime t, absl::Duration d) {
    return MonoTime(t.ns_ - absl::ToInt64Nanoseconds(d));
  }
  friend constexpr bool operator==(MonoTime a, MonoTime b) { return a.ns_ == b.ns_; }
  friend constexpr bool operator!=(MonoTime a, MonoTime b) { return a.ns_ != b.ns_; }
  friend constexpr bool operator<(MonoTime a, MonoTime b) { return a.ns_ < b.ns_; }
  friend constexpr bool operator<=(MonoTime a, MonoTime b) { return a.ns_ <= b.ns_; }
  friend constexpr bool operator>(MonoTime a, MonoTime b) { return a.ns_ > b.ns_; }
  friend constexpr bool operator>=(MonoTime a, MonoTime b) { return a.ns_ >= b.ns_; }

 private:
  explicit constexpr MonoTime(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};

// A duration as whole nanoseconds, saturating (absl::InfiniteDuration() becomes INT64_MAX):
// how the framework keeps timeouts internally, converted once when options are taken.
inline int64_t DurationNanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

}  // namespace percore
