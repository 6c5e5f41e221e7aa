#include "tests/services/memcache/large_value_support.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/random_bytes.h"

namespace percore::test {

ValuePattern::ValuePattern() {
  std::mt19937_64 rng(20'240'601);
  const std::string period = RandomBytes(rng, kPeriod);
  block_ = period + period;
}

std::string_view ValuePattern::At(uint32_t seed, uint64_t offset, size_t max) const {
  const size_t start = static_cast<size_t>((offset + seed * kStride) % kPeriod);
  return std::string_view(block_).substr(start, std::min(max, kPeriod));
}

std::string ValuePattern::Make(uint32_t seed, size_t size) const {
  std::string out;
  out.reserve(size);
  while (out.size() < size) {
    const std::string_view piece = At(seed, out.size(), size - out.size());
    out.append(piece.data(), piece.size());
  }
  return out;
}

ReplyChecker& ReplyChecker::ExpectText(std::string text, uint64_t times) {
  Step step;
  step.head = std::move(text);
  step.times = times;
  steps_.push_back(std::move(step));
  Settle();
  return *this;
}

ReplyChecker& ReplyChecker::ExpectValue(std::string_view key, uint32_t flags, uint32_t seed,
                                        uint64_t size, uint64_t times) {
  Step step;
  step.head = absl::StrCat("VALUE ", absl::string_view(key.data(), key.size()), " ", flags, " ",
                           size, "\r\n");
  step.has_value = true;
  step.seed = seed;
  step.size = size;
  step.tail = "\r\n";
  step.times = times;
  step.block = true;
  steps_.push_back(std::move(step));
  Settle();
  return *this;
}

ReplyChecker& ReplyChecker::ExpectBytes(uint32_t seed, uint64_t size) {
  Step step;
  step.has_value = true;
  step.seed = seed;
  step.size = size;
  steps_.push_back(std::move(step));
  Settle();
  return *this;
}

uint64_t ReplyChecker::expected_bytes() const {
  uint64_t total = 0;
  for (const Step& s : steps_) {
    total += s.times * (s.head.size() + (s.has_value ? s.size : 0) + s.tail.size());
  }
  return total;
}

uint64_t ReplyChecker::PartSize(const Step& s) const {
  switch (part_) {
    case 0: return s.head.size();
    case 1: return s.has_value ? s.size : 0;
    default: return s.tail.size();
  }
}

void ReplyChecker::Settle() {
  while (step_ < steps_.size()) {
    const Step& s = steps_[step_];
    if (repetition_ == s.times) {
      ++step_;
      repetition_ = 0;
      continue;
    }
    if (offset_ < PartSize(s)) return;
    offset_ = 0;
    if (part_ < 2) {
      ++part_;
      continue;
    }
    part_ = 0;
    ++repetition_;
    if (s.block) ++values_received_;
  }
}

void ReplyChecker::Fail(std::string_view want, std::string_view got) {
  const size_t n = std::min<size_t>(got.size(), 48);
  want = want.substr(0, std::min(want.size(), n));
  got = got.substr(0, n);
  failed_ = absl::StrCat("at byte ", received_, " (step ", step_, ", repetition ", repetition_,
                         ", part ", part_, ", offset ", offset_, "): want \"",
                         absl::CEscape(absl::string_view(want.data(), want.size())), "\", got \"",
                         absl::CEscape(absl::string_view(got.data(), got.size())), "\"");
}

bool ReplyChecker::Feed(std::string_view bytes) {
  if (failed()) return false;
  while (!bytes.empty()) {
    if (step_ == steps_.size()) {
      Fail("", bytes);
      failed_ = absl::StrCat("bytes after the end of the expected reply, ", failed_);
      return false;
    }
    const Step& s = steps_[step_];
    const uint64_t left = PartSize(s) - offset_;
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, bytes.size()));
    std::string_view want;
    switch (part_) {
      case 0: want = std::string_view(s.head).substr(static_cast<size_t>(offset_), n); break;
      case 1: want = pattern_.At(s.seed, offset_, n); break;
      default: want = std::string_view(s.tail).substr(static_cast<size_t>(offset_), n); break;
    }
    n = want.size();  // a value's stretch may end before `left` does
    if (std::memcmp(want.data(), bytes.data(), n) != 0) {
      size_t first = 0;
      while (want[first] == bytes[first]) ++first;
      received_ += first;
      offset_ += first;
      Fail(want.substr(first), bytes.substr(first));
      return false;
    }
    bytes.remove_prefix(n);
    received_ += n;
    offset_ += n;
    Settle();
  }
  return true;
}

absl::Status ReadInto(int fd, ReplyChecker& checker, Deadline deadline, size_t chunk,
                      uint64_t until) {
  std::vector<char> buffer(chunk);
  while (!checker.complete() && checker.received() < until) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n > 0) {
      if (!checker.Feed(std::string_view(buffer.data(), static_cast<size_t>(n)))) {
        return absl::DataLossError(checker.error());
      }
      continue;
    }
    if (n == 0) {
      return absl::OutOfRangeError(absl::StrCat("EOF after ", checker.received(), " of ",
                                                checker.expected_bytes(), " bytes"));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::ErrnoToStatus(errno, absl::StrCat("recv after ", checker.received(), " bytes"));
    }
    if (absl::Status ready = WaitReadable(fd, deadline); !ready.ok()) {
      if (!absl::IsDeadlineExceeded(ready)) return ready;
      return absl::DeadlineExceededError(absl::StrCat("reply incomplete: ", checker.received(),
                                                      " of ", checker.expected_bytes(), " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status SendStorage(int fd, std::string_view verb, std::string_view key, uint32_t flags,
                         const ValuePattern& pattern, uint32_t seed, uint64_t size,
                         Deadline deadline) {
  const std::string line = absl::StrCat(absl::string_view(verb.data(), verb.size()), " ",
                                        absl::string_view(key.data(), key.size()), " ", flags,
                                        " 0 ", size, "\r\n");
  if (absl::Status s = WriteAll(fd, line, deadline);
      !s.ok()) {
    return s;
  }
  for (uint64_t sent = 0; sent < size;) {
    const std::string_view piece =
        pattern.At(seed, sent, static_cast<size_t>(std::min<uint64_t>(size - sent, 256 << 10)));
    if (absl::Status s = WriteAll(fd, piece, deadline); !s.ok()) return s;
    sent += piece.size();
  }
  return WriteAll(fd, "\r\n", deadline);
}

std::string RepeatedGet(std::string_view key, size_t times) {
  std::string line = "get";
  line.reserve(3 + times * (key.size() + 1) + 2);
  for (size_t i = 0; i < times; ++i) {
    line += ' ';
    line.append(key.data(), key.size());
  }
  line += "\r\n";
  return line;
}

size_t ResidentBytes(pid_t pid) {
  const std::string path = pid == 0 ? "/proc/self/status" : absl::StrCat("/proc/", pid, "/status");
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kb = static_cast<size_t>(std::strtoull(line + 6, nullptr, 10));
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

}  // namespace percore::test
