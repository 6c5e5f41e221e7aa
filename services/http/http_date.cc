#include "services/http/http_date.h"

#include <time.h>

#include <limits>

#include "core/clock.h"

namespace percore {
namespace {

struct DateCache {
  int64_t valid_until_mono_ns = std::numeric_limits<int64_t>::min();
  char text[kHttpDateLength];
};

thread_local DateCache date_cache;

void Put2(char* out, int v) {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

void FormatHttpDate(int64_t unix_seconds, char* out) {
  static constexpr char kDays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr char kMonths[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  // Formatted by hand: strftime would follow the locale.
  const int year = tm.tm_year + 1900;
  char* p = out;
  for (int i = 0; i < 3; ++i) *p++ = kDays[tm.tm_wday][i];
  *p++ = ',';
  *p++ = ' ';
  Put2(p, tm.tm_mday);
  p += 2;
  *p++ = ' ';
  for (int i = 0; i < 3; ++i) *p++ = kMonths[tm.tm_mon][i];
  *p++ = ' ';
  Put2(p, year / 100 % 100);
  Put2(p + 2, year % 100);
  p += 4;
  *p++ = ' ';
  Put2(p, tm.tm_hour);
  p[2] = ':';
  Put2(p + 3, tm.tm_min);
  p[5] = ':';
  Put2(p + 6, tm.tm_sec);
  p += 8;
  *p++ = ' ';
  *p++ = 'G';
  *p++ = 'M';
  *p++ = 'T';
}

std::string_view CachedHttpDate(int64_t now_mono_ns) {
  DateCache& cache = date_cache;
  if (now_mono_ns >= cache.valid_until_mono_ns) {
    const int64_t wall_ns = WallNanos();
    FormatHttpDate(wall_ns / 1'000'000'000, cache.text);
    // Valid until the wall clock reaches the next whole second.
    cache.valid_until_mono_ns = now_mono_ns + (1'000'000'000 - wall_ns % 1'000'000'000);
  }
  return std::string_view(cache.text, kHttpDateLength);
}

}  // namespace percore
