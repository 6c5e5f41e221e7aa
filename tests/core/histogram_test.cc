#include "core/histogram.h"

#include <atomic>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

// Values spread over every magnitude, plus the edges of each power of two.
std::vector<uint64_t> SpreadValues() {
  std::vector<uint64_t> values = {0, 1, kMax64, kMax64 - 1};
  for (int bit = 1; bit < 64; ++bit) {
    const uint64_t power = uint64_t{1} << bit;
    values.insert(values.end(), {power - 1, power, power + 1});
  }
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; ++i) values.push_back(rng() >> (rng() % 64));
  return values;
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram histogram;
  for (uint64_t v = 0; v < 32; ++v) {
    EXPECT_EQ(Histogram::BucketIndex(v), static_cast<int>(v));
    EXPECT_EQ(Histogram::BucketLowerBound(static_cast<int>(v)), v);
    EXPECT_EQ(Histogram::BucketUpperBound(static_cast<int>(v)), v);
    histogram.Record(v);
  }
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.count, 32u);
  EXPECT_EQ(snapshot.sum, 496u);
  EXPECT_EQ(snapshot.max, 31u);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(snapshot.counts[i], 1u) << i;
  EXPECT_EQ(snapshot.Percentile(0), 0u);
  EXPECT_EQ(snapshot.Percentile(50), 15u);
  EXPECT_EQ(snapshot.Percentile(100), 31u);
}

TEST(HistogramTest, BucketsAreContiguousAndCoverUint64) {
  ASSERT_EQ(Histogram::kBuckets, 1920);
  EXPECT_EQ(Histogram::BucketLowerBound(0), 0u);
  EXPECT_EQ(Histogram::BucketUpperBound(Histogram::kBuckets - 1), kMax64);
  for (int i = 0; i < Histogram::kBuckets; ++i) {
    const uint64_t lower = Histogram::BucketLowerBound(i);
    const uint64_t upper = Histogram::BucketUpperBound(i);
    ASSERT_LE(lower, upper) << i;
    ASSERT_EQ(Histogram::BucketIndex(lower), i);
    ASSERT_EQ(Histogram::BucketIndex(upper), i);
    if (i + 1 < Histogram::kBuckets) {
      ASSERT_EQ(Histogram::BucketLowerBound(i + 1), upper + 1) << i;
    }
  }
  EXPECT_EQ(Histogram::BucketIndex(32), 32);
  EXPECT_EQ(Histogram::BucketIndex(kMax64), Histogram::kBuckets - 1);
}

TEST(HistogramTest, RelativeErrorIsAtMostOneThirtySecond) {
  for (uint64_t v : SpreadValues()) {
    const int i = Histogram::BucketIndex(v);
    ASSERT_GE(i, 0);
    ASSERT_LT(i, Histogram::kBuckets);
    const uint64_t lower = Histogram::BucketLowerBound(i);
    const uint64_t upper = Histogram::BucketUpperBound(i);
    ASSERT_LE(lower, v);
    ASSERT_GE(upper, v);
    // Reporting `upper` for v errs by upper - v <= width - 1 < v / 32.
    ASSERT_LE(upper - v, v >> Histogram::kSubBucketBits) << v;
  }
}

TEST(HistogramTest, EmptyHistogram) {
  HistogramSnapshot snapshot = Histogram().Snapshot();
  EXPECT_EQ(snapshot.count, 0u);
  EXPECT_EQ(snapshot.Percentile(50), 0u);
  EXPECT_EQ(snapshot.Percentile(100), 0u);
  EXPECT_EQ(snapshot.Mean(), 0.0);
}

TEST(HistogramTest, PercentilesOfUniformDistribution) {
  Histogram histogram;
  for (uint64_t v = 1; v <= 10000; ++v) histogram.Record(v);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.count, 10000u);
  EXPECT_EQ(snapshot.sum, 50005000u);
  EXPECT_EQ(snapshot.max, 10000u);
  EXPECT_DOUBLE_EQ(snapshot.Mean(), 5000.5);

  const uint64_t p50 = snapshot.Percentile(50);
  EXPECT_GE(p50, 5000u);
  EXPECT_LE(p50, 5000u + 5000u / 32);
  EXPECT_EQ(p50, 5119u);  // bucket [4992, 5119]
  const uint64_t p99 = snapshot.Percentile(99);
  EXPECT_GE(p99, 9900u);
  EXPECT_LE(p99, 9900u + 9900u / 32);
  EXPECT_EQ(p99, 9983u);  // bucket [9728, 9983]
  EXPECT_EQ(snapshot.Percentile(100), 10000u);  // bucket [9984, 10239], clamped to max
  EXPECT_EQ(snapshot.Percentile(0), 1u);
  EXPECT_EQ(snapshot.Percentile(-5), 1u);
  EXPECT_EQ(snapshot.Percentile(250), 10000u);
}

TEST(HistogramTest, PercentilesOfBimodalDistribution) {
  Histogram histogram;
  for (int i = 0; i < 900; ++i) histogram.Record(100);
  for (int i = 0; i < 100; ++i) histogram.Record(1000000);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.Percentile(50), 101u);  // bucket [100, 101]
  EXPECT_EQ(snapshot.Percentile(90), 101u);
  EXPECT_EQ(snapshot.Percentile(90.1), 1000000u);
  EXPECT_EQ(snapshot.Percentile(99.9), 1000000u);
  EXPECT_DOUBLE_EQ(snapshot.Mean(), 100090.0);
}

TEST(HistogramTest, MaxIsExactForHugeValues) {
  Histogram histogram;
  histogram.Record(kMax64 - 12345);
  HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.max, kMax64 - 12345);
  EXPECT_EQ(snapshot.Percentile(50), kMax64 - 12345);
  EXPECT_EQ(snapshot.counts[Histogram::kBuckets - 1], 1u);
}

TEST(HistogramTest, MergeEqualsRecordingIntoOne) {
  Histogram first;
  Histogram second;
  Histogram both;
  std::vector<uint64_t> values = SpreadValues();
  for (size_t i = 0; i < values.size(); ++i) {
    (i % 3 == 0 ? first : second).Record(values[i]);
    both.Record(values[i]);
  }
  HistogramSnapshot merged = first.Snapshot();
  merged.Merge(second.Snapshot());
  EXPECT_EQ(merged, both.Snapshot());
  EXPECT_EQ(merged.count, values.size());

  HistogramSnapshot empty;
  empty.Merge(merged);
  EXPECT_EQ(empty, merged);
}

TEST(HistogramTest, ConcurrentReaderSeesCountsThatNeverDecrease) {
  constexpr uint64_t kRecords = 200000;
  Histogram histogram;
  std::atomic<bool> done{false};

  std::thread writer([&] {
    for (uint64_t i = 0; i < kRecords; ++i) histogram.Record((i * 7919) % 100000);
    done.store(true, std::memory_order_release);
  });

  HistogramSnapshot previous;
  bool last_pass = false;
  while (!last_pass) {
    last_pass = done.load(std::memory_order_acquire);
    HistogramSnapshot current = histogram.Snapshot();
    ASSERT_GE(current.count, previous.count);
    ASSERT_LE(current.count, kRecords);
    for (int i = 0; i < Histogram::kBuckets; ++i) {
      ASSERT_GE(current.counts[i], previous.counts[i]) << "bucket " << i;
    }
    previous = current;
  }
  writer.join();
  EXPECT_EQ(previous.count, kRecords);
  EXPECT_EQ(histogram.count(), kRecords);
  EXPECT_EQ(previous.max, 99999u);
}

}  // namespace
}  // namespace percore
