// The keyspace commands: DEL EXISTS EXPIRE PEXPIRE TTL PTTL PERSIST TYPE FLUSHDB FLUSHALL.

#include <limits>
#include <string>

#include "services/resp/ascii.h"
#include "services/resp/command_functions.h"
#include "services/resp/commands.h"
#include "services/resp/resp_numbers.h"
#include "services/resp/resp_reply.h"

namespace percore {
namespace {

// EXPIRE and PEXPIRE: options are checked first, then the number, then the key.
void ExpireGeneric(CommandArgs args, StringStore& store, std::string_view name, int64_t unit_ms,
                   Buffer& out) {
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t j = 3; j < args.size(); ++j) {
    const std::string_view opt = args[j];
    if (EqualsIgnoreCase(opt, "nx")) {
      nx = true;
    } else if (EqualsIgnoreCase(opt, "xx")) {
      xx = true;
    } else if (EqualsIgnoreCase(opt, "gt")) {
      gt = true;
    } else if (EqualsIgnoreCase(opt, "lt")) {
      lt = true;
    } else {
      std::string message = "ERR Unsupported option ";
      message.append(opt);
      AppendError(out, message);
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    AppendError(out, "ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if (gt && lt) {
    AppendError(out, "ERR GT and LT options at the same time are not compatible");
    return;
  }
  int64_t when = 0;
  if (!ParseRedisInt64(args[2], &when)) {
    AppendError(out, kErrNotInteger);
    return;
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t now = store.NowMs();
  if (when > kMax / unit_ms || when < kMin / unit_ms || when * unit_ms > kMax - now) {
    std::string message = "ERR invalid expire time in '";
    message.append(name);
    message.append("' command");
    AppendError(out, message);
    return;
  }
  const ExpireCondition condition = {
      .if_no_ttl = nx, .if_has_ttl = xx, .if_greater = gt, .if_less = lt};
  AppendInteger(out, store.Expire(args[1], now + when * unit_ms, condition) ? 1 : 0);
}

}  // namespace

void DelCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  int64_t deleted = 0;
  for (size_t i = 1; i < args.size(); ++i) deleted += store.Delete(args[i]) ? 1 : 0;
  AppendInteger(out, deleted);
}

void ExistsCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  int64_t found = 0;
  for (size_t i = 1; i < args.size(); ++i) found += store.Exists(args[i]) ? 1 : 0;
  AppendInteger(out, found);
}

void ExpireCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  ExpireGeneric(args, store, "expire", 1000, out);
}

void PexpireCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  ExpireGeneric(args, store, "pexpire", 1, out);
}

void TtlCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  const int64_t ttl = store.TtlMs(args[1]);
  AppendInteger(out, ttl < 0 ? ttl : (ttl + 500) / 1000);
}

void PttlCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendInteger(out, store.TtlMs(args[1]));
}

void PersistCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendInteger(out, store.Persist(args[1]) ? 1 : 0);
}

void TypeCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  ValueType type;
  AppendStatus(out, store.Type(args[1], &type) ? ValueTypeName(type) : "none");
}

void FlushCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  if (args.size() > 2 ||
      (args.size() == 2 && !EqualsIgnoreCase(args[1], "async") &&
       !EqualsIgnoreCase(args[1], "sync"))) {
    AppendError(out, kErrSyntax);
    return;
  }
  store.Clear();
  out.Append(kOkReply);
}

}  // namespace percore
