#include "services/memcache/memcache_handler.h"

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
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

// On a shard's loop: hands `result` to the connection's loop, where the connection (if still
// open) takes it.
void SendBack(ConnectionHandle self, uint64_t seq, RemoteResult result) {
  // Dropped (with the item references it holds) if the connection closed meanwhile.
  self.loop->PostToConnection(self.id, [seq, result = std::move(result)](Connection& conn) mutable {
    static_cast<MemcacheHandler*>(conn.handler())->OnRemoteResult(conn, seq, std::move(result));
  });
}

// On a shard's loop: fills a result with `work` and sends it back. Work that throws
// (std::bad_alloc under memory pressure) sends a failed result instead, so the connection
// waiting for it closes as handler_error rather than waiting forever.
template <typename Work>
void AnswerFromOwner(ConnectionHandle self, uint64_t seq, Work&& work) {
  RemoteResult result;
  try {
    work(result);
  } catch (...) {
    result = RemoteResult();
    result.failed = true;
  }
  SendBack(self, seq, std::move(result));
}

}  // namespace

MemcacheHandler::MemcacheHandler(MemcacheService& service, LoopCounters& counters,
                                 Shard* local_shard, size_t high_water)
    : service_(service),
      directory_(service.directory()),
      counters_(counters),
      local_shard_(local_shard),
      parser_(LimitsOf(service.options())),
      max_inflight_(static_cast<size_t>(std::max(service.options().max_inflight, 1))),
      high_water_(high_water) {}

Action MemcacheHandler::OnData(Connection& conn, Buffer& input) {
  if (closing_) return pending_.empty() ? Action::CloseAfterWrite(close_reason_) : Action::Pause();
  const int64_t start = MonotonicNanos();
  while (!input.empty()) {
    if (pending_.size() >= max_inflight_ || held_items_ > kMaxHeldItems) return Action::Pause();
    // Replies to pipelined gets can be far larger than the requests: stop at the high-water
    // mark; the framework offers the rest of the input once the output has drained.
    if (conn.output().size() > high_water_) break;
    Command cmd;
    size_t consumed = 0;
    const ParseStatus status = parser_.Parse(input.view(), &cmd, &consumed);
    if (status == ParseStatus::kClose) {
      Reply(conn, ErrorReply(cmd.error), /*error=*/true, start);
      input.Consume(input.size());
      return CloseWhenDone(CloseReason::kProtocolError);
    }
    if (status == ParseStatus::kNeedMore) {
      input.Consume(consumed);  // swallowed bytes of a refused data block
      break;
    }
    Dispatch(conn, cmd, start);  // cmd's views point into input: consume after
    input.Consume(consumed);
    if (cmd.kind == CommandKind::kQuit && cmd.error == ParseError::kNone) {
      return CloseWhenDone(CloseReason::kServiceClose);
    }
  }
  return pending_.empty() ? Action::Continue() : Action::Pause();
}

void MemcacheHandler::OnClose(Connection& conn, CloseReason reason) {
  counters_.curr_connections.Add(-1);
}

Action MemcacheHandler::CloseWhenDone(CloseReason reason) {
  closing_ = true;
  close_reason_ = reason;
  return pending_.empty() ? Action::CloseAfterWrite(reason) : Action::Pause();
}

MemcacheHandler::Pending& MemcacheHandler::AddPending(int64_t start_ns) {
  Pending& p = pending_.emplace_back();
  p.seq = next_seq_++;
  p.start_ns = start_ns;
  return p;
}

void MemcacheHandler::Reply(Connection& conn, std::string_view text, bool error,
                            int64_t start_ns) {
  if (pending_.empty()) {
    conn.output().Append(text);
    conn.RecordRequest(MonotonicNanos() - start_ns, error);
    return;
  }
  Pending& p = AddPending(start_ns);
  p.text.assign(text.data(), text.size());
  p.error = error;
}

