// Histogram: Record is on every request's path (service latency, loop iteration time);
// Snapshot, Merge and Percentile are what a stats reader pays.
//   bazel run --config=opt //tests/bench:histogram_bench -- --benchmark_out=/tmp/histogram.json

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/histogram.h"

namespace percore {
namespace {

// Latency-like values (log-uniform from 1 us to 10 ms, in ns), precomputed.
std::vector<uint64_t> Values() {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> exponent(3, 7);
  std::vector<uint64_t> v(4096);
  for (uint64_t& x : v) x = static_cast<uint64_t>(std::pow(10.0, exponent(rng)));
  return v;
}

void BM_HistogramRecord(benchmark::State& state) {
  const std::vector<uint64_t> values = Values();
  static Histogram histogram;  // 15 KiB of counters: keep it off the stack
  size_t i = 0;
  for (auto _ : state) {
    histogram.Record(values[i]);
    i = (i + 1) & 4095;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecord);

void BM_HistogramBucketIndex(benchmark::State& state) {
  const std::vector<uint64_t> values = Values();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(Histogram::BucketIndex(values[i]));
    i = (i + 1) & 4095;
  }
}
BENCHMARK(BM_HistogramBucketIndex);

void BM_HistogramSnapshot(benchmark::State& state) {
  static Histogram histogram;
  for (uint64_t v : Values()) histogram.Record(v);
  for (auto _ : state) {
    HistogramSnapshot s = histogram.Snapshot();
    benchmark::DoNotOptimize(s.count);
  }
}
BENCHMARK(BM_HistogramSnapshot);

void BM_HistogramMergeAndPercentiles(benchmark::State& state) {
  static Histogram histogram;
  for (uint64_t v : Values()) histogram.Record(v);
  const HistogramSnapshot one = histogram.Snapshot();
  for (auto _ : state) {
    HistogramSnapshot merged;
    merged.Merge(one);
    merged.Merge(one);
    for (double p : {50.0, 90.0, 99.0, 99.9}) benchmark::DoNotOptimize(merged.Percentile(p));
  }
}
BENCHMARK(BM_HistogramMergeAndPercentiles);

}  // namespace
}  // namespace percore
