#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "services/resp/command_table.h"
#include "services/resp/reply_sink.h"
#include "services/resp/resp_options.h"
#include "services/resp/string_store.h"

namespace percore {

// The commands one connection sends to one shard that another loop owns, and their replies.
// Arguments are copied in, because the connection (and its input buffer) may be gone by the
// time the owner runs them. Replies come back as a ReplyQueue list: the values they send are
// references to the owner's strings (never copies of large ones), which the origin passes on to
// its connection's output as it drains; the owner never writes bytes it handed out.
//
// Threading: the origin loop fills it, the owner loop runs it, the origin reads the replies;
// it travels whole both ways inside Sharded::Call, whose hand-overs order the writes before
// the reads. Never touched by two threads at once.
class ShardCall {
 public:
  // Origin: queues `spec` with `args` (args[0] is replaced by spec.name when run). Returns the
  // index its reply will have.
  size_t Add(const CommandSpec& spec, CommandArgs args);
  // Bytes of arguments queued so far.
  size_t arg_bytes() const { return arena_.size(); }
  size_t size() const { return commands_.size(); }
  bool empty() const { return commands_.empty(); }

  // Origin, before posting: how many bytes of values the replies may copy before they take
  // references instead (ReplyQueue::set_copy_budget).
  void set_copy_budget(size_t bytes) { replies_.set_copy_budget(bytes); }

  // Owner: runs every queued command in order against its shard's `store`.
  void Run(StringStore& store, const RespOptions& options);

  // Origin, after Run: reply i is replies().head(i) / MoveReplyTo(i, ...).
  ReplyQueue& replies() { return replies_; }

  // Origin: forgets commands and replies, keeping the memory for the next batch (the argument
  // arena only up to kKeptArenaBytes).
  void Reset();
  static constexpr size_t kKeptArenaBytes = 64 * 1024;
  // The arena's capacity, for tests.
  size_t arena_capacity() const { return arena_.capacity(); }

 private:
  struct Queued {
    const CommandSpec* spec;
    size_t first_arg;
    size_t argc;  // arguments after the name
  };
  std::string arena_;
  std::vector<std::pair<size_t, size_t>> args_;  // (offset, length) in arena_
  std::vector<Queued> commands_;
  std::vector<std::string_view> argv_;  // Run's scratch
  ReplyQueue replies_;
};

}  // namespace percore
