#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/lazy_deque.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "services/memcache/item.h"
#include "services/memcache/memcache_parser.h"

namespace percore::memcache {

// The service's limits as each connection's requests apply them; the same for every
// connection, so one copy per loop (Shard::request_limits).
struct RequestLimits {
  ParserLimits parser;
  // Requests that may wait on other loops at once (MemcacheOptions::max_inflight, at least 1).
  size_t max_inflight = 64;
  // What a remote key not answered yet counts for in RequestState::held_bytes.
  size_t remote_key_reserve = 0;
};

// A reply that waits its turn: its request is away on another loop, or an earlier one is.
struct PendingReply {
  uint64_t seq = 0;
  int waiting = 0;          // answers still on other loops
  bool error = false;
  bool retrieval = false;   // reply = text + a VALUE block per item in `items` + END
  bool with_cas = false;
  RequestStart start;
  std::string text;
  std::vector<ItemPtr> items;  // hits in key order; null for a miss
  size_t next_item = 0;        // the first not formatted yet
};

// What a memcache connection needs only while it has requests in progress: the parser, the
// replies still waiting, what they hold. A connection takes one from its loop's free list
// (Shard::request_states) when request bytes arrive and gives it back once everything is
// answered, so an idle connection holds a null pointer instead. Loop thread only.
struct RequestState {
  explicit RequestState(const RequestLimits& limits)
      : parser(limits.parser),
        max_inflight(limits.max_inflight),
        remote_key_reserve(limits.remote_key_reserve) {}

  // Whether nothing is in progress: no reply waits, no data block is being swallowed, no close
  // is under way. Only then may the state go back to the free list.
  bool idle() const { return pending.empty() && parser.swallowing() == 0 && !closing; }

  MemcacheParser parser;  // between requests it keeps only the data block it swallows
  LazyDeque<PendingReply> pending;  // nothing allocated while nothing is pending
  uint64_t next_seq = 0;
  const size_t max_inflight;
  const size_t remote_key_reserve;
  // References kept by pending retrievals, counting each remote key from its dispatch until
  // its answer (a miss then gives its count back).
  size_t held_items = 0;
  // Value bytes of the items held_items counts; a remote key not answered yet counts as
  // remote_key_reserve.
  size_t held_bytes = 0;
  bool closing = false;
  CloseReason close_reason = CloseReason::kServiceClose;
};

}  // namespace percore::memcache
