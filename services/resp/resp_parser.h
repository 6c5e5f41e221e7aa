#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "services/resp/resp_options.h"

namespace percore {

// Splits RESP2 requests off the front of a connection's input, one per Parse call. Both forms
// Redis accepts are read: multibulk ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline
// ("GET k\r\n", words split on spaces, with Redis's "..." and '...' quoting).
//
// Arguments are views into the caller's input (zero-copy). Only inline arguments that use
// quotes are decoded into a scratch string owned by the parser.
//
// An incomplete multibulk request is not parsed again from its start: the parser remembers how
// far it got, so a large request arriving in many reads costs time linear in its size. The
// contract that makes this safe: after kIncomplete, the next Parse must be given the same bytes
// at the front (more may follow). Consume only after kCommand. One parser per connection; not
// thread-safe.
class RespParser {
 public:
  enum class Result : uint8_t {
    kCommand,     // args() holds one request (possibly empty: skip it); consumed() its size
    kIncomplete,  // need more bytes
    kError,       // the bytes are not RESP: reply error() and close the connection
  };

  explicit RespParser(const RespOptions& options);

  Result Parse(std::string_view input);

  // After kCommand: the request's arguments, valid until the next Parse or until the input's
  // bytes change. An empty span is an empty request ("*0\r\n", a blank line): Redis ignores it.
  std::span<const std::string_view> args() const { return view_; }
  // After kCommand: how many bytes the request occupied.
  size_t consumed() const { return consumed_; }
  // After kError: Redis's wording, e.g. "Protocol error: invalid bulk length" (no "ERR ").
  std::string_view error() const { return error_; }
  // Whether the parser remembers progress through an incomplete request (and so must be given
  // the same bytes again).
  bool in_progress() const { return expected_args_ >= 0; }

 private:
  Result ParseMultibulk(std::string_view in);
  bool ParseWholeMultibulk(std::string_view in);
  Result ParseInline(std::string_view in);
  // Finds the line starting at `from`: the index of its '\n', or npos when more bytes are
  // needed, or `kTooLong` when no '\n' comes within max_inline_bytes.
  size_t FindLineEnd(std::string_view in, size_t from) const;
  bool SplitInline(std::string_view line);
  Result Fail(std::string_view message);
  Result Complete(size_t end);  // an empty request of `end` bytes
  void ResetProgress();

  static constexpr size_t kTooLong = static_cast<size_t>(-2);

  const RespOptions options_;
  const bool whole_path_;  // ParseWholeMultibulk may be tried first
  // Progress through an incomplete multibulk request.
  int64_t expected_args_ = -1;  // -1: the "*N" header has not been read yet
  size_t pos_ = 0;
  std::vector<std::pair<size_t, size_t>> spans_;  // (offset, length) of each argument so far

  // The arguments: of a whole request with few of them in inline_args_, else in args_.
  static constexpr size_t kInlineArgs = 8;
  std::string_view inline_args_[kInlineArgs];
  std::vector<std::string_view> args_;
  std::span<const std::string_view> view_;
  std::string scratch_;
  std::string error_;
  size_t consumed_ = 0;
};

}  // namespace percore
