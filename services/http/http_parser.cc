#include "services/http/http_parser.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <type_traits>

#include "services/http/http_chars.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace percore {
namespace {

using http_chars::IsAlpha;
using http_chars::IsDigit;
using http_chars::IsFieldValueChar;
using http_chars::IsHexDigit;
using http_chars::IsOws;
using http_chars::IsRegNameChar;
using http_chars::IsSchemeChar;
using http_chars::IsTargetChar;
using http_chars::IsTchar;
using http_chars::IsToken;
using http_chars::TrimOws;

// method_checked_ once the method of a partial request line has ended.
constexpr size_t kMethodDone = std::numeric_limits<size_t>::max();

// Content-Length values above this saturate: they are over any body limit anyway.
constexpr int64_t kContentLengthCap = int64_t{1} << 60;

// Parses a Content-Length value: 1*DIGIT, or a list of identical such values (RFC 9110 §8.6
// lets a recipient accept "5, 5" as 5). Returns -1 when invalid.
int64_t ParseContentLength(std::string_view value) {
  int64_t result = -1;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view element = TrimOws(value.substr(start, comma - start));
    if (element.empty()) return -1;
    int64_t n = 0;
    for (char c : element) {
      if (c < '0' || c > '9') return -1;
      n = n >= kContentLengthCap / 10 ? kContentLengthCap : n * 10 + (c - '0');
    }
    if (result != -1 && n != result) return -1;
    result = n;
    start = comma + 1;
  }
  return result;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token / quoted-string
// (RFC 9112 §7.1.1). Extensions are understood by nobody here, so they are checked and ignored.
bool ValidChunkExtensions(std::string_view s) {
  size_t i = 0;
  auto skip_bws = [&] {
    while (i < s.size() && IsOws(s[i])) ++i;
  };
  auto token = [&] {
    const size_t begin = i;
    while (i < s.size() && IsTchar(s[i])) ++i;
    return i > begin;
  };
  for (;;) {
    skip_bws();
    if (i == s.size()) return true;
    if (s[i] != ';') return false;
    ++i;
    skip_bws();
    if (!token()) return false;
    skip_bws();
    if (i < s.size() && s[i] == '=') {
      ++i;
      skip_bws();
      if (i < s.size() && s[i] == '"') {
        ++i;
        bool closed = false;
        while (i < s.size()) {
          const char c = s[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i == s.size() || !IsFieldValueChar(s[i])) return false;
            ++i;
          } else if (!IsFieldValueChar(c)) {
            return false;
          }
        }
        if (!closed) return false;
      } else if (!token()) {
        return false;
      }
    }
  }
}

// IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, dec-octet being 0 to 255
// without leading zeros (RFC 3986 §3.2.2).
bool IsIpv4Address(std::string_view s) {
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (s.empty() || s[0] != '.') return false;
      s.remove_prefix(1);
    }
    size_t n = 0;
    int value = 0;
    while (n < s.size() && n < 4 && IsDigit(s[n])) value = value * 10 + (s[n++] - '0');
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0') || value > 255) return false;
    s.remove_prefix(n);
  }
  return s.empty();
}

// IPv6address (RFC 3986 §3.2.2): eight pieces of 1 to 4 hex digits separated by ":", the last
// two of which may be written as an IPv4address, with at most one "::" standing for one or more
// zero pieces.
bool IsIpv6Address(std::string_view s) {
  int pieces = 0;
  bool elided = false;
  size_t i = 0;
  if (s.starts_with("::")) {
    elided = true;
    i = 2;
  }
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && IsHexDigit(s[j])) ++j;
    if (j < s.size() && s[j] == '.') {
      if (!IsIpv4Address(s.substr(i))) return false;
      pieces += 2;
      break;
    }
    if (j == i || j - i > 4) return false;
    ++pieces;
    if (j == s.size()) break;
    if (s[j] != ':' || j + 1 == s.size()) return false;
    if (s[j + 1] == ':') {
      if (elided) return false;
      elided = true;
      i = j + 2;
    } else {
      i = j + 1;
    }
  }
  return elided ? pieces <= 7 : pieces == 8;
}

// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) (RFC 3986 §3.2.2).
bool IsIpvFuture(std::string_view s) {
  if (s.empty() || (s[0] != 'v' && s[0] != 'V')) return false;
  size_t i = 1;
  while (i < s.size() && IsHexDigit(s[i])) ++i;
  if (i == 1 || i + 1 >= s.size() || s[i] != '.') return false;
  for (++i; i < s.size(); ++i) {
    if (!IsRegNameChar(s[i]) && s[i] != ':') return false;
  }
  return true;
}

