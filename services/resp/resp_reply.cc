#include "services/resp/resp_reply.h"

#include <charconv>
#include <cstring>

namespace percore {
namespace {

// Writes `prefix`, the decimal `n` and CRLF: the header shape shared by ':', '$' and '*'.
void AppendNumberLine(Buffer& out, char prefix, int64_t n) {
  char* p = out.Reserve(24);
  char* start = p;
  *p++ = prefix;
  p = std::to_chars(p, start + 22, n).ptr;
  *p++ = '\r';
  *p++ = '\n';
  out.Commit(static_cast<size_t>(p - start));
}

// Writes the decimal `n` at `p` (room for 20 digits); returns its end. Lengths below 1000,
// nearly every bulk string a reply carries, are written digit by digit without a loop.
char* PutLength(char* p, size_t n) {
  if (n < 10) {
    *p = static_cast<char>('0' + n);
    return p + 1;
  }
  if (n < 100) {
    p[0] = static_cast<char>('0' + n / 10);
    p[1] = static_cast<char>('0' + n % 10);
    return p + 2;
  }
  if (n < 1000) {
    p[0] = static_cast<char>('0' + n / 100);
    p[1] = static_cast<char>('0' + n / 10 % 10);
    p[2] = static_cast<char>('0' + n % 10);
    return p + 3;
  }
  return std::to_chars(p, p + 20, static_cast<uint64_t>(n)).ptr;
}

}  // namespace

void AppendStatus(Buffer& out, std::string_view text) {
  char* p = out.Reserve(text.size() + 3);
  p[0] = '+';
  std::memcpy(p + 1, text.data(), text.size());
  p[text.size() + 1] = '\r';
  p[text.size() + 2] = '\n';
  out.Commit(text.size() + 3);
}

void AppendError(Buffer& out, std::string_view message) {
  char* p = out.Reserve(message.size() + 3);
  p[0] = '-';
  for (size_t i = 0; i < message.size(); ++i) {
    const char c = message[i];
    p[i + 1] = (c == '\r' || c == '\n') ? ' ' : c;
  }
  p[message.size() + 1] = '\r';
  p[message.size() + 2] = '\n';
  out.Commit(message.size() + 3);
}

void AppendInteger(Buffer& out, int64_t n) { AppendNumberLine(out, ':', n); }

void AppendBulk(Buffer& out, std::string_view bytes) {
  char* p = out.Reserve(bytes.size() + 26);
  char* start = p;
  *p++ = '$';
  p = PutLength(p, bytes.size());
  *p++ = '\r';
  *p++ = '\n';
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  p += bytes.size();
  *p++ = '\r';
  *p++ = '\n';
  out.Commit(static_cast<size_t>(p - start));
}

void AppendBulkHeader(Buffer& out, size_t len) {
  AppendNumberLine(out, '$', static_cast<int64_t>(len));
}

void AppendNullBulk(Buffer& out) { out.Append(kNullBulkReply); }

void AppendArrayHeader(Buffer& out, size_t n) {
  AppendNumberLine(out, '*', static_cast<int64_t>(n));
}

}  // namespace percore
