#include "services/resp/resp_limits.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace percore {
namespace {

size_t Digits(uint64_t n) {
  size_t digits = 1;
  while (n >= 10) {
    n /= 10;
    ++digits;
  }
  return digits;
}

}  // namespace

absl::Status ValidateRespLimits(const RespOptions& options, const ConnectionOptions& connection) {
  // Every command name (and PING's own bulk) must fit a bulk string, or a client could send
  // nothing but inline commands.
  if (options.max_bulk_bytes < kRespSmallestBulkLimit) {
    return absl::InvalidArgumentError(absl::StrCat("resp max_bulk_bytes (", options.max_bulk_bytes,
                                                   ") is below ", kRespSmallestBulkLimit,
                                                   ": command names would not fit a bulk string"));
  }
  if (options.max_args < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resp max_args (", options.max_args, ") is below 3: SET key value could not be sent"));
  }
  // A header line is "$" or "*", the digits, CR; the parser looks for its LF within
  // max_inline_bytes + 1 bytes.
  const size_t header =
      Digits(std::max<uint64_t>(options.max_bulk_bytes, options.max_args)) + 2;
  if (options.max_inline_bytes < header) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resp max_inline_bytes (", options.max_inline_bytes, ") cannot hold the ", header,
        "-byte header line of a max_bulk_bytes (", options.max_bulk_bytes,
        ") bulk string or of a max_args (", options.max_args, ") request"));
  }
  if (options.max_request_bytes < options.max_bulk_bytes ||
      options.max_request_bytes - options.max_bulk_bytes < kRespRequestFraming) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resp max_request_bytes (", options.max_request_bytes,
        ") must exceed max_bulk_bytes (", options.max_bulk_bytes, ") by at least ",
        kRespRequestFraming, ": a SET of the largest value accepted would not fit the query "
        "buffer limit"));
  }
  if (options.max_batch_commands < 1 || options.max_batch_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resp max_batch_commands (", options.max_batch_commands, ") and max_batch_bytes (",
        options.max_batch_bytes, ") must be positive"));
  }
  if (options.expire_period <= absl::ZeroDuration() ||
      options.expire_period == absl::InfiniteDuration() || options.expire_sample <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resp expire_period (", absl::FormatDuration(options.expire_period),
        ") and expire_sample (", options.expire_sample,
        ") must be positive and finite, or keys with a TTL that nobody reads again would never "
        "be removed"));
  }
  if (connection.output_cap <= connection.high_water ||
      connection.output_cap - connection.high_water <= kRespLargestCopiedPiece) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_cap (", connection.output_cap, ") must exceed high_water (",
        connection.high_water, ") by more than ", kRespLargestCopiedPiece,
        " bytes: resp streams a reply into the output up to high_water, and one copied piece "
        "may pass it"));
  }
  return absl::OkStatus();
}

}  // namespace percore