// Length of the uri-host (RFC 3986 §3.2.2) that `s` starts with, 0 when there is none: an
// IP-literal, or the longest reg-name (which covers IPv4address too, whose bytes it allows).
size_t HostLength(std::string_view s) {
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) return 0;
    const std::string_view literal = s.substr(1, close - 1);
    return IsIpv6Address(literal) || IsIpvFuture(literal) ? close + 1 : 0;
  }
  const size_t n = s.size();
  size_t i = 0;
  for (;;) {
    while (i < n && IsRegNameChar(s[i])) ++i;
    if (i + 2 >= n || s[i] != '%' || !IsHexDigit(s[i + 1]) || !IsHexDigit(s[i + 2])) return i;
    i += 3;
  }
}

// Host = uri-host [ ":" port ] with port = *DIGIT (RFC 9112 §3.2, RFC 3986 §3.2.3). The host
// itself must not be empty: RFC 9110 §4.2.1 has an http URI without one rejected.
bool IsHostAndPort(std::string_view s) {
  const size_t host = HostLength(s);
  if (host == 0) return false;
  if (host == s.size()) return true;
  if (s[host] != ':') return false;
  for (char c : s.substr(host + 1)) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// authority-form = uri-host ":" port (RFC 9112 §3.2.3). A CONNECT to an empty or invalid port
// is to be rejected (RFC 9110 §9.3.6), so the port here is a number from 1 to 65535.
bool IsAuthorityForm(std::string_view s) {
  const size_t host = HostLength(s);
  if (host == 0 || host + 1 >= s.size() || s[host] != ':') return false;
  uint32_t port = 0;
  for (char c : s.substr(host + 1)) {
    if (!IsDigit(c)) return false;
    port = std::min<uint32_t>(port * 10 + static_cast<uint32_t>(c - '0'), 65536);
  }
  return port >= 1 && port <= 65535;
}

// Length of the "scheme://" that an absolute-form target starts with, 0 when there is none
// (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), RFC 3986 §3.1).
size_t SchemeAndSlashesLength(std::string_view s) {
  if (s.empty() || !IsAlpha(s[0])) return 0;
  size_t i = 1;
  while (i < s.size() && IsSchemeChar(s[i])) ++i;
  return s.substr(i, 3) == "://" ? i + 3 : 0;
}

// Checks a field line (header or trailer) and splits it. False when it breaks RFC 9112 §5.
bool SplitFieldLine(std::string_view line, std::string_view* name, std::string_view* value) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  *name = line.substr(0, colon);
  if (!IsToken(*name)) return false;  // also rejects whitespace before the colon
  *value = TrimOws(line.substr(colon + 1));
  for (char c : *value) {
    if (!IsFieldValueChar(c)) return false;  // NUL, bare CR and other controls
  }
  return true;
}

template <typename Word>
inline Word LoadWord(const char* p) {
  Word w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

// Whether `name`, a token, is `lower` (lowercase letters and '-', four bytes or more) in any
// case. OR-ing 0x20 into a byte lowercases a letter and leaves '-' alone, and turns no other
// token byte into either, so words of the name compare at once. The words may overlap.
inline bool FieldNameIs(std::string_view name, std::string_view lower) {
  const size_t n = lower.size();
  if (name.size() != n) return false;
  if (n >= 8) {
    constexpr uint64_t kCase = 0x2020202020202020;
    for (size_t i = 0; i + 8 < n; i += 8) {
      if ((LoadWord<uint64_t>(name.data() + i) | kCase) != LoadWord<uint64_t>(lower.data() + i)) return false;
    }
    return (LoadWord<uint64_t>(name.data() + n - 8) | kCase) == LoadWord<uint64_t>(lower.data() + n - 8);
  }
  constexpr uint32_t kCase = 0x20202020;
  return (LoadWord<uint32_t>(name.data()) | kCase) == LoadWord<uint32_t>(lower.data()) &&
         (LoadWord<uint32_t>(name.data() + n - 4) | kCase) == LoadWord<uint32_t>(lower.data() + n - 4);
}

// Request-target bytes other than '?': the path of an origin-form target.
constexpr std::array<bool, 256> MakePathChars() {
  std::array<bool, 256> path = http_chars::kTables.target;
  path['?'] = false;
  return path;
}
constexpr std::array<bool, 256> kPathChars = MakePathChars();

// The first byte from `p` on outside `table`'s class; the caller knows one ends the run (a
// line's CR) before the input does. Index form, which compiles to a four-instruction loop.
inline const char* SkipClass(const char* p, const std::array<bool, 256>& table) {
  size_t i = 0;
  while (table[static_cast<unsigned char>(p[i])]) ++i;
  return p + i;
}

#if defined(__SSE2__)
// Bit i set where block[i] == c, for the 16 bytes at `block`.
inline unsigned MatchBytes(const char* block, char c) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(c))));
}
#endif

