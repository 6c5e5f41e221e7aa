// Connection and server commands: PING ECHO SELECT QUIT DBSIZE INFO CONFIG CLIENT.

#include <unistd.h>

#include <charconv>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "core/clock.h"
#include "services/resp/ascii.h"
#include "services/resp/command_functions.h"
#include "services/resp/commands.h"
#include "services/resp/resp_numbers.h"
#include "services/resp/resp_reply.h"

namespace percore {
namespace {

// Glob matching as Redis uses for CONFIG GET (case-insensitive): * ? [set] [^set] [a-z] \x.
bool GlobMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    bool advanced = false;
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++t;
        advanced = true;
      } else if (pc == '[') {
        size_t q = p + 1;
        const bool negate = q < pattern.size() && pattern[q] == '^';
        if (negate) ++q;
        bool matched = false;
        const char tc = AsciiLower(text[t]);
        while (q < pattern.size() && pattern[q] != ']') {
          if (pattern[q] == '\\' && q + 1 < pattern.size()) {
            matched |= AsciiLower(pattern[q + 1]) == tc;
            q += 2;
          } else if (q + 2 < pattern.size() && pattern[q + 1] == '-' && pattern[q + 2] != ']') {
            char lo = AsciiLower(pattern[q]), hi = AsciiLower(pattern[q + 2]);
            if (lo > hi) std::swap(lo, hi);
            matched |= tc >= lo && tc <= hi;
            q += 3;
          } else {
            matched |= AsciiLower(pattern[q]) == tc;
            ++q;
          }
        }
        if (matched != negate) {
          p = q < pattern.size() ? q + 1 : q;
          ++t;
          advanced = true;
        }
      } else {
        const char want = (pc == '\\' && p + 1 < pattern.size()) ? pattern[p + 1] : pc;
        if (AsciiLower(want) == AsciiLower(text[t])) {
          p += (pc == '\\' && p + 1 < pattern.size()) ? 2 : 1;
          ++t;
          advanced = true;
        }
      }
    }
    if (advanced) continue;
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string Decimal(uint64_t n) {
  char buf[24];
  return std::string(buf, std::to_chars(buf, buf + sizeof(buf), n).ptr);
}

void AppendHelp(Buffer& out, std::initializer_list<std::string_view> lines) {
  AppendArrayHeader(out, lines.size());
  for (std::string_view line : lines) AppendStatus(out, line);
}

void AppendInfoLine(std::string& text, std::string_view key, std::string_view value) {
  text.append(key);
  text.push_back(':');
  text.append(value);
  text.append("\r\n");
}

}  // namespace

void PingCommand(CommandArgs args, SessionContext&, ReplySink& reply) {
  if (args.size() > 2) {
    AppendError(reply.bytes(), "ERR wrong number of arguments for 'ping' command");
  } else if (args.size() == 2) {
    reply.AppendBulkCopy(args[1]);
  } else {
    reply.bytes().Append("+PONG\r\n");
  }
}

void EchoCommand(CommandArgs args, SessionContext&, ReplySink& reply) {
  reply.AppendBulkCopy(args[1]);
}

void SelectCommand(CommandArgs args, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  int64_t index = 0;
  if (!ParseRedisInt64(args[1], &index) || index < INT32_MIN || index > INT32_MAX) {
    AppendError(out, kErrNotInteger);
  } else if (index != 0) {
    AppendError(out, kErrDbIndex);
  } else {
    out.Append(kOkReply);
  }
}

void QuitCommand(CommandArgs, SessionContext& session, ReplySink& reply) {
  Buffer& out = reply.bytes();
  session.quit = true;
  out.Append(kOkReply);
}

void DbSizeCommand(CommandArgs, SessionContext& session, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendInteger(out, static_cast<int64_t>(session.server->keyspace().keys));
}

