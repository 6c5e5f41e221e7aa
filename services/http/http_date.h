#pragma once

#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "core/clock.h"

namespace percore {

// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7).
inline constexpr size_t kHttpDateLength = 29;

// `time` as an IMF-fixdate (UTC, English names whatever the locale; the second truncated).
std::string FormatHttpDate(absl::Time time);

// The Date field value for the current second. Formatted at most once per second per thread:
// each loop has its own thread, so this is a per-loop cache with no sharing. `now` is the
// caller's monotonic time (the loop's EventLoop::now()); the wall clock is read only when the
// cached second has ended. The view stays valid on this thread until the next call.
std::string_view CachedHttpDate(MonoTime now);

}  // namespace percore