// The first LF in [from, end), or nullptr. Bytes from `begin` (the input's first) to `end` may
// be read. Heads are short: sixteen bytes at a time, inline, cost less than a memchr call.
inline const char* FindLineFeed(const char* begin, const char* from, const char* end) {
#if defined(__SSE2__)
  for (; end - from >= 16; from += 16) {
    const unsigned match = MatchBytes(from, '\n');
    if (match != 0) return from + __builtin_ctz(match);
  }
  if (from == end) return nullptr;
  if (end - begin >= 16) {
    // The input's last sixteen bytes, less those before `from` (searched already).
    const char* const block = end - 16;
    const unsigned match = MatchBytes(block, '\n') >> (from - block);
    return match != 0 ? from + __builtin_ctz(match) : nullptr;
  }
#endif
  return static_cast<const char*>(std::memchr(from, '\n', static_cast<size_t>(end - from)));
}

// The first byte from `p` on that is not in `table`'s class, when the caller knows such a byte
// comes before the input ends (each line's CR does) and at or before `limit`, up to which bytes
// may be read. A byte class test has no single SSE2 instruction, so the two long runs of a
// typical head, the target's path and field values, have their classes spelled out below:
// sixteen bytes at a time instead of one.
#if defined(__SSE2__)
inline unsigned PathCharsMask(__m128i bytes) {
  // VCHAR (0x21-0x7e, signed greater than 0x20) or obs-text (0x80 up, signed negative), not '?'.
  const __m128i in = _mm_or_si128(_mm_cmpgt_epi8(bytes, _mm_set1_epi8(0x20)),
                                  _mm_cmplt_epi8(bytes, _mm_setzero_si128()));
  const __m128i out = _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(0x7f)),
                                   _mm_cmpeq_epi8(bytes, _mm_set1_epi8('?')));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_andnot_si128(out, in)));
}

inline unsigned FieldValueCharsMask(__m128i bytes) {
  // VCHAR or SP (signed greater than 0x1f, less DEL), obs-text, or HTAB.
  const __m128i in = _mm_or_si128(
      _mm_or_si128(_mm_cmpgt_epi8(bytes, _mm_set1_epi8(0x1f)), _mm_cmplt_epi8(bytes, _mm_setzero_si128())),
      _mm_cmpeq_epi8(bytes, _mm_set1_epi8('\t')));
  const __m128i out = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(0x7f));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_andnot_si128(out, in)));
}

// Letters, digits, '-' and '.': the bytes of nearly every Host, all of them reg-name bytes.
inline unsigned HostCharsMask(__m128i bytes) {
  const __m128i lower = _mm_or_si128(bytes, _mm_set1_epi8(0x20));
  const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)),
                                       _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1)));
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(bytes, _mm_set1_epi8('0' - 1)),
                                      _mm_cmplt_epi8(bytes, _mm_set1_epi8('9' + 1)));
  const __m128i mark = _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('-')),
                                    _mm_cmpeq_epi8(bytes, _mm_set1_epi8('.')));
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), mark)));
}

// Skips the bytes from `p` on that kMask's class holds, sixteen at a time, up to `limit`;
// returns where a byte-by-byte scan has to go on (or the first byte outside the class). The
// last block may start before `p` (as far back as `begin`), its bytes before `p` ignored.
template <unsigned (*kMask)(__m128i)>
inline const char* SkipBlocks(const char* begin, const char* p, const char* limit) {
  for (; limit - p >= 16; p += 16) {
    const unsigned in = kMask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (in != 0xffff) return p + __builtin_ctz(~in);
  }
  if (p == limit || limit - begin < 16) return p;
  const char* const block = limit - 16;
  const unsigned in = kMask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block))) >> (p - block);
  // Bits past the limit are clear, so a byte outside the class is always found.
  return p + __builtin_ctz(~in);
}
#endif

inline const char* SkipPathChars(const char* begin, const char* p, const char* limit) {
#if defined(__SSE2__)
  p = SkipBlocks<PathCharsMask>(begin, p, limit);
#endif
  return SkipClass(p, kPathChars);
}

