#pragma once

#include <cstdint>
#include <span>
#include <string_view>


namespace percore {

// One header field line as received: the name keeps its case, the value has its surrounding
// whitespace (OWS) removed.
struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

// A parsed HTTP/1.x request. Every view points into the connection's input (zero copy), except
// a chunked body, which the parser decodes into storage of its own. Views stay valid until the
// input is consumed or grows, and until the parser that produced them is reset: a handler reads
// them during the call that hands it the request and copies what it wants to keep.
struct HttpRequest {
  std::string_view method;  // case-sensitive token as sent: "GET", "POST", ...
  std::string_view target;  // request-target as sent (origin, absolute, authority or asterisk form)
  std::string_view path;    // the path of the target, without query: "/json"; "*" for "OPTIONS *"
  std::string_view query;   // after '?' (without it); empty when there is none
  int version_minor = 1;    // HTTP/1.<version_minor>: 0 or 1
  std::string_view host;    // the Host field value (empty if absent, allowed in HTTP/1.0)
  int64_t content_length = -1;  // -1: no Content-Length field
  bool chunked = false;         // Transfer-Encoding: chunked
  bool keep_alive = true;       // the connection persists after this exchange
  bool expect_continue = false; // Expect: 100-continue
  std::span<const HttpHeader> headers;  // in arrival order; trailer fields are not included
  std::string_view body;

  // The value of the first field named `name` (ASCII case-insensitive), or empty.
  std::string_view Header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

inline char ToLowerAscii(char c) {
  return static_cast<unsigned char>(c - 'A') < 26 ? static_cast<char>(c + ('a' - 'A')) : c;
}

// ASCII case-insensitive equality, the comparison HTTP uses for field names and tokens. Inline:
// the parser compares field names against short literals on every request.
inline bool EqualsIgnoreCaseAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

}  // namespace percore
