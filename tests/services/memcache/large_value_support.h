#pragma once

// For memcache tests whose replies are far larger than a test may hold (gigabytes from one
// stored value): values produced and checked from a pattern, a reply checked byte for byte as
// it streams in, and the resident memory of a process.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tests/testing/deadline.h"

namespace percore::test {

// Values made from one block of random bytes: value `seed` is the block read cyclically from
// offset seed * kStride. Any stretch of any value can be produced or compared without holding
// the value, and values of different seeds differ at every offset (the block is random).
class ValuePattern {
 public:
  static constexpr size_t kPeriod = 1'048'573;  // a prime just under 1 MiB
  static constexpr uint64_t kStride = 7'919;

  ValuePattern();
  // At least one (when max > 0) and at most `max` bytes of value `seed` from `offset`.
  std::string_view At(uint32_t seed, uint64_t offset, size_t max) const;
  // A whole value, for the tests that do hold one.
  std::string Make(uint32_t seed, size_t size) const;

 private:
  std::string block_;  // the period twice over, so any start has a period of bytes after it
};

// Checks a connection's byte stream, as it arrives, against what it should be: literal text
// and VALUE blocks whose values come from a ValuePattern, each repeated any number of times.
// Holds none of the stream: a 3 GB reply is checked in the pieces recv() returns.
class ReplyChecker {
 public:
  explicit ReplyChecker(const ValuePattern& pattern) : pattern_(pattern) {}

  // Expects `text`, `times` times.
  ReplyChecker& ExpectText(std::string text, uint64_t times = 1);
  // Expects "VALUE <key> <flags> <size>\r\n", value `seed` (`size` bytes) and "\r\n", `times`
  // times.
  ReplyChecker& ExpectValue(std::string_view key, uint32_t flags, uint32_t seed, uint64_t size,
                            uint64_t times = 1);
  ReplyChecker& ExpectEnd() { return ExpectText("END\r\n"); }
  // Expects `size` bytes of value `seed` alone: pieces of a value built from several (append).
  ReplyChecker& ExpectBytes(uint32_t seed, uint64_t size);

  // Consumes `bytes`. False from the first byte that differs from the expectation or comes
  // after its end; error() says where.
  bool Feed(std::string_view bytes);
  bool complete() const { return failed_.empty() && step_ == steps_.size(); }
  bool failed() const { return !failed_.empty(); }
  const std::string& error() const { return failed_; }
  uint64_t received() const { return received_; }
  // Bytes of the whole expectation.
  uint64_t expected_bytes() const;
  // VALUE blocks received whole.
  uint64_t values_received() const { return values_received_; }

 private:
  struct Step {
    std::string head;       // the text, or the VALUE line
    bool has_value = false;
    uint32_t seed = 0;
    uint64_t size = 0;      // of the value
    std::string tail;       // after the value
    uint64_t times = 1;
    bool block = false;     // a whole VALUE block (values_received counts it)
  };

  // Moves past finished parts and steps.
  void Settle();
  uint64_t PartSize(const Step& s) const;
  void Fail(std::string_view want, std::string_view got);

  const ValuePattern& pattern_;
  std::vector<Step> steps_;
  size_t step_ = 0;
  uint64_t repetition_ = 0;
  int part_ = 0;          // 0: head, 1: value, 2: tail
  uint64_t offset_ = 0;   // within the part
  uint64_t received_ = 0;
  uint64_t values_received_ = 0;
  std::string failed_;
};

// Reads `fd` into `checker` until it is complete, has received `until` bytes, or fails, in
// recv() calls of at most `chunk` bytes (small chunks make a slow reader). An error status on
// a mismatch (the checker's error), EOF, a socket error or the deadline.
absl::Status ReadInto(int fd, ReplyChecker& checker, Deadline deadline, size_t chunk = 256 << 10,
                      uint64_t until = UINT64_MAX);

// Sends "<verb> <key> <flags> 0 <size>\r\n", value `seed` of `size` bytes and "\r\n", without
// holding the value.
absl::Status SendStorage(int fd, std::string_view verb, std::string_view key, uint32_t flags,
                         const ValuePattern& pattern, uint32_t seed, uint64_t size, Deadline deadline);

// "get <key> <key> ...\r\n" with `key` `times` times.
std::string RepeatedGet(std::string_view key, size_t times);

// VmRSS of process `pid` (0: this one) in bytes; 0 if it cannot be read.
size_t ResidentBytes(pid_t pid = 0);

}  // namespace percore::test
