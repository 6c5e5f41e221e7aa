#include "reactor/epoll_poller.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/errno_status.h"
#include "core/syscalls.h"

namespace percore {
namespace {

uint32_t ToEpollEvents(uint32_t interest) {
  uint32_t events = 0;
  // EPOLLRDHUP only with read interest: it is level-triggered, so asking for it while reads are
  // off (backpressure) would wake the loop on every iteration after a peer's half-close.
  if (interest & kPollIn) events |= EPOLLIN | EPOLLRDHUP;
  if (interest & kPollOut) events |= EPOLLOUT;
  return events;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EpollPoller>> EpollPoller::Create() {
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return ErrnoStatus(errno, "epoll_create1");
  return std::unique_ptr<EpollPoller>(new EpollPoller(epoll_fd));
}

EpollPoller::~EpollPoller() { ::close(epoll_fd_); }

bool EpollPoller::IsAdded(int fd) const {
  return fd >= 0 && static_cast<size_t>(fd) < watches_.size() && watches_[fd].added;
}

absl::Status EpollPoller::Add(int fd, uint32_t interest, void* context) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("epoll: bad fd ", fd));
  if (IsAdded(fd)) {
    return absl::AlreadyExistsError(absl::StrCat("epoll: fd ", fd, " already added"));
  }
  epoll_event event{.events = ToEpollEvents(interest), .data = {.fd = fd}};
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return ErrnoStatus(errno, absl::StrCat("epoll_ctl(ADD, ", fd, ")"));
  }
  if (static_cast<size_t>(fd) >= watches_.size()) watches_.resize(fd + 1);
  watches_[fd] = Watch{.context = context, .added = true};
  ++size_;
  return absl::OkStatus();
}

absl::Status EpollPoller::Modify(int fd, uint32_t interest) {
  if (!IsAdded(fd)) return absl::NotFoundError(absl::StrCat("epoll: fd ", fd, " not added"));
  epoll_event event{.events = ToEpollEvents(interest), .data = {.fd = fd}};
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0) {
    return ErrnoStatus(errno, absl::StrCat("epoll_ctl(MOD, ", fd, ")"));
  }
  return absl::OkStatus();
}

absl::Status EpollPoller::Remove(int fd) {
  if (!IsAdded(fd)) return absl::NotFoundError(absl::StrCat("epoll: fd ", fd, " not added"));
  watches_[fd] = Watch{};
  --size_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr) != 0) {
    return ErrnoStatus(errno, absl::StrCat("epoll_ctl(DEL, ", fd, ")"));
  }
  return absl::OkStatus();
}

absl::Status EpollPoller::RemoveBeforeClose(int fd) {
  if (!IsAdded(fd)) return absl::NotFoundError(absl::StrCat("epoll: fd ", fd, " not added"));
  watches_[fd] = Watch{};
  --size_;
  return absl::OkStatus();
}

absl::StatusOr<int> EpollPoller::Wait(int timeout_ms, std::span<PollEvent> out) {
  if (out.empty()) return absl::InvalidArgumentError("epoll: empty event span");
  if (events_.size() < out.size()) events_.resize(out.size());
  const int ready = sys::EpollWait(epoll_fd_, events_.data(), static_cast<int>(out.size()), timeout_ms);
  if (ready < 0) {
    if (errno == EINTR) return 0;
    return ErrnoStatus(errno, "epoll_wait");
  }
  for (int i = 0; i < ready; ++i) {
    const int fd = events_[i].data.fd;
    out[i] = PollEvent{.context = watches_[fd].context,
                       .fd = fd,
                       .events = FromEpollEvents(events_[i].events)};
  }
  return ready;
}

int EpollPoller::WaitReady(int timeout_ms, int max_events) {
  if (events_.size() < static_cast<size_t>(max_events)) events_.resize(max_events);
  const int ready = sys::EpollWait(epoll_fd_, events_.data(), max_events, timeout_ms);
  if (ready < 0 && errno == EINTR) return 0;
  return ready;
}

}  // namespace percore