void MemcacheHandler::Dispatch(Connection& conn, const Command& cmd, int64_t start_ns) {
  if (cmd.error != ParseError::kNone) {
    if (cmd.error == ParseError::kTooLarge) {
      counters_.store_too_large.Increment();
      // memcached drops the old value when a set is refused, so no stale data outlives it.
      if (cmd.kind == CommandKind::kSet) {
        Shard& shard = directory_.ShardFor(cmd.key);
        if (IsLocal(shard)) {
          shard.store.Unlink(cmd.key);
        } else {
          shard.owner->Post([&shard, key = std::string(cmd.key)] { shard.store.Unlink(key); });
        }
      }
    }
    Reply(conn, cmd.noreply ? std::string_view() : ErrorReply(cmd.error), true, start_ns);
    return;
  }
  switch (cmd.kind) {
    case CommandKind::kGet:
    case CommandKind::kGets:
    case CommandKind::kGat:
    case CommandKind::kGats:
      DispatchRetrieval(conn, cmd, start_ns);
      return;
    case CommandKind::kFlushAll:
      DispatchFlush(conn, cmd, start_ns);
      return;
    case CommandKind::kStats: {
      std::string text;
      const bool known = service_.AppendStats(cmd.args, &text);
      Reply(conn, known ? std::string_view(text) : ErrorReply(ParseError::kUnknownCommand), !known,
            start_ns);
      return;
    }
    case CommandKind::kVersion:
      Reply(conn, "VERSION " + service_.options().version + "\r\n", false, start_ns);
      return;
    case CommandKind::kVerbosity:  // accepted; this server has no log levels
      Reply(conn, cmd.noreply ? "" : "OK\r\n", false, start_ns);
      return;
    case CommandKind::kQuit:
      return;
    default:
      DispatchKeyOp(conn, cmd, start_ns);
      return;
  }
}

void MemcacheHandler::DispatchKeyOp(Connection& conn, const Command& cmd, int64_t start_ns) {
  Shard& shard = directory_.ShardFor(cmd.key);
  const KeyOp op = KeyOp::From(cmd);
  ItemPtr item = IsStorageCommand(cmd.kind) ? ItemFor(cmd) : nullptr;
  if (IsLocal(shard)) {
    if (pending_.empty()) {
      ReplySink out(&conn.output().bytes());
      const bool error = ExecuteKeyOp(shard.store, op, cmd.key, std::move(item), out);
      conn.RecordRequest(MonotonicNanos() - start_ns, error);
    } else {
      Pending& p = AddPending(start_ns);
      ReplySink out(&p.text);
      p.error = ExecuteKeyOp(shard.store, op, cmd.key, std::move(item), out);
    }
    return;
  }
  Pending& p = AddPending(start_ns);
  p.waiting = 1;
  // A storage command's key travels inside its item; others copy the key.
  std::string key = item == nullptr ? std::string(cmd.key) : std::string();
  shard.owner->Post([&shard, self = conn.handle(), seq = p.seq, op, key = std::move(key),
                     item = std::move(item)]() mutable {
    AnswerFromOwner(self, seq, [&](RemoteResult& result) {
      ReplySink out(&result.text);
      const std::string_view k = item != nullptr ? item->key() : std::string_view(key);
      result.error = ExecuteKeyOp(shard.store, op, k, std::move(item), out);
    });
  });
}

void MemcacheHandler::KeepItem(Pending& p, const Item* item) {
  p.items.push_back(item != nullptr ? ShareItem(*item) : nullptr);
  if (item != nullptr) ++held_items_;
}

