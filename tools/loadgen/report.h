#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/histogram.h"
#include "tools/loadgen/load_options.h"

namespace percore::loadgen {

// The outcome of a run, merged over the worker threads.
struct Report {
  LoadOptions options;
  int threads = 0;
  double elapsed_s = 0;  // from the start to the last reply
  HistogramSnapshot latency_ns;
  uint64_t issued = 0;
  uint64_t ok = 0;
  uint64_t misses = 0;
  uint64_t errors = 0;
  uint64_t reissued = 0;
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int idle_connections = 0;  // opened and held through the run
  uint64_t preloaded = 0;    // keys set before the run
  double preload_s = 0;
  std::vector<std::string> error_samples;

  // Requests answered rightly (hits and misses).
  uint64_t requests() const { return ok + misses; }
  double requests_per_s() const { return elapsed_s > 0 ? static_cast<double>(requests()) / elapsed_s : 0; }
  double connects_per_s() const { return elapsed_s > 0 ? static_cast<double>(connects) / elapsed_s : 0; }
};

// A few lines for people.
std::string FormatText(const Report& report);
// One JSON object for scripts; latencies in microseconds. Keys are stable.
std::string FormatJson(const Report& report);

}  // namespace percore::loadgen
