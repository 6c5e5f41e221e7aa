#pragma once

#include <atomic>
#include <cstdint>

namespace percore {

// A statistic with exactly one writing thread and any number of reading threads.
// The writer uses a relaxed load and store (no locked read-modify-write instruction), readers a
// relaxed load: each read sees some value the counter really had, and a counter never goes
// backwards. Writing from two threads loses updates: that is a bug in the caller.
class Counter {
 public:
  void Add(uint64_t n) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void Increment() { Add(1); }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A single-writer level (a value that goes up and down, or is set): same threading contract.
class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { Set(Get() + n); }
  int64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

}  // namespace percore
