#include "services/resp/resp_parser.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "services/resp/resp_numbers.h"

namespace percore {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The number in a "*N\r" / "$N\r" line; the line must end in CR (its LF found by the caller).
bool ParseHeaderNumber(std::string_view line, int64_t* value) {
  if (line.empty() || line.back() != '\r') return false;
  line.remove_suffix(1);
  return ParseRedisInt64(line, value);
}

// Reads a "N\r\n" header number at `p` for the fast path: plain digits only (no sign, no
// leading zero but "0" itself, at most 9 digits), followed by CRLF within `end`. Advances `p`
// past the CRLF. Anything else returns false and leaves the request to the general path.
// Inlined, with one- and two-digit numbers (argument counts, command names, most keys) first.
[[gnu::always_inline]] inline bool ReadPlainNumber(const char*& p, const char* end,
                                                   size_t* value) {
  if (end - p < 3) return false;  // the shortest is one digit and CRLF
  const unsigned first = static_cast<unsigned char>(p[0]) - unsigned{'0'};
  if (first > 9) return false;
  if (p[1] == '\r') {
    if (p[2] != '\n') return false;
    p += 3;
    *value = first;
    return true;
  }
  if (first == 0) return false;  // a leading zero
  const unsigned second = static_cast<unsigned char>(p[1]) - unsigned{'0'};
  if (second <= 9 && end - p >= 4 && p[2] == '\r') {
    if (p[3] != '\n') return false;
    p += 4;
    *value = first * 10 + second;
    return true;
  }
  const char* q = p + 1;
  size_t n = first;
  const char* const last = q + std::min<ptrdiff_t>(8, end - q);  // up to 9 digits in all
  for (unsigned digit; q != last && (digit = static_cast<unsigned char>(*q) - unsigned{'0'}) <= 9;
       ++q) {
    n = n * 10 + digit;
  }
  if (q != end && static_cast<unsigned char>(*q) - unsigned{'0'} <= 9) return false;  // a 10th
  if (end - q < 2 || q[0] != '\r' || q[1] != '\n') return false;
  p = q + 2;
  *value = n;
  return true;
}

}  // namespace

// The whole-request path reads header lines of up to 12 bytes ("$999999999\r\n") without the
// general path's line-length check, so it is used only when that check cannot trip on them.
RespParser::RespParser(const RespOptions& options)
    : options_(options), whole_path_(options.max_inline_bytes >= 16) {}

size_t RespParser::FindLineEnd(std::string_view in, size_t from) const {
  // The limit is on the line without its terminator: max_inline_bytes, then "\r\n" or "\n".
  const size_t max = options_.max_inline_bytes;
  const size_t window = std::min(in.size() - from, max + 2);
  const void* nl = std::memchr(in.data() + from, '\n', window);
  if (nl != nullptr) {
    const size_t at = static_cast<size_t>(static_cast<const char*>(nl) - in.data());
    if (at - from == max + 1 && in[at - 1] != '\r') return kTooLong;
    return at;
  }
  if (window == max + 1 && in[from + max] != '\r') return kTooLong;
  return window > max + 1 ? kTooLong : std::string_view::npos;
}

// The common case in one pass: a whole request, already in `in`, with plain counts within
// the limits. Whatever it does not accept (a sign or leading zero, an empty or oversized
// request, bytes still to come, any error) it leaves to the general path, which defines what
// is accepted and every error's wording. The fuzz target checks the two agree: a request given
// whole takes this path, the same request given byte by byte takes the other.
[[gnu::always_inline]] inline bool RespParser::ParseWholeMultibulk(std::string_view in) {
  const char* const begin = in.data();
  const char* const end = begin + in.size();
  const char* p = begin + 1;  // past '*'
  size_t count = 0;
  if (!ReadPlainNumber(p, end, &count) || count == 0 || count > options_.max_args) return false;
  std::string_view* args = inline_args_;
  if (count > kInlineArgs) {
    args_.resize(count);
    args = args_.data();
  }
  for (size_t i = 0; i < count; ++i) {
    if (p == end || *p != '$') return false;
    ++p;
    size_t length = 0;
    if (!ReadPlainNumber(p, end, &length) || length > options_.max_bulk_bytes) return false;
    if (static_cast<size_t>(end - p) < length + 2 || p[length] != '\r' || p[length + 1] != '\n') return false;
    args[i] = std::string_view(p, length);
    p += length + 2;
  }
  // Offsets only grow, so the whole request within the limit means every prefix was too.
  if (static_cast<size_t>(p - begin) > options_.max_request_bytes) return false;
  consumed_ = static_cast<size_t>(p - begin);
  view_ = std::span<const std::string_view>(args, count);
  return true;
}

RespParser::Result RespParser::Parse(std::string_view input) {
  if (input.empty()) return Result::kIncomplete;
  Result result;
  if (input[0] == '*') {
    if (expected_args_ < 0 && whole_path_ && ParseWholeMultibulk(input)) return Result::kCommand;
    result = ParseMultibulk(input);
  } else {
    result = ParseInline(input);
  }
  view_ = args_;
  return result;
}