inline const char* SkipFieldValueChars(const char* begin, const char* p, const char* limit) {
#if defined(__SSE2__)
  p = SkipBlocks<FieldValueCharsMask>(begin, p, limit);
#endif
  return SkipClass(p, http_chars::kTables.field_value);
}

inline const char* SkipRegNameChars(const char* begin, const char* p, const char* limit) {
#if defined(__SSE2__)
  p = SkipBlocks<HostCharsMask>(begin, p, limit);  // then the other reg-name bytes, if any
#endif
  return SkipClass(p, http_chars::kTables.reg_name);
}

}  // namespace

HttpParser::HttpParser(HttpParserLimits limits) : limits_(limits) {}

// The slots come with the first field: a connection that never sends a request holds none.
void HttpParser::GrowHeaders() { headers_.resize(headers_.empty() ? 16 : headers_.size() * 2); }

void HttpParser::ClearHead() {
  // Built in place: an assignment from a temporary makes the compiler build it on the stack
  // and copy it over.
  static_assert(std::is_trivially_destructible_v<HttpRequest>);
  std::construct_at(&request_);
  header_count_ = 0;
  host_count_ = 0;
  content_length_seen_ = transfer_encoding_seen_ = false;
  te_last_chunked_ = te_chunked_not_last_ = te_unknown_ = false;
  connection_close_ = connection_keep_alive_ = false;
}

void HttpParser::Reset() {
  ClearHead();
  if (!chunked_body_.empty()) {
    chunked_body_.clear();
    if (chunked_body_.capacity() > 64 * 1024) std::string().swap(chunked_body_);
  }
  phase_ = Phase::kHead;
  base_ = nullptr;
  base_size_ = 0;
  start_ = line_start_ = scan_ = method_checked_ = trailer_start_ = 0;
  pos_ = head_end_ = 0;
  chunk_remaining_ = 0;
  framing_bytes_ = 0;
  consumed_ = 0;
  error_status_ = 0;
  error_detail_ = {};
  request_line_done_ = false;
}

HttpParser::Result HttpParser::Fail(int status, std::string_view detail) {
  phase_ = Phase::kFailed;
  error_status_ = status;
  error_detail_ = detail;
  return Result::kError;
}

HttpParser::Result HttpParser::Parse(std::string_view input) {
  if (phase_ == Phase::kDone) return Result::kComplete;
  if (phase_ == Phase::kFailed) return Result::kError;
  if (input.empty()) return Result::kNeedMore;
  Rebase(input);
  if (phase_ == Phase::kHead) {
    // scan_ == 0: the line-by-line parser has not started on this message.
    FastResult fast = FastResult::kNotSimple;
    if (fast_path_ && scan_ == 0) fast = ParseSimpleHead(input);
    if (fast == FastResult::kError) return Result::kError;
    if (fast == FastResult::kNotSimple) {
      const Result result = ParseHead(input);
      if (result != Result::kComplete) return result;
    }
  }
  if (phase_ == Phase::kBody) {
    const size_t end = head_end_ + static_cast<size_t>(request_.content_length);
    if (input.size() < end) return Result::kNeedMore;
    request_.body = input.substr(head_end_, static_cast<size_t>(request_.content_length));
    consumed_ = end;
    phase_ = Phase::kDone;
    return Result::kComplete;
  }
  if (phase_ == Phase::kDone) return Result::kComplete;
  return ParseChunked(input);
}

void HttpParser::Rebase(std::string_view input) {
  if (input.data() == base_ || base_ == nullptr) {
    base_ = input.data();
    base_size_ = input.size();
    return;
  }
  // Integer arithmetic: the old storage may be gone, so its pointers are only compared, never
  // dereferenced or subtracted as pointers.
  const uintptr_t old_begin = reinterpret_cast<uintptr_t>(base_);
  const uintptr_t old_end = old_begin + base_size_;
  auto move = [&](std::string_view& view) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(view.data());
    if (view.data() == nullptr || p < old_begin || p > old_end) return;  // static or unset
    view = std::string_view(input.data() + (p - old_begin), view.size());
  };
  move(request_.method);
  move(request_.target);
  move(request_.path);
  move(request_.query);
  move(request_.host);
  for (HttpHeader& header : std::span<HttpHeader>(headers_.data(), header_count_)) {
    move(header.name);
    move(header.value);
  }
  base_ = input.data();
  base_size_ = input.size();
}

