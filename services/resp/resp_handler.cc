#include "services/resp/resp_handler.h"

#include <string>
#include <utility>

#include "core/clock.h"
#include "reactor/event_loop.h"
#include "services/resp/resp_reply.h"
#include "services/resp/resp_service.h"

namespace percore {
namespace {

// Runs on the origin loop: hands a finished call to its connection's handler, if the
// connection is still there.
void DeliverShardCall(const ShardCall& call) {
  Connection* conn = call.origin.loop->FindConnection(call.origin.id);
  if (conn == nullptr) return;
  if (auto* handler = dynamic_cast<RespHandler*>(conn->handler())) {
    handler->OnShardCallDone(*conn, call);
  }
}

}  // namespace

RespHandler::RespHandler(RespService& service, Connection& conn)
    : service_(service), options_(service.options()), parser_(service.options()) {
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
}

Action RespHandler::OnData(Connection& conn, Buffer& input) {
  if (outstanding_ > 0) return Action::Pause();
  EnsureTable(conn);
  const size_t high_water = conn.loop().connection_options().high_water;
  int64_t last_ns = MonotonicNanos();
  while (!input.empty()) {
    if (batching_ && BatchFull()) return SendBatch(conn);
    if (!batching_ && conn.queued_output() > high_water) break;  // let the peer catch up
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
    Buffer& out = conn.output().bytes();
    const size_t before = out.size();
    Step step = Step::kNext;
    Buffer& error_out = batching_ ? local_.bytes() : out;
    if (const CommandSpec* spec = ResolveCommand(args, error_out)) {
      step = Dispatch(conn, *spec, args, last_ns);
      if (step == Step::kStopBatch) return SendBatch(conn);
    } else if (batching_) {
      StartSlot(MergeKind::kNone, last_ns);
      SealLiteral();
    }
    input.Consume(parser_.consumed());
    const int64_t now = MonotonicNanos();
    if (!batching_) {
      conn.RecordRequest(now - last_ns, out.size() > before && out.view()[before] == '-');
    }
    last_ns = now;
    if (step == Step::kClose) return Action::CloseAfterWrite(CloseReason::kServiceClose);
  }
  if (batching_) return SendBatch(conn);
  return Action::Continue();
}

RespHandler::Step RespHandler::Dispatch(Connection& conn, const CommandSpec& spec,
                                        CommandArgs args, int64_t start_ns) {
  if (spec.kind == CommandKind::kSession || spec.kind == CommandKind::kContainer) {
    if (spec.name == "quit") {
      if (batching_) return Step::kStopBatch;
      spec.session_fn(args, session_, conn.output().bytes());
      return Step::kClose;
    }
    if (!batching_) {
      spec.session_fn(args, session_, conn.output().bytes());
    } else {
      StartSlot(MergeKind::kNone, start_ns);
      spec.session_fn(args, session_, local_.bytes());
      SealLiteral();
    }
    return Step::kNext;
  }
  if (!batching_ && AllLocal(spec, args)) {
    spec.store_fn(args, *local_store_, options_, conn.output().bytes());
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
    spec.store_fn(args, *local_store_, options_, local_.bytes());
    local_.Seal();
    parts_.push_back({-1, static_cast<uint32_t>(local_.size() - 1)});
  } else {
    std::shared_ptr<ShardCall>& call = calls_[shard];
    if (call == nullptr) call = std::make_shared<ShardCall>();
    const size_t bytes_before = call->arg_bytes();
    const size_t index = call->Add(spec, args);
    batch_bytes_ += call->arg_bytes() - bytes_before;
    parts_.push_back({shard, static_cast<uint32_t>(index)});
  }
  ++slots_.back().part_count;
}

void RespHandler::SealLiteral() {
  local_.Seal();
  parts_.push_back({-1, static_cast<uint32_t>(local_.size() - 1)});
  ++slots_.back().part_count;
}

bool RespHandler::BatchFull() const {
  return slots_.size() >= static_cast<size_t>(options_.max_batch_commands) ||
         batch_bytes_ >= options_.max_batch_bytes;
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
    // the call outlives this connection if the connection closes meanwhile.
    table_->shards[s].loop->Post([call = call]() mutable {
      call->Run();
      EventLoop* origin = call->origin.loop;
      origin->Post([call = std::move(call)] { DeliverShardCall(*call); });
    });
    ++outstanding_;
  }
  if (outstanding_ == 0) {
    FinishBatch(conn);
    return Action::Continue();
  }
  return Action::Pause();
}

void RespHandler::OnShardCallDone(Connection& conn, const ShardCall& call) {
  if (call.batch != batch_seq_ || outstanding_ == 0) return;
  if (--outstanding_ > 0) return;
  FinishBatch(conn);
  conn.Resume();  // may run OnData again at once: state is settled by now
}

void RespHandler::FinishBatch(Connection& conn) {
  Buffer& out = conn.output().bytes();
  const int64_t now = MonotonicNanos();
  for (const Slot& slot : slots_) {
    merge_scratch_.clear();
    for (uint32_t p = slot.first_part; p < slot.first_part + slot.part_count; ++p) {
      const Part& part = parts_[p];
      merge_scratch_.push_back(part.shard < 0 ? local_.at(part.index)
                                              : calls_[part.shard]->reply(part.index));
    }
    const size_t before = out.size();
    MergeReplies(slot.merge, merge_scratch_, out);
    conn.RecordRequest(now - slot.start_ns, out.size() > before && out.view()[before] == '-');
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
