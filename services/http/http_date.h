#pragma once

#include <cstdint>
#include <string_view>

namespace percore {

// Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7).
inline constexpr size_t kHttpDateLength = 29;

// Writes `unix_seconds` (UTC) as an IMF-fixdate into out[0..29).
void FormatHttpDate(int64_t unix_seconds, char* out);

// The Date field value for the current second. Formatted at most once per second per thread:
// each loop has its own thread, so this is a per-loop cache with no sharing. `now_mono_ns` is the
// caller's CLOCK_MONOTONIC reading (the loop's now_ns()); the wall clock is read only when the
// cached second has ended. The view stays valid on this thread until the next call.
std::string_view CachedHttpDate(int64_t now_mono_ns);

}  // namespace percore
