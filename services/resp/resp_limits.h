#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "reactor/connection.h"
#include "services/resp/resp_options.h"

namespace percore {

// The most bytes RESP copies into a connection's output in one piece once the output is past
// high_water: a reply of a session command (COMMAND DOCS is the largest), a value too short to
// be shared, or a chunk of a streamed reply's headers. Replies are never started above
// high_water, and a streamed reply stops adding pieces there, so the output's copied bytes stay
// below high_water + this.
inline constexpr size_t kRespLargestCopiedPiece = size_t{256} << 10;

// Room a request needs beyond its largest bulk string: the "*3", "$3 SET" and "$N" framing of a
// SET and a key of up to about 1000 bytes.
inline constexpr size_t kRespRequestFraming = 1024;

// The smallest max_bulk_bytes that still carries every command name as a bulk string.
inline constexpr size_t kRespSmallestBulkLimit = 16;

// Whether the RESP service can work with these limits on connections that have `connection`'s
// options: InvalidArgument naming the first combination that cannot, OK otherwise. Checked:
//   - max_bulk_bytes >= kRespSmallestBulkLimit (command names travel as bulk strings);
//   - max_args >= 3 (a SET carries three arguments);
//   - max_inline_bytes holds the "$N" line of a max_bulk_bytes bulk and the "*N" line of a
//     max_args request;
//   - max_request_bytes >= max_bulk_bytes + kRespRequestFraming (a SET of the largest value
//     must fit the query buffer limit);
//   - max_batch_commands >= 1 and max_batch_bytes >= 1;
//   - expire_period finite and > 0, expire_sample > 0 (otherwise active expiry never runs);
//   - connection.output_cap > connection.high_water + kRespLargestCopiedPiece (a streamed
//     reply fills the output up to high_water; a cap below that closes the connection as
//     output_overflow before backpressure can act).
absl::Status ValidateRespLimits(const RespOptions& options, const ConnectionOptions& connection);

}  // namespace percore
