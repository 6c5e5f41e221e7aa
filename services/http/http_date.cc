#include "services/http/http_date.h"

#include "absl/time/clock.h"

namespace percore {
namespace {

struct DateCache {
  MonoTime valid_until;  // the origin: before any loop's time, so the first call formats
  std::string text;
};

thread_local DateCache date_cache;

}  // namespace

std::string FormatHttpDate(absl::Time time) {
  // absl formats day and month names itself (not through the C locale), and %E4Y pads the
  // year to the four digits IMF-fixdate requires.
  return absl::FormatTime("%a, %d %b %E4Y %H:%M:%S GMT", time, absl::UTCTimeZone());
}

std::string_view CachedHttpDate(MonoTime now) {
  DateCache& cache = date_cache;
  if (now >= cache.valid_until) {
    const absl::Time wall = absl::Now();
    const absl::Time second = absl::FromUnixSeconds(absl::ToUnixSeconds(wall));
    cache.text = FormatHttpDate(second);
    // Valid until the wall clock reaches the next whole second.
    cache.valid_until = now + (second + absl::Seconds(1) - wall);
  }
  return cache.text;
}

}  // namespace percore
