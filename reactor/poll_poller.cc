#include "reactor/poll_poller.h"

#include <poll.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/errno_status.h"
#include "reactor/poll_mask.h"

namespace percore {

int PollPoller::SlotOf(int fd) const {
  if (fd < 0 || static_cast<size_t>(fd) >= slot_of_fd_.size()) return kNoSlot;
  return slot_of_fd_[fd];
}

absl::Status PollPoller::Add(int fd, uint32_t interest, void* context) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("poll: bad fd ", fd));
  if (SlotOf(fd) != kNoSlot) {
    return absl::AlreadyExistsError(absl::StrCat("poll: fd ", fd, " already added"));
  }
  if (static_cast<size_t>(fd) >= slot_of_fd_.size()) slot_of_fd_.resize(fd + 1, kNoSlot);
  slot_of_fd_[fd] = static_cast<int>(pollfds_.size());
  pollfds_.push_back(pollfd{.fd = fd, .events = static_cast<short>(ToPollMask(interest)), .revents = 0});
  contexts_.push_back(context);
  return absl::OkStatus();
}

absl::Status PollPoller::Modify(int fd, uint32_t interest) {
  const int slot = SlotOf(fd);
  if (slot == kNoSlot) return absl::NotFoundError(absl::StrCat("poll: fd ", fd, " not added"));
  pollfds_[slot].events = static_cast<short>(ToPollMask(interest));
  return absl::OkStatus();
}

absl::Status PollPoller::Remove(int fd) {
  const int slot = SlotOf(fd);
  if (slot == kNoSlot) return absl::NotFoundError(absl::StrCat("poll: fd ", fd, " not added"));
  const int last = static_cast<int>(pollfds_.size()) - 1;
  if (slot != last) {
    pollfds_[slot] = pollfds_[last];
    contexts_[slot] = contexts_[last];
    slot_of_fd_[pollfds_[slot].fd] = slot;
  }
  pollfds_.pop_back();
  contexts_.pop_back();
  slot_of_fd_[fd] = kNoSlot;
  return absl::OkStatus();
}

absl::StatusOr<int> PollPoller::Wait(int timeout_ms, std::span<PollEvent> out) {
  if (out.empty()) return absl::InvalidArgumentError("poll: empty event span");
  const int ready = ::poll(pollfds_.data(), pollfds_.size(), timeout_ms);
  if (ready < 0) {
    if (errno == EINTR) return 0;
    return ErrnoStatus(errno, "poll");
  }
  const size_t n = pollfds_.size();
  if (next_report_slot_ >= n) next_report_slot_ = 0;
  int filled = 0;
  int seen = 0;
  size_t slot = next_report_slot_;
  for (size_t i = 0; i < n && seen < ready; ++i, slot = (slot + 1 == n) ? 0 : slot + 1) {
    const short revents = pollfds_[slot].revents;
    if (revents == 0) continue;
    ++seen;
    out[filled++] = PollEvent{
        .context = contexts_[slot], .fd = pollfds_[slot].fd, .events = FromPollMask(static_cast<uint16_t>(revents))};
    if (static_cast<size_t>(filled) == out.size()) {
      next_report_slot_ = slot + 1;
      break;
    }
  }
  return filled;
}

}  // namespace percore
