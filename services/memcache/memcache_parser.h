#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace percore::memcache {

// The memcached text protocol commands (protocol.txt), classic form.
enum class CommandKind : uint8_t {
  kGet, kGets, kGat, kGats,
  kSet, kAdd, kReplace, kAppend, kPrepend, kCas,
  kTouch, kDelete, kIncr, kDecr,
  kFlushAll, kStats, kVersion, kVerbosity, kQuit,
};

inline bool IsRetrievalCommand(CommandKind kind) { return kind <= CommandKind::kGats; }
inline bool IsStorageCommand(CommandKind kind) {
  return kind >= CommandKind::kSet && kind <= CommandKind::kCas;
}

// A request the parser answers itself, with the reply memcached gives (ErrorReply()).
enum class ParseError : uint8_t {
  kNone,
  kUnknownCommand,  // ERROR: unknown command, empty line, wrong number of tokens
  kBadFormat,       // CLIENT_ERROR bad command line format: bad number, key over 250 bytes
  kBadDataChunk,    // CLIENT_ERROR bad data chunk: the data block is not followed by \r\n
  kTooLarge,        // SERVER_ERROR object too large for cache: the data block is swallowed
  kInvalidExptime,  // CLIENT_ERROR invalid exptime argument (touch, gat, flush_all)
  kInvalidDelta,    // CLIENT_ERROR invalid numeric delta argument (incr, decr)
  kDeleteUsage,     // delete with arguments other than [0] [noreply]
  kLineTooLong,     // CLIENT_ERROR line too long; fatal: the connection is closed
};

// The reply for `error`, "\r\n" included; empty for kNone.
std::string_view ErrorReply(ParseError error);

// One parsed request. Views point into the input given to Parse and are valid until that
// input is consumed or changed.
struct Command {
  CommandKind kind = CommandKind::kGet;
  ParseError error = ParseError::kNone;  // set: answer ErrorReply(error) (unless noreply)
  bool noreply = false;
  // set/add/.../cas, touch, delete, incr, decr; get/gets/gat/gats: the key when there is
  // exactly one (the common case, served without splitting `keys` again), else empty.
  std::string_view key;
  std::string_view keys;   // get/gets/gat/gats: one or more keys separated by spaces
  uint32_t flags = 0;      // storage commands
  int64_t exptime = 0;     // storage commands, touch, gat/gats; the delay of flush_all
  bool has_delay = false;  // flush_all: an exptime argument was given
  uint64_t cas_unique = 0;
  uint64_t delta = 0;      // incr, decr
  std::string_view value;  // storage commands: the data block without its \r\n
  std::string_view args;   // stats: the sub-command ("" for plain stats)
};

// Takes the next key off `*keys` (as stored in Command::keys). False when none is left.
bool NextKey(std::string_view* keys, std::string_view* key);

struct ParserLimits {
  // Largest item (ItemFootprint of key and value) a storage command may carry; larger data
  // blocks are swallowed and answered with SERVER_ERROR object too large for cache.
  size_t max_item_size = size_t{1} << 20;
  // Longest command line, terminator excluded. get/gets/gat/gats lines carry many keys and
  // get the larger bound.
  size_t max_line = 2048;
  size_t max_retrieval_line = size_t{1} << 20;
  // Whether "get <key>" / "gets <key>" take the one-key fast path. Off, every line goes
  // through the general tokenizer: tests and the fuzz target compare the two.
  bool single_get_fast_path = true;
};

enum class ParseStatus : uint8_t {
  kNeedMore,  // no complete request yet: consume `*consumed` bytes (swallowed data), wait
  kCommand,   // *cmd is a request or a parser-answered error: consume `*consumed` bytes
  kClose,     // the input cannot be parsed further: reply ErrorReply(cmd->error), close
};

// Incremental parser over the contiguous unconsumed input of one connection. Stateless between
// requests except for the remainder of an oversized data block still to be skipped. Lines end
// with "\r\n" or a bare "\n" (as memcached accepts); a data block must end with "\r\n".
// Not thread-safe; one per connection.
class MemcacheParser {
 public:
  explicit MemcacheParser(ParserLimits limits = {}) : limits_(limits) {}

  ParseStatus Parse(std::string_view input, Command* cmd, size_t* consumed);

  // Bytes of a rejected data block not yet received (they will be skipped).
  size_t swallowing() const { return swallow_; }

 private:
  // The common request shape, "get <key>" or "gets <key>" with one key of a valid length:
  // fills *cmd as ParseLine would and returns true; anything else is left to ParseLine.
  bool ParseSingleGet(std::string_view line, Command* cmd) const;
  ParseStatus ParseLine(std::string_view input, std::string_view line, size_t line_bytes,
                        Command* cmd, size_t* consumed);
  ParseStatus ParseStorage(std::string_view input, size_t line_bytes, Command* cmd,
                           size_t* consumed);

  ParserLimits limits_;
  size_t swallow_ = 0;
  // Tokens of the line being parsed (at most kMaxTokens; token_count_ > kMaxTokens means more).
  static constexpr int kMaxTokens = 8;
  std::string_view tokens_[kMaxTokens];
  int token_count_ = 0;
};

}  // namespace percore::memcache
