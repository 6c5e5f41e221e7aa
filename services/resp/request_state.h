#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/free_list.h"
#include "reactor/connection.h"
#include "reactor/sharded.h"
#include "services/resp/commands.h"
#include "services/resp/reply_sink.h"
#include "services/resp/resp_options.h"
#include "services/resp/resp_parser.h"
#include "services/resp/shard_call.h"
#include "services/resp/string_store.h"

namespace percore {

class RespService;

// What every request state of one loop is made with; the same for all of its connections.
struct RespStateSettings {
  const RespOptions* options = nullptr;
  int shard_count = 1;
  // What a batch's reply lists may copy of values before they take references, split among
  // them: a batch over every shard holds about high_water of copies (and what it cannot merge
  // into the output moves to `pending` as they are).
  size_t batch_copy_budget = ReplyQueue::kDefaultCopyBudget;
  // A reply streaming straight into `pending` copies up to low_water, since the output beside
  // it already holds high_water. These size memory, they decide nothing about backpressure.
  size_t pending_copy_budget = ReplyQueue::kDefaultCopyBudget;
};

// What a RESP connection needs only while it has requests in progress: the parser, the reply
// the output had no room for, the open batch. A connection takes one from its loop's free list
// (RespLoopContext::request_states) when request bytes arrive and gives it back once every
// request it read is answered, so an idle connection holds a null pointer instead; a busy one
// reuses the vectors' capacity another connection grew. Loop thread only (a ShardCall travels
// to its owner and back, see ShardCall).
struct RespRequestState {
  // A reply in the batch: parts (from the local list or from calls) merged one way.
  struct Slot {
    MergeKind merge;
    uint32_t first_part;
    uint32_t part_count;
    RequestStart start;
  };
  struct Part {
    ShardId shard;  // -1: the local reply list
    uint32_t index;
  };

  explicit RespRequestState(const RespStateSettings& settings);

  // Whether nothing is in progress: no reply waits for room, no batch is open or away, and the
  // parser holds no progress through a partial request. Only then may the state go back.
  bool idle() const {
    return pending.empty() && !batching && outstanding == 0 && !parser.in_progress();
  }

  RespParser parser;
  // The rest of a reply the output had no room for (see RespHandler).
  ReplyQueue pending;

  // The open batch.
  bool batching = false;
  int outstanding = 0;  // calls away
  size_t batch_bytes = 0;
  std::vector<Slot> slots;
  std::vector<Part> parts;
  ReplyQueue local;
  // By shard, kept for reuse; null while the call is with its owner (or never needed).
  std::vector<std::unique_ptr<ShardCall>> calls;
  const size_t copy_budget;  // per reply list of a batch
  std::vector<ReplyPart> merge_scratch;
};

// What one loop's RESP connections share, reached through the one pointer each handler keeps:
// the service, this loop's shard of the keyspace, and the request states they borrow. The T
// of RespService's per-loop Sharded; filled in on the loop by RespService::OnLoopStart, before
// the loop accepts connections, and touched only by that loop.
struct RespLoopContext {
  explicit RespLoopContext(RespService& service) : service(service) {}

  RespService& service;
  StringStore* store = nullptr;
  ShardId here = 0;
  RespStateSettings state_settings;
  FreeList<RespRequestState> request_states;
};

}  // namespace percore
