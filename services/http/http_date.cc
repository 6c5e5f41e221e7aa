#include "services/http/http_date.h"

#include <algorithm>
#include <cstring>

#include "absl/time/clock.h"

namespace percore {

std::string FormatHttpDate(absl::Time time) {
  // absl formats day and month names itself (not through the C locale), and %E4Y pads the
  // year to the four digits IMF-fixdate requires.
  return absl::FormatTime("%a, %d %b %E4Y %H:%M:%S GMT", time, absl::UTCTimeZone());
}

namespace http_date_internal {

constinit thread_local DateCache date_cache;

std::string_view RefreshHttpDate(MonoTime now) {
  DateCache& cache = date_cache;
  const absl::Time wall = absl::Now();
  const absl::Time second = absl::FromUnixSeconds(absl::ToUnixSeconds(wall));
  const std::string text = FormatHttpDate(second);
  // Four-digit years only (until 9999): IMF-fixdate has no other length.
  std::memcpy(cache.text, text.data(), std::min(text.size(), kHttpDateLength));
  // Valid until the wall clock reaches the next whole second.
  cache.valid_until_ns = (now + (second + absl::Seconds(1) - wall)).nanos();
  return std::string_view(cache.text, kHttpDateLength);
}

}  // namespace http_date_internal
}  // namespace percore
