#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "services/resp/reply_sink.h"
#include "services/resp/resp_options.h"
#include "services/resp/string_store.h"

namespace percore {

// A request's arguments; args[0] is the command name.
using CommandArgs = std::span<const std::string_view>;

struct SessionContext;

// Runs a keyed command against one shard's store, appending its reply. Stored values go
// through ReplySink::AppendValue, with the threshold the sink asks for (share_at_least).
using StoreCommandFn = void (*)(CommandArgs args, StringStore& store, const RespOptions& options,
                                ReplySink& out);
// Runs a command that touches no key: it sees the connection and the service, not a store.
using SessionCommandFn = void (*)(CommandArgs args, SessionContext& session, ReplySink& out);

// Where a command runs.
enum class CommandKind : uint8_t {
  kSession,    // on the connection's loop (PING, INFO, CLIENT ...)
  kSingleKey,  // on the shard owning args[1]
  kMultiKey,   // each key (with its values) on its shard, replies merged (DEL, MGET, MSET ...)
  kAllShards,  // on every shard, replies merged (FLUSHDB, FLUSHALL)
  kContainer,  // names a subcommand in args[1] (CLIENT, CONFIG, COMMAND)
};

// How the replies of a command split across shards become one reply.
enum class MergeKind : uint8_t {
  kNone,
  kSumIntegers,  // ":a" ":b" -> ":a+b" (DEL, EXISTS)
  kArray,        // elements in key order under one "*N" header (MGET)
  kAllOk,        // "+OK" when every part said so (MSET, FLUSHDB)
};

// One argument in COMMAND DOCS, shaped as Redis 7 describes arguments.
struct ArgDoc {
  static constexpr uint8_t kOptional = 1;
  static constexpr uint8_t kMultiple = 2;
  std::string_view name = {};
  std::string_view type = {};   // key, string, integer, pure-token, oneof, block
  std::string_view token = {};  // the literal word that introduces it, if any
  uint8_t flags = 0;
  std::span<const ArgDoc> children = {};
};

struct CommandSpec {
  std::string_view name = {};  // Redis's full name, lowercase: "get", "client|setname"
  int arity = 0;          // N: exactly N arguments with the name; -N: at least N
  CommandKind kind = CommandKind::kSession;
  StoreCommandFn store_fn = nullptr;      // keyed kinds: runs all of its keys on one store
  SessionCommandFn session_fn = nullptr;  // kSession; for a container, the bare form
  // kMultiKey: the command one key (with its step-1 values) runs on its shard, and the merge.
  const CommandSpec* per_key = nullptr;
  MergeKind merge = MergeKind::kNone;
  // Key positions as COMMAND INFO reports them.
  int first_key = 0;
  int last_key = 0;
  int step = 0;
  std::span<const std::string_view> flags = {};
  std::span<const std::string_view> acl_categories = {};
  std::string_view group = {};
  std::string_view since = {};
  std::string_view summary = {};
  std::string_view complexity = {};
  std::span<const ArgDoc> args = {};
  std::span<const CommandSpec> subcommands = {};
  // kSession: reads figures of every shard (DBSIZE, INFO), so in a pipeline it runs only once
  // the keyed commands before it have run on their shards.
  bool reads_keyspace = false;
};

// Every top-level command served, in a stable order.
std::span<const CommandSpec> AllCommands();
// The top-level command named `name` in any letter case, or null.
const CommandSpec* FindCommand(std::string_view name);
// The specs of GET and SET, which nearly every request names.
extern const CommandSpec& kGetSpec;
extern const CommandSpec& kSetSpec;

// The three bytes of a name packed as one word, each with the ASCII case bit set.
constexpr uint32_t PackLower3(char a, char b, char c) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(a)) |
          static_cast<uint32_t>(static_cast<unsigned char>(b)) << 8 |
          static_cast<uint32_t>(static_cast<unsigned char>(c)) << 16) |
         0x202020u;
}

// GET or SET named by `name`, without lowercasing and scanning: the only bytes that become a
// given letter with the case bit set are that letter in either case, so the packed comparison
// is exact for names of letters. Null for any other name.
inline const CommandSpec* FindGetOrSet(std::string_view name) {
  if (name.size() != 3) return nullptr;
  const uint32_t word = PackLower3(name[0], name[1], name[2]);
  if (word == PackLower3('g', 'e', 't')) return &kGetSpec;
  if (word == PackLower3('s', 'e', 't')) return &kSetSpec;
  return nullptr;
}

// GET or SET when `args` (not empty) names one of them with a valid argument count, found
// without FindCommand's scan; null for anything else, which ResolveCommand then decides.
inline const CommandSpec* ResolveGetOrSet(CommandArgs args) {
  const CommandSpec* spec = FindGetOrSet(args[0]);
  if (spec == nullptr) return nullptr;
  const int n = static_cast<int>(args.size());
  return (spec->arity >= 0 ? n == spec->arity : n >= -spec->arity) ? spec : nullptr;
}
// The subcommand of `container` named `name` in any letter case, or null.
const CommandSpec* FindSubcommand(const CommandSpec& container, std::string_view name);
// MGET's per-key part: one element of MGET's reply (a bulk string or null).
const CommandSpec& MgetPartSpec();

}  // namespace percore
