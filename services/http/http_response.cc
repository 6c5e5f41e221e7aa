#include "services/http/http_response.h"

#include <array>
#include <cstring>

#include "services/http/http_chars.h"
#include "services/http/http_date.h"

namespace percore {
namespace {

// The status line and the Server field of the most common answer, written as one block.
constexpr std::string_view kOkHead = "HTTP/1.1 200 OK\r\nServer: percore\r\n";
constexpr std::string_view kServerField = "Server: percore\r\n";
constexpr std::string_view kDatePrefix = "Date: ";
constexpr std::string_view kContentLengthPrefix = "Content-Length: ";
constexpr std::string_view kCloseField = "Connection: close\r\n";
constexpr std::string_view kKeepAliveField = "Connection: keep-alive\r\n";
constexpr std::string_view kCrlf = "\r\n";

char* Put(char* dst, std::string_view s) {
  if (s.empty()) return dst;  // an empty view may hold nullptr, which memcpy must not get
  std::memcpy(dst, s.data(), s.size());
  return dst + s.size();
}

// Digits of `n` in decimal; bodies are mostly short, so the small lengths are found first.
inline size_t DecimalLength(uint64_t n) {
  if (n < 10) return 1;
  if (n < 100) return 2;
  if (n < 1000) return 3;
  size_t digits = 4;
  for (n /= 10000; n != 0; n /= 10) ++digits;
  return digits;
}

// "00" to "99": two digits per division.
constexpr std::array<char, 200> MakeDigitPairs() {
  std::array<char, 200> pairs{};
  for (int i = 0; i < 100; ++i) {
    pairs[2 * i] = static_cast<char>('0' + i / 10);
    pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return pairs;
}
constexpr std::array<char, 200> kDigitPairs = MakeDigitPairs();

// Writes the `digits` decimal digits of `n` at `dst`; returns the end.
inline char* PutDecimal(char* dst, uint64_t n, size_t digits) {
  char* const end = dst + digits;
  char* p = end;
  while (n >= 100) {
    p -= 2;
    std::memcpy(p, &kDigitPairs[2 * (n % 100)], 2);
    n /= 100;
  }
  if (n >= 10) {
    p -= 2;
    std::memcpy(p, &kDigitPairs[2 * n], 2);
  } else {
    *--p = static_cast<char>('0' + n);
  }
  return end;
}

// The answer most requests get: 200, a Date, no Connection field, a body. Its fixed bytes are
// copied as blocks whose sizes the compiler knows.
void AppendOk(const HttpResponse& response, std::string_view date, Buffer& out) {
  constexpr std::string_view kHead = "HTTP/1.1 200 OK\r\nServer: percore\r\nDate: ";
  constexpr std::string_view kLength = "\r\nContent-Length: ";
  const std::string_view body = response.body();
  const std::string_view headers = response.headers();
  const size_t digits = DecimalLength(body.size());
  const size_t total = kHead.size() + kHttpDateLength + kLength.size() + digits + 2 + headers.size() + 2 + body.size();
  char* const begin = out.Reserve(total);
  char* p = begin;
  std::memcpy(p, kHead.data(), kHead.size());
  p += kHead.size();
  std::memcpy(p, date.data(), kHttpDateLength);
  p += kHttpDateLength;
  std::memcpy(p, kLength.data(), kLength.size());
  p = PutDecimal(p + kLength.size(), body.size(), digits);
  *p++ = '\r';
  *p++ = '\n';
  p = Put(p, headers);
  *p++ = '\r';
  *p++ = '\n';
  p = Put(p, body);
  out.Commit(static_cast<size_t>(p - begin));
}

bool IsValidField(std::string_view name, std::string_view value) {
  if (!http_chars::IsToken(name)) return false;
  for (char c : value) {
    if (!http_chars::IsFieldValueChar(c)) return false;
  }
  return true;
}

}  // namespace

PreparedHeader::PreparedHeader(std::string_view name, std::string_view value) {
  if (!IsValidField(name, value)) return;
  line_.reserve(name.size() + value.size() + 4);
  line_.append(name.data(), name.size()).append(": ").append(value.data(), value.size()).append("\r\n");
}

void HttpResponse::Reset() {
  status_ = 200;
  headers_.clear();
  body_.clear();
  close_connection_ = false;
}

bool HttpResponse::AddHeader(std::string_view name, std::string_view value) {
  if (!IsValidField(name, value)) return false;
  // One resize and direct writes: cheaper than four appends, each checking capacity.
  const size_t old_size = headers_.size();
  headers_.resize(old_size + name.size() + value.size() + 4);
  char* p = headers_.data() + old_size;
  p = Put(p, name);
  *p++ = ':';
  *p++ = ' ';
  p = Put(p, value);
  *p++ = '\r';
  *p = '\n';
  return true;
}

std::string_view HttpReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

void AppendHttpResponse(const HttpResponse& response, const ResponseFraming& framing, Buffer& out) {
  const int status = response.status();
  if (status == 200 && framing.date.size() == kHttpDateLength && framing.connection == ConnectionField::kNone &&
      !framing.head) {
    AppendOk(response, framing.date, out);
    return;
  }
  // RFC 9110 §8.6: no Content-Length in 1xx and 204; a 304 would have to state the size of a
  // representation it does not carry, so it is left out there too. These carry no body either.
  const bool bodiless_status = status < 200 || status == 204 || status == 304;
  const bool send_body = !framing.head && !bodiless_status;
  const std::string_view body = response.body();
  const std::string_view headers = response.headers();
  const std::string_view reason = status == 200 ? std::string_view() : HttpReasonPhrase(status);
  const size_t length_digits = DecimalLength(body.size());
  std::string_view connection;
  if (framing.connection == ConnectionField::kClose) connection = kCloseField;
  if (framing.connection == ConnectionField::kKeepAlive) connection = kKeepAliveField;

  // "HTTP/1.1 200 " + reason + CRLF + Server field
  size_t total = status == 200 ? kOkHead.size() : 13 + reason.size() + 2 + kServerField.size();
  if (!framing.date.empty()) total += kDatePrefix.size() + framing.date.size() + 2;
  if (!bodiless_status) total += kContentLengthPrefix.size() + length_digits + 2;
  total += headers.size() + connection.size() + 2;
  if (send_body) total += body.size();

  char* const begin = out.Reserve(total);
  char* p = begin;
  if (status == 200) {
    p = Put(p, kOkHead);
  } else {
    p = Put(p, "HTTP/1.1 ");
    *p++ = static_cast<char>('0' + status / 100);
    *p++ = static_cast<char>('0' + status / 10 % 10);
    *p++ = static_cast<char>('0' + status % 10);
    *p++ = ' ';
    p = Put(p, reason);
    p = Put(p, kCrlf);
    p = Put(p, kServerField);
  }
  if (framing.date.size() == kHttpDateLength) {
    // The cached date: a copy of known size, which the compiler writes without a call.
    p = Put(p, kDatePrefix);
    std::memcpy(p, framing.date.data(), kHttpDateLength);
    p += kHttpDateLength;
    p = Put(p, kCrlf);
  } else if (!framing.date.empty()) {
    p = Put(p, kDatePrefix);
    p = Put(p, framing.date);
    p = Put(p, kCrlf);
  }
  if (!bodiless_status) {
    p = Put(p, kContentLengthPrefix);
    p = PutDecimal(p, body.size(), length_digits);
    p = Put(p, kCrlf);
  }
  p = Put(p, headers);
  p = Put(p, connection);
  p = Put(p, kCrlf);
  if (send_body) p = Put(p, body);
  out.Commit(static_cast<size_t>(p - begin));
}

void SetErrorResponse(int status, HttpResponse& response) {
  response.Reset();
  response.set_status(status);
  response.set_content_type("text/plain; charset=utf-8");
  std::string& body = *response.mutable_body();
  const std::string_view reason = HttpReasonPhrase(response.status());
  body.assign(reason.data(), reason.size());
  body.push_back('\n');
}

}  // namespace percore
