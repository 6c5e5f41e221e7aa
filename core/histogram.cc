#include "core/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace percore {
namespace {

constexpr int kSubBuckets = 1 << kHistogramSubBucketBits;

int ShiftOf(int bucket) { return std::max(0, bucket / kSubBuckets - 1); }

}  // namespace

uint64_t Histogram::BucketLowerBound(int i) {
  const int shift = ShiftOf(i);
  return static_cast<uint64_t>(i - (shift << kSubBucketBits)) << shift;
}

uint64_t Histogram::BucketUpperBound(int i) {
  return BucketLowerBound(i) + ((uint64_t{1} << ShiftOf(i)) - 1);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot snapshot;
  for (int i = 0; i < kBuckets; ++i) {
    snapshot.counts[i] = counts_[i].load(std::memory_order_relaxed);
    snapshot.count += snapshot.counts[i];
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  snapshot.max = max_.load(std::memory_order_relaxed);
  return snapshot;
}

void HistogramSnapshot::Merge(const HistogramSnapshot& other) {
  for (int i = 0; i < kHistogramBuckets; ++i) counts[i] += other.counts[i];
  count += other.count;
  sum += other.sum;
  max = std::max(max, other.max);
}

uint64_t HistogramSnapshot::Percentile(double p) const {
  if (count == 0) return 0;
  if (!(p > 0)) p = 0;  // also catches NaN
  const double rank_real = std::ceil(std::min(p, 100.0) * static_cast<double>(count) / 100.0);
  const uint64_t rank = rank_real >= static_cast<double>(count)
                            ? count
                            : std::max<uint64_t>(1, static_cast<uint64_t>(rank_real));
  uint64_t seen = 0;
  for (int i = 0; i < kHistogramBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return std::min(Histogram::BucketUpperBound(i), max);
  }
  return max;  // only if `count` exceeds the sum of `counts`
}

double HistogramSnapshot::Mean() const {
  return count == 0 ? 0.0 : static_cast<double>(sum) / static_cast<double>(count);
}

}  // namespace percore
