#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/time/time.h"
#include "reactor/server.h"
#include "services/admin/admin.pb.h"

namespace percore {

// A loop's busy and wait totals at one moment: the base utilization is measured against.
struct LoopTimeSample {
  uint64_t busy_ns = 0;
  uint64_t wait_ns = 0;
  int64_t taken_ns = 0;  // CLOCK_MONOTONIC
};

// Builds admin Stats snapshots of a running server. Reads every counter lock-free; the only
// lock guards the kept utilization baseline. Thread-safe; runs on gRPC threads, never on a loop.
class StatsCollector {
 public:
  // `start`: when the server started (for uptime).
  StatsCollector(Server& server, absl::Time start);

  // A snapshot whose utilization is measured against the baseline the collector keeps: the
  // previous snapshot at least kMinBaselineAge older, or the loop's start for the first.
  void Collect(admin::v1::Stats* out);
  // A snapshot measured against `*baseline` (empty: since start), which is then replaced by
  // this snapshot's samples. For a stream that keeps its own interval (WatchStats).
  void Collect(std::vector<LoopTimeSample>* baseline, admin::v1::Stats* out);

  // Baselines are replaced only by snapshots at least this much newer, so that bursts of
  // requests all measure over a meaningful interval.
  static constexpr int64_t kMinBaselineAge = 100'000'000;

 private:
  std::vector<LoopTimeSample> Sample();
  void Fill(const std::vector<LoopTimeSample>& base, const std::vector<LoopTimeSample>& now, admin::v1::Stats* out);

  Server& server_;
  const int64_t start_unix_ns_;
  const int64_t start_mono_ns_;
  std::mutex mu_;
  std::vector<LoopTimeSample> baseline_;  // guarded by mu_
};

// Copies a histogram snapshot into the proto: count, sum, max, mean, p50/p90/p99/p99.9 and
// the non-empty buckets.
void FillHistogram(const HistogramSnapshot& h, admin::v1::Histogram* out);

}  // namespace percore
