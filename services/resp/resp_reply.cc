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
  p = std::to_chars(p, start + 22, static_cast<uint64_t>(bytes.size())).ptr;
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
