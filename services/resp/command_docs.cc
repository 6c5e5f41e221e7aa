// COMMAND and its subcommands: the self-description clients such as redis-cli read.

#include <vector>

#include "services/resp/command_functions.h"
#include "services/resp/commands.h"
#include "services/resp/resp_reply.h"

namespace percore {
namespace {

void AppendStatusArray(Buffer& out, std::span<const std::string_view> items) {
  AppendArrayHeader(out, items.size());
  for (std::string_view item : items) AppendStatus(out, item);
}

// Redis 7's ten-element command description.
void AppendCommandInfo(const CommandSpec& spec, Buffer& out) {
  AppendArrayHeader(out, 10);
  AppendBulk(out, spec.name);
  AppendInteger(out, spec.arity);
  AppendStatusArray(out, spec.flags);
  AppendInteger(out, spec.first_key);
  AppendInteger(out, spec.last_key);
  AppendInteger(out, spec.step);
  AppendStatusArray(out, spec.acl_categories);
  AppendArrayHeader(out, 0);  // tips
  AppendArrayHeader(out, 0);  // key specifications
  AppendArrayHeader(out, spec.subcommands.size());
  for (const CommandSpec& sub : spec.subcommands) AppendCommandInfo(sub, out);
}

void AppendArgDoc(const ArgDoc& arg, Buffer& out) {
  size_t fields = 2;
  if (!arg.token.empty()) ++fields;
  if (arg.flags != 0) ++fields;
  if (!arg.children.empty()) ++fields;
  AppendArrayHeader(out, fields * 2);
  AppendBulk(out, "name");
  AppendBulk(out, arg.name);
  AppendBulk(out, "type");
  AppendBulk(out, arg.type);
  if (!arg.token.empty()) {
    AppendBulk(out, "token");
    AppendBulk(out, arg.token);
  }
  if (arg.flags != 0) {
    AppendBulk(out, "flags");
    const bool optional = (arg.flags & ArgDoc::kOptional) != 0;
    const bool multiple = (arg.flags & ArgDoc::kMultiple) != 0;
    AppendArrayHeader(out, (optional ? 1 : 0) + (multiple ? 1 : 0));
    if (optional) AppendStatus(out, "optional");
    if (multiple) AppendStatus(out, "multiple");
  }
  if (!arg.children.empty()) {
    AppendBulk(out, "arguments");
    AppendArrayHeader(out, arg.children.size());
    for (const ArgDoc& child : arg.children) AppendArgDoc(child, out);
  }
}

// A command's docs: a map (flattened to an array in RESP2) of summary, since, group,
// complexity, and its arguments and subcommands when it has them.
void AppendCommandDocs(const CommandSpec& spec, Buffer& out) {
  size_t fields = 4;
  if (!spec.args.empty()) ++fields;
  if (!spec.subcommands.empty()) ++fields;
  AppendArrayHeader(out, fields * 2);
  AppendBulk(out, "summary");
  AppendBulk(out, spec.summary);
  AppendBulk(out, "since");
  AppendBulk(out, spec.since);
  AppendBulk(out, "group");
  AppendBulk(out, spec.group);
  AppendBulk(out, "complexity");
  AppendBulk(out, spec.complexity);
  if (!spec.args.empty()) {
    AppendBulk(out, "arguments");
    AppendArrayHeader(out, spec.args.size());
    for (const ArgDoc& arg : spec.args) AppendArgDoc(arg, out);
  }
  if (!spec.subcommands.empty()) {
    AppendBulk(out, "subcommands");
    AppendArrayHeader(out, spec.subcommands.size() * 2);
    for (const CommandSpec& sub : spec.subcommands) {
      AppendBulk(out, sub.name);
      AppendCommandDocs(sub, out);
    }
  }
}

}  // namespace

void CommandCommand(CommandArgs, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendArrayHeader(out, AllCommands().size());
  for (const CommandSpec& spec : AllCommands()) AppendCommandInfo(spec, out);
}

void CommandCountCommand(CommandArgs, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendInteger(out, static_cast<int64_t>(AllCommands().size()));
}

void CommandDocsCommand(CommandArgs args, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  std::vector<const CommandSpec*> specs;
  if (args.size() == 2) {
    for (const CommandSpec& spec : AllCommands()) specs.push_back(&spec);
  } else {
    for (size_t i = 2; i < args.size(); ++i) {
      if (const CommandSpec* spec = FindCommand(args[i])) specs.push_back(spec);
    }
  }
  AppendArrayHeader(out, specs.size() * 2);
  for (const CommandSpec* spec : specs) {
    AppendBulk(out, spec->name);
    AppendCommandDocs(*spec, out);
  }
}

void CommandInfoCommand(CommandArgs args, SessionContext& session, ReplySink& reply) {
  if (args.size() == 2) {
    CommandCommand(args, session, reply);
    return;
  }
  Buffer& out = reply.bytes();
  AppendArrayHeader(out, args.size() - 2);
  for (size_t i = 2; i < args.size(); ++i) {
    if (const CommandSpec* spec = FindCommand(args[i])) {
      AppendCommandInfo(*spec, out);
    } else {
      AppendNullBulk(out);
    }
  }
}

void CommandListCommand(CommandArgs args, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  if (args.size() != 2) {
    AppendError(out, kErrSyntax);  // FILTERBY is not offered
    return;
  }
  size_t count = 0;
  for (const CommandSpec& spec : AllCommands()) count += 1 + spec.subcommands.size();
  AppendArrayHeader(out, count);
  for (const CommandSpec& spec : AllCommands()) {
    AppendBulk(out, spec.name);
    for (const CommandSpec& sub : spec.subcommands) AppendBulk(out, sub.name);
  }
}

void CommandHelpCommand(CommandArgs, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  const std::string_view lines[] = {
      "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
      "(no subcommand)", "    Return details about all Redis commands.",
      "COUNT", "    Return the total number of commands in this Redis server.",
      "LIST", "    Return a list of all commands in this Redis server.",
      "INFO [<command-name> ...]",
      "    Return details about multiple Redis commands.",
      "DOCS [<command-name> ...]",
      "    Return documentation details about multiple Redis commands.",
      "HELP", "    Print this help."};
  AppendStatusArray(out, lines);
}

}  // namespace percore
