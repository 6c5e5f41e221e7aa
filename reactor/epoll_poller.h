#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "reactor/poller.h"

namespace percore {

// Poller over epoll(7), level-triggered, one epoll_wait per Wait. The kernel event carries the
// fd; the context comes from `watches_`, a table indexed by fd, which also answers "is this fd
// added?" without a syscall.
class EpollPoller final : public Poller {
 public:
  // Creates the epoll instance (EPOLL_CLOEXEC).
  static absl::StatusOr<std::unique_ptr<EpollPoller>> Create();
  ~EpollPoller() override;
  EpollPoller(const EpollPoller&) = delete;
  EpollPoller& operator=(const EpollPoller&) = delete;

  absl::Status Add(int fd, uint32_t interest, void* context) override;
  absl::Status Modify(int fd, uint32_t interest) override;
  // Forgets `fd` even if the kernel refuses (e.g. the fd was already closed, which removes it
  // from the epoll set by itself); the kernel's error is still returned.
  absl::Status Remove(int fd) override;
  // Bookkeeping only: closing the fd (its only descriptor) takes it out of the epoll set, as
  // EPOLL_CTL_DEL would.
  absl::Status RemoveBeforeClose(int fd) override;
  absl::StatusOr<int> Wait(int timeout_ms, std::span<PollEvent> out) override;
  int size() const override { return size_; }
  PollerBackend backend() const override { return PollerBackend::kEpoll; }
  EpollPoller* epoll() override { return this; }

  // The loop's own path (EventLoop::DispatchEpoll), without the conversion to PollEvent: waits
  // as Wait does and keeps the kernel's events; returns how many (0 on EINTR), or -1 with errno
  // set. ready_fd(i) is -1 for an event that DropReady cancelled.
  int WaitReady(int timeout_ms, int max_events);
  int ready_fd(int i) const { return events_[i].data.fd; }
  uint32_t ready_events(int i) const { return FromEpollEvents(events_[i].events); }
  // The context of an added fd, nullptr once removed.
  void* context(int fd) const { return watches_[fd].context; }
  // Cancels the events of `fd` among ready ones [from, to): it was removed after the wait.
  void DropReady(int fd, int from, int to) {
    for (int i = from; i < to; ++i) {
      if (events_[i].data.fd == fd) events_[i].data.fd = -1;
    }
  }
  static uint32_t FromEpollEvents(uint32_t revents) {
    uint32_t events = 0;
    if (revents & EPOLLIN) events |= kPollIn;
    if (revents & EPOLLOUT) events |= kPollOut;
    if (revents & (EPOLLHUP | EPOLLRDHUP)) events |= kPollHangup;
    if (revents & EPOLLERR) events |= kPollError;
    return events;
  }

 private:
  struct Watch {
    void* context = nullptr;
    bool added = false;
  };

  explicit EpollPoller(int epoll_fd) : epoll_fd_(epoll_fd) {}
  bool IsAdded(int fd) const;

  const int epoll_fd_;
  std::vector<Watch> watches_;  // indexed by fd
  int size_ = 0;
  // Reused across Waits; grows only when a caller offers a larger `out` than before.
  std::vector<epoll_event> events_;
};

}  // namespace percore
