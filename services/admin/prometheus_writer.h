#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "core/histogram.h"

namespace percore {

// Appends metric families to a Prometheus text exposition. Callers declare a family once
// (Family), then write its samples; label values are escaped here.
class PrometheusWriter {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // "# HELP" and "# TYPE" lines; type is counter, gauge or histogram.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, Labels labels, uint64_t value);
  void SampleSigned(std::string_view name, Labels labels, int64_t value);
  // A duration in nanoseconds written as exact decimal seconds.
  void SampleSeconds(std::string_view name, Labels labels, uint64_t ns);
  // A fraction given in thousandths, written as an exact decimal (250 -> 0.25).
  void SampleThousandths(std::string_view name, Labels labels, uint64_t thousandths);
  // A histogram of nanosecond durations as _bucket (cumulative, at kBucketBoundsNs and +Inf),
  // _sum (seconds) and _count.
  void HistogramSeconds(std::string_view name, Labels labels, const HistogramSnapshot& h);

  std::string Take() { return std::move(out_); }

  // The `le` bounds of every histogram, in nanoseconds.
  static constexpr uint64_t kBucketBoundsNs[] = {
      1'000,         2'500,         5'000,         10'000,        25'000,        50'000,
      100'000,       250'000,       500'000,       1'000'000,     2'500'000,     5'000'000,
      10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

 private:
  void Begin(std::string_view name, std::string_view suffix, Labels labels, std::string_view extra_label,
             std::string_view extra_value);

  std::string out_;
};

// "1.5" for 1'500'000'000: exact, no exponent, no trailing zeros.
std::string NanosAsSeconds(uint64_t ns);

}  // namespace percore
