#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace percore {

// Log-linear bucketing (as in HdrHistogram): values below 2^kHistogramSubBucketBits (32) have a
// bucket each; every power-of-two range above is split into 32 equal buckets. A bucket's width is
// at most 1/32 of its lower bound, so reporting a bucket bound errs by at most 3.125% relative.
// 1,920 buckets cover all of uint64.
inline constexpr int kHistogramSubBucketBits = 5;
inline constexpr int kHistogramBuckets = (64 - kHistogramSubBucketBits + 1)
                                         << kHistogramSubBucketBits;

// A plain copy of a Histogram, to merge (across loops) and query. Not thread-safe.
struct HistogramSnapshot {
  std::array<uint64_t, kHistogramBuckets> counts{};
  uint64_t count = 0;  // the sum of `counts`
  uint64_t sum = 0;    // wraps on overflow
  uint64_t max = 0;

  void Merge(const HistogramSnapshot& other);
  // The upper bound of the bucket holding rank ceil(p% * count), clamped to `max`; p in
  // [0, 100]. 0 when empty.
  uint64_t Percentile(double p) const;
  // 0 when empty.
  double Mean() const;

  bool operator==(const HistogramSnapshot&) const = default;
};

// A histogram with one writing thread and any number of reading threads. The writer updates
// with a relaxed load and store (no locked read-modify-write, like Counter); readers take a
// Snapshot lock-free. A snapshot taken during writes may miss the records in flight, and its
// sum and max may disagree with its counts by those records; each bucket never goes backwards.
class Histogram {
 public:
  static constexpr int kSubBucketBits = kHistogramSubBucketBits;
  static constexpr int kBuckets = kHistogramBuckets;

  // Writer thread only. `n` records of the same value `v`.
  void Record(uint64_t v, uint64_t n = 1) {
    Bump(counts_[BucketIndex(v)], n);
    Bump(count_, n);
    Bump(sum_, v * n);
    if (v > max_.load(std::memory_order_relaxed)) max_.store(v, std::memory_order_relaxed);
  }

  // Any thread.
  HistogramSnapshot Snapshot() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  static int BucketIndex(uint64_t v) {
    // Buckets come in rows of 32 (the row of a value is how far it must be shifted right to
    // fit in 6 bits); within a row, v >> shift is in [32, 64), which continues the numbering.
    const int shift = std::max(0, static_cast<int>(std::bit_width(v)) - kSubBucketBits - 1);
    return (shift << kSubBucketBits) + static_cast<int>(v >> shift);
  }
  // The smallest and largest values (inclusive) that land in bucket `i`, 0 <= i < kBuckets.
  static uint64_t BucketLowerBound(int i);
  static uint64_t BucketUpperBound(int i);

 private:
  static void Bump(std::atomic<uint64_t>& a, uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace percore