HttpParser::FastResult HttpParser::ParseSimpleHead(std::string_view input) {
  const char* const begin = input.data();
  // Only within the head limit: each line read here then ends inside it, as ParseHead requires.
  const char* const end = begin + std::min(input.size(), limits_.max_head_bytes);

  // request-line = method SP origin-form SP "HTTP/1." DIGIT CRLF. Each line is found first;
  // its CR belongs to none of the byte classes scanned, so no scan can run past it.
  const char* lf = FindLineFeed(begin, begin, end);
  if (lf == nullptr || lf == begin || lf[-1] != '\r') return FastResult::kNotSimple;
  const char* p = begin;
  p = SkipClass(p, http_chars::kTables.tchar);
  const std::string_view method(begin, static_cast<size_t>(p - begin));
  // CONNECT takes an authority-form target only: the other parser says so.
  if (method.empty() || *p != ' ' || method == "CONNECT") return FastResult::kNotSimple;
  const char* const target = ++p;
  if (*p != '/') return FastResult::kNotSimple;
  p = SkipPathChars(begin, p, lf + 1);
  const char* const path_end = p;
  if (*p == '?') {
    p = SkipClass(p + 1, http_chars::kTables.target);
  }
  // SP "HTTP/1." DIGIT, then the CR.
  if (*p != ' ' || lf - p != 10 || std::memcmp(p + 1, "HTTP/1.", 7) != 0 || !IsDigit(p[8])) {
    return FastResult::kNotSimple;
  }
  request_.version_minor = p[8] == '0' ? 0 : 1;
  request_.method = method;
  request_.target = std::string_view(target, static_cast<size_t>(p - target));
  request_.path = std::string_view(target, static_cast<size_t>(path_end - target));
  if (path_end != p) request_.query = std::string_view(path_end + 1, static_cast<size_t>(p - path_end - 1));

  // field-line = field-name ":" OWS field-value OWS CRLF, up to the empty line.
  for (p = lf + 1;; p = lf + 1) {
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') break;
    lf = FindLineFeed(begin, p, end);
    if (lf == nullptr || lf == p || lf[-1] != '\r' || header_count_ >= limits_.max_headers) {
      ClearHead();
      return FastResult::kNotSimple;
    }
    const char* const name = p;
    p = SkipClass(p, http_chars::kTables.tchar);
    if (p == name || *p != ':') {
      ClearHead();
      return FastResult::kNotSimple;
    }
    const std::string_view field_name(name, static_cast<size_t>(p - name));
    ++p;
    while (IsOws(*p)) ++p;
    const char* const value = p;
    if (field_name.size() == 4 && FieldNameIs(field_name, "host")) {
      // A Host of reg-name [":" port] is read and checked in one scan; any other (an IP
      // literal, %XX, odd bytes) goes to AddField's full check.
      p = SkipRegNameChars(begin, p, lf + 1);
      if (p != value && *p == ':') {
        ++p;
        while (IsDigit(*p)) ++p;
      }
      const char* host_end = p;
      while (IsOws(*p)) ++p;
      if (host_end != value && p == lf - 1) {
        request_.host = std::string_view(value, static_cast<size_t>(host_end - value));
        AppendHeader(field_name, request_.host);
        ++host_count_;
        continue;
      }
      p = value;
    }
    p = SkipFieldValueChars(begin, p, lf + 1);
    if (p != lf - 1) {  // a byte no field value may hold (a bare CR, NUL, ...)
      ClearHead();
      return FastResult::kNotSimple;
    }
    while (p > value && IsOws(p[-1])) --p;
    if (!AddField(field_name, std::string_view(value, static_cast<size_t>(p - value)))) {
      return FastResult::kError;
    }
  }
  head_end_ = static_cast<size_t>(p + 2 - begin);
  return FinishHead() ? FastResult::kComplete : FastResult::kError;
}

bool HttpParser::CheckPartialRequestLine(std::string_view input) {
  // Reject garbage (binary, TLS hellos) as soon as the method cannot be a token, rather than
  // waiting for a line end or the size limit.
  if (method_checked_ == kMethodDone) return true;
  size_t i = std::max(method_checked_, start_);
  for (; i < input.size(); ++i) {
    const char c = input[i];
    if (c == ' ') {
      if (i == start_) {
        Fail(400, "request line starts with whitespace");
        return false;
      }
      method_checked_ = kMethodDone;
      return true;
    }
    if (!IsTchar(c)) {
      Fail(400, "invalid character in method");
      return false;
    }
  }
  method_checked_ = i;
  return true;
}

