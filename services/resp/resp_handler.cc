#include "services/resp/resp_handler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "reactor/event_loop.h"
#include "services/resp/resp_reply.h"

namespace percore {

RespHandler::RespHandler(RespService& service, Connection& conn)
    : service_(service),
      shards_(service.shards()),
      options_(service.options()),
      here_(shards_.here()),
      local_store_(shards_.local()),
      parser_(service.options()) {
  session_.server = &service.server_view();
  session_.client_id = conn.id();
  calls_.resize(static_cast<size_t>(shards_.count()));
  // What a batch's reply lists may copy of values before they take references, split among
  // them: a batch over every shard holds about high_water of copies (and what it cannot merge
  // into the output moves to pending_ as they are). A reply streaming straight into pending_
  // copies up to low_water, since the output beside it already holds high_water. These size
  // memory, they decide nothing about backpressure.
  const ConnectionOptions& limits = conn.loop().connection_options();
  copy_budget_ = std::max(OutputQueue::kShareAtLeast,
                          limits.high_water / static_cast<size_t>(shards_.count()));
  local_.set_copy_budget(copy_budget_);
  pending_.set_copy_budget(std::max(OutputQueue::kShareAtLeast, limits.low_water));
  service_.ClientOpened();
}

RespHandler::~RespHandler() { service_.ClientClosed(); }

bool RespHandler::EmitPending(Connection& conn) {
  const auto backed_up = [&conn] { return conn.above_high_water(); };
  return pending_.empty() || pending_.EmitTo(conn.output(), backed_up);
}

Action RespHandler::OnData(Connection& conn, Buffer& input) {
  if (outstanding_ > 0) return Action::Pause();
  if (!EmitPending(conn)) return WaitForPending(conn);
  // Every request read in this callback is timed from its start.
  const RequestStart start = conn.BeginRequest();
  // Where direct replies go (unused while batching: a batch's replies go to local_ and the
  // calls, and are merged into the output when the batch is back). Once a reply overflows into
  // pending_, the loop below stops before the next request.
  const auto backed_up = [&conn] { return conn.above_high_water(); };
  ReplySink out(conn.output(), backed_up, pending_);
  while (!input.empty()) {
    if (batching_ && BatchFull()) return SendBatch(conn);
    if (out.overflowed()) return WaitForPending(conn);
    if (!batching_ && conn.above_high_water()) break;  // let the peer catch up
    const RespParser::Result result = parser_.Parse(input.view());
    if (result == RespParser::Result::kIncomplete) break;
    if (result == RespParser::Result::kError) {
      if (batching_) return SendBatch(conn);  // earlier replies first; the error comes after
      std::string message = "ERR ";
      message.append(parser_.error());
      AppendError(conn.output().bytes(), message);
      conn.RecordRequest(/*error=*/true);
      return Action::CloseAfterWrite(CloseReason::kProtocolError);
    }
    const CommandArgs args = parser_.args();
    if (args.empty()) {
      input.Consume(parser_.consumed());
      continue;
    }
    out.BeginReply();
    if (!batching_) {
      // GET and SET of a key on this loop's shard, as Dispatch would run them, without the
      // general resolution.
      const CommandSpec* spec = ResolveGetOrSet(args);
      if (spec != nullptr && shards_.OwnerOf(args[1]) == here_) {
        spec->store_fn(args, local_store_, options_, out);
        input.Consume(parser_.consumed());
        conn.RecordRequest(out.StartsWithError());
        continue;
      }
    }
    Step step = Step::kNext;
    Buffer& error_out = batching_ ? local_.bytes() : conn.output().bytes();
    if (const CommandSpec* spec = ResolveCommand(args, error_out)) {
      step = Dispatch(*spec, args, start, out);
      if (step == Step::kStopBatch) return SendBatch(conn);
    } else if (batching_) {
      StartSlot(MergeKind::kNone, start);
      SealLiteral();
    }
    input.Consume(parser_.consumed());
    if (!batching_) conn.RecordRequest(out.StartsWithError());
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
                                        RequestStart start, ReplySink& out) {
  if (spec.kind == CommandKind::kSession || spec.kind == CommandKind::kContainer) {
    // The batch goes first: QUIT's reply comes after its replies, and a count of keys includes
    // the writes sent before it.
    if (batching_ && (spec.name == "quit" || spec.reads_keyspace)) return Step::kStopBatch;
    if (spec.name == "quit") {
      spec.session_fn(args, session_, out);
      return Step::kClose;
    }
    if (!batching_) {
      spec.session_fn(args, session_, out);
    } else {
      StartSlot(MergeKind::kNone, start);
      ReplySink local(local_);
      spec.session_fn(args, session_, local);
      SealLiteral();
    }
    return Step::kNext;
  }
  if (!batching_ && AllLocal(spec, args)) {
    spec.store_fn(args, local_store_, options_, out);
    return Step::kNext;
  }
  batching_ = true;
  switch (spec.kind) {
    case CommandKind::kSingleKey:
      StartSlot(MergeKind::kNone, start);
      AddPart(shards_.OwnerOf(args[1]), spec, args);
      break;
    case CommandKind::kMultiKey: {
      // Each key with its values (MSET's step is 2) becomes one part on the key's shard.
      const CommandSpec& part = spec.per_key != nullptr ? *spec.per_key : spec;
      const size_t step = static_cast<size_t>(spec.step);
      std::string_view sub[3] = {part.name};
      StartSlot(spec.merge, start);
      for (size_t i = static_cast<size_t>(spec.first_key); i + step <= args.size(); i += step) {
        for (size_t j = 0; j < step && j < 2; ++j) sub[1 + j] = args[i + j];
        AddPart(shards_.OwnerOf(args[i]), part, CommandArgs(sub, 1 + step));
      }
      break;
    }
    case CommandKind::kAllShards:
      StartSlot(spec.merge, start);
      for (ShardId shard = 0; shard < shards_.count(); ++shard) AddPart(shard, spec, args);
      break;
    default:
      break;
  }
  return Step::kNext;
}

bool RespHandler::AllLocal(const CommandSpec& spec, CommandArgs args) const {
  if (shards_.count() == 1) return true;
  switch (spec.kind) {
    case CommandKind::kSingleKey:
      return shards_.OwnerOf(args[1]) == here_;
    case CommandKind::kMultiKey:
      for (size_t i = static_cast<size_t>(spec.first_key); i < args.size();
           i += static_cast<size_t>(spec.step)) {
        if (shards_.OwnerOf(args[i]) != here_) return false;
      }
      return true;
    default:
      return false;
  }
}

void RespHandler::StartSlot(MergeKind merge, RequestStart start) {
  slots_.push_back({merge, static_cast<uint32_t>(parts_.size()), 0, start});
}

void RespHandler::AddPart(ShardId shard, const CommandSpec& spec, CommandArgs args) {
  if (shard == here_) {
    ReplySink local(local_);
    spec.store_fn(args, local_store_, options_, local);
    local_.Seal();
    parts_.push_back({-1, static_cast<uint32_t>(local_.replies() - 1)});
  } else {
    std::unique_ptr<ShardCall>& call = calls_[static_cast<size_t>(shard)];
    if (call == nullptr) {
      call = std::make_unique<ShardCall>();
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
  for (ShardId owner = 0; owner < shards_.count(); ++owner) {
    std::unique_ptr<ShardCall>& call = calls_[static_cast<size_t>(owner)];
    if (call == nullptr || call->empty()) continue;
    // Never this loop's shard (its parts ran at once), so the answer comes later, as a
    // callback of this connection, and only while it is open: `this` is then still its
    // handler. The call travels both ways; if the connection closes meanwhile, it is dropped.
    ++outstanding_;
    shards_.Call(
        conn, owner,
        [call = std::move(call), &options = options_](StringStore& store) mutable {
          call->Run(store, options);
          return std::move(call);
        },
        [this, owner](Connection& c, std::unique_ptr<ShardCall> done) {
          OnCallDone(c, owner, std::move(done));
        });
  }
  if (outstanding_ == 0) {
    FinishBatch(conn);
    return pending_.empty() ? Action::Continue() : WaitForPending(conn);
  }
  return Action::Pause();
}

void RespHandler::OnCallDone(Connection& conn, ShardId owner, std::unique_ptr<ShardCall> call) {
  calls_[static_cast<size_t>(owner)] = std::move(call);
  if (--outstanding_ > 0) return;
  // Closed while the batch was away (by an operator, a timeout): the replies are not wanted.
  if (conn.state() == ConnectionState::kClosing) return;
  FinishBatch(conn);
  if (!pending_.empty()) {
    conn.RequestWritable();  // stay paused until OnWritable has emitted the rest
    return;
  }
  conn.Resume();  // reads and parses again once this callback returns
}

void RespHandler::FinishBatch(Connection& conn) {
  const auto backed_up = [&conn] { return conn.above_high_water(); };
  ReplySink out(conn.output(), backed_up, pending_);
  for (const Slot& slot : slots_) {
    merge_scratch_.clear();
    for (uint32_t p = slot.first_part; p < slot.first_part + slot.part_count; ++p) {
      const Part& part = parts_[p];
      ReplyQueue& list =
          part.shard < 0 ? local_ : calls_[static_cast<size_t>(part.shard)]->replies();
      merge_scratch_.push_back({&list, part.index});
    }
    out.BeginReply();
    MergeReplies(slot.merge, merge_scratch_, out);
    conn.EndRequest(slot.start, out.StartsWithError());
  }
  slots_.clear();
  parts_.clear();
  local_.Clear();
  for (std::unique_ptr<ShardCall>& call : calls_) {
    if (call != nullptr) call->Reset();
  }
  batch_bytes_ = 0;
  batching_ = false;
}

}  // namespace percore
