#pragma once

#include <time.h>

#include <cstdint>

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

}  // namespace percore
