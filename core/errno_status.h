#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace percore {

// An absl::Status for a failed system call: "<what>: <strerror(err)>", with a code that
// follows errno's meaning (EINVAL -> InvalidArgument, EADDRINUSE -> AlreadyExists, ...).
absl::Status ErrnoStatus(int err, std::string_view what);

}  // namespace percore
