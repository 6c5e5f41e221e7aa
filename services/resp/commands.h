#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/clock.h"
#include "services/resp/command_table.h"
#include "services/resp/reply_sink.h"
#include "services/resp/resp_options.h"
#include "services/resp/string_store.h"

namespace percore {

// The keyspace over every shard, as DBSIZE and INFO report it.
struct KeyspaceFigures {
  size_t shards = 0;
  uint64_t keys = 0;
  uint64_t expiring = 0;  // keys that carry a TTL
};

// What server-level commands (INFO, DBSIZE, CONFIG GET) may read about the service, from
// whichever loop runs the command: immutable, atomic, or (keyspace) summed from figures every
// shard publishes for other threads. Such a sum includes every write whose reply the asking
// client has already read.
struct ServerView {
  const RespOptions* options = nullptr;
  std::function<KeyspaceFigures()> keyspace;
  MonoTime started;  // when the service was made
  const std::atomic<int64_t>* connected_clients = nullptr;
  const std::atomic<uint64_t>* total_connections = nullptr;
};

// The per-connection state that connection commands read and change. A connection keeps only
// what a client set away from its default, and builds this around it to run such a command.
struct SessionContext {
  const ServerView* server = nullptr;
  uint64_t client_id = 0;
  std::unique_ptr<std::string> client_name;  // null until CLIENT SETNAME (most never call it)
  bool quit = false;  // set by QUIT: the connection closes after its reply
};

// Error replies, worded as Redis 7 words them.
inline constexpr std::string_view kErrWrongType =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr std::string_view kErrNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kErrSyntax = "ERR syntax error";
inline constexpr std::string_view kErrOverflow = "ERR increment or decrement would overflow";
inline constexpr std::string_view kErrTooLarge =
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
inline constexpr std::string_view kErrDbIndex = "ERR DB index is out of range";

// Finds the command `args` names, descending into a container's subcommand, and checks the
// arity (including MSET's key/value pairing). Returns the spec to run, or null after appending
// Redis's error reply ("unknown command", "unknown subcommand", "wrong number of arguments").
// `args` must not be empty.
const CommandSpec* ResolveCommand(CommandArgs args, Buffer& out);

// Runs a resolved keyed command (any keyed kind) with all of its keys on `store`.
inline void RunStoreCommand(const CommandSpec& spec, CommandArgs args, StringStore& store,
                            const RespOptions& options, ReplySink& out) {
  spec.store_fn(args, store, options, out);
}

// Runs one request where every key lives in `store`: resolve, check, run. Returns the spec it
// ran (null when it replied with an error instead). For QUIT, session.quit becomes true.
const CommandSpec* RunCommandLocally(CommandArgs args, StringStore& store,
                                     SessionContext& session, ReplySink& out);
// The same, with the whole reply copied into `out`.
const CommandSpec* RunCommandLocally(CommandArgs args, StringStore& store,
                                     SessionContext& session, Buffer& out);

// One shard part of a command's reply: reply `index` of `list` (ReplyQueue used as a list).
struct ReplyPart {
  ReplyQueue* list;
  size_t index;
};

// Joins the replies of a command's shard parts (each one complete RESP reply, in key order)
// into the single reply the client expects, moving the parts' references into `out` (each
// part is used once). The first error among the parts wins.
void MergeReplies(MergeKind merge, std::span<const ReplyPart> parts, ReplySink& out);

}  // namespace percore
