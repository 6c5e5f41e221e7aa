#include "services/memcache/memcache_handler.h"

#include <algorithm>
#include <utility>

#include "services/memcache/memcache_ops.h"
#include "services/memcache/memcache_service.h"

namespace percore::memcache {
namespace {

ParserLimits LimitsOf(const MemcacheOptions& options) {
  ParserLimits limits;
  limits.max_item_size = options.max_item_size;
  limits.max_line = options.max_line;
  limits.max_retrieval_line = options.max_retrieval_line;
  return limits;
}

}  // namespace

MemcacheHandler::MemcacheHandler(MemcacheService& service)
    : service_(service),
      shards_(service.shards()),
      here_(shards_.here()),
      local_(shards_.local()),
      parser_(LimitsOf(service.options())),
      max_inflight_(static_cast<size_t>(std::max(service.options().max_inflight, 1))),
      remote_key_reserve_(std::min(service.options().max_item_size, kMaxHeldBytes / 64)) {}

Action MemcacheHandler::OnData(Connection& conn, Buffer& input) {
  if (closing_) return pending_.empty() ? Action::CloseAfterWrite(close_reason_) : Action::Pause();
  while (!input.empty()) {
    if ((!pending_.empty() && pending_.size() >= max_inflight_) || held_items_ > kMaxHeldItems ||
        held_bytes_ > kMaxHeldBytes) {
      return Action::Pause();
    }
    // Replies to pipelined gets can be far larger than the requests: stop while the output is
    // backed up; the framework offers the rest of the input once it has drained.
    if (conn.above_high_water()) break;
    Command cmd;
    size_t consumed = 0;
    const ParseStatus status = parser_.Parse(input.view(), &cmd, &consumed);
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
  return pending_.empty() ? Action::Continue() : Action::Pause();
}

void MemcacheHandler::OnClose(Connection& conn, CloseReason reason) {
  local_.counters.curr_connections.Add(-1);
}

Action MemcacheHandler::CloseWhenDone(CloseReason reason) {
  closing_ = true;
  close_reason_ = reason;
  return pending_.empty() ? Action::CloseAfterWrite(reason) : Action::Pause();
}

MemcacheHandler::Pending& MemcacheHandler::AddPending(Connection& conn) {
  Pending& p = pending_.emplace_back();
  p.seq = next_seq_++;
  p.start = conn.BeginRequest();
  return p;
}

MemcacheHandler::Pending& MemcacheHandler::Answered(uint64_t seq) {
  Pending& p = pending_[seq - pending_.front().seq];
  --p.waiting;
  return p;
}

void MemcacheHandler::Reply(Connection& conn, std::string_view text, bool error) {
  if (pending_.empty()) {
    conn.output().Append(text);
    conn.RecordRequest(error);
    return;
  }
  Pending& p = AddPending(conn);
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
      local_.counters.store_too_large.Increment();
      // memcached drops the old value when a set is refused, so no stale data outlives it.
      if (cmd.kind == CommandKind::kSet) {
        shards_.Post(shards_.OwnerOf(cmd.key),
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
      const bool known = service_.AppendStats(cmd.args, &text);
      Reply(conn, known ? std::string_view(text) : ErrorReply(ParseError::kUnknownCommand), !known);
      return;
    }
    case CommandKind::kVersion:
      Reply(conn, "VERSION " + service_.options().version + "\r\n", false);
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
  const ShardId owner = shards_.OwnerOf(cmd.key);
  const KeyOp op = KeyOp::From(cmd);
  ItemPtr item = IsStorageCommand(cmd.kind) ? ItemFor(cmd) : nullptr;
  if (owner == here_) {
    if (pending_.empty()) {
      ReplySink out(&conn.output().bytes());
      conn.RecordRequest(ExecuteKeyOp(local_.store, op, cmd.key, std::move(item), out));
    } else {
      Pending& p = AddPending(conn);
      ReplySink out(&p.text);
      p.error = ExecuteKeyOp(local_.store, op, cmd.key, std::move(item), out);
    }
    return;
  }
  Pending& p = AddPending(conn);
  p.waiting = 1;
  // A storage command's key travels inside its item; others copy the key.
  std::string key = item == nullptr ? std::string(cmd.key) : std::string();
  shards_.Call(
      conn, owner,
      [op, key = std::move(key), item = std::move(item)](Shard& shard) mutable {
        KeyOpReply reply;
        ReplySink out(&reply.text);
        const std::string_view k = item != nullptr ? item->key() : std::string_view(key);
        reply.error = ExecuteKeyOp(shard.store, op, k, std::move(item), out);
        return reply;
      },
      [this, seq = p.seq](Connection& c, KeyOpReply reply) {
        Pending& answered = Answered(seq);
        answered.text += reply.text;
        answered.error = answered.error || reply.error;
        FlushReady(c);
      });
}

void MemcacheHandler::KeepItem(Pending& p, const Item* item) {
  p.items.push_back(item != nullptr ? ShareItem(*item) : nullptr);
  if (item != nullptr) {
    ++held_items_;
    held_bytes_ += item->value_size;
  }
}

void MemcacheHandler::DispatchRetrieval(Connection& conn, const Command& cmd) {
  if (cmd.key.empty() || !pending_.empty() || conn.above_high_water() ||
      shards_.OwnerOf(cmd.key) != here_) {
    DispatchKeys(conn, cmd);
    return;
  }
  // The usual request: one key, on this loop, with room in the output. The reply goes
  // straight out, END included.
  OutputQueue& out = conn.output();
  if (const Item* item = LookUp(local_.store, cmd.kind, cmd.exptime, cmd.key)) {
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
  if (shards_.count() > 1) {
    while (NextKey(&keys, &key)) {
      ++key_count;
      if (shards_.OwnerOf(key) != here_) all_local = false;
    }
  }

  if (all_local) {  // the common case: no hop, formatted straight into the output
    OutputQueue& out = conn.output();
    Pending* rest = pending_.empty() ? nullptr : &AddPending(conn);
    keys = cmd.keys;
    while (NextKey(&keys, &key)) {
      const Item* item = LookUp(local_.store, cmd.kind, cmd.exptime, key);
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
  Pending& p = AddPending(conn);
  p.retrieval = true;
  p.with_cas = with_cas;
  p.items.reserve(key_count);
  std::vector<std::vector<std::pair<uint32_t, std::string>>> remote(shards_.count());
  keys = cmd.keys;
  for (uint32_t index = 0; NextKey(&keys, &key); ++index) {
    const ShardId owner = shards_.OwnerOf(key);
    if (owner == here_) {
      KeepItem(p, LookUp(local_.store, cmd.kind, cmd.exptime, key));
    } else {
      p.items.emplace_back();
      remote[owner].emplace_back(index, std::string(key));
      ++held_items_;
      // Until the owner answers, a remote key counts as a large item, so that requests parsed
      // meanwhile cannot run far past the bound before any answer is back.
      held_bytes_ += remote_key_reserve_;
    }
  }
  for (ShardId owner = 0; owner < shards_.count(); ++owner) {
    if (remote[owner].empty()) continue;
    ++p.waiting;
    const size_t asked = remote[owner].size();
    shards_.Call(
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
          Pending& answered = Answered(seq);
          held_bytes_ -= asked * remote_key_reserve_;  // the reservation made at dispatch
          for (auto& [index, item] : hits) {
            held_bytes_ += item->value_size;
            answered.items[index] = std::move(item);
          }
          held_items_ -= asked - hits.size();  // counted at dispatch; misses hold none
          FlushReady(c);
        });
  }
}

void MemcacheHandler::DispatchFlush(Connection& conn, const Command& cmd) {
  local_.counters.cmd_flush.Increment();
  const int64_t delay = cmd.has_delay ? cmd.exptime : 0;
  const std::string_view ok = cmd.noreply ? std::string_view() : "OK\r\n";
  local_.store.FlushAll(delay);
  if (shards_.count() == 1) {
    Reply(conn, ok, false);
    return;
  }
  // OK only once every shard has flushed, so a client that saw it cannot read old data.
  Pending& p = AddPending(conn);
  p.text.assign(ok.data(), ok.size());
  p.waiting = shards_.count() - 1;
  for (ShardId owner = 0; owner < shards_.count(); ++owner) {
    if (owner == here_) continue;
    shards_.Call(
        conn, owner, [delay](Shard& shard) { shard.store.FlushAll(delay); },
        [this, seq = p.seq](Connection& c) {
          Answered(seq);
          FlushReady(c);
        });
  }
}

void MemcacheHandler::OnWritable(Connection& conn) { FlushReady(conn); }

void MemcacheHandler::FlushReady(Connection& conn) {
  OutputQueue& out = conn.output();
  while (!pending_.empty() && pending_.front().waiting == 0) {
    Pending& p = pending_.front();
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
          held_bytes_ -= item->value_size;
          item.reset();
          --held_items_;
        }
      }
      out.Append(kEnd);
    }
    conn.EndRequest(p.start, p.error);
    pending_.pop_front();
  }
  if (!pending_.empty() || conn.state() != ConnectionState::kPaused) return;
  // Called from a callback of the connection, where a close is acted on when the callback
  // returns, and on a paused connection only once it has resumed: so both, for a closing one.
  if (closing_) conn.Close(close_reason_, CloseMode::kFlush);
  conn.Resume();  // writes what was queued and parses input that waited
}

}  // namespace percore::memcache
