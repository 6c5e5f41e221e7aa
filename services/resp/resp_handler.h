#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/buffer.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "services/resp/commands.h"
#include "services/resp/request_state.h"
#include "services/resp/resp_service.h"
#include "services/resp/shard_call.h"

namespace percore {

// One RESP connection. Requests are parsed in place from the input; a command whose keys live
// on this loop's shard runs at once and replies straight into the output. When a command needs
// a shard another loop owns, the handler opens a batch: from then on, each command (up to the
// batch limits) gets a reply slot; parts for this loop's shard run at once into a local reply
// list, parts for other shards are queued in one ShardCall per shard. Each call goes to its
// owner with RespShards::Call and the connection pauses; when the last call is back, the slots
// are merged into the output in request order and the connection resumes. Per key, commands
// therefore run in the order the client sent them.
//
// Large replies are streamed. A reply is written into the output until the output is backed
// up (Connection::above_high_water); the rest of it (and of the batch it belongs to) waits in
// the pending queue as copied headers and references to the stored values, and is emitted as the
// output drains (OnWritable). While anything is pending the connection is paused: no further
// request is read or parsed, so no reply can overtake it, a connection holds at most one
// command's (or one batch's) references, and a drain or close waits for the reply like for a
// cross-loop answer. What a connection holds is thus about high_water plus one value, plus the
// headers and references of the reply it is streaming, whatever the reply's size.
//
// Everything above lives in a RespRequestState borrowed from the loop while requests are in
// progress (RespLoopContext::request_states), so an idle connection holds its handler's few
// pointers: the loop's context, a null state, and a client name only if it set one.
class RespHandler final : public Handler {
 public:
  // On the connection's loop, whose context `loop` is.
  explicit RespHandler(RespLoopContext& loop);
  ~RespHandler() override;

  Action OnData(Connection& conn, Buffer& input) override;
  // Emits more of the pending reply; once it is all in the output, resumes reading.
  void OnWritable(Connection& conn) override;
  void OnClose(Connection& conn, CloseReason reason) override;
  // Idle (no request state), it moves, its session settings (client name) with it, and takes
  // the new loop's context on arrival.
  MigrationVote CanMigrate(Connection& conn) override;
  void OnMigrated(Connection& conn) override;

 private:
  using Slot = RespRequestState::Slot;
  using Part = RespRequestState::Part;

  enum class Step { kNext, kStopBatch, kClose };

  // A batch ends after this many key parts even when its other limits allow more, so that a
  // pipeline of many-key commands cannot make one batch hold an unbounded number of replies.
  static constexpr size_t kMaxBatchParts = size_t{1} << 16;

  RespShards& shards() const;
  const RespOptions& options() const { return *loop_->state_settings.options; }

  // Gives state_ back to the loop's free list when nothing is in progress.
  void ReleaseIfIdle();
  // Moves what is pending into the output until it is backed up; true once nothing is left
  // pending.
  bool EmitPending(Connection& conn);
  // Pauses until OnWritable has emitted what is pending.
  Action WaitForPending(Connection& conn);
  // Runs or queues one resolved request; a direct reply goes to `out`. kStopBatch: not
  // consumed, the batch must go first.
  Step Dispatch(Connection& conn, const CommandSpec& spec, CommandArgs args, RequestStart start,
                ReplySink& out);
  // Runs a connection command against the session: the settings this handler keeps, with
  // what every connection knows (the server, its id) around them.
  void RunSessionCommand(Connection& conn, const CommandSpec& spec, CommandArgs args,
                         ReplySink& out);
  bool AllLocal(const CommandSpec& spec, CommandArgs args) const;
  void StartSlot(MergeKind merge, RequestStart start);
  // Adds one part to the open slot: run now when `shard` is ours, else queue it.
  void AddPart(ShardId shard, const CommandSpec& spec, CommandArgs args);
  // Closes the reply just written into the local list as the open slot's part.
  void SealLiteral();
  bool BatchFull() const;
  // Sends the queued calls to their owners; returns Pause.
  Action SendBatch(Connection& conn);
  // `owner` has run its call (on this connection's loop, as a callback of `conn`).
  void OnCallDone(Connection& conn, ShardId owner, std::unique_ptr<ShardCall> call);
  void FinishBatch(Connection& conn);

  RespLoopContext* loop_;  // the connection's loop's
  // Taken from loop_.request_states when request bytes arrive, given back once they are all
  // answered: null while the connection is idle.
  std::unique_ptr<RespRequestState> state_;
  std::unique_ptr<std::string> client_name_;  // CLIENT SETNAME's; null while unnamed
};

}  // namespace percore
