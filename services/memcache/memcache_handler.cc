#include "services/memcache/memcache_handler.h"

#include <algorithm>
#include <utility>

#include "services/memcache/memcache_ops.h"
#include "services/memcache/memcache_service.h"

namespace percore::memcache {

MemcacheHandler::MemcacheHandler(Shard& local) : local_(&local) {}

MemcacheService& MemcacheHandler::service() const { return local_->service; }
Sharded<Shard>& MemcacheHandler::shards() const { return local_->service.shards(); }

void MemcacheHandler::ReleaseIfIdle() {
  if (state_->idle()) local_->request_states.Give(std::move(state_));
}

Action MemcacheHandler::OnData(Connection& conn, Buffer& input) {
  if (state_ == nullptr) state_ = local_->request_states.Take(local_->request_limits);
  RequestState& s = *state_;
  if (s.closing) return s.pending.empty() ? Action::CloseAfterWrite(s.close_reason) : Action::Pause();
  while (!input.empty()) {
    if ((!s.pending.empty() && s.pending.size() >= s.max_inflight) ||
        s.held_items > kMaxHeldItems || s.held_bytes > kMaxHeldBytes) {
      return Action::Pause();
    }
    // Replies to pipelined gets can be far larger than the requests: stop while the output is
    // backed up; the framework offers the rest of the input once it has drained.
    if (conn.above_high_water()) break;
    Command cmd;
    size_t consumed = 0;
    const ParseStatus status = s.parser.Parse(input.view(), &cmd, &consumed);
    if (status == ParseStatus::kClose) {
      Reply(conn, ErrorReply(cmd.error), /*error=*/true);
      input.Consume(input.size());
      return CloseWhenDone(CloseReason::kProtocolError);
    }
    if (status == ParseStatus::kNeedMore) {
      input.Consume(consumed);  // swallowed bytes of a refused data block
      break;
    }
    Dispatch(conn, cmd);  // cmd's views point into input: consume after
    input.Consume(consumed);
    if (cmd.kind == CommandKind::kQuit && cmd.error == ParseError::kNone) {
      return CloseWhenDone(CloseReason::kServiceClose);
    }
  }
  if (!s.pending.empty()) return Action::Pause();
  // Everything read is answered: the state goes back unless a partial request waits for more.
  if (input.empty()) ReleaseIfIdle();
  return Action::Continue();
}

MigrationVote MemcacheHandler::CanMigrate(Connection&) {
  return state_ == nullptr ? MigrationVote::kNow : MigrationVote::kLater;
}

void MemcacheHandler::OnLeaving(Connection&) { local_->counters.curr_connections.Add(-1); }

void MemcacheHandler::OnMigrated(Connection&) {
  local_ = &shards().local();
  local_->counters.curr_connections.Add(1);
}

void MemcacheHandler::OnClose(Connection& conn, CloseReason reason) {
  local_->counters.curr_connections.Add(-1);
  // A state closed mid-request (replies pending, a data block half swallowed) is dropped with
  // what it holds rather than cleaned for reuse.
  if (state_ != nullptr) ReleaseIfIdle();
  state_.reset();
}

Action MemcacheHandler::CloseWhenDone(CloseReason reason) {
  state_->closing = true;
  state_->close_reason = reason;
  return state_->pending.empty() ? Action::CloseAfterWrite(reason) : Action::Pause();
}

PendingReply& MemcacheHandler::AddPending(Connection& conn) {
  PendingReply& p = state_->pending.emplace_back();
  p.seq = state_->next_seq++;
  p.start = conn.BeginRequest();
  return p;
}

PendingReply& MemcacheHandler::Answered(uint64_t seq) {
  PendingReply& p = state_->pending[seq - state_->pending.front().seq];
  --p.waiting;
  return p;
}

void MemcacheHandler::Reply(Connection& conn, std::string_view text, bool error) {
  if (state_->pending.empty()) {
    conn.output().Append(text);
    conn.RecordRequest(error);
    return;
  }
  PendingReply& p = AddPending(conn);
  p.text.assign(text.data(), text.size());
  p.error = error;
}

void MemcacheHandler::Dispatch(Connection& conn, const Command& cmd) {
  if (cmd.error == ParseError::kNone && IsRetrievalCommand(cmd.kind)) {
    DispatchRetrieval(conn, cmd);
    return;
  }
  DispatchOther(conn, cmd);
}

void MemcacheHandler::DispatchOther(Connection& conn, const Command& cmd) {
  if (cmd.error != ParseError::kNone) {
    if (cmd.error == ParseError::kTooLarge) {
      local_->counters.store_too_large.Increment();
      // memcached drops the old value when a set is refused, so no stale data outlives it.
      if (cmd.kind == CommandKind::kSet) {
        shards().Post(shards().OwnerOf(cmd.key),
                     [key = std::string(cmd.key)](Shard& shard) { shard.store.Unlink(key); });
      }
    }
    Reply(conn, cmd.noreply ? std::string_view() : ErrorReply(cmd.error), true);
    return;
  }
  switch (cmd.kind) {
    case CommandKind::kGet:
    case CommandKind::kGets:
    case CommandKind::kGat:
    case CommandKind::kGats:
      DispatchRetrieval(conn, cmd);
      return;
    case CommandKind::kFlushAll:
      DispatchFlush(conn, cmd);
      return;
    case CommandKind::kStats: {
      std::string text;
      const bool known = service().AppendStats(cmd.args, &text);
      Reply(conn, known ? std::string_view(text) : ErrorReply(ParseError::kUnknownCommand), !known);
      return;
    }
    case CommandKind::kVersion:
      Reply(conn, "VERSION " + service().options().version + "\r\n", false);
      return;
    case CommandKind::kVerbosity:  // accepted; this server has no log levels
      Reply(conn, cmd.noreply ? "" : "OK\r\n", false);
      return;
    case CommandKind::kQuit:
      return;
    default:
      DispatchKeyOp(conn, cmd);
      return;
  }
}

void MemcacheHandler::DispatchKeyOp(Connection& conn, const Command& cmd) {
  const ShardId owner = shards().OwnerOf(cmd.key);
  const KeyOp op = KeyOp::From(cmd);
  ItemPtr item = IsStorageCommand(cmd.kind) ? ItemFor(cmd) : nullptr;
  if (owner == here()) {
    if (state_->pending.empty()) {
      ReplySink out(&conn.output().bytes());
      conn.RecordRequest(ExecuteKeyOp(local_->store, op, cmd.key, std::move(item), out));
    } else {
      PendingReply& p = AddPending(conn);
      ReplySink out(&p.text);
      p.error = ExecuteKeyOp(local_->store, op, cmd.key, std::move(item), out);
    }
    return;
  }
  PendingReply& p = AddPending(conn);
  p.waiting = 1;
  // A storage command's key travels inside its item; others copy the key.
  std::string key = item == nullptr ? std::string(cmd.key) : std::string();
  shards().Call(
      conn, owner,
      [op, key = std::move(key), item = std::move(item)](Shard& shard) mutable {
        KeyOpReply reply;
        ReplySink out(&reply.text);
        const std::string_view k = item != nullptr ? item->key() : std::string_view(key);
        reply.error = ExecuteKeyOp(shard.store, op, k, std::move(item), out);
        return reply;
      },
      [this, seq = p.seq](Connection& c, KeyOpReply reply) {
        PendingReply& answered = Answered(seq);
        answered.text += reply.text;
        answered.error = answered.error || reply.error;
        OnAnswer(c);
      });
}

void MemcacheHandler::KeepItem(PendingReply& p, const Item* item) {
  p.items.push_back(item != nullptr ? ShareItem(*item) : nullptr);
  if (item != nullptr) {
    ++state_->held_items;
    state_->held_bytes += item->value_size;
  }
}

void MemcacheHandler::DispatchRetrieval(Connection& conn, const Command& cmd) {
  if (cmd.key.empty() || !state_->pending.empty() || conn.above_high_water() ||
      shards().OwnerOf(cmd.key) != here()) {
    DispatchKeys(conn, cmd);
    return;
  }
  // The usual request: one key, on this loop, with room in the output. The reply goes
  // straight out, END included.
  OutputQueue& out = conn.output();
  if (const Item* item = LookUp(local_->store, cmd.kind, cmd.exptime, cmd.key)) {
    AppendValue(*item, WithCas(cmd.kind), out, kEnd);
  } else {
    out.Append(kEnd);
  }
  conn.RecordRequest();
}

void MemcacheHandler::DispatchKeys(Connection& conn, const Command& cmd) {
  const bool with_cas = WithCas(cmd.kind);
  std::string_view keys = cmd.keys;
  std::string_view key;
  size_t key_count = 0;
  bool all_local = true;
  // With one shard every key is local without looking (key_count is needed only when some key
  // is not).
  if (shards().count() > 1) {
    while (NextKey(&keys, &key)) {
      ++key_count;
      if (shards().OwnerOf(key) != here()) all_local = false;
    }
  }

  if (all_local) {  // the common case: no hop, formatted straight into the output
    OutputQueue& out = conn.output();
    PendingReply* rest = state_->pending.empty() ? nullptr : &AddPending(conn);
    keys = cmd.keys;
    while (NextKey(&keys, &key)) {
      const Item* item = LookUp(local_->store, cmd.kind, cmd.exptime, key);
      if (rest == nullptr && !conn.above_high_water()) {
        if (item != nullptr) AppendValue(*item, with_cas, out);
        continue;
      }
      // Output backed up (or behind replies still away): the hits are kept, and formatted as
      // the output drains.
      if (rest == nullptr) rest = &AddPending(conn);
      KeepItem(*rest, item);
    }
    if (rest == nullptr) {
      out.Append(kEnd);
      conn.RecordRequest();
      return;
    }
    rest->retrieval = true;
    rest->with_cas = with_cas;
    FlushReady(conn);
    return;
  }

  // Keys on other loops: local hits are kept in their place so VALUE blocks keep the order of
  // the request; remote keys go to their owners, one call per shard, which answer with
  // references to the items they found.
  PendingReply& p = AddPending(conn);
  p.retrieval = true;
  p.with_cas = with_cas;
  p.items.reserve(key_count);
  std::vector<std::vector<std::pair<uint32_t, std::string>>> remote(shards().count());
  keys = cmd.keys;
  for (uint32_t index = 0; NextKey(&keys, &key); ++index) {
    const ShardId owner = shards().OwnerOf(key);
    if (owner == here()) {
      KeepItem(p, LookUp(local_->store, cmd.kind, cmd.exptime, key));
    } else {
      p.items.emplace_back();
      remote[owner].emplace_back(index, std::string(key));
      ++state_->held_items;
      // Until the owner answers, a remote key counts as a large item, so that requests parsed
      // meanwhile cannot run far past the bound before any answer is back.
      state_->held_bytes += state_->remote_key_reserve;
    }
  }
  for (ShardId owner = 0; owner < shards().count(); ++owner) {
    if (remote[owner].empty()) continue;
    ++p.waiting;
    const size_t asked = remote[owner].size();
    shards().Call(
        conn, owner,
        [kind = cmd.kind, exptime = cmd.exptime, wanted = std::move(remote[owner])](Shard& shard) {
          Hits hits;
          for (const auto& [index, k] : wanted) {
            if (const Item* item = LookUp(shard.store, kind, exptime, k)) {
              hits.emplace_back(index, ShareItem(*item));
            }
          }
          return hits;
        },
        [this, seq = p.seq, asked](Connection& c, Hits hits) {
          PendingReply& answered = Answered(seq);
          RequestState& s = *state_;
          s.held_bytes -= asked * s.remote_key_reserve;  // the reservation made at dispatch
          for (auto& [index, item] : hits) {
            s.held_bytes += item->value_size;
            answered.items[index] = std::move(item);
          }
          s.held_items -= asked - hits.size();  // counted at dispatch; misses hold none
          OnAnswer(c);
        });
  }
}

void MemcacheHandler::DispatchFlush(Connection& conn, const Command& cmd) {
  local_->counters.cmd_flush.Increment();
  const int64_t delay = cmd.has_delay ? cmd.exptime : 0;
  const std::string_view ok = cmd.noreply ? std::string_view() : "OK\r\n";
  local_->store.FlushAll(delay);
  if (shards().count() == 1) {
    Reply(conn, ok, false);
    return;
  }
  // OK only once every shard has flushed, so a client that saw it cannot read old data.
  PendingReply& p = AddPending(conn);
  p.text.assign(ok.data(), ok.size());
  p.waiting = shards().count() - 1;
  for (ShardId owner = 0; owner < shards().count(); ++owner) {
    if (owner == here()) continue;
    shards().Call(
        conn, owner, [delay](Shard& shard) { shard.store.FlushAll(delay); },
        [this, seq = p.seq](Connection& c) {
          Answered(seq);
          OnAnswer(c);
        });
  }
}

void MemcacheHandler::OnWritable(Connection& conn) {
  if (state_ != nullptr) OnAnswer(conn);
}

void MemcacheHandler::OnAnswer(Connection& conn) {
  FlushReady(conn);
  // Input that waited meanwhile takes a state again when it is offered (Resume).
  ReleaseIfIdle();
}

void MemcacheHandler::FlushReady(Connection& conn) {
  RequestState& s = *state_;
  OutputQueue& out = conn.output();
  while (!s.pending.empty() && s.pending.front().waiting == 0) {
    PendingReply& p = s.pending.front();
    out.Append(p.text);
    p.text.clear();
    if (p.retrieval) {
      for (; p.next_item < p.items.size(); ++p.next_item) {
        if (conn.above_high_water()) {
          conn.RequestWritable();
          return;
        }
        if (ItemPtr& item = p.items[p.next_item]) {
          AppendValue(*item, p.with_cas, out);
          s.held_bytes -= item->value_size;
          item.reset();
          --s.held_items;
        }
      }
      out.Append(kEnd);
    }
    conn.EndRequest(p.start, p.error);
    s.pending.pop_front();
  }
  if (!s.pending.empty() || conn.state() != ConnectionState::kPaused) return;
  // Called from a callback of the connection, where a close is acted on when the callback
  // returns, and on a paused connection only once it has resumed: so both, for a closing one.
  if (s.closing) conn.Close(s.close_reason, CloseMode::kFlush);
  conn.Resume();  // writes what was queued and parses input that waited
}

}  // namespace percore::memcache
