#include "services/resp/command_table.h"

#include <cstdint>
#include <cstring>

#include "services/resp/ascii.h"
#include "services/resp/command_functions.h"

namespace percore {
namespace {

using SV = std::string_view;

// COMMAND INFO flags.
constexpr SV kReadFast[] = {"readonly", "fast"};
constexpr SV kWriteDenyOom[] = {"write", "denyoom"};
constexpr SV kWriteDenyOomFast[] = {"write", "denyoom", "fast"};
constexpr SV kWriteFast[] = {"write", "fast"};
constexpr SV kWrite[] = {"write"};
constexpr SV kFast[] = {"fast"};
constexpr SV kLoadingStale[] = {"loading", "stale"};
constexpr SV kLoadingStaleFast[] = {"loading", "stale", "fast"};
constexpr SV kQuitFlags[] = {"allow_busy", "noscript", "loading", "stale", "fast", "no_auth"};

// ACL categories.
constexpr SV kAclReadString[] = {"@read", "@string", "@fast"};
constexpr SV kAclWriteStringFast[] = {"@write", "@string", "@fast"};
constexpr SV kAclWriteStringSlow[] = {"@write", "@string", "@slow"};
constexpr SV kAclKeyspaceWriteSlow[] = {"@keyspace", "@write", "@slow"};
constexpr SV kAclKeyspaceWriteFast[] = {"@keyspace", "@write", "@fast"};
constexpr SV kAclKeyspaceReadFast[] = {"@keyspace", "@read", "@fast"};
constexpr SV kAclDangerous[] = {"@keyspace", "@write", "@slow", "@dangerous"};
constexpr SV kAclConnection[] = {"@fast", "@connection"};
constexpr SV kAclSlowConnection[] = {"@slow", "@connection"};
constexpr SV kAclSlowDangerous[] = {"@slow", "@dangerous"};
constexpr SV kAclSlow[] = {"@slow"};

// Argument docs.
constexpr ArgDoc kKeyArg[] = {{.name = "key", .type = "key"}};
constexpr ArgDoc kKeysArg[] = {{.name = "key", .type = "key", .flags = ArgDoc::kMultiple}};
constexpr ArgDoc kKeyValueArgs[] = {{.name = "key", .type = "key"},
                                    {.name = "value", .type = "string"}};
constexpr ArgDoc kSetCondition[] = {{.name = "nx", .type = "pure-token", .token = "NX"},
                                    {.name = "xx", .type = "pure-token", .token = "XX"}};
constexpr ArgDoc kSetExpiration[] = {
    {.name = "seconds", .type = "integer", .token = "EX"},
    {.name = "milliseconds", .type = "integer", .token = "PX"},
    {.name = "unix-time-seconds", .type = "unix-time", .token = "EXAT"},
    {.name = "unix-time-milliseconds", .type = "unix-time", .token = "PXAT"},
    {.name = "keepttl", .type = "pure-token", .token = "KEEPTTL"}};
constexpr ArgDoc kSetArgs[] = {
    {.name = "key", .type = "key"},
    {.name = "value", .type = "string"},
    {.name = "condition", .type = "oneof", .flags = ArgDoc::kOptional, .children = kSetCondition},
    {.name = "get", .type = "pure-token", .token = "GET", .flags = ArgDoc::kOptional},
    {.name = "expiration", .type = "oneof", .flags = ArgDoc::kOptional,
     .children = kSetExpiration}};
constexpr ArgDoc kIncrByArgs[] = {{.name = "key", .type = "key"},
                                  {.name = "increment", .type = "integer"}};
constexpr ArgDoc kDecrByArgs[] = {{.name = "key", .type = "key"},
                                  {.name = "decrement", .type = "integer"}};
constexpr ArgDoc kMsetPair[] = {{.name = "key", .type = "key"},
                                {.name = "value", .type = "string"}};
constexpr ArgDoc kMsetArgs[] = {
    {.name = "data", .type = "block", .flags = ArgDoc::kMultiple, .children = kMsetPair}};
constexpr ArgDoc kExpireCondition[] = {{.name = "nx", .type = "pure-token", .token = "NX"},
                                       {.name = "xx", .type = "pure-token", .token = "XX"},
                                       {.name = "gt", .type = "pure-token", .token = "GT"},
                                       {.name = "lt", .type = "pure-token", .token = "LT"}};
constexpr ArgDoc kExpireArgs[] = {
    {.name = "key", .type = "key"},
    {.name = "seconds", .type = "integer"},
    {.name = "condition", .type = "oneof", .flags = ArgDoc::kOptional,
     .children = kExpireCondition}};
constexpr ArgDoc kPexpireArgs[] = {
    {.name = "key", .type = "key"},
    {.name = "milliseconds", .type = "integer"},
    {.name = "condition", .type = "oneof", .flags = ArgDoc::kOptional,
     .children = kExpireCondition}};
constexpr ArgDoc kFlushMode[] = {{.name = "async", .type = "pure-token", .token = "ASYNC"},
                                 {.name = "sync", .type = "pure-token", .token = "SYNC"}};
constexpr ArgDoc kFlushArgs[] = {
    {.name = "flush-type", .type = "oneof", .flags = ArgDoc::kOptional, .children = kFlushMode}};
constexpr ArgDoc kSelectArgs[] = {{.name = "index", .type = "integer"}};
constexpr ArgDoc kPingArgs[] = {
    {.name = "message", .type = "string", .flags = ArgDoc::kOptional}};
constexpr ArgDoc kEchoArgs[] = {{.name = "message", .type = "string"}};
constexpr ArgDoc kInfoArgs[] = {
    {.name = "section", .type = "string", .flags = ArgDoc::kOptional | ArgDoc::kMultiple}};
constexpr ArgDoc kConfigGetArgs[] = {
    {.name = "parameter", .type = "string", .flags = ArgDoc::kMultiple}};
constexpr ArgDoc kClientSetNameArgs[] = {{.name = "connection-name", .type = "string"}};
constexpr ArgDoc kCommandNamesArgs[] = {
    {.name = "command-name", .type = "string", .flags = ArgDoc::kOptional | ArgDoc::kMultiple}};

const CommandSpec kConfigSubcommands[] = {
    {.name = "config|get", .arity = -3, .kind = CommandKind::kSession,
     .session_fn = ConfigGetCommand, .flags = kLoadingStale, .acl_categories = kAclSlow,
     .group = "server", .since = "2.0.0",
     .summary = "Get the values of configuration parameters",
     .complexity = "O(N) when N is the number of configuration parameters provided",
     .args = kConfigGetArgs},
    {.name = "config|help", .arity = 2, .kind = CommandKind::kSession,
     .session_fn = ConfigHelpCommand, .flags = kLoadingStale, .acl_categories = kAclSlow,
     .group = "server", .since = "5.0.0", .summary = "Show helpful text about the different subcommands",
     .complexity = "O(1)"},
};

const CommandSpec kClientSubcommands[] = {
    {.name = "client|setname", .arity = 3, .kind = CommandKind::kSession,
     .session_fn = ClientSetNameCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "connection", .since = "2.6.9",
     .summary = "Set the current connection name", .complexity = "O(1)",
     .args = kClientSetNameArgs},
    {.name = "client|getname", .arity = 2, .kind = CommandKind::kSession,
     .session_fn = ClientGetNameCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "connection", .since = "2.6.9",
     .summary = "Get the current connection name", .complexity = "O(1)"},
    {.name = "client|id", .arity = 2, .kind = CommandKind::kSession,
     .session_fn = ClientIdCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "connection", .since = "5.0.0",
     .summary = "Returns the client ID for the current connection", .complexity = "O(1)"},
    {.name = "client|help", .arity = 2, .kind = CommandKind::kSession,
     .session_fn = ClientHelpCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "connection", .since = "5.0.0",
     .summary = "Show helpful text about the different subcommands", .complexity = "O(1)"},
};

const CommandSpec kCommandSubcommands[] = {
    {.name = "command|count", .arity = 2, .kind = CommandKind::kSession,
     .session_fn = CommandCountCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "server", .since = "2.8.13",
     .summary = "Get total number of Redis commands", .complexity = "O(1)"},
    {.name = "command|docs", .arity = -2, .kind = CommandKind::kSession,
     .session_fn = CommandDocsCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "server", .since = "7.0.0",
     .summary = "Get array of specific Redis command documentation",
     .complexity = "O(N) where N is the number of commands to look up",
     .args = kCommandNamesArgs},
    {.name = "command|info", .arity = -2, .kind = CommandKind::kSession,
     .session_fn = CommandInfoCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "server", .since = "2.8.13",
     .summary = "Get array of specific Redis command details, or all when no argument is given.",
     .complexity = "O(N) where N is the number of commands to look up",
     .args = kCommandNamesArgs},
    {.name = "command|list", .arity = -2, .kind = CommandKind::kSession,
     .session_fn = CommandListCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "server", .since = "7.0.0",
     .summary = "Get an array of Redis command names", .complexity = "O(N) where N is the total number of Redis commands"},
    {.name = "command|help", .arity = 2, .kind = CommandKind::kSession,
     .session_fn = CommandHelpCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "server", .since = "5.0.0",
     .summary = "Show helpful text about the different subcommands", .complexity = "O(1)"},
};

const CommandSpec kMgetElement = {
    .name = "mget", .arity = 2, .kind = CommandKind::kSingleKey,
    .store_fn = MgetPartCommand, .first_key = 1, .last_key = 1, .step = 1};

// Hot commands first: FindCommand scans in this order (and knows GET and SET by position).
const CommandSpec kCommands[] = {
    {.name = "get", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = GetCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kReadFast,
     .acl_categories = kAclReadString, .group = "string", .since = "1.0.0",
     .summary = "Get the value of a key", .complexity = "O(1)", .args = kKeyArg},
    {.name = "set", .arity = -3, .kind = CommandKind::kSingleKey, .store_fn = SetCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOom,
     .acl_categories = kAclWriteStringSlow, .group = "string", .since = "1.0.0",
     .summary = "Set the string value of a key", .complexity = "O(1)", .args = kSetArgs},
    {.name = "ping", .arity = -1, .kind = CommandKind::kSession, .session_fn = PingCommand,
     .flags = kFast, .acl_categories = kAclConnection, .group = "connection", .since = "1.0.0",
     .summary = "Ping the server", .complexity = "O(1)", .args = kPingArgs},
    {.name = "incr", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = IncrCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOomFast,
     .acl_categories = kAclWriteStringFast, .group = "string", .since = "1.0.0",
     .summary = "Increment the integer value of a key by one", .complexity = "O(1)",
     .args = kKeyArg},
    {.name = "mset", .arity = -3, .kind = CommandKind::kMultiKey, .store_fn = MsetCommand,
     .merge = MergeKind::kAllOk, .first_key = 1, .last_key = -1, .step = 2,
     .flags = kWriteDenyOom, .acl_categories = kAclWriteStringSlow, .group = "string",
     .since = "1.0.1", .summary = "Set multiple keys to multiple values",
     .complexity = "O(N) where N is the number of keys to set.", .args = kMsetArgs},
    {.name = "mget", .arity = -2, .kind = CommandKind::kMultiKey, .store_fn = MgetCommand,
     .per_key = &kMgetElement, .merge = MergeKind::kArray, .first_key = 1, .last_key = -1,
     .step = 1, .flags = kReadFast, .acl_categories = kAclReadString, .group = "string",
     .since = "1.0.0", .summary = "Get the values of all the given keys",
     .complexity = "O(N) where N is the number of keys to retrieve.", .args = kKeysArg},
    {.name = "del", .arity = -2, .kind = CommandKind::kMultiKey, .store_fn = DelCommand,
     .merge = MergeKind::kSumIntegers, .first_key = 1, .last_key = -1, .step = 1,
     .flags = kWrite, .acl_categories = kAclKeyspaceWriteSlow, .group = "generic",
     .since = "1.0.0", .summary = "Delete a key",
     .complexity = "O(N) where N is the number of keys that will be removed.",
     .args = kKeysArg},
    {.name = "exists", .arity = -2, .kind = CommandKind::kMultiKey, .store_fn = ExistsCommand,
     .merge = MergeKind::kSumIntegers, .first_key = 1, .last_key = -1, .step = 1,
     .flags = kReadFast, .acl_categories = kAclKeyspaceReadFast, .group = "generic",
     .since = "1.0.0", .summary = "Determine if a key exists",
     .complexity = "O(N) where N is the number of keys to check.", .args = kKeysArg},
    {.name = "getset", .arity = 3, .kind = CommandKind::kSingleKey, .store_fn = GetSetCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOomFast,
     .acl_categories = kAclWriteStringFast, .group = "string", .since = "1.0.0",
     .summary = "Set the string value of a key and return its old value", .complexity = "O(1)",
     .args = kKeyValueArgs},
    {.name = "incrby", .arity = 3, .kind = CommandKind::kSingleKey, .store_fn = IncrByCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOomFast,
     .acl_categories = kAclWriteStringFast, .group = "string", .since = "1.0.0",
     .summary = "Increment the integer value of a key by the given amount",
     .complexity = "O(1)", .args = kIncrByArgs},
    {.name = "decr", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = DecrCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOomFast,
     .acl_categories = kAclWriteStringFast, .group = "string", .since = "1.0.0",
     .summary = "Decrement the integer value of a key by one", .complexity = "O(1)",
     .args = kKeyArg},
    {.name = "decrby", .arity = 3, .kind = CommandKind::kSingleKey, .store_fn = DecrByCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOomFast,
     .acl_categories = kAclWriteStringFast, .group = "string", .since = "1.0.0",
     .summary = "Decrement the integer value of a key by the given number",
     .complexity = "O(1)", .args = kDecrByArgs},
    {.name = "append", .arity = 3, .kind = CommandKind::kSingleKey, .store_fn = AppendCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteDenyOomFast,
     .acl_categories = kAclWriteStringFast, .group = "string", .since = "2.0.0",
     .summary = "Append a value to a key", .complexity = "O(1)", .args = kKeyValueArgs},
    {.name = "strlen", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = StrLenCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kReadFast,
     .acl_categories = kAclReadString, .group = "string", .since = "2.2.0",
     .summary = "Get the length of the value stored in a key", .complexity = "O(1)",
     .args = kKeyArg},
    {.name = "expire", .arity = -3, .kind = CommandKind::kSingleKey, .store_fn = ExpireCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteFast,
     .acl_categories = kAclKeyspaceWriteFast, .group = "generic", .since = "1.0.0",
     .summary = "Set a key's time to live in seconds", .complexity = "O(1)",
     .args = kExpireArgs},
    {.name = "pexpire", .arity = -3, .kind = CommandKind::kSingleKey,
     .store_fn = PexpireCommand, .first_key = 1, .last_key = 1, .step = 1,
     .flags = kWriteFast, .acl_categories = kAclKeyspaceWriteFast, .group = "generic",
     .since = "2.6.0", .summary = "Set a key's time to live in milliseconds",
     .complexity = "O(1)", .args = kPexpireArgs},
    {.name = "ttl", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = TtlCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kReadFast,
     .acl_categories = kAclKeyspaceReadFast, .group = "generic", .since = "1.0.0",
     .summary = "Get the time to live for a key in seconds", .complexity = "O(1)",
     .args = kKeyArg},
    {.name = "pttl", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = PttlCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kReadFast,
     .acl_categories = kAclKeyspaceReadFast, .group = "generic", .since = "2.6.0",
     .summary = "Get the time to live for a key in milliseconds", .complexity = "O(1)",
     .args = kKeyArg},
    {.name = "persist", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = PersistCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kWriteFast,
     .acl_categories = kAclKeyspaceWriteFast, .group = "generic", .since = "2.2.0",
     .summary = "Remove the expiration from a key", .complexity = "O(1)", .args = kKeyArg},
    {.name = "type", .arity = 2, .kind = CommandKind::kSingleKey, .store_fn = TypeCommand,
     .first_key = 1, .last_key = 1, .step = 1, .flags = kReadFast,
     .acl_categories = kAclKeyspaceReadFast, .group = "generic", .since = "1.0.0",
     .summary = "Determine the type stored at key", .complexity = "O(1)", .args = kKeyArg},
    {.name = "dbsize", .arity = 1, .kind = CommandKind::kSession, .session_fn = DbSizeCommand,
     .flags = kReadFast, .acl_categories = kAclKeyspaceReadFast, .group = "server",
     .since = "1.0.0", .summary = "Return the number of keys in the selected database",
     .complexity = "O(1)", .reads_keyspace = true},
    {.name = "flushdb", .arity = -1, .kind = CommandKind::kAllShards, .store_fn = FlushCommand,
     .merge = MergeKind::kAllOk, .flags = kWrite, .acl_categories = kAclDangerous,
     .group = "server", .since = "1.0.0", .summary = "Remove all keys from the current database",
     .complexity = "O(N) where N is the number of keys in the selected database",
     .args = kFlushArgs},
    {.name = "flushall", .arity = -1, .kind = CommandKind::kAllShards, .store_fn = FlushCommand,
     .merge = MergeKind::kAllOk, .flags = kWrite, .acl_categories = kAclDangerous,
     .group = "server", .since = "1.0.0", .summary = "Remove all keys from all databases",
     .complexity = "O(N) where N is the total number of keys in all databases",
     .args = kFlushArgs},
    {.name = "select", .arity = 2, .kind = CommandKind::kSession, .session_fn = SelectCommand,
     .flags = kLoadingStaleFast, .acl_categories = kAclConnection, .group = "connection",
     .since = "1.0.0", .summary = "Change the selected database for the current connection",
     .complexity = "O(1)", .args = kSelectArgs},
    {.name = "echo", .arity = 2, .kind = CommandKind::kSession, .session_fn = EchoCommand,
     .flags = kFast, .acl_categories = kAclConnection, .group = "connection", .since = "1.0.0",
     .summary = "Echo the given string", .complexity = "O(1)", .args = kEchoArgs},
    {.name = "quit", .arity = -1, .kind = CommandKind::kSession, .session_fn = QuitCommand,
     .flags = kQuitFlags, .acl_categories = kAclConnection, .group = "connection",
     .since = "1.0.0", .summary = "Close the connection", .complexity = "O(1)"},
    {.name = "info", .arity = -1, .kind = CommandKind::kSession, .session_fn = InfoCommand,
     .flags = kLoadingStale, .acl_categories = kAclSlowDangerous, .group = "server",
     .since = "1.0.0", .summary = "Get information and statistics about the server",
     .complexity = "O(1)", .args = kInfoArgs, .reads_keyspace = true},
    {.name = "config", .arity = -2, .kind = CommandKind::kContainer, .group = "server",
     .since = "2.0.0", .summary = "A container for server configuration commands",
     .complexity = "Depends on subcommand.", .subcommands = kConfigSubcommands},
    {.name = "client", .arity = -2, .kind = CommandKind::kContainer, .group = "connection",
     .since = "2.4.0", .summary = "A container for client connection commands",
     .complexity = "Depends on subcommand.", .subcommands = kClientSubcommands},
    {.name = "command", .arity = -1, .kind = CommandKind::kContainer,
     .session_fn = CommandCommand, .flags = kLoadingStale,
     .acl_categories = kAclSlowConnection, .group = "server", .since = "2.8.13",
     .summary = "Get array of Redis command details",
     .complexity = "O(N) where N is the total number of Redis commands",
     .subcommands = kCommandSubcommands},
};

// Lowercases `name` into `buf` (which holds `size` bytes); false when it does not fit.
bool Lowercase(std::string_view name, char* buf, size_t size) {
  if (name.size() > size) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    buf[i] = AsciiLower(name[i]);
  }
  return true;
}

}  // namespace

std::span<const CommandSpec> AllCommands() { return kCommands; }

const CommandSpec& MgetPartSpec() { return kMgetElement; }

const CommandSpec& kGetSpec = kCommands[0];
const CommandSpec& kSetSpec = kCommands[1];

const CommandSpec* FindCommand(std::string_view name) {
  if (const CommandSpec* spec = FindGetOrSet(name)) return spec;
  char buf[16];
  if (!Lowercase(name, buf, sizeof(buf))) return nullptr;
  const std::string_view lower(buf, name.size());
  for (const CommandSpec& spec : kCommands) {
    if (spec.name == lower) return &spec;
  }
  return nullptr;
}

const CommandSpec* FindSubcommand(const CommandSpec& container, std::string_view name) {
  char buf[32];
  if (!Lowercase(name, buf, sizeof(buf))) return nullptr;
  const std::string_view lower(buf, name.size());
  for (const CommandSpec& spec : container.subcommands) {
    const std::string_view sub = spec.name.substr(spec.name.find('|') + 1);
    if (sub == lower) return &spec;
  }
  return nullptr;
}

}  // namespace percore
