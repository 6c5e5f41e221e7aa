#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/memcache/memcache_parser.h"
#include "services/memcache/memcache_shard.h"
#include "services/memcache/request_state.h"

namespace percore {
class MemcacheService;
}  // namespace percore

namespace percore::memcache {

// One memcache connection. Parses requests from the input in place; each request is executed
// on the shard that owns its key(s) (Sharded::OwnerOf): inline when that is this loop's shard,
// otherwise on the owner through Sharded::Call, whose answer comes back to this connection.
// Replies leave in request order: while any request is away, later replies wait in the pending
// queue (local ones are formatted into it) and the connection is paused; the last answer back
// resumes it. The parser and that queue live in a RequestState borrowed from the loop while
// requests are in progress, so an idle connection costs its handler's two pointers.
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

  // On the connection's loop, whose shard `local` is.
  explicit MemcacheHandler(Shard& local);

  Action OnData(Connection& conn, Buffer& input) override;
  void OnWritable(Connection& conn) override;
  void OnClose(Connection& conn, CloseReason reason) override;
  // Idle (no request state), it moves; its connection is counted on the shard of the loop
  // it is on, which it re-binds to on arrival.
  MigrationVote CanMigrate(Connection& conn) override;
  void OnLeaving(Connection& conn) override;
  void OnMigrated(Connection& conn) override;

 private:
  // An owner's answer to a single-key command.
  struct KeyOpReply {
    std::string text;
    bool error = false;
  };
  // An owner's answer to its keys of a retrieval: the items found, by key index.
  using Hits = std::vector<std::pair<uint32_t, ItemPtr>>;

  MemcacheService& service() const;
  Sharded<Shard>& shards() const;
  ShardId here() const { return local_->index; }

  // Gives state_ back to the loop's free list when nothing is in progress.
  void ReleaseIfIdle();

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
  PendingReply& AddPending(Connection& conn);
  // An answer for request `seq` came back: the request it belongs to, one answer fewer to wait
  // for. It is still queued: a request is never written while it waits.
  PendingReply& Answered(uint64_t seq);
  // Writes out, in request order, what is ready at the head of the pending replies: finished
  // ones, and a retrieval's VALUE blocks while the output is not backed up (then the rest
  // waits for OnWritable). Closes or resumes the connection once nothing is left.
  void FlushReady(Connection& conn);
  // After an answer from another loop, or room in the output: FlushReady, then the state goes
  // back if that finished everything. Not from OnData, which still uses the state.
  void OnAnswer(Connection& conn);
  void KeepItem(PendingReply& p, const Item* item);
  // Stops taking requests; closes once every pending reply is out.
  Action CloseWhenDone(CloseReason reason);

  Shard* local_;  // this loop's shard; the service and the other shards are reached through it
  // Taken from local_.request_states when request bytes arrive, given back once they are all
  // answered: null while the connection is idle.
  std::unique_ptr<RequestState> state_;
};

}  // namespace percore::memcache
