#include "services/resp/commands.h"

#include <string>

#include "services/resp/resp_numbers.h"
#include "services/resp/resp_reply.h"

namespace percore {
namespace {

bool ArityOk(const CommandSpec& spec, size_t argc) {
  const int n = static_cast<int>(argc);
  return spec.arity >= 0 ? n == spec.arity : n >= -spec.arity;
}

void AppendArityError(const CommandSpec& spec, Buffer& out) {
  std::string message = "ERR wrong number of arguments for '";
  message.append(spec.name);
  message.append("' command");
  AppendError(out, message);
}

// Redis quotes the name and up to ~128 bytes of the arguments, each followed by a space.
void AppendUnknownCommand(CommandArgs args, Buffer& out) {
  std::string message = "ERR unknown command '";
  message.append(args[0].substr(0, 128));
  message.append("', with args beginning with: ");
  std::string quoted;
  for (size_t i = 1; i < args.size() && quoted.size() < 128; ++i) {
    quoted.push_back('\'');
    quoted.append(args[i].substr(0, 128 - (quoted.size() - 1)));
    quoted.append("' ");
  }
  message.append(quoted);
  AppendError(out, message);
}

void AppendUnknownSubcommand(const CommandSpec& container, std::string_view sub, Buffer& out) {
  std::string message = "ERR unknown subcommand '";
  message.append(sub.substr(0, 128));
  message.append("'. Try ");
  for (char c : container.name) message.push_back(c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c);
  message.append(" HELP.");
  AppendError(out, message);
}

}  // namespace

const CommandSpec* ResolveCommand(CommandArgs args, Buffer& out) {
  const CommandSpec* spec = FindCommand(args[0]);
  if (spec == nullptr) {
    AppendUnknownCommand(args, out);
    return nullptr;
  }
  if (!ArityOk(*spec, args.size())) {
    AppendArityError(*spec, out);
    return nullptr;
  }
  if (spec->kind == CommandKind::kContainer) {
    if (args.size() == 1) return spec;  // the bare form (COMMAND); arity ruled out the rest
    const CommandSpec* sub = FindSubcommand(*spec, args[1]);
    if (sub == nullptr) {
      AppendUnknownSubcommand(*spec, args[1], out);
      return nullptr;
    }
    if (!ArityOk(*sub, args.size())) {
      AppendArityError(*sub, out);
      return nullptr;
    }
    return sub;
  }
  if (spec->kind == CommandKind::kMultiKey && spec->step > 1 &&
      (args.size() - static_cast<size_t>(spec->first_key)) % static_cast<size_t>(spec->step) != 0) {
    AppendArityError(*spec, out);
    return nullptr;
  }
  return spec;
}

const CommandSpec* RunCommandLocally(CommandArgs args, StringStore& store,
                                     SessionContext& session, ReplySink& out) {
  const CommandSpec* spec = ResolveCommand(args, out.bytes());
  if (spec == nullptr) return nullptr;
  if (spec->kind == CommandKind::kSession || spec->kind == CommandKind::kContainer) {
    spec->session_fn(args, session, out);
  } else {
    spec->store_fn(args, store, *session.server->options, out);
  }
  return spec;
}

const CommandSpec* RunCommandLocally(CommandArgs args, StringStore& store,
                                     SessionContext& session, Buffer& out) {
  ReplySink sink(out);
  return RunCommandLocally(args, store, session, sink);
}

void MergeReplies(MergeKind merge, std::span<const ReplyPart> parts, ReplySink& out) {
  for (const ReplyPart& part : parts) {
    const std::string_view head = part.list->head(part.index);
    if (!head.empty() && head[0] == '-') {
      part.list->MoveReplyTo(part.index, out);
      return;
    }
  }
  switch (merge) {
    case MergeKind::kNone:
      for (const ReplyPart& part : parts) part.list->MoveReplyTo(part.index, out);
      return;
    case MergeKind::kSumIntegers: {
      int64_t sum = 0;
      for (const ReplyPart& part : parts) {
        // ":n\r\n"
        const std::string_view head = part.list->head(part.index);
        int64_t n = 0;
        if (head.size() >= 3 && ParseRedisInt64(head.substr(1, head.size() - 3), &n)) sum += n;
      }
      AppendInteger(out.bytes(), sum);
      return;
    }
    case MergeKind::kArray:
      AppendArrayHeader(out.bytes(), parts.size());
      for (const ReplyPart& part : parts) part.list->MoveReplyTo(part.index, out);
      return;
    case MergeKind::kAllOk:
      out.bytes().Append(kOkReply);
      return;
  }
}

}  // namespace percore
