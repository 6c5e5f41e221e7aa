#include "core/errno_status.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace percore {

absl::Status ErrnoStatus(int err, std::string_view what) {
  std::string message = absl::StrCat(absl::string_view(what.data(), what.size()), ": ", std::strerror(err));
  switch (err) {
    case EINVAL:
    case EBADF:
      return absl::InvalidArgumentError(message);
    case EADDRINUSE:
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENOENT:
    case EADDRNOTAVAIL:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOBUFS:
      return absl::ResourceExhaustedError(message);
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace percore