HttpParser::Result HttpParser::ParseHead(std::string_view input) {
  const char* data = input.data();
  const size_t size = input.size();
  if (!request_line_done_ && line_start_ == start_) {
    // RFC 9112 §2.2: ignore empty lines received before the request line.
    while (start_ < size) {
      if (data[start_] == '\n') {
        ++start_;
      } else if (data[start_] == '\r' && start_ + 1 < size && data[start_ + 1] == '\n') {
        start_ += 2;
      } else {
        break;
      }
    }
    line_start_ = scan_ = start_;
    if (start_ >= limits_.max_head_bytes) return Fail(431, "too many empty lines before request");
    if (start_ == size || (data[start_] == '\r' && start_ + 1 == size)) return Result::kNeedMore;
  }
  for (;;) {
    const void* lf = std::memchr(data + scan_, '\n', size - scan_);
    if (lf == nullptr) {
      scan_ = size;
      // The head would need at least one more byte, so reaching the limit here means passing it.
      if (size >= limits_.max_head_bytes) return Fail(431, "request header section too large");
      if (!request_line_done_ && !CheckPartialRequestLine(input)) return Result::kError;
      return Result::kNeedMore;
    }
    const size_t nl = static_cast<size_t>(static_cast<const char*>(lf) - data);
    if (nl + 1 > limits_.max_head_bytes) return Fail(431, "request header section too large");
    size_t end = nl;
    if (end > line_start_ && data[end - 1] == '\r') --end;
    const std::string_view line(data + line_start_, end - line_start_);
    line_start_ = scan_ = nl + 1;
    if (!request_line_done_) {
      if (!ParseRequestLine(line)) return Result::kError;
      request_line_done_ = true;
      continue;
    }
    if (line.empty()) {
      head_end_ = nl + 1;
      return FinishHead() ? Result::kComplete : Result::kError;
    }
    if (!ParseHeaderLine(line)) return Result::kError;
  }
}

bool HttpParser::ParseRequestLine(std::string_view line) {
  // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) {
    Fail(400, "malformed request line");
    return false;
  }
  const std::string_view method = line.substr(0, sp1);
  if (!IsToken(method)) {
    Fail(400, "invalid character in method");
    return false;
  }
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) {
    Fail(400, "malformed request line");
    return false;
  }
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  for (char c : target) {
    if (!IsTargetChar(c)) {
      Fail(400, "invalid character in request target");
      return false;
    }
  }
  const std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[5] < '0' ||
      version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
    Fail(400, "malformed HTTP version");
    return false;
  }
  if (version[5] != '1') {
    Fail(505, "unsupported HTTP major version");
    return false;
  }
  // HTTP/1.x with x > 1 is treated as the highest minor version implemented (RFC 9110 §6.2).
  request_.version_minor = version[7] == '0' ? 0 : 1;
  request_.method = method;
  request_.target = target;

  // Path and query of each request-target form (RFC 9112 §3.2). The method decides the forms
  // it may use: authority-form is for CONNECT only, asterisk-form for OPTIONS only (§3.2.3,
  // §3.2.4), and a CONNECT target is always authority-form (RFC 9110 §9.3.6).
  if (method == "CONNECT") {
    if (!IsAuthorityForm(target)) {
      Fail(400, "CONNECT target is not host:port");
      return false;
    }
    request_.path = target;  // no path to route on
    return true;
  }
  if (target == "*") {
    if (method != "OPTIONS") {
      Fail(400, "asterisk-form target outside OPTIONS");
      return false;
    }
    request_.path = target;
    return true;
  }
  std::string_view rest = target;
  if (target[0] != '/') {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    const size_t authority_begin = SchemeAndSlashesLength(target);
    if (authority_begin == 0) {
      Fail(400, "request target fits no form");
      return false;
    }
    const size_t path_begin = target.find_first_of("/?", authority_begin);
    if (path_begin == std::string_view::npos) {
      request_.path = "/";
      return true;
    }
    rest = target.substr(path_begin);
    if (rest[0] == '?') {
      request_.path = "/";
      request_.query = rest.substr(1);
      return true;
    }
  }
  const size_t question = rest.find('?');
  request_.path = rest.substr(0, question);
  if (question != std::string_view::npos) request_.query = rest.substr(question + 1);
  return true;
}

bool HttpParser::ParseHeaderLine(std::string_view line) {
  if (IsOws(line[0])) {
    // obs-fold, or whitespace between the start line and the first field (RFC 9112 §2.2, §5.2).
    Fail(400, "line folding or leading whitespace in header section");
    return false;
  }
  if (header_count_ >= limits_.max_headers) {
    Fail(431, "too many header fields");
    return false;
  }
  std::string_view name;
  std::string_view value;
  if (!SplitFieldLine(line, &name, &value)) {
    Fail(400, "malformed header field");
    return false;
  }
  return AddField(name, value);
}

