// The string commands: GET SET GETSET INCR INCRBY DECR DECRBY APPEND STRLEN MGET MSET.

#include <limits>
#include <string>

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

}  // namespace

void GetCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  std::string_view value;
  switch (store.Get(args[1], &value)) {
    case StoreStatus::kOk: AppendBulk(out, value); return;
    case StoreStatus::kWrongType: AppendError(out, kErrWrongType); return;
    default: AppendNullBulk(out); return;
  }
}

void SetCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  SetFlags flags;
  if (!ParseSetFlags(args, &flags)) {
    AppendError(out, kErrSyntax);
    return;
  }
  SetOptions options;
  if ((flags.bits & SetFlags::kExpiryForms & ~SetFlags::kKeepTtl) != 0) {
    if (!SetExpireAt(flags, store, &options.expire_at_ms, out)) return;
  }
  if (flags.bits & SetFlags::kNx) options.condition = SetOptions::Condition::kIfAbsent;
  if (flags.bits & SetFlags::kXx) options.condition = SetOptions::Condition::kIfPresent;
  options.keep_ttl = (flags.bits & SetFlags::kKeepTtl) != 0;
  std::string old;
  const bool get = (flags.bits & SetFlags::kGet) != 0;
  if (get) options.old_value = &old;
  const SetResult result = store.Set(args[1], args[2], options);
  if (result.wrong_type) {
    AppendError(out, kErrWrongType);
  } else if (get) {
    if (result.had_old) {
      AppendBulk(out, old);
    } else {
      AppendNullBulk(out);
    }
  } else if (result.applied) {
    out.Append(kOkReply);
  } else {
    AppendNullBulk(out);
  }
}

void GetSetCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  std::string old;
  SetOptions options;
  options.old_value = &old;
  const SetResult result = store.Set(args[1], args[2], options);
  if (result.wrong_type) {
    AppendError(out, kErrWrongType);
  } else if (result.had_old) {
    AppendBulk(out, old);
  } else {
    AppendNullBulk(out);
  }
}

void IncrCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  ReplyIncrBy(args[1], 1, store, out);
}

void DecrCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  ReplyIncrBy(args[1], -1, store, out);
}

void IncrByCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  int64_t delta = 0;
  if (!ParseRedisInt64(args[2], &delta)) {
    AppendError(out, kErrNotInteger);
    return;
  }
  ReplyIncrBy(args[1], delta, store, out);
}

void DecrByCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  int64_t delta = 0;
  if (!ParseRedisInt64(args[2], &delta)) {
    AppendError(out, kErrNotInteger);
    return;
  }
  if (delta == std::numeric_limits<int64_t>::min()) {
    AppendError(out, "ERR decrement would overflow");
    return;
  }
  ReplyIncrBy(args[1], -delta, store, out);
}

void AppendCommand(CommandArgs args, StringStore& store, const RespOptions& options,
                   Buffer& out) {
  size_t length = 0;
  switch (store.Append(args[1], args[2], options.max_bulk_bytes, &length)) {
    case StoreStatus::kOk: AppendInteger(out, static_cast<int64_t>(length)); return;
    case StoreStatus::kWrongType: AppendError(out, kErrWrongType); return;
    default: AppendError(out, kErrTooLarge); return;
  }
}

void StrLenCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  size_t length = 0;
  if (store.StrLen(args[1], &length) == StoreStatus::kWrongType) {
    AppendError(out, kErrWrongType);
    return;
  }
  AppendInteger(out, static_cast<int64_t>(length));
}

void MgetPartCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  std::string_view value;
  if (store.Get(args[1], &value) == StoreStatus::kOk) {
    AppendBulk(out, value);
  } else {
    AppendNullBulk(out);  // a missing key and a non-string read alike in MGET
  }
}

void MgetCommand(CommandArgs args, StringStore& store, const RespOptions& options, Buffer& out) {
  AppendArrayHeader(out, args.size() - 1);
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string_view part[2] = {args[0], args[i]};
    MgetPartCommand(part, store, options, out);
  }
}

void MsetCommand(CommandArgs args, StringStore& store, const RespOptions&, Buffer& out) {
  const SetOptions options;
  for (size_t i = 1; i + 1 < args.size(); i += 2) store.Set(args[i], args[i + 1], options);
  out.Append(kOkReply);
}

}  // namespace percore
