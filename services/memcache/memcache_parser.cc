#include "services/memcache/memcache_parser.h"

#include <charconv>
#include <climits>
#include <cstring>

#include "services/memcache/item.h"

namespace percore::memcache {
namespace {

constexpr std::string_view kNoreply = "noreply";

template <typename T>
bool ParseNumber(std::string_view token, T* out) {
  if (token.empty()) return false;
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), *out);
  return ec == std::errc() && ptr == token.data() + token.size();
}

std::string_view SkipSpaces(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

// The first token of `line` (which may be incomplete) names a retrieval command.
bool IsRetrievalLine(std::string_view line) {
  line = SkipSpaces(line);
  for (std::string_view name : {"get ", "gets ", "gat ", "gats "}) {
    if (line.substr(0, name.size()) == name) return true;
  }
  return false;
}

// Whether an incomplete line may still turn out to be a retrieval line: what there is of its
// first token is the start of a retrieval command's name (or the line is only spaces so far).
bool MayBeRetrievalLine(std::string_view partial) {
  partial = SkipSpaces(partial);
  for (std::string_view name : {"get ", "gets ", "gat ", "gats "}) {
    const size_t n = std::min(partial.size(), name.size());
    if (partial.substr(0, n) == name.substr(0, n)) return true;
  }
  return false;
}

// Splits `text` on single or repeated spaces (tabs are not separators, as in memcached).
int Tokenize(std::string_view text, std::string_view* tokens, int max_tokens) {
  int n = 0;
  std::string_view rest = text;
  std::string_view token;
  while (NextKey(&rest, &token)) {
    if (n == max_tokens) return max_tokens + 1;
    tokens[n++] = token;
  }
  return n;
}

struct CommandName {
  std::string_view name;
  CommandKind kind;
};

constexpr CommandName kCommands[] = {
    {"get", CommandKind::kGet},         {"set", CommandKind::kSet},
    {"gets", CommandKind::kGets},       {"delete", CommandKind::kDelete},
    {"incr", CommandKind::kIncr},       {"decr", CommandKind::kDecr},
    {"add", CommandKind::kAdd},         {"replace", CommandKind::kReplace},
    {"append", CommandKind::kAppend},   {"prepend", CommandKind::kPrepend},
    {"cas", CommandKind::kCas},         {"touch", CommandKind::kTouch},
    {"gat", CommandKind::kGat},         {"gats", CommandKind::kGats},
    {"flush_all", CommandKind::kFlushAll}, {"stats", CommandKind::kStats},
    {"version", CommandKind::kVersion}, {"verbosity", CommandKind::kVerbosity},
    {"quit", CommandKind::kQuit},
};

bool LookupCommand(std::string_view name, CommandKind* kind) {
  for (const CommandName& c : kCommands) {
    if (c.name == name) {
      *kind = c.kind;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string_view ErrorReply(ParseError error) {
  switch (error) {
    case ParseError::kNone: return "";
    case ParseError::kUnknownCommand: return "ERROR\r\n";
    case ParseError::kBadFormat: return "CLIENT_ERROR bad command line format\r\n";
    case ParseError::kBadDataChunk: return "CLIENT_ERROR bad data chunk\r\n";
    case ParseError::kTooLarge: return "SERVER_ERROR object too large for cache\r\n";
    case ParseError::kInvalidExptime: return "CLIENT_ERROR invalid exptime argument\r\n";
    case ParseError::kInvalidDelta: return "CLIENT_ERROR invalid numeric delta argument\r\n";
    case ParseError::kDeleteUsage:
      return "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
    case ParseError::kLineTooLong: return "CLIENT_ERROR line too long\r\n";
  }
  return "SERVER_ERROR internal\r\n";
}

bool NextKey(std::string_view* keys, std::string_view* key) {
  std::string_view rest = SkipSpaces(*keys);
  if (rest.empty()) {
    *keys = rest;
    return false;
  }
  const size_t end = std::min(rest.find(' '), rest.size());
  *key = rest.substr(0, end);
  *keys = rest.substr(end);
  return true;
}

ParseStatus MemcacheParser::Parse(std::string_view input, Command* cmd, size_t* consumed) {
  *consumed = 0;
  if (swallow_ > 0) {
    const size_t n = std::min(swallow_, input.size());
    swallow_ -= n;
    *consumed = n;
    input.remove_prefix(n);
    if (swallow_ > 0) return ParseStatus::kNeedMore;
  }
  const size_t skipped = *consumed;
  const void* nl = std::memchr(input.data(), '\n', input.size());
  if (nl == nullptr) {
    // The line is not all here: it is held to the retrieval bound for as long as it could
    // still be a retrieval line, so that where reads split it never changes the outcome.
    const size_t limit = MayBeRetrievalLine(input) ? limits_.max_retrieval_line : limits_.max_line;
    // A line of exactly `limit` bytes may have its "\r" here and its "\n" in the next read.
    const bool cr_pending = !input.empty() && input.back() == '\r';
    if (input.size() <= limit + (cr_pending ? 1 : 0)) return ParseStatus::kNeedMore;
    *cmd = Command();
    cmd->error = ParseError::kLineTooLong;
    return ParseStatus::kClose;
  }
  const size_t eol = static_cast<size_t>(static_cast<const char*>(nl) - input.data());
  std::string_view line = input.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // A line starting "get " is a retrieval line: within its bound, the fast path may take it.
  if (limits_.single_get_fast_path && line.size() <= limits_.max_retrieval_line &&
      ParseSingleGet(line, cmd)) {
    *consumed = skipped + eol + 1;
    return ParseStatus::kCommand;
  }
  const size_t limit = IsRetrievalLine(input) ? limits_.max_retrieval_line : limits_.max_line;
  if (line.size() > limit) {
    *cmd = Command();
    cmd->error = ParseError::kLineTooLong;
    return ParseStatus::kClose;
  }
  size_t used = 0;
  const ParseStatus status = ParseLine(input, line, eol + 1, cmd, &used);
  *consumed = skipped + used;
  return status;
}

bool MemcacheParser::ParseSingleGet(std::string_view line, Command* cmd) const {
  // Exactly the lines on which ParseLine's tokens are the name and one key: no leading or
  // trailing space, one space after the name, none in the key.
  size_t name = 0;
  if (line.size() > 4 && std::memcmp(line.data(), "get ", 4) == 0) {
    name = 3;
  } else if (line.size() > 5 && std::memcmp(line.data(), "gets ", 5) == 0) {
    name = 4;
  } else {
    return false;
  }
  const std::string_view key = line.substr(name + 1);
  if (key.size() > kMaxKeySize || std::memchr(key.data(), ' ', key.size()) != nullptr) return false;
  *cmd = Command();
  cmd->kind = name == 3 ? CommandKind::kGet : CommandKind::kGets;
  cmd->keys = line.substr(name);  // as ParseLine leaves it: from the space after the name
  cmd->key = key;
  return true;
}

ParseStatus MemcacheParser::ParseLine(std::string_view input, std::string_view line,
                                      size_t line_bytes, Command* cmd, size_t* consumed) {
  *cmd = Command();
  *consumed = line_bytes;
  token_count_ = Tokenize(line, tokens_, kMaxTokens);
  const int n = token_count_;
  const std::string_view* t = tokens_;
  if (n == 0 || !LookupCommand(t[0], &cmd->kind)) {
    cmd->error = ParseError::kUnknownCommand;
    return ParseStatus::kCommand;
  }
  const CommandKind kind = cmd->kind;
  auto fail = [cmd](ParseError error) {
    cmd->error = error;
    return ParseStatus::kCommand;
  };

  if (IsStorageCommand(kind)) return ParseStorage(input, line_bytes, cmd, consumed);

  if (IsRetrievalCommand(kind)) {
    if (n < 2) return fail(ParseError::kUnknownCommand);
    // The keys are the rest of the line after the command (and gat's exptime).
    std::string_view rest = SkipSpaces(line).substr(t[0].size());
    std::string_view unused;
    if (kind == CommandKind::kGat || kind == CommandKind::kGats) {
      if (!ParseNumber(t[1], &cmd->exptime)) return fail(ParseError::kInvalidExptime);
      NextKey(&rest, &unused);
    }
    cmd->keys = rest;
    std::string_view key;
    size_t count = 0;
    while (NextKey(&rest, &key)) {
      if (key.size() > kMaxKeySize) return fail(ParseError::kBadFormat);
      if (++count == 1) cmd->key = key;
    }
    if (count != 1) cmd->key = {};
    return ParseStatus::kCommand;
  }

  switch (kind) {
    case CommandKind::kTouch:
      if (n != 3 && n != 4) return fail(ParseError::kUnknownCommand);
      cmd->noreply = n == 4 && t[3] == kNoreply;
      cmd->key = t[1];
      if (cmd->key.size() > kMaxKeySize) return fail(ParseError::kBadFormat);
      if (!ParseNumber(t[2], &cmd->exptime)) return fail(ParseError::kInvalidExptime);
      return ParseStatus::kCommand;

    case CommandKind::kDelete: {
      if (n < 2 || n > 4) return fail(ParseError::kUnknownCommand);
      cmd->key = t[1];
      if (cmd->key.size() > kMaxKeySize) return fail(ParseError::kBadFormat);
      if (n > 2) {
        // Legacy form: "delete <key> 0" is still accepted; any other hold time is not.
        const bool zero = t[2] == "0";
        cmd->noreply = t[n - 1] == kNoreply;
        const bool valid = (n == 3 && (zero || cmd->noreply)) || (n == 4 && zero && cmd->noreply);
        if (!valid) return fail(ParseError::kDeleteUsage);
      }
      return ParseStatus::kCommand;
    }

    case CommandKind::kIncr:
    case CommandKind::kDecr:
      if (n != 3 && n != 4) return fail(ParseError::kUnknownCommand);
      cmd->noreply = n == 4 && t[3] == kNoreply;
      cmd->key = t[1];
      if (cmd->key.size() > kMaxKeySize) return fail(ParseError::kBadFormat);
      if (!ParseNumber(t[2], &cmd->delta)) return fail(ParseError::kInvalidDelta);
      return ParseStatus::kCommand;

    case CommandKind::kFlushAll:
      if (n > 3) return fail(ParseError::kUnknownCommand);
      cmd->noreply = n > 1 && t[n - 1] == kNoreply;
      cmd->has_delay = n != (cmd->noreply ? 2 : 1);
      if (cmd->has_delay && !ParseNumber(t[1], &cmd->exptime)) {
        return fail(ParseError::kInvalidExptime);
      }
      return ParseStatus::kCommand;

    case CommandKind::kVerbosity: {
      if (n != 2 && n != 3) return fail(ParseError::kUnknownCommand);
      cmd->noreply = t[n - 1] == kNoreply;
      uint32_t level = 0;
      if (!ParseNumber(t[1], &level)) return fail(ParseError::kBadFormat);
      return ParseStatus::kCommand;
    }

    case CommandKind::kStats: {
      std::string_view rest = SkipSpaces(SkipSpaces(line).substr(t[0].size()));
      while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
      cmd->args = rest;
      return ParseStatus::kCommand;
    }

    case CommandKind::kVersion:
    case CommandKind::kQuit:
      return ParseStatus::kCommand;

    default:
      return fail(ParseError::kUnknownCommand);
  }
}

ParseStatus MemcacheParser::ParseStorage(std::string_view input, size_t line_bytes, Command* cmd,
                                         size_t* consumed) {
  const int n = token_count_;
  const std::string_view* t = tokens_;
  const bool cas = cmd->kind == CommandKind::kCas;
  const int required = cas ? 6 : 5;
  if (n != required && n != required + 1) {
    cmd->error = ParseError::kUnknownCommand;
    return ParseStatus::kCommand;
  }
  // A malformed line is answered without skipping a data block (its length is not trusted):
  // what follows is read as the next command, as memcached does.
  cmd->noreply = n == required + 1 && t[required] == kNoreply;
  cmd->key = t[1];
  int64_t bytes = 0;
  if (cmd->key.size() > kMaxKeySize || !ParseNumber(t[2], &cmd->flags) ||
      !ParseNumber(t[3], &cmd->exptime) || !ParseNumber(t[4], &bytes) ||
      (cas && !ParseNumber(t[5], &cmd->cas_unique)) || bytes < 0 || bytes > INT_MAX - 2) {
    cmd->error = ParseError::kBadFormat;
    return ParseStatus::kCommand;
  }
  const size_t block = static_cast<size_t>(bytes) + 2;
  if (ItemFootprint(cmd->key.size(), static_cast<size_t>(bytes)) > limits_.max_item_size) {
    // Skip the block without buffering it: take what is here, remember the rest.
    const size_t here = std::min(block, input.size() - line_bytes);
    swallow_ = block - here;
    *consumed = line_bytes + here;
    cmd->error = ParseError::kTooLarge;
    return ParseStatus::kCommand;
  }
  if (input.size() - line_bytes < block) {
    *consumed = 0;
    return ParseStatus::kNeedMore;
  }
  *consumed = line_bytes + block;
  const std::string_view data = input.substr(line_bytes, block);
  if (data[block - 2] != '\r' || data[block - 1] != '\n') {
    cmd->error = ParseError::kBadDataChunk;
    return ParseStatus::kCommand;
  }
  cmd->value = data.substr(0, static_cast<size_t>(bytes));
  return ParseStatus::kCommand;
}

}  // namespace percore::memcache