void InfoCommand(CommandArgs args, SessionContext& session, ReplySink& reply) {
  Buffer& out = reply.bytes();
  const ServerView& server = *session.server;
  auto wanted = [&](std::string_view section) {
    if (args.size() == 1) return true;
    for (size_t i = 1; i < args.size(); ++i) {
      if (EqualsIgnoreCase(args[i], section) || EqualsIgnoreCase(args[i], "all") ||
          EqualsIgnoreCase(args[i], "default") || EqualsIgnoreCase(args[i], "everything")) {
        return true;
      }
    }
    return false;
  };
  std::string text;
  auto begin_section = [&](std::string_view title) {
    if (!text.empty()) text.append("\r\n");
    text.append("# ");
    text.append(title);
    text.append("\r\n");
  };
  const KeyspaceFigures keyspace = server.keyspace();
  if (wanted("server")) {
    const int64_t uptime_s = absl::ToInt64Seconds(MonoTime::Now() - server.started);
    begin_section("Server");
    AppendInfoLine(text, "redis_version", "7.0.0");
    AppendInfoLine(text, "redis_mode", "standalone");
    AppendInfoLine(text, "server_name", "percore");
    AppendInfoLine(text, "os", "Linux");
    AppendInfoLine(text, "arch_bits", sizeof(void*) == 8 ? "64" : "32");
    AppendInfoLine(text, "multiplexing_api", "percore");
    AppendInfoLine(text, "process_id", Decimal(static_cast<uint64_t>(getpid())));
    AppendInfoLine(text, "uptime_in_seconds", Decimal(static_cast<uint64_t>(uptime_s)));
    AppendInfoLine(text, "uptime_in_days", Decimal(static_cast<uint64_t>(uptime_s / 86400)));
    AppendInfoLine(text, "shards", Decimal(keyspace.shards));
  }
  if (wanted("clients")) {
    begin_section("Clients");
    const int64_t clients =
        server.connected_clients ? server.connected_clients->load(std::memory_order_relaxed) : 0;
    AppendInfoLine(text, "connected_clients", Decimal(static_cast<uint64_t>(clients)));
  }
  if (wanted("stats")) {
    begin_section("Stats");
    const uint64_t total =
        server.total_connections ? server.total_connections->load(std::memory_order_relaxed) : 0;
    AppendInfoLine(text, "total_connections_received", Decimal(total));
  }
  if (wanted("keyspace")) {
    begin_section("Keyspace");
    if (keyspace.keys > 0) {
      AppendInfoLine(text, "db0",
                     "keys=" + Decimal(keyspace.keys) + ",expires=" + Decimal(keyspace.expiring) +
                         ",avg_ttl=0");
    }
  }
  AppendBulk(out, text);
}

void ConfigGetCommand(CommandArgs args, SessionContext& session, ReplySink& reply) {
  Buffer& out = reply.bytes();
  const RespOptions& options = *session.server->options;
  // What a benchmark or client asks about; values describe this server (no persistence, one
  // database, no memory limit).
  const std::pair<std::string_view, std::string> params[] = {
      {"save", ""},
      {"appendonly", "no"},
      {"databases", "1"},
      {"maxmemory", "0"},
      {"maxmemory-policy", "noeviction"},
      {"proto-max-bulk-len", Decimal(options.max_bulk_bytes)},
      {"client-query-buffer-limit", Decimal(options.max_request_bytes)},
      {"timeout", "0"},
      {"cluster-enabled", "no"},
  };
  bool matched[std::size(params)] = {};
  size_t count = 0;
  for (size_t i = 2; i < args.size(); ++i) {
    for (size_t j = 0; j < std::size(params); ++j) {
      if (!matched[j] && GlobMatch(args[i], params[j].first)) {
        matched[j] = true;
        ++count;
      }
    }
  }
  AppendArrayHeader(out, count * 2);
  for (size_t j = 0; j < std::size(params); ++j) {
    if (!matched[j]) continue;
    AppendBulk(out, params[j].first);
    AppendBulk(out, params[j].second);
  }
}

void ConfigHelpCommand(CommandArgs, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendHelp(out, {"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                   "GET <pattern>",
                   "    Return parameters matching the glob-like <pattern> and their values.",
                   "HELP", "    Print this help."});
}

void ClientSetNameCommand(CommandArgs args, SessionContext& session, ReplySink& reply) {
  Buffer& out = reply.bytes();
  for (char c : args[2]) {
    if (c < '!' || c > '~') {
      AppendError(out,
                  "ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
  }
  if (args[2].empty()) {
    session.client_name.reset();  // an empty name removes the name
  } else if (session.client_name == nullptr) {
    session.client_name = std::make_unique<std::string>(args[2]);
  } else {
    session.client_name->assign(args[2].data(), args[2].size());
  }
  out.Append(kOkReply);
}

void ClientGetNameCommand(CommandArgs, SessionContext& session, ReplySink& reply) {
  if (session.client_name == nullptr || session.client_name->empty()) {
    AppendNullBulk(reply.bytes());
  } else {
    reply.AppendBulkCopy(*session.client_name);
  }
}

void ClientIdCommand(CommandArgs, SessionContext& session, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendInteger(out, static_cast<int64_t>(session.client_id));
}

void ClientHelpCommand(CommandArgs, SessionContext&, ReplySink& reply) {
  Buffer& out = reply.bytes();
  AppendHelp(out, {"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                   "GETNAME", "    Return the name of the current connection.",
                   "ID", "    Return the ID of the current connection.",
                   "SETNAME <name>", "    Assign the name <name> to the current connection.",
                   "HELP", "    Print this help."});
}

}  // namespace percore
