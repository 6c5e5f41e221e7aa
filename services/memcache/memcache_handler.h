#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reactor/close_reason.h"
#include "reactor/handler.h"
#include "services/memcache/memcache_parser.h"
#include "services/memcache/memcache_shards.h"

namespace percore {
class MemcacheService;
}  // namespace percore

namespace percore::memcache {

// What a shard on another loop sends back for one request.
struct RemoteResult {
  std::string text;                           // the reply (single-key commands)
  std::vector<std::pair<uint32_t, ItemPtr>> hits;  // retrievals: the items found, by key index
  size_t keys_asked = 0;                            // retrievals: how many keys were looked up
  bool failed = false;  // the owner's work threw: the connection closes as handler_error
  bool error = false;
};

// One memcache connection. Parses requests from the input in place; each request is executed
// on the shard that owns its key(s): inline when that is this loop's shard, otherwise posted
// to the owner, which posts the result back. Replies leave in request order: while any request
// is away, later replies wait in `pending_` (local ones are formatted into it) and the
// connection is paused; the last result back resumes it.
//
// A retrieval looks its keys up when it is dispatched (so per key, commands run in the order
// the client sent them), but its VALUE blocks are formatted only as the output drains: past
// the high-water mark it keeps references to the items it found and continues in OnWritable.
// Values are sent from the items themselves (AppendValue), so `get k k k ...` repeating a 1 MB
// key thousands of times holds the output's high-water mark plus one value, not the reply.
class MemcacheHandler final : public Handler {
 public:
  // References pending retrievals may keep at most (beyond it, reading pauses until replies
  // leave): a bound on what a pipeline of huge multi-gets holds besides its own lines.
  static constexpr size_t kMaxHeldItems = 1 << 16;

  // `high_water`: the connection's output mark past which retrievals stop formatting.
  MemcacheHandler(MemcacheService& service, LoopCounters& counters, Shard* local_shard,
                  size_t high_water);

  Action OnData(Connection& conn, Buffer& input) override;
  void OnWritable(Connection& conn) override;
  void OnClose(Connection& conn, CloseReason reason) override;

  // On this connection's loop: the result of request `seq` arrived from another loop.
  void OnRemoteResult(Connection& conn, uint64_t seq, RemoteResult result);

 private:
  struct Pending {
    uint64_t seq = 0;
    int waiting = 0;          // results still on other loops
    bool error = false;
    bool retrieval = false;   // reply = text + a VALUE block per item in `items` + END
    bool with_cas = false;
    int64_t start_ns = 0;
    std::string text;
    std::vector<ItemPtr> items;  // hits in key order; null for a miss
    size_t next_item = 0;        // the first not formatted yet
  };

  void Dispatch(Connection& conn, const Command& cmd, int64_t start_ns);
  void DispatchKeyOp(Connection& conn, const Command& cmd, int64_t start_ns);
  void DispatchRetrieval(Connection& conn, const Command& cmd, int64_t start_ns);
  void DispatchFlush(Connection& conn, const Command& cmd, int64_t start_ns);
  // A reply produced on this loop: straight to the output when nothing is pending.
  void Reply(Connection& conn, std::string_view text, bool error, int64_t start_ns);
  Pending& AddPending(int64_t start_ns);
  // Writes out, in request order, what is ready at the head of `pending_`: finished replies,
  // and a retrieval's VALUE blocks while the output is below the high-water mark (past it, the
  // rest waits for OnWritable). Closes or resumes the connection once nothing is left.
  void FlushReady(Connection& conn);
  void KeepItem(Pending& p, const Item* item);
  // Stops taking requests; closes once every pending reply is out.
  Action CloseWhenDone(CloseReason reason);
  bool IsLocal(const Shard& shard) const { return &shard == local_shard_; }

  MemcacheService& service_;
  ShardDirectory& directory_;
  LoopCounters& counters_;
  Shard* const local_shard_;  // the shard this loop owns, if any
  MemcacheParser parser_;
  std::deque<Pending> pending_;
  uint64_t next_seq_ = 0;
  size_t max_inflight_;
  size_t high_water_;
  // References kept by pending retrievals, counting each remote key from its dispatch until
  // its answer (a miss then gives its count back).
  size_t held_items_ = 0;
  bool closing_ = false;
  CloseReason close_reason_ = CloseReason::kServiceClose;
};

}  // namespace percore::memcache
