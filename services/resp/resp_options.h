#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace percore {

// Tunables of the RESP service. Defaults follow Redis where Redis has the same knob.
struct RespOptions {
  // Largest bulk string a request may carry and a string value may grow to (APPEND).
  // Redis's proto-max-bulk-len; lower it to bound per-connection memory.
  size_t max_bulk_bytes = size_t{512} << 20;
  // Longest inline request line, and longest "*N" / "$N" header line.
  size_t max_inline_bytes = size_t{64} << 10;
  // Most arguments one multibulk request may announce.
  size_t max_args = size_t{1} << 20;
  // Most bytes one request may occupy in total (Redis's client-query-buffer-limit).
  size_t max_request_bytes = size_t{1} << 30;
  // Active expiry: each loop samples keys that carry a TTL this often.
  absl::Duration expire_period = absl::Milliseconds(100);
  // Keys examined per sampling round; a tick repeats rounds while many of them had expired.
  int expire_sample = 20;
  // A connection whose commands wait on other loops' shards sends at most this many commands
  // (or this many argument bytes) before it waits for their replies.
  int max_batch_commands = 256;
  size_t max_batch_bytes = size_t{256} << 10;
};

}  // namespace percore
