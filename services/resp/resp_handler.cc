#include "services/resp/resp_handler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/clock.h"
#include "reactor/event_loop.h"
#include "services/resp/resp_reply.h"
#include "services/resp/resp_service.h"

namespace percore {

RespHandler::RespHandler(RespService& service, Connection& conn)
    : service_(service),
      options_(service.options()),
      high_water_(conn.loop().connection_options().high_water),
      parser_(service.options()) {
  session_.client_id = conn.id();
  service_.ClientOpened();
}

RespHandler::~RespHandler() { service_.ClientClosed(); }

void RespHandler::EnsureTable(Connection& conn) {
  if (table_ != nullptr) return;
  table_ = &service_.shard_map().Table();
  session_.server = &table_->view;
  self_shard_ = table_->ShardOfLoop(&conn.loop());
  local_store_ = self_shard_ >= 0 ? table_->shards[self_shard_].store : nullptr;
  calls_.resize(table_->shards.size());
  // What a batch's reply lists may copy of values before they take references, split among
  // them: a batch over every shard holds about high_water of copies (and what it cannot merge
  // into the output moves to pending_ as they are). A reply streaming straight into pending_
  // copies up to low_water, since the output beside it already holds high_water.
  const ConnectionOptions& limits = conn.loop().connection_options();
  copy_budget_ = std::max(OutputQueue::kShareAtLeast, limits.high_water / table_->shards.size());
  local_.set_copy_budget(copy_budget_);
  pending_.set_copy_budget(std::max(OutputQueue::kShareAtLeast, limits.low_water));
}

bool RespHandler::EmitPending(Connection& conn) {
  return pending_.empty() || pending_.EmitTo(conn.output(), high_water_);
}

Action RespHandler::OnData(Connection& conn, Buffer& input) {
  if (outstanding_ > 0) return Action::Pause();
  EnsureTable(conn);
  if (!EmitPending(conn)) return WaitForPending(conn);
  int64_t last_ns = MonotonicNanos();
  // Where direct replies go (unused while batching: a batch's replies go to local_ and the
  // calls, and are merged into the output when the batch is back). Once a reply overflows into
  // pending_, the loop below stops before the next request.
  ReplySink out(conn.output(), high_water_, pending_);
  while (!input.empty()) {
    if (batching_ && BatchFull()) return SendBatch(conn);
    if (out.overflowed()) return WaitForPending(conn);
    if (!batching_ && conn.queued_output() > high_water_) break;  // let the peer catch up
    const RespParser::Result result = parser_.Parse(input.view());
    if (result == RespParser::Result::kIncomplete) break;
    if (result == RespParser::Result::kError) {
      if (batching_) return SendBatch(conn);  // earlier replies first; the error comes after
      std::string message = "ERR ";
      message.append(parser_.error());
      AppendError(conn.output().bytes(), message);
      conn.RecordRequest(MonotonicNanos() - last_ns, /*error=*/true);
      return Action::CloseAfterWrite(CloseReason::kProtocolError);
    }
    const CommandArgs args = parser_.args();
    if (args.empty()) {
      input.Consume(parser_.consumed());
      continue;
    }
    out.BeginReply();
    Step step = Step::kNext;
    Buffer& error_out = batching_ ? local_.bytes() : conn.output().bytes();
    if (const CommandSpec* spec = ResolveCommand(args, error_out)) {
      step = Dispatch(*spec, args, last_ns, out);
      if (step == Step::kStopBatch) return SendBatch(conn);
    } else if (batching_) {
      StartSlot(MergeKind::kNone, last_ns);
      SealLiteral();
    }
    input.Consume(parser_.consumed());
    const int64_t now = MonotonicNanos();
    if (!batching_) conn.RecordRequest(now - last_ns, out.StartsWithError());
    last_ns = now;
    if (step == Step::kClose) return Action::CloseAfterWrite(CloseReason::kServiceClose);
  }
  if (batching_) return SendBatch(conn);
  if (out.overflowed()) return WaitForPending(conn);
  return Action::Continue();
}

Action RespHandler::WaitForPending(Connection& conn) {
  conn.RequestWritable();
  return Action::Pause();
}

void RespHandler::OnWritable(Connection& conn) {
  if (pending_.empty()) return;
  if (!EmitPending(conn)) {
    conn.RequestWritable();
    return;
  }
  // The streamed reply is all in the output: requests that waited behind it are read now.
  if (outstanding_ == 0) conn.Resume();
}

RespHandler::Step RespHandler::Dispatch(const CommandSpec& spec, CommandArgs args,
                                        int64_t start_ns, ReplySink& out) {
  if (spec.kind == CommandKind::kSession || spec.kind == CommandKind::kContainer) {
    if (spec.name == "quit") {
      if (batching_) return Step::kStopBatch;
      spec.session_fn(args, session_, out);
      return Step::kClose;
    }
    if (!batching_) {
      spec.session_fn(args, session_, out);
    } else {
      StartSlot(MergeKind::kNone, start_ns);
      ReplySink local(local_);
      spec.session_fn(args, session_, local);
      SealLiteral();
    }
    return Step::kNext;
  }
  if (!batching_ && AllLocal(spec, args)) {
    spec.store_fn(args, *local_store_, options_, out);
    return Step::kNext;
  }
  batching_ = true;
  switch (spec.kind) {
    case CommandKind::kSingleKey:
      StartSlot(MergeKind::kNone, start_ns);
      AddPart(table_->ShardOf(args[1]), spec, args);
      break;
    case CommandKind::kMultiKey: {
      // Each key with its values (MSET's step is 2) becomes one part on the key's shard.
      const CommandSpec& part = spec.per_key != nullptr ? *spec.per_key : spec;
      const size_t step = static_cast<size_t>(spec.step);
      std::string_view sub[3] = {part.name};
      StartSlot(spec.merge, start_ns);
      for (size_t i = static_cast<size_t>(spec.first_key); i + step <= args.size(); i += step) {
        for (size_t j = 0; j < step && j < 2; ++j) sub[1 + j] = args[i + j];
        AddPart(table_->ShardOf(args[i]), part, CommandArgs(sub, 1 + step));
      }
      break;
    }
    case CommandKind::kAllShards:
      StartSlot(spec.merge, start_ns);
      for (size_t s = 0; s < table_->shards.size(); ++s) AddPart(static_cast<int>(s), spec, args);
      break;
    default:
      break;
  }
  return Step::kNext;
}

bool RespHandler::AllLocal(const CommandSpec& spec, CommandArgs args) const {
  if (local_store_ == nullptr) return false;
  if (table_->shards.size() == 1) return true;
  switch (spec.kind) {
    case CommandKind::kSingleKey:
      return table_->ShardOf(args[1]) == self_shard_;
    case CommandKind::kMultiKey:
      for (size_t i = static_cast<size_t>(spec.first_key); i < args.size();
           i += static_cast<size_t>(spec.step)) {
        if (table_->ShardOf(args[i]) != self_shard_) return false;
      }
      return true;
    default:
      return false;
  }
}

void RespHandler::StartSlot(MergeKind merge, int64_t start_ns) {
  slots_.push_back({merge, static_cast<uint32_t>(parts_.size()), 0, start_ns});
}

void RespHandler::AddPart(int shard, const CommandSpec& spec, CommandArgs args) {
  if (shard == self_shard_) {
    ReplySink local(local_);
    spec.store_fn(args, *local_store_, options_, local);
    local_.Seal();
    parts_.push_back({-1, static_cast<uint32_t>(local_.replies() - 1)});
  } else {
    std::shared_ptr<ShardCall>& call = calls_[shard];
    if (call == nullptr) {
      call = std::make_shared<ShardCall>();
      call->set_copy_budget(copy_budget_);
    }
    const size_t bytes_before = call->arg_bytes();
    const size_t index = call->Add(spec, args);
    batch_bytes_ += call->arg_bytes() - bytes_before;
    parts_.push_back({shard, static_cast<uint32_t>(index)});
  }
  ++slots_.back().part_count;
}

void RespHandler::SealLiteral() {
  local_.Seal();
  parts_.push_back({-1, static_cast<uint32_t>(local_.replies() - 1)});
  ++slots_.back().part_count;
}

bool RespHandler::BatchFull() const {
  return slots_.size() >= static_cast<size_t>(options_.max_batch_commands) ||
         batch_bytes_ >= options_.max_batch_bytes || parts_.size() >= kMaxBatchParts;
}

Action RespHandler::SendBatch(Connection& conn) {
  outstanding_ = 0;
  for (size_t s = 0; s < calls_.size(); ++s) {
    std::shared_ptr<ShardCall>& call = calls_[s];
    if (call == nullptr || call->empty()) continue;
    call->origin = conn.handle();
    call->batch = batch_seq_;
    call->store = table_->shards[s].store;
    call->options = &options_;
    // The owner runs the call and posts it back; the copy of the pointer travels with it, so
    // the call outlives this connection if the connection closes meanwhile. `this` is used
    // only if the connection is still open when the answer arrives, and then it is that
    // connection's handler (connection ids are never reused).
    table_->shards[s].loop->Post([call = call, handler = this]() mutable {
      // A call that fails on the owner (std::bad_alloc building a reply) still goes back: the
      // connection that waits for it closes as handler_error instead of waiting forever.
      bool failed = false;
      try {
        call->Run();
      } catch (...) {
        failed = true;
      }
      EventLoop& origin = *call->origin.loop;
      const uint64_t id = call->origin.id;
      origin.PostToConnection(id, [call = std::move(call), handler, failed](Connection& conn) {
        if (failed) {
          conn.Close(CloseReason::kHandlerError, /*flush_first=*/false);
          return;
        }
        handler->OnShardCallDone(conn, *call);
      });
    });
    ++outstanding_;
  }
  if (outstanding_ == 0) {
    FinishBatch(conn);
    return pending_.empty() ? Action::Continue() : WaitForPending(conn);
  }
  return Action::Pause();
}

void RespHandler::OnShardCallDone(Connection& conn, ShardCall& call) {
  if (call.batch != batch_seq_ || outstanding_ == 0) return;
  if (--outstanding_ > 0) return;
  FinishBatch(conn);
  if (!pending_.empty()) {
    conn.RequestWritable();  // stay paused until OnWritable has emitted the rest
    return;
  }
  conn.Resume();  // may run OnData again at once: state is settled by now
}

void RespHandler::FinishBatch(Connection& conn) {
  const int64_t now = MonotonicNanos();
  ReplySink out(conn.output(), high_water_, pending_);
  for (const Slot& slot : slots_) {
    merge_scratch_.clear();
    for (uint32_t p = slot.first_part; p < slot.first_part + slot.part_count; ++p) {
      const Part& part = parts_[p];
      ReplyQueue& list = part.shard < 0 ? local_ : calls_[part.shard]->replies();
      merge_scratch_.push_back({&list, part.index});
    }
    out.BeginReply();
    MergeReplies(slot.merge, merge_scratch_, out);
    conn.RecordRequest(now - slot.start_ns, out.StartsWithError());
  }
  slots_.clear();
  parts_.clear();
  local_.Clear();
  for (std::shared_ptr<ShardCall>& call : calls_) {
    if (call != nullptr) call->Reset();
  }
  batch_bytes_ = 0;
  batching_ = false;
  ++batch_seq_;
}

}  // namespace percore