RespParser::Result RespParser::ParseMultibulk(std::string_view in) {
  if (expected_args_ < 0) {
    const size_t nl = FindLineEnd(in, 0);
    if (nl == kTooLong) return Fail("Protocol error: too big mbulk count string");
    if (nl == std::string_view::npos) return Result::kIncomplete;
    int64_t count = 0;
    if (!ParseHeaderNumber(in.substr(1, nl - 1), &count) ||
        count > static_cast<int64_t>(options_.max_args)) {
      return Fail("Protocol error: invalid multibulk length");
    }
    if (count <= 0) return Complete(nl + 1);  // Redis ignores empty requests
    expected_args_ = count;
    pos_ = nl + 1;
    spans_.clear();
  }
  while (static_cast<int64_t>(spans_.size()) < expected_args_) {
    if (pos_ >= in.size()) return Result::kIncomplete;
    if (in[pos_] != '$') {
      error_ = "Protocol error: expected '$', got ' '";
      const char got = in[pos_];
      error_[error_.size() - 2] = (got == '\r' || got == '\n') ? ' ' : got;
      ResetProgress();
      return Result::kError;
    }
    const size_t nl = FindLineEnd(in, pos_);
    if (nl == kTooLong) return Fail("Protocol error: too big bulk count string");
    if (nl == std::string_view::npos) return Result::kIncomplete;
    int64_t length = 0;
    if (!ParseHeaderNumber(in.substr(pos_ + 1, nl - pos_ - 1), &length) || length < 0 ||
        static_cast<uint64_t>(length) > options_.max_bulk_bytes) {
      return Fail("Protocol error: invalid bulk length");
    }
    const size_t start = nl + 1;
    const size_t len = static_cast<size_t>(length);
    if (start + len + 2 > options_.max_request_bytes) {
      return Fail("Protocol error: request exceeds the query buffer limit");
    }
    if (in.size() < start + len + 2) return Result::kIncomplete;
    if (in[start + len] != '\r' || in[start + len + 1] != '\n') {
      return Fail("Protocol error: bulk string not terminated by CRLF");
    }
    spans_.emplace_back(start, len);
    pos_ = start + len + 2;
  }
  args_.clear();
  for (const auto& [offset, length] : spans_) args_.push_back(in.substr(offset, length));
  consumed_ = pos_;
  ResetProgress();
  return Result::kCommand;
}

RespParser::Result RespParser::ParseInline(std::string_view in) {
  const size_t nl = FindLineEnd(in, 0);
  if (nl == kTooLong) return Fail("Protocol error: too big inline request");
  if (nl == std::string_view::npos) return Result::kIncomplete;
  std::string_view line = in.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!SplitInline(line)) return Fail("Protocol error: unbalanced quotes in request");
  consumed_ = nl + 1;
  return Result::kCommand;
}

// Redis's inline grammar: words separated by whitespace; "..." understands \n \r \t \b \a,
// \xHH and \<char>; '...' understands \'; a closing quote must be followed by whitespace or the
// end of the line. A word that uses quotes is decoded into scratch_, which is sized up front so
// that views into it stay valid (decoding never lengthens a word).
bool RespParser::SplitInline(std::string_view line) {
  args_.clear();
  scratch_.clear();
  scratch_.reserve(line.size());
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    while (i < n && IsSpace(line[i])) ++i;
    if (i >= n) return true;
    const size_t word_start = i;
    const size_t scratch_start = scratch_.size();
    bool decoded = false;
    bool in_double = false;
    bool in_single = false;
    while (true) {
      if (in_double) {
        if (i >= n) return false;
        const char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && HexValue(line[i + 2]) >= 0 &&
            HexValue(line[i + 3]) >= 0) {
          scratch_.push_back(static_cast<char>(HexValue(line[i + 2]) * 16 + HexValue(line[i + 3])));
          i += 4;
        } else if (c == '\\' && i + 1 < n) {
          char e = line[i + 1];
          switch (e) {
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'b': e = '\b'; break;
            case 'a': e = '\a'; break;
            default: break;
          }
          scratch_.push_back(e);
          i += 2;
        } else if (c == '"') {
          if (i + 1 < n && !IsSpace(line[i + 1])) return false;
          ++i;
          break;
        } else {
          scratch_.push_back(c);
          ++i;
        }
      } else if (in_single) {
        if (i >= n) return false;
        const char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          scratch_.push_back('\'');
          i += 2;
        } else if (c == '\'') {
          if (i + 1 < n && !IsSpace(line[i + 1])) return false;
          ++i;
          break;
        } else {
          scratch_.push_back(c);
          ++i;
        }
      } else {
        if (i >= n || IsSpace(line[i])) break;
        const char c = line[i];
        if (c == '"' || c == '\'') {
          if (!decoded) scratch_.append(line.data() + word_start, i - word_start);
          decoded = true;
          in_double = c == '"';
          in_single = c == '\'';
        } else if (decoded) {
          scratch_.push_back(c);
        }
        ++i;
      }
    }
    if (decoded) {
      args_.emplace_back(scratch_.data() + scratch_start, scratch_.size() - scratch_start);
    } else {
      args_.push_back(line.substr(word_start, i - word_start));
    }
  }
}

RespParser::Result RespParser::Fail(std::string_view message) {
  error_.assign(message.data(), message.size());
  ResetProgress();
  return Result::kError;
}

RespParser::Result RespParser::Complete(size_t end) {
  args_.clear();
  consumed_ = end;
  ResetProgress();
  return Result::kCommand;
}

void RespParser::ResetProgress() {
  expected_args_ = -1;
  pos_ = 0;
  spans_.clear();
}

}  // namespace percore
