#pragma once

#include <poll.h>

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "reactor/poller.h"

namespace percore {

// Poller over poll(2). Watched fds live in a dense pollfd array, so removal swaps the last
// entry into the freed slot; `slot_of_fd_` (indexed by fd) makes Add/Modify/Remove O(1).
// Wait costs O(watched fds), which is the point of comparison with EpollPoller.
class PollPoller final : public Poller {
 public:
  PollPoller() = default;
  PollPoller(const PollPoller&) = delete;
  PollPoller& operator=(const PollPoller&) = delete;

  absl::Status Add(int fd, uint32_t interest, void* context) override;
  absl::Status Modify(int fd, uint32_t interest) override;
  absl::Status Remove(int fd) override;
  absl::StatusOr<int> Wait(int timeout_ms, std::span<PollEvent> out) override;
  int size() const override { return static_cast<int>(pollfds_.size()); }
  PollerBackend backend() const override { return PollerBackend::kPoll; }

 private:
  static constexpr int kNoSlot = -1;

  int SlotOf(int fd) const;

  std::vector<pollfd> pollfds_;
  std::vector<void*> contexts_;  // parallel to pollfds_
  std::vector<int> slot_of_fd_;  // fd -> index into pollfds_, or kNoSlot
  // Slot where the next Wait starts reporting, so that when `out` is smaller than the ready
  // set, the fds left over are reported first next time instead of being starved.
  size_t next_report_slot_ = 0;
};

}  // namespace percore
