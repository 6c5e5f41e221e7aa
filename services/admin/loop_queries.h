#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "reactor/server.h"

namespace percore {

// Admin work that must run on the loops (connection state has no locks): it is posted to each
// loop as a task, and the admin thread waits for the answers up to a deadline. A loop that does
// not answer in time is reported, never waited on past the deadline. The posted tasks share
// their result slot with the waiter (shared_ptr + mutex), so a task that runs after the waiter
// gave up writes into a slot that is still alive and that nobody reads any more.

// One open connection as its loop saw it.
struct ConnectionRecord {
  uint64_t id = 0;
  int loop = 0;
  std::string service;
  std::string peer;
  std::string state;
  absl::Duration age;   // since it opened
  absl::Duration idle;  // since its last byte read or written
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t requests = 0;
  uint64_t queued_output = 0;
  std::string tls_version;  // empty: plaintext, or the handshake is not done
  std::string tls_alpn;
  bool tls_resumed = false;
  bool tls_ktls = false;
  uint64_t recent_requests_per_sec = 0;  // Connection::recent_*
  uint64_t recent_bytes_per_sec = 0;
};

struct ConnectionFilter {
  std::optional<int> loop;  // only this loop
  std::string service;      // only this service; empty: any
  std::string state;        // only this ConnectionStateName; empty: any
  uint64_t after_id = 0;    // only ids above this (paging)
};

struct ConnectionListing {
  std::vector<ConnectionRecord> connections;  // ascending id
  std::vector<int> stalled_loops;             // did not answer by the deadline
};

// Thread-safe; blocks the caller up to `timeout` (absl::InfiniteDuration(): until every loop
// has answered). Call from a thread that is not a loop of `server`. A server that is not
// running has no connections.
ConnectionListing ListConnections(Server& server, const ConnectionFilter& filter, absl::Duration timeout);

// Closes connection `id` at once (CloseReason::kAdminClose, queued output dropped) on the loop
// that owns it (id >> 48). NOT_FOUND when no such connection is open; DEADLINE_EXCEEDED when
// its loop did not answer within `timeout`; UNAVAILABLE when the server is not running.
absl::Status CloseConnection(Server& server, uint64_t id, absl::Duration timeout);

}  // namespace percore
