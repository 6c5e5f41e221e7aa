// The string commands: GET SET GETSET INCR INCRBY DECR DECRBY APPEND STRLEN MGET MSET.

#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/attributes.h"
#include "core/clock.h"
#include "services/resp/ascii.h"
#include "services/resp/command_functions.h"
#include "services/resp/commands.h"
#include "services/resp/resp_numbers.h"
#include "services/resp/resp_reply.h"

namespace percore {
namespace {

void AppendInvalidExpire(std::string_view command, Buffer& out) {
  std::string message = "ERR invalid expire time in '";
  message.append(command);
  message.append("' command");
  AppendError(out, message);
}

void ReplyIncrBy(std::string_view key, int64_t delta, StringStore& store, Buffer& out) {
  int64_t result = 0;
  switch (store.IncrBy(key, delta, &result)) {
    case StoreStatus::kOk: AppendInteger(out, result); return;
    case StoreStatus::kWrongType: AppendError(out, kErrWrongType); return;
    case StoreStatus::kNotInteger: AppendError(out, kErrNotInteger); return;
    default: AppendError(out, kErrOverflow); return;
  }
}

// SET's options as Redis 7 parses them: later words may repeat an earlier one, but NX/XX and
// the expiry forms (EX, PX, EXAT, PXAT, KEEPTTL) exclude each other.
struct SetFlags {
  static constexpr unsigned kNx = 1, kXx = 2, kGet = 4, kKeepTtl = 8, kEx = 16, kPx = 32,
                            kExAt = 64, kPxAt = 128;
  static constexpr unsigned kExpiryForms = kKeepTtl | kEx | kPx | kExAt | kPxAt;
  unsigned bits = 0;
  std::string_view expire_arg;
};

bool ParseSetFlags(CommandArgs args, SetFlags* flags) {
  for (size_t j = 3; j < args.size(); ++j) {
    const std::string_view opt = args[j];
    const bool has_next = j + 1 < args.size();
    auto takes = [&](unsigned bit, unsigned excluded) {
      if ((flags->bits & excluded) != 0) return false;
      flags->bits |= bit;
      return true;
    };
    bool ok = false;
    if (EqualsIgnoreCase(opt, "nx")) {
      ok = takes(SetFlags::kNx, SetFlags::kXx);
    } else if (EqualsIgnoreCase(opt, "xx")) {
      ok = takes(SetFlags::kXx, SetFlags::kNx);
    } else if (EqualsIgnoreCase(opt, "get")) {
      ok = takes(SetFlags::kGet, 0);
    } else if (EqualsIgnoreCase(opt, "keepttl")) {
      ok = takes(SetFlags::kKeepTtl, SetFlags::kExpiryForms & ~SetFlags::kKeepTtl);
    } else {
      unsigned bit = 0;
      if (EqualsIgnoreCase(opt, "ex")) bit = SetFlags::kEx;
      if (EqualsIgnoreCase(opt, "px")) bit = SetFlags::kPx;
      if (EqualsIgnoreCase(opt, "exat")) bit = SetFlags::kExAt;
      if (EqualsIgnoreCase(opt, "pxat")) bit = SetFlags::kPxAt;
      if (bit != 0 && has_next && takes(bit, SetFlags::kExpiryForms & ~bit)) {
        flags->expire_arg = args[++j];
        ok = true;
      }
    }
    if (!ok) return false;
  }
  return true;
}

// Turns SET's expiry argument into an absolute time on the store's clock. Replies with the
// error and returns false when it is not a valid time.
bool SetExpireAt(const SetFlags& flags, StringStore& store, int64_t* at_ms, Buffer& out) {
  int64_t value = 0;
  if (!ParseRedisInt64(flags.expire_arg, &value)) {
    AppendError(out, kErrNotInteger);
    return false;
  }
  const bool seconds = (flags.bits & (SetFlags::kEx | SetFlags::kExAt)) != 0;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (value <= 0 || (seconds && value > kMax / 1000)) {
    AppendInvalidExpire("set", out);
    return false;
  }
  const int64_t ms = seconds ? value * 1000 : value;
  const int64_t now = store.NowMs();
  if ((flags.bits & (SetFlags::kEx | SetFlags::kPx)) != 0) {
    if (ms > kMax - now) {
      AppendInvalidExpire("set", out);
      return false;
    }
    *at_ms = now + ms;
  } else {
    // A Unix time: carried over to the store's monotonic clock. A time already past leaves
    // the key born expired, as Redis does.
    const int64_t until = ms - WallNanos() / 1'000'000;
    *at_ms = until > kMax - now ? kMax : std::max<int64_t>(1, now + until);
  }
  return true;
}

// The rare branch of AppendString, kept out of line so that the common one (a short value,
// copied) pays nothing for the reference it does not take.
template <typename Share>
ABSL_ATTRIBUTE_NOINLINE void AppendByReference(Share& share, ReplySink& out) {
  SharedValue shared = share();
  out.AppendValue(shared.bytes, std::move(shared.owner));
}

// Appends the bulk reply of the string at `key` if there is one: copied when it is short (what
// GET always did), by reference when the sink wants one.
StoreStatus AppendString(std::string_view key, StringStore& store, ReplySink& out) {
  return store.ReadForReply(key, [&out](std::string_view value, auto share) {
    if (!out.AppendValueIfShort(value)) AppendByReference(share, out);
  });
}

// SET ... GET and GETSET: sets args[2] at args[1] and replies with the previous value. A large
// one is handed over by reference (the store lets go of it without a copy), a small one copied.
void SetAndReplyOld(CommandArgs args, SetOptions options, StringStore& store, ReplySink& out) {
  std::string old;
  std::shared_ptr<const std::string> old_shared;
  options.old_value = &old;
  options.old_shared = &old_shared;
  options.share_old_at_least = out.share_at_least();
  const SetResult result = store.Set(args[1], args[2], options);
  if (result.wrong_type) {
    AppendError(out.bytes(), kErrWrongType);
  } else if (!result.had_old) {
    AppendNullBulk(out.bytes());
  } else if (old_shared != nullptr) {
    const std::string_view value = *old_shared;
    out.AppendValue(value, std::move(old_shared));
  } else {
    AppendBulk(out.bytes(), old);
  }
}

}  // namespace

void GetCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  switch (AppendString(args[1], store, out)) {
    case StoreStatus::kOk: return;
    case StoreStatus::kWrongType: AppendError(out.bytes(), kErrWrongType); return;
    default: AppendNullBulk(out.bytes()); return;
  }
}

void SetCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  SetFlags flags;
  if (!ParseSetFlags(args, &flags)) {
    AppendError(out.bytes(), kErrSyntax);
    return;
  }
  SetOptions options;
  if ((flags.bits & SetFlags::kExpiryForms & ~SetFlags::kKeepTtl) != 0) {
    if (!SetExpireAt(flags, store, &options.expire_at_ms, out.bytes())) return;
  }
  if (flags.bits & SetFlags::kNx) options.condition = SetOptions::Condition::kIfAbsent;
  if (flags.bits & SetFlags::kXx) options.condition = SetOptions::Condition::kIfPresent;
  options.keep_ttl = (flags.bits & SetFlags::kKeepTtl) != 0;
  if ((flags.bits & SetFlags::kGet) != 0) {
    SetAndReplyOld(args, options, store, out);
    return;
  }
  const SetResult result = store.Set(args[1], args[2], options);
  out.bytes().Append(result.applied ? kOkReply : kNullBulkReply);
}

void GetSetCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  SetAndReplyOld(args, SetOptions(), store, out);
}

void IncrCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  ReplyIncrBy(args[1], 1, store, out.bytes());
}

void DecrCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  ReplyIncrBy(args[1], -1, store, out.bytes());
}

void IncrByCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  int64_t delta = 0;
  if (!ParseRedisInt64(args[2], &delta)) {
    AppendError(out.bytes(), kErrNotInteger);
    return;
  }
  ReplyIncrBy(args[1], delta, store, out.bytes());
}

void DecrByCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  int64_t delta = 0;
  if (!ParseRedisInt64(args[2], &delta)) {
    AppendError(out.bytes(), kErrNotInteger);
    return;
  }
  if (delta == std::numeric_limits<int64_t>::min()) {
    AppendError(out.bytes(), "ERR decrement would overflow");
    return;
  }
  ReplyIncrBy(args[1], -delta, store, out.bytes());
}

void AppendCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   ReplySink& out) {
  size_t length = 0;
  switch (store.Append(args[1], args[2], options.max_bulk_bytes, &length)) {
    case StoreStatus::kOk: AppendInteger(out.bytes(), static_cast<int64_t>(length)); return;
    case StoreStatus::kWrongType: AppendError(out.bytes(), kErrWrongType); return;
    default: AppendError(out.bytes(), kErrTooLarge); return;
  }
}

void StrLenCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  size_t length = 0;
  if (store.StrLen(args[1], &length) == StoreStatus::kWrongType) {
    AppendError(out.bytes(), kErrWrongType);
    return;
  }
  AppendInteger(out.bytes(), static_cast<int64_t>(length));
}

void MgetPartCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  if (AppendString(args[1], store, out) != StoreStatus::kOk) {
    AppendNullBulk(out.bytes());  // a missing key and a non-string read alike in MGET
  }
}

// Every key is looked up now, in order, so the reply shows the values as of this command; the
// sink holds references to the large ones (and, past its copy budget, to the rest), so the reply
// can be sent long after without copying what it shows.
void MgetCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                 ReplySink& out) {
  AppendArrayHeader(out.bytes(), args.size() - 1);
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string_view part[2] = {args[0], args[i]};
    MgetPartCommand(part, store, options, out);
  }
}

void MsetCommand(CommandArgs args, StringStore& store, const RespOptions&, ReplySink& out) {
  const SetOptions options;
  for (size_t i = 1; i + 1 < args.size(); i += 2) store.Set(args[i], args[i + 1], options);
  out.bytes().Append(kOkReply);
}

}  // namespace percore