bool HttpParser::AddField(std::string_view name, std::string_view value) {
  AppendHeader(name, value);

  switch (name.size()) {
    case 4:
      if (FieldNameIs(name, "host")) {
        ++host_count_;
        request_.host = value;
        // Empty is what a client sends for a target without an authority (RFC 9110 §7.2).
        if (!value.empty() && !IsHostAndPort(value)) {
          Fail(400, "invalid Host");
          return false;
        }
      }
      break;
    case 6:
      if (FieldNameIs(name, "expect") && EqualsIgnoreCaseAscii(value, "100-continue")) {
        request_.expect_continue = true;
      }
      break;
    case 10:
      if (FieldNameIs(name, "connection")) {
        size_t start = 0;
        while (start <= value.size()) {
          size_t comma = value.find(',', start);
          if (comma == std::string_view::npos) comma = value.size();
          const std::string_view option = TrimOws(value.substr(start, comma - start));
          if (EqualsIgnoreCaseAscii(option, "close")) connection_close_ = true;
          if (EqualsIgnoreCaseAscii(option, "keep-alive")) connection_keep_alive_ = true;
          start = comma + 1;
        }
      }
      break;
    case 14:
      if (FieldNameIs(name, "content-length")) {
        const int64_t length = ParseContentLength(value);
        if (length < 0 || (content_length_seen_ && length != request_.content_length)) {
          Fail(400, "invalid Content-Length");
          return false;
        }
        content_length_seen_ = true;
        request_.content_length = length;
      }
      break;
    case 17:
      if (FieldNameIs(name, "transfer-encoding")) {
        transfer_encoding_seen_ = true;
        size_t start = 0;
        while (start <= value.size()) {
          size_t comma = value.find(',', start);
          if (comma == std::string_view::npos) comma = value.size();
          const std::string_view coding = TrimOws(value.substr(start, comma - start));
          start = comma + 1;
          if (coding.empty()) continue;  // empty list elements are allowed (RFC 9110 §5.6.1)
          const size_t parameters = coding.find(';');
          const std::string_view coding_name = TrimOws(coding.substr(0, parameters));
          if (te_last_chunked_) te_chunked_not_last_ = true;
          te_last_chunked_ = EqualsIgnoreCaseAscii(coding_name, "chunked");
          // chunked defines no parameters (RFC 9112 §7), so "chunked;q=1" is a coding this
          // parser does not know: 501 (§6.1), never a body read as if it were plain chunked.
          if (!te_last_chunked_ || parameters != std::string_view::npos) te_unknown_ = true;
        }
      }
      break;
    default:
      break;
  }
  return true;
}

bool HttpParser::FinishHead() {
  if (host_count_ > 1) {
    Fail(400, "more than one Host field");
    return false;
  }
  if (host_count_ == 0 && request_.version_minor == 1) {
    Fail(400, "HTTP/1.1 request without Host");
    return false;
  }
  if (transfer_encoding_seen_) {
    // RFC 9112 §6.1 and §6.3: framing that cannot be trusted is rejected outright, which also
    // closes the door on request smuggling through disagreeing length fields.
    if (request_.version_minor == 0) {
      Fail(400, "Transfer-Encoding in an HTTP/1.0 request");
      return false;
    }
    if (content_length_seen_) {
      Fail(400, "both Transfer-Encoding and Content-Length");
      return false;
    }
    if (te_chunked_not_last_ || !te_last_chunked_) {
      Fail(400, "chunked is not the final transfer coding");
      return false;
    }
    if (te_unknown_) {
      Fail(501, "unsupported transfer coding");
      return false;
    }
    request_.chunked = true;
  } else if (content_length_seen_ &&
             static_cast<uint64_t>(request_.content_length) > limits_.max_body_bytes) {
    Fail(413, "Content-Length over the body limit");
    return false;
  }
  request_.keep_alive = request_.version_minor == 1 ? !connection_close_
                                                   : connection_keep_alive_ && !connection_close_;
  request_.headers = std::span<const HttpHeader>(headers_.data(), header_count_);
  pos_ = head_end_;
  if (request_.chunked) {
    phase_ = Phase::kChunkSize;
  } else if (request_.content_length > 0) {
    phase_ = Phase::kBody;
  } else {
    consumed_ = head_end_;
    phase_ = Phase::kDone;
  }
  return true;
}

