#include "services/resp/resp_handler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "reactor/event_loop.h"
#include "services/resp/resp_reply.h"

namespace percore {

RespHandler::RespHandler(RespLoopContext& loop) : loop_(&loop) { loop_->service.ClientOpened(); }

MigrationVote RespHandler::CanMigrate(Connection&) {
  return state_ == nullptr ? MigrationVote::kNow : MigrationVote::kLater;
}

void RespHandler::OnMigrated(Connection&) { loop_ = &loop_->service.local_context(); }

RespHandler::~RespHandler() { loop_->service.ClientClosed(); }

RespShards& RespHandler::shards() const { return loop_->service.shards(); }

void RespHandler::ReleaseIfIdle() {
  if (state_->idle()) loop_->request_states.Give(std::move(state_));
}

void RespHandler::OnClose(Connection& conn, CloseReason reason) {
  // A state closed mid-request (a batch away, a reply half streamed) is dropped with what it
  // holds rather than cleaned for reuse; answers still on their way are dropped by Call.
  if (state_ != nullptr) ReleaseIfIdle();
  state_.reset();
}

bool RespHandler::EmitPending(Connection& conn) {
  const auto backed_up = [&conn] { return conn.above_high_water(); };
  return state_->pending.empty() || state_->pending.EmitTo(conn.output(), backed_up);
}

Action RespHandler::OnData(Connection& conn, Buffer& input) {
  if (state_ == nullptr) state_ = loop_->request_states.Take(loop_->state_settings);
  RespRequestState& s = *state_;
  if (s.outstanding > 0) return Action::Pause();
  if (!EmitPending(conn)) return WaitForPending(conn);
  // Every request read in this callback is timed from its start.
  const RequestStart start = conn.BeginRequest();
  // Where direct replies go (unused while batching: a batch's replies go to the local list and
  // the calls, and are merged into the output when the batch is back). Once a reply overflows
  // into the pending queue, the loop below stops before the next request.
  const auto backed_up = [&conn] { return conn.above_high_water(); };
  ReplySink out(conn.output(), backed_up, s.pending);
  while (!input.empty()) {
    if (s.batching && BatchFull()) return SendBatch(conn);
    if (out.overflowed()) return WaitForPending(conn);
    if (!s.batching && conn.above_high_water()) break;  // let the peer catch up
    const RespParser::Result result = s.parser.Parse(input.view());
    if (result == RespParser::Result::kIncomplete) break;
    if (result == RespParser::Result::kError) {
      if (s.batching) return SendBatch(conn);  // earlier replies first; the error comes after
      std::string message = "ERR ";
      message.append(s.parser.error());
      AppendError(conn.output().bytes(), message);
      conn.RecordRequest(/*error=*/true);
      return Action::CloseAfterWrite(CloseReason::kProtocolError);
    }
    const CommandArgs args = s.parser.args();
    if (args.empty()) {
      input.Consume(s.parser.consumed());
      continue;
    }
    out.BeginReply();
    if (!s.batching) {
      // GET and SET of a key on this loop's shard, as Dispatch would run them, without the
      // general resolution.
      const CommandSpec* spec = ResolveGetOrSet(args);
      if (spec != nullptr && shards().OwnerOf(args[1]) == loop_->here) {
        spec->store_fn(args, *loop_->store, options(), out);
        input.Consume(s.parser.consumed());
        conn.RecordRequest(out.StartsWithError());
        continue;
      }
    }
    Step step = Step::kNext;
    Buffer& error_out = s.batching ? s.local.bytes() : conn.output().bytes();
    if (const CommandSpec* spec = ResolveCommand(args, error_out)) {
      step = Dispatch(conn, *spec, args, start, out);
      if (step == Step::kStopBatch) return SendBatch(conn);
    } else if (s.batching) {
      StartSlot(MergeKind::kNone, start);
      SealLiteral();
    }
    input.Consume(s.parser.consumed());
    if (!s.batching) conn.RecordRequest(out.StartsWithError());
    if (step == Step::kClose) return Action::CloseAfterWrite(CloseReason::kServiceClose);
  }
  if (s.batching) return SendBatch(conn);
  if (out.overflowed()) return WaitForPending(conn);
  // Everything read is answered: the state goes back unless a partial request waits for more.
  if (input.empty()) ReleaseIfIdle();
  return Action::Continue();
}

Action RespHandler::WaitForPending(Connection& conn) {
  conn.RequestWritable();
  return Action::Pause();
}

void RespHandler::OnWritable(Connection& conn) {
  if (state_ == nullptr || state_->pending.empty()) return;
  if (!EmitPending(conn)) {
    conn.RequestWritable();
    return;
  }
  if (state_->outstanding > 0) return;
  // The streamed reply is all in the output: requests that waited behind it are read now
  // (with a state taken again, if this one goes back).
  conn.Resume();
  ReleaseIfIdle();
}

void RespHandler::RunSessionCommand(Connection& conn, const CommandSpec& spec, CommandArgs args,
                                    ReplySink& out) {
  SessionContext session;
  session.server = &loop_->service.server_view();
  session.client_id = conn.id();
  session.client_name = std::move(client_name_);
  spec.session_fn(args, session, out);
  client_name_ = std::move(session.client_name);
}

RespHandler::Step RespHandler::Dispatch(Connection& conn, const CommandSpec& spec,
                                        CommandArgs args, RequestStart start, ReplySink& out) {
  RespRequestState& s = *state_;
  if (spec.kind == CommandKind::kSession || spec.kind == CommandKind::kContainer) {
    // The batch goes first: QUIT's reply comes after its replies, and a count of keys includes
    // the writes sent before it.
    if (s.batching && (spec.name == "quit" || spec.reads_keyspace)) return Step::kStopBatch;
    if (spec.name == "quit") {
      RunSessionCommand(conn, spec, args, out);
      return Step::kClose;
    }
    if (!s.batching) {
      RunSessionCommand(conn, spec, args, out);
    } else {
      StartSlot(MergeKind::kNone, start);
      ReplySink local(s.local);
      RunSessionCommand(conn, spec, args, local);
      SealLiteral();
    }
    return Step::kNext;
  }
  if (!s.batching && AllLocal(spec, args)) {
    spec.store_fn(args, *loop_->store, options(), out);
    return Step::kNext;
  }
  s.batching = true;
  switch (spec.kind) {
    case CommandKind::kSingleKey:
      StartSlot(MergeKind::kNone, start);
      AddPart(shards().OwnerOf(args[1]), spec, args);
      break;
    case CommandKind::kMultiKey: {
      // Each key with its values (MSET's step is 2) becomes one part on the key's shard.
      const CommandSpec& part = spec.per_key != nullptr ? *spec.per_key : spec;
      const size_t step = static_cast<size_t>(spec.step);
      std::string_view sub[3] = {part.name};
      StartSlot(spec.merge, start);
      for (size_t i = static_cast<size_t>(spec.first_key); i + step <= args.size(); i += step) {
        for (size_t j = 0; j < step && j < 2; ++j) sub[1 + j] = args[i + j];
        AddPart(shards().OwnerOf(args[i]), part, CommandArgs(sub, 1 + step));
      }
      break;
    }
    case CommandKind::kAllShards:
      StartSlot(spec.merge, start);
      for (ShardId shard = 0; shard < shards().count(); ++shard) AddPart(shard, spec, args);
      break;
    default:
      break;
  }
  return Step::kNext;
}

bool RespHandler::AllLocal(const CommandSpec& spec, CommandArgs args) const {
  if (shards().count() == 1) return true;
  switch (spec.kind) {
    case CommandKind::kSingleKey:
      return shards().OwnerOf(args[1]) == loop_->here;
    case CommandKind::kMultiKey:
      for (size_t i = static_cast<size_t>(spec.first_key); i < args.size();
           i += static_cast<size_t>(spec.step)) {
        if (shards().OwnerOf(args[i]) != loop_->here) return false;
      }
      return true;
    default:
      return false;
  }
}

void RespHandler::StartSlot(MergeKind merge, RequestStart start) {
  state_->slots.push_back({merge, static_cast<uint32_t>(state_->parts.size()), 0, start});
}

void RespHandler::AddPart(ShardId shard, const CommandSpec& spec, CommandArgs args) {
  RespRequestState& s = *state_;
  if (shard == loop_->here) {
    ReplySink local(s.local);
    spec.store_fn(args, *loop_->store, options(), local);
    s.local.Seal();
    s.parts.push_back({-1, static_cast<uint32_t>(s.local.replies() - 1)});
  } else {
    std::unique_ptr<ShardCall>& call = s.calls[static_cast<size_t>(shard)];
    if (call == nullptr) {
      call = std::make_unique<ShardCall>();
      call->set_copy_budget(s.copy_budget);
    }
    const size_t bytes_before = call->arg_bytes();
    const size_t index = call->Add(spec, args);
    s.batch_bytes += call->arg_bytes() - bytes_before;
    s.parts.push_back({shard, static_cast<uint32_t>(index)});
  }
  ++s.slots.back().part_count;
}

void RespHandler::SealLiteral() {
  RespRequestState& s = *state_;
  s.local.Seal();
  s.parts.push_back({-1, static_cast<uint32_t>(s.local.replies() - 1)});
  ++s.slots.back().part_count;
}

bool RespHandler::BatchFull() const {
  const RespRequestState& s = *state_;
  return s.slots.size() >= static_cast<size_t>(options().max_batch_commands) ||
         s.batch_bytes >= options().max_batch_bytes || s.parts.size() >= kMaxBatchParts;
}

Action RespHandler::SendBatch(Connection& conn) {
  RespRequestState& s = *state_;
  s.outstanding = 0;
  for (ShardId owner = 0; owner < shards().count(); ++owner) {
    std::unique_ptr<ShardCall>& call = s.calls[static_cast<size_t>(owner)];
    if (call == nullptr || call->empty()) continue;
    // Never this loop's shard (its parts ran at once), so the answer comes later, as a
    // callback of this connection, and only while it is open: `this` is then still its
    // handler, holding this state. The call travels both ways; if the connection closes
    // meanwhile, it is dropped.
    ++s.outstanding;
    shards().Call(
        conn, owner,
        [call = std::move(call), &options = options()](StringStore& store) mutable {
          call->Run(store, options);
          return std::move(call);
        },
        [this, owner](Connection& c, std::unique_ptr<ShardCall> done) {
          OnCallDone(c, owner, std::move(done));
        });
  }
  if (s.outstanding > 0) return Action::Pause();
  FinishBatch(conn);
  if (!s.pending.empty()) return WaitForPending(conn);
  ReleaseIfIdle();  // what input is left is offered again, with a state taken again
  return Action::Continue();
}

void RespHandler::OnCallDone(Connection& conn, ShardId owner, std::unique_ptr<ShardCall> call) {
  RespRequestState& s = *state_;
  s.calls[static_cast<size_t>(owner)] = std::move(call);
  if (--s.outstanding > 0) return;
  // Closed while the batch was away (by an operator, a timeout): the replies are not wanted.
  if (conn.state() == ConnectionState::kClosing) return;
  FinishBatch(conn);
  if (!s.pending.empty()) {
    conn.RequestWritable();  // stay paused until OnWritable has emitted the rest
    return;
  }
  conn.Resume();  // reads and parses again once this callback returns, taking a state again
  ReleaseIfIdle();
}

void RespHandler::FinishBatch(Connection& conn) {
  RespRequestState& s = *state_;
  const auto backed_up = [&conn] { return conn.above_high_water(); };
  ReplySink out(conn.output(), backed_up, s.pending);
  for (const Slot& slot : s.slots) {
    s.merge_scratch.clear();
    for (uint32_t p = slot.first_part; p < slot.first_part + slot.part_count; ++p) {
      const Part& part = s.parts[p];
      ReplyQueue& list =
          part.shard < 0 ? s.local : s.calls[static_cast<size_t>(part.shard)]->replies();
      s.merge_scratch.push_back({&list, part.index});
    }
    out.BeginReply();
    MergeReplies(slot.merge, s.merge_scratch, out);
    conn.EndRequest(slot.start, out.StartsWithError());
  }
  s.slots.clear();
  s.parts.clear();
  s.local.Clear();
  for (std::unique_ptr<ShardCall>& call : s.calls) {
    if (call != nullptr) call->Reset();
  }
  s.batch_bytes = 0;
  s.batching = false;
}

}  // namespace percore
