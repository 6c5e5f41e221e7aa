#pragma once

#include <cstdint>

#include "tools/loadgen/codec.h"
#include "tools/loadgen/load_options.h"

namespace percore::loadgen {

// Chooses each request's operation and key: uniformly random keys and a get/set mix for the
// stores, or (for a preload) a set of every key in a range, in order. One per worker thread;
// not thread-safe. Seeded, so a run's request sequence is reproducible.
class RequestSource {
 public:
  RequestSource(const Workload& workload, uint64_t seed);

  // From now on, sets of keys first, first+1, ..., end-1 (then wrapping to first).
  void SetSequential(uint64_t first, uint64_t end);

  // The next request; its `seq` is left for the connection to fill in.
  Request Next();

 private:
  uint64_t Random();  // splitmix64

  Protocol protocol_;
  bool ping_;
  uint64_t keys_;
  uint64_t get_threshold_;  // Random() below this: a get
  uint64_t state_;
  bool sequential_ = false;
  uint64_t first_ = 0;
  uint64_t end_ = 0;
  uint64_t next_key_ = 0;
};

}  // namespace percore::loadgen
