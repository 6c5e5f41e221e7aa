#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/lazy_deque.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/memcache/memcache_parser.h"
#include "services/memcache/memcache_shard.h"

namespace percore {
class MemcacheService;
}  // namespace percore

namespace percore::memcache {

// One memcache connection. Parses requests from the input in place; each request is executed
// on the shard that owns its key(s) (Sharded::OwnerOf): inline when that is this loop's shard,
// otherwise on the owner through Sharded::Call, whose answer comes back to this connection.
// Replies leave in request order: while any request is away, later replies wait in `pending_`
// (local ones are formatted into it) and the connection is paused; the last answer back
// resumes it.
//
// A retrieval looks its keys up when it is dispatched (so per key, commands run in the order
// the client sent them), but its VALUE blocks are formatted only while the output is not
// backed up (Connection::above_high_water): past that it keeps references to the items it
// found and continues in OnWritable. Values are sent from the items themselves (AppendValue),
// so `get k k k ...` repeating a 1 MB key thousands of times holds the output's high-water
// mark plus one value, not the reply.
class MemcacheHandler final : public Handler {
 public:
  // References pending retrievals may keep at most (beyond it, reading pauses until replies
  // leave): a bound on what a pipeline of huge multi-gets holds besides its own lines.
  static constexpr size_t kMaxHeldItems = 1 << 16;
  // ... and the value bytes they may keep alive: a slow reader's pending replies pin the items
  // they found even after the store replaced or evicted them, outside the store's memory limit.
  static constexpr size_t kMaxHeldBytes = 64 << 20;

  // On the connection's loop.
  explicit MemcacheHandler(MemcacheService& service);

  Action OnData(Connection& conn, Buffer& input) override;
  void OnWritable(Connection& conn) override;
  void OnClose(Connection& conn, CloseReason reason) override;

 private:
  // An owner's answer to a single-key command.
  struct KeyOpReply {
    std::string text;
    bool error = false;
  };
  // An owner's answer to its keys of a retrieval: the items found, by key index.
  using Hits = std::vector<std::pair<uint32_t, ItemPtr>>;

  struct Pending {
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

  void Dispatch(Connection& conn, const Command& cmd);
  void DispatchKeyOp(Connection& conn, const Command& cmd);
  // Everything but a retrieval, and the errors the parser answered.
  void DispatchOther(Connection& conn, const Command& cmd);
  // get/gets/gat/gats: one local key with the output free is answered at once; the rest goes
  // to DispatchKeys.
  void DispatchRetrieval(Connection& conn, const Command& cmd);
  void DispatchKeys(Connection& conn, const Command& cmd);
  void DispatchFlush(Connection& conn, const Command& cmd);
  // A reply produced on this loop: straight to the output when nothing is pending.
  void Reply(Connection& conn, std::string_view text, bool error);
  Pending& AddPending(Connection& conn);
  // An answer for request `seq` came back: the request it belongs to, one answer fewer to wait
  // for. It is still queued: a request is never written while it waits.
  Pending& Answered(uint64_t seq);
  // Writes out, in request order, what is ready at the head of `pending_`: finished replies,
  // and a retrieval's VALUE blocks while the output is not backed up (then the rest waits for
  // OnWritable). Closes or resumes the connection once nothing is left.
  void FlushReady(Connection& conn);
  void KeepItem(Pending& p, const Item* item);
  // Stops taking requests; closes once every pending reply is out.
  Action CloseWhenDone(CloseReason reason);

  MemcacheService& service_;
  Sharded<Shard>& shards_;
  const ShardId here_;  // this loop's shard
  Shard& local_;
  MemcacheParser parser_;
  LazyDeque<Pending> pending_;  // nothing allocated while nothing is pending
  uint64_t next_seq_ = 0;
  size_t max_inflight_;
  // What a remote key not answered yet counts for in held_bytes_: the largest item, up to
  // 1/64 of the bound (so that 64 remote keys may be away at once whatever the item size).
  size_t remote_key_reserve_;
  // References kept by pending retrievals, counting each remote key from its dispatch until
  // its answer (a miss then gives its count back).
  size_t held_items_ = 0;
  // Value bytes of the items held_items_ counts; a remote key not answered yet counts as
  // remote_key_reserve_.
  size_t held_bytes_ = 0;
  bool closing_ = false;
  CloseReason close_reason_ = CloseReason::kServiceClose;
};

}  // namespace percore::memcache
