#pragma once

// HTTP/1.1 requests (and the one response) that the socket-level tests send and expect again
// and again, spelled once. A test whose point is the exact bytes (a parser case, a malformed
// request) writes them out itself.

#include <string>
#include <string_view>

namespace percore::test {

// Every request here names this host.
inline constexpr std::string_view kHttpHost = "test";

inline constexpr std::string_view kHttpGetPlaintext = "GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n";
inline constexpr std::string_view kHttpGetJson = "GET /json HTTP/1.1\r\nHost: test\r\n\r\n";
inline constexpr std::string_view kHttpGetIndex = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
// Ends the connection after its answer.
inline constexpr std::string_view kHttpGetPlaintextThenClose =
    "GET /plaintext HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

// A request without a body: the request line, Host, `fields` (whole lines, each ending in CRLF),
// and the blank line.
inline std::string HttpRequestText(std::string_view method, std::string_view target,
                                   std::string_view fields = {}) {
  std::string out;
  out.reserve(method.size() + target.size() + fields.size() + 32);
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(kHttpHost);
  out.append("\r\n").append(fields).append("\r\n");
  return out;
}

inline std::string HttpGet(std::string_view target, std::string_view fields = {}) {
  return HttpRequestText("GET", target, fields);
}

// A request with `body`, framed by Content-Length.
inline std::string HttpPost(std::string_view target, std::string_view body, std::string_view fields = {}) {
  std::string head_fields = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  head_fields.append(fields);
  return HttpRequestText("POST", target, head_fields).append(body);
}

// The HTTP service's answer to kHttpGetPlaintext with its Date value (always 29 characters)
// masked: compare MaskHttpDate(received) with it.
inline constexpr std::string_view kHttpPlaintextResponseMasked =
    "HTTP/1.1 200 OK\r\n"
    "Server: percore\r\n"
    "Date: ?????????????????????????????\r\n"
    "Content-Length: 13\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello, World!";

// `response` with the value of its first Date field replaced by as many '?' (unchanged if it
// has none), so that responses can be compared byte for byte.
inline std::string MaskHttpDate(std::string response) {
  constexpr std::string_view kField = "\r\nDate: ";
  const size_t at = response.find(kField);
  if (at == std::string::npos) return response;
  const size_t begin = at + kField.size();
  const size_t end = response.find("\r\n", begin);
  if (end == std::string::npos) return response;
  response.replace(begin, end - begin, end - begin, '?');
  return response;
}

}  // namespace percore::test