HttpParser::Result HttpParser::ParseChunked(std::string_view input) {
  // chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1)
  const char* data = input.data();
  const size_t size = input.size();
  for (;;) {
    switch (phase_) {
      case Phase::kChunkSize: {
        const void* lf = std::memchr(data + pos_, '\n', size - pos_);
        if (lf == nullptr) {
          if (size - pos_ > limits_.max_chunk_line_bytes) return Fail(400, "chunk size line too long");
          return Result::kNeedMore;
        }
        const size_t nl = static_cast<size_t>(static_cast<const char*>(lf) - data);
        if (nl + 1 - pos_ > limits_.max_chunk_line_bytes) return Fail(400, "chunk size line too long");
        framing_bytes_ += nl + 1 - pos_;
        if (framing_bytes_ > limits_.max_chunk_framing_bytes) {
          return Fail(413, "chunk framing over its limit");
        }
        size_t end = nl;
        if (end > pos_ && data[end - 1] == '\r') --end;
        const std::string_view line(data + pos_, end - pos_);
        size_t i = 0;
        uint64_t chunk_size = 0;
        for (; i < line.size() && HexValue(line[i]) >= 0; ++i) {
          if (chunk_size > (std::numeric_limits<uint64_t>::max() >> 4)) {
            return Fail(413, "chunked body over the body limit");
          }
          chunk_size = chunk_size * 16 + static_cast<uint64_t>(HexValue(line[i]));
          if (chunk_size > limits_.max_body_bytes) return Fail(413, "chunked body over the body limit");
        }
        if (i == 0) return Fail(400, "invalid chunk size");
        if (!ValidChunkExtensions(line.substr(i))) return Fail(400, "invalid chunk extension");
        if (chunked_body_.size() + chunk_size > limits_.max_body_bytes) {
          return Fail(413, "chunked body over the body limit");
        }
        pos_ = nl + 1;
        if (chunk_size == 0) {
          trailer_start_ = pos_;
          phase_ = Phase::kTrailers;
        } else {
          chunk_remaining_ = chunk_size;
          phase_ = Phase::kChunkData;
        }
        break;
      }
      case Phase::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(size - pos_, chunk_remaining_));
        chunked_body_.append(data + pos_, take);
        pos_ += take;
        chunk_remaining_ -= take;
        if (chunk_remaining_ > 0) return Result::kNeedMore;
        phase_ = Phase::kChunkDataEnd;
        break;
      }
      case Phase::kChunkDataEnd: {
        if (pos_ >= size) return Result::kNeedMore;
        if (data[pos_] == '\r') {
          if (pos_ + 1 >= size) return Result::kNeedMore;
          if (data[pos_ + 1] != '\n') return Fail(400, "chunk data not followed by CRLF");
          pos_ += 2;
          framing_bytes_ += 2;
        } else if (data[pos_] == '\n') {
          pos_ += 1;
          framing_bytes_ += 1;
        } else {
          return Fail(400, "chunk data not followed by CRLF");
        }
        phase_ = Phase::kChunkSize;
        break;
      }
      case Phase::kTrailers: {
        const void* lf = std::memchr(data + pos_, '\n', size - pos_);
        if (lf == nullptr) {
          if (size - trailer_start_ >= limits_.max_head_bytes) {
            return Fail(431, "trailer section too large");
          }
          return Result::kNeedMore;
        }
        const size_t nl = static_cast<size_t>(static_cast<const char*>(lf) - data);
        if (nl + 1 - trailer_start_ > limits_.max_head_bytes) {
          return Fail(431, "trailer section too large");
        }
        framing_bytes_ += nl + 1 - pos_;
        if (framing_bytes_ > limits_.max_chunk_framing_bytes) {
          return Fail(413, "chunk framing over its limit");
        }
        size_t end = nl;
        if (end > pos_ && data[end - 1] == '\r') --end;
        const std::string_view line(data + pos_, end - pos_);
        pos_ = nl + 1;
        if (line.empty()) {
          request_.body = chunked_body_;
          consumed_ = pos_;
          phase_ = Phase::kDone;
          return Result::kComplete;
        }
        // Trailer fields are checked like header fields and then discarded (RFC 9110 §6.5.1
        // allows it; nothing here acts on them).
        std::string_view name;
        std::string_view value;
        if (IsOws(line[0]) || !SplitFieldLine(line, &name, &value)) {
          return Fail(400, "malformed trailer field");
        }
        break;
      }
      default:
        return Result::kError;
    }
  }
}

}  // namespace percore
