#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace percore {

// An absl::Status for a failed system call: absl::ErrnoToStatus ("<what>: <strerror(err)>",
// its code for `err`), except for the errnos whose meaning for a socket call absl's mapping
// blurs: EADDRINUSE -> AlreadyExists (the port is taken), EADDRNOTAVAIL -> NotFound (no such
// local address), EBADF -> InvalidArgument (not a descriptor: the caller's mistake), and
// EPIPE -> Unavailable (the peer reset, as ECONNRESET).
absl::Status ErrnoStatus(int err, std::string_view what);

}  // namespace percore
