#include "reactor/poller.h"

#include <memory>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

#include "reactor/epoll_poller.h"
#include "reactor/poll_poller.h"
#include "reactor/uring_poller.h"

namespace percore {

std::string_view PollerBackendName(PollerBackend backend) {
  switch (backend) {
    case PollerBackend::kPoll:
      return "poll";
    case PollerBackend::kEpoll:
      return "epoll";
    case PollerBackend::kIoUring:
      return "io_uring";
    case PollerBackend::kAuto:
      return "auto";
  }
  return "unknown";
}

bool ParsePollerBackend(std::string_view text, PollerBackend* out) {
  for (PollerBackend backend :
       {PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring, PollerBackend::kAuto}) {
    if (text == PollerBackendName(backend)) {
      *out = backend;
      return true;
    }
  }
  return false;
}

absl::StatusOr<PollerBackend> ResolveBackend(PollerBackend requested, const UringOptions& uring, std::string* why) {
  if (requested != PollerBackend::kAuto && requested != PollerBackend::kIoUring) {
    if (why != nullptr) *why = absl::StrCat(std::string(PollerBackendName(requested)), " (asked for)");
    return requested;
  }
  // Sizes that no ring can have are a configuration error, on auto too: falling back to epoll
  // would hide it.
  if (absl::Status s = CheckUringOptions(uring); !s.ok()) return s;
  absl::Status probe = ProbeIoUring(uring);
  if (probe.ok()) {
    if (why != nullptr) {
      *why = requested == PollerBackend::kAuto ? "io_uring (auto: available)" : "io_uring (asked for)";
    }
    return PollerBackend::kIoUring;
  }
  if (requested == PollerBackend::kIoUring) {
    return absl::Status(probe.code(), absl::StrCat("--backend=io_uring cannot start: ", probe.message()));
  }
  if (why != nullptr) *why = absl::StrCat("epoll (auto: io_uring unavailable: ", probe.message(), ")");
  return PollerBackend::kEpoll;
}

absl::StatusOr<std::unique_ptr<Poller>> NewPoller(PollerBackend backend, const UringOptions& uring) {
  switch (backend) {
    case PollerBackend::kPoll:
      return std::make_unique<PollPoller>();
    case PollerBackend::kEpoll: {
      absl::StatusOr<std::unique_ptr<EpollPoller>> poller = EpollPoller::Create();
      if (!poller.ok()) return poller.status();
      return std::unique_ptr<Poller>(std::move(*poller));
    }
    case PollerBackend::kIoUring: {
      absl::StatusOr<std::unique_ptr<UringPoller>> poller = UringPoller::Create(uring);
      if (!poller.ok()) return poller.status();
      return std::unique_ptr<Poller>(std::move(*poller));
    }
    case PollerBackend::kAuto:
      return absl::InvalidArgumentError("NewPoller: resolve kAuto first (ResolveBackend)");
  }
  return absl::InvalidArgumentError("unknown poller backend");
}

}  // namespace percore
