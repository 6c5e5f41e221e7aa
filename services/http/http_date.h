#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "core/clock.h"

namespace percore {

// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7).
inline constexpr size_t kHttpDateLength = 29;

// `time` as an IMF-fixdate (UTC, English names whatever the locale; the second truncated).
std::string FormatHttpDate(absl::Time time);

namespace http_date_internal {

// One per thread, so one per loop and never shared. Plain data with a constant initializer:
// `constinit` lets every translation unit read it directly, without a thread_local init guard.
struct DateCache {
  int64_t valid_until_ns = 0;  // the monotonic origin: before any loop's time, so the first call formats
  char text[kHttpDateLength] = {};
};

extern constinit thread_local DateCache date_cache;

// Formats the current second into date_cache and returns it.
std::string_view RefreshHttpDate(MonoTime now);

}  // namespace http_date_internal

// The Date field value for the current second. Formatted at most once per second per thread:
// each loop has its own thread, so this is a per-loop cache with no sharing. `now` is the
// caller's monotonic time (the loop's EventLoop::now()); the wall clock is read only when the
// cached second has ended. The view stays valid on this thread until the next call.
// Inline: on the way of every response, and the common case is one comparison.
inline std::string_view CachedHttpDate(MonoTime now) {
  const http_date_internal::DateCache& cache = http_date_internal::date_cache;
  if (now.nanos() < cache.valid_until_ns) return std::string_view(cache.text, kHttpDateLength);
  return http_date_internal::RefreshHttpDate(now);
}

}  // namespace percore
