#include "core/errno_status.h"

#include <cerrno>

namespace percore {

absl::Status ErrnoStatus(int err, std::string_view what) {
  absl::Status status = absl::ErrnoToStatus(err, absl::string_view(what.data(), what.size()));
  switch (err) {
    case EADDRINUSE:
      return absl::AlreadyExistsError(status.message());
    case EADDRNOTAVAIL:
      return absl::NotFoundError(status.message());
    case EBADF:
      return absl::InvalidArgumentError(status.message());
    case EPIPE:
      return absl::UnavailableError(status.message());
    default:
      return status;
  }
}

}  // namespace percore
