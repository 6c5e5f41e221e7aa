#include "reactor/poller.h"

#include <memory>
#include <string_view>
#include <utility>

#include "reactor/epoll_poller.h"
#include "reactor/poll_poller.h"

namespace percore {

std::string_view PollerBackendName(PollerBackend backend) {
  switch (backend) {
    case PollerBackend::kPoll:
      return "poll";
    case PollerBackend::kEpoll:
      return "epoll";
  }
  return "unknown";
}

bool ParsePollerBackend(std::string_view text, PollerBackend* out) {
  for (PollerBackend backend : {PollerBackend::kPoll, PollerBackend::kEpoll}) {
    if (text == PollerBackendName(backend)) {
      *out = backend;
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Poller>> NewPoller(PollerBackend backend) {
  switch (backend) {
    case PollerBackend::kPoll:
      return std::make_unique<PollPoller>();
    case PollerBackend::kEpoll: {
      absl::StatusOr<std::unique_ptr<EpollPoller>> poller = EpollPoller::Create();
      if (!poller.ok()) return poller.status();
      return std::unique_ptr<Poller>(std::move(*poller));
    }
  }
  return absl::InvalidArgumentError("unknown poller backend");
}

}  // namespace percore
