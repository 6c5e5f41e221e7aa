#pragma once

// What the connection fuzzers' harnesses share: reading the input as a script, and waiting on
// a socket without mistaking libFuzzer's timer signals for failures.

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace percore::fuzz {

// The fuzzer's input, taken from the front: bytes, then zeros once it is used up.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::string Bytes(size_t n) {
    n = std::min(n, size_ - pos_);
    std::string out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  std::string Rest() { return Bytes(size_ - pos_); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A failure of the harness itself (not of the code under test): reported and aborted.
[[noreturn]] inline void HarnessFailed(const char* what, int error) {
  std::fprintf(stderr, "fuzz harness: %s failed: %s\n", what, std::strerror(error));
  std::abort();
}

// Waits for `events` on `fd`. libFuzzer's timeout timer sends SIGALRM now and then, so a
// blocking call may return EINTR: that is retried, never taken for a failure.
inline void WaitFor(int fd, short events, const char* what) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int ready = poll(&p, 1, 10'000);
    if (ready == 1) return;
    if (ready < 0 && errno == EINTR) continue;
    HarnessFailed(what, ready == 0 ? ETIMEDOUT : errno);
  }
}

}  // namespace percore::fuzz