void MemcacheHandler::DispatchRetrieval(Connection& conn, const Command& cmd, int64_t start_ns) {
  const bool with_cas = WithCas(cmd.kind);
  std::string_view keys = cmd.keys;
  std::string_view key;
  size_t key_count = 0;
  bool all_local = true;
  // With one shard, and it ours, every key is local without looking (key_count is needed only
  // when some key is not).
  if (directory_.shard_count() != 1 || local_shard_ == nullptr) {
    while (NextKey(&keys, &key)) {
      ++key_count;
      if (!IsLocal(directory_.ShardFor(key))) all_local = false;
    }
  }

  if (all_local) {  // the common case: no hop, formatted straight into the output
    ItemStore& store = local_shard_->store;
    OutputQueue& out = conn.output();
    Pending* rest = pending_.empty() ? nullptr : &AddPending(start_ns);
    keys = cmd.keys;
    while (NextKey(&keys, &key)) {
      const Item* item = LookUp(store, cmd.kind, cmd.exptime, key);
      if (rest == nullptr && out.size() <= high_water_) {
        if (item != nullptr) AppendValue(*item, with_cas, out);
        continue;
      }
      // Past the high-water mark (or behind replies still away): the hits are kept, and
      // formatted as the output drains.
      if (rest == nullptr) rest = &AddPending(start_ns);
      KeepItem(*rest, item);
    }
    if (rest == nullptr) {
      out.Append(kEnd);
      conn.RecordRequest(MonotonicNanos() - start_ns, false);
      return;
    }
    rest->retrieval = true;
    rest->with_cas = with_cas;
    FlushReady(conn);
    return;
  }

  // Keys on other loops: local hits are kept in their place so VALUE blocks keep the order of
  // the request; remote keys go to their owners, one task per shard, which send back
  // references to the items they found.
  Pending& p = AddPending(start_ns);
  p.retrieval = true;
  p.with_cas = with_cas;
  p.items.reserve(key_count);
  std::vector<std::vector<std::pair<uint32_t, std::string>>> remote(directory_.shard_count());
  keys = cmd.keys;
  for (uint32_t index = 0; NextKey(&keys, &key); ++index) {
    const size_t s = directory_.ShardIndexFor(key);
    if (IsLocal(directory_.shard(s))) {
      KeepItem(p, LookUp(local_shard_->store, cmd.kind, cmd.exptime, key));
    } else {
      p.items.emplace_back();
      remote[s].emplace_back(index, std::string(key));
      ++held_items_;
    }
  }
  for (size_t s = 0; s < remote.size(); ++s) {
    if (remote[s].empty()) continue;
    ++p.waiting;
    Shard& shard = directory_.shard(s);
    shard.owner->Post([&shard, self = conn.handle(), seq = p.seq, kind = cmd.kind,
                       exptime = cmd.exptime, wanted = std::move(remote[s])]() mutable {
      AnswerFromOwner(self, seq, [&](RemoteResult& result) {
        result.keys_asked = wanted.size();
        for (auto& [index, k] : wanted) {
          if (const Item* item = LookUp(shard.store, kind, exptime, k)) {
            result.hits.emplace_back(index, ShareItem(*item));
          }
        }
      });
    });
  }
}

void MemcacheHandler::DispatchFlush(Connection& conn, const Command& cmd, int64_t start_ns) {
  counters_.cmd_flush.Increment();
  const int64_t delay = cmd.has_delay ? cmd.exptime : 0;
  const std::string_view ok = cmd.noreply ? std::string_view() : "OK\r\n";
  if (local_shard_ != nullptr) local_shard_->store.FlushAll(delay);
  const size_t remote = directory_.shard_count() - (local_shard_ != nullptr ? 1 : 0);
  if (remote == 0) {
    Reply(conn, ok, false, start_ns);
    return;
  }
  // OK only once every shard has flushed, so a client that saw it cannot read old data.
  Pending& p = AddPending(start_ns);
  p.text.assign(ok.data(), ok.size());
  p.waiting = static_cast<int>(remote);
  for (size_t s = 0; s < directory_.shard_count(); ++s) {
    Shard& shard = directory_.shard(s);
    if (IsLocal(shard)) continue;
    shard.owner->Post([&shard, self = conn.handle(), seq = p.seq, delay] {
      shard.store.FlushAll(delay);
      SendBack(self, seq, RemoteResult());
    });
  }
}

void MemcacheHandler::OnRemoteResult(Connection& conn, uint64_t seq, RemoteResult result) {
  if (result.failed) {
    conn.Close(CloseReason::kHandlerError, /*flush_first=*/false);
    return;
  }
  if (pending_.empty() || seq < pending_.front().seq) return;
  Pending& p = pending_[seq - pending_.front().seq];
  p.text += result.text;
  for (auto& [index, item] : result.hits) p.items[index] = std::move(item);
  held_items_ -= result.keys_asked - result.hits.size();  // counted at dispatch; misses hold none
  p.error = p.error || result.error;
  --p.waiting;
  FlushReady(conn);
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
        if (out.size() > high_water_) {
          conn.RequestWritable();
          return;
        }
        if (ItemPtr& item = p.items[p.next_item]) {
          AppendValue(*item, p.with_cas, out);
          item.reset();
          --held_items_;
        }
      }
      out.Append(kEnd);
    }
    conn.RecordRequest(MonotonicNanos() - p.start_ns, p.error);
    pending_.pop_front();
  }
  if (!pending_.empty() || conn.state() != ConnectionState::kPaused) return;
  if (closing_) conn.Close(close_reason_, /*flush_first=*/true);  // after the replies
  conn.Resume();  // writes what was queued and parses input that waited
}

}  // namespace percore::memcache
