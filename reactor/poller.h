#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace percore {

// Readiness bits, used both for interest and for reported events.
enum PollEvents : uint32_t {
  kPollIn = 1u << 0,      // readable (or a listening socket has a pending connection)
  kPollOut = 1u << 1,     // writable
  kPollHangup = 1u << 2,  // peer hung up (reported whether or not it was asked for)
  kPollError = 1u << 3,   // error pending on the fd (reported whether or not it was asked for)
};

// One ready fd, as filled in by Poller::Wait. `context` is the pointer given to Add().
struct PollEvent {
  void* context = nullptr;
  int fd = -1;
  uint32_t events = 0;
};

enum class PollerBackend { kPoll, kEpoll };

std::string_view PollerBackendName(PollerBackend backend);
bool ParsePollerBackend(std::string_view text, PollerBackend* out);

// The readiness multiplexer an EventLoop waits on. Level-triggered semantics in every back end.
// Not thread-safe: one Poller belongs to one loop thread.
class Poller {
 public:
  virtual ~Poller() = default;

  // Starts watching `fd` for `interest` (kPollIn | kPollOut, possibly 0). An fd may be added once.
  virtual absl::Status Add(int fd, uint32_t interest, void* context) = 0;
  // Replaces the interest set of an fd previously added.
  virtual absl::Status Modify(int fd, uint32_t interest) = 0;
  // Stops watching `fd`. Must be called before the fd is closed.
  virtual absl::Status Remove(int fd) = 0;
  // Blocks up to `timeout_ms` (-1: forever, 0: do not block) and fills `out` with ready fds.
  // Returns how many entries were filled (0 on timeout); EINTR yields 0, not an error.
  virtual absl::StatusOr<int> Wait(int timeout_ms, std::span<PollEvent> out) = 0;
  // Number of fds currently watched.
  virtual int size() const = 0;
  virtual PollerBackend backend() const = 0;
};

absl::StatusOr<std::unique_ptr<Poller>> NewPoller(PollerBackend backend);

}  // namespace percore
