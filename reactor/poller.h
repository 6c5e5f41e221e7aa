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
  // Not readiness: an operation the completion back end ran finished (PollEvent::result,
  // flags and op say which and how; see UringPoller). Delivered to IoWatcher::OnCompletion.
  kPollCompletion = 1u << 4,
};

// One ready fd, as filled in by Poller::Wait. `context` is the pointer given to Add().
struct PollEvent {
  void* context = nullptr;
  int fd = -1;
  uint32_t events = 0;
  // For kPollCompletion only: the operation's result (bytes, a new fd, or -errno), the
  // completion's flags (IORING_CQE_F_*) and the kind of operation (UringPoller::Op).
  int32_t result = 0;
  uint32_t flags = 0;
  uint8_t op = 0;
};

// kAuto is a request, not a back end: io_uring where it can run, epoll otherwise
// (ResolveBackend). A running loop reports the back end it got.
enum class PollerBackend { kPoll, kEpoll, kIoUring, kAuto };

std::string_view PollerBackendName(PollerBackend backend);
bool ParsePollerBackend(std::string_view text, PollerBackend* out);

class EpollPoller;
class UringPoller;
struct UringOptions;

// What a loop asked for with `requested` gets: kAuto becomes io_uring if a ring with every
// feature percore uses can be set up here, epoll otherwise, and `*why` says which and why (one
// line for the start-up log). An explicit kIoUring that cannot run is an error naming the
// reason; poll and epoll are returned as they are.
absl::StatusOr<PollerBackend> ResolveBackend(PollerBackend requested, const UringOptions& uring, std::string* why);

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
  // Stops watching `fd`, which the caller closes right after and has never duplicated: the
  // same as Remove, but a back end whose kernel forgets a closed fd by itself (epoll) skips the
  // system call.
  virtual absl::Status RemoveBeforeClose(int fd) { return Remove(fd); }
  // Blocks up to `timeout_ms` (-1: forever, 0: do not block) and fills `out` with ready fds.
  // Returns how many entries were filled (0 on timeout); EINTR yields 0, not an error.
  virtual absl::StatusOr<int> Wait(int timeout_ms, std::span<PollEvent> out) = 0;
  // Number of fds currently watched.
  virtual int size() const = 0;
  virtual PollerBackend backend() const = 0;
  // Called on the thread that will Wait, before it does (io_uring binds its ring to it).
  virtual void BindToCurrentThread() {}
  // The completion back end, or nullptr for the readiness ones.
  virtual UringPoller* uring() { return nullptr; }
  // The epoll back end, or nullptr for the others (the loop dispatches its events directly).
  virtual EpollPoller* epoll() { return nullptr; }
};

// `backend` must be resolved (not kAuto).
absl::StatusOr<std::unique_ptr<Poller>> NewPoller(PollerBackend backend, const UringOptions& uring);

}  // namespace percore
