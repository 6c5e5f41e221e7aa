#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/buffer.h"

namespace percore {

// A header field line checked and formatted once ("Name: value\r\n"), for the fields a route
// sends with every response: adding it to a response is one copy, with no per-request check.
// Make it where the route is set up and keep it alive while the route may run.
class PreparedHeader {
 public:
  // valid() is false, and the line empty, when AddHeader would refuse the field.
  PreparedHeader(std::string_view name, std::string_view value);

  bool valid() const { return !line_.empty(); }
  std::string_view line() const { return line_; }

 private:
  std::string line_;
};

// What a route handler fills in: status, header fields and body. The server adds the framing
// fields itself (Date, Server, Content-Length, Connection), so handlers do not set those.
// The server reuses one object for many responses (of whichever connections its loop serves);
// its strings keep their capacity, so a steady stream of similar responses does not allocate.
class HttpResponse {
 public:
  // Back to "200, no fields, empty body, keep the connection".
  void Reset();

  int status() const { return status_; }
  // A three-digit code (100..999); anything else becomes 500.
  void set_status(int status) { status_ = (status >= 100 && status <= 999) ? status : 500; }

  // Adds a field line. Returns false and adds nothing when `name` is not a token or `value`
  // holds a control character (CR, LF, NUL, ...): a handler cannot split the response.
  bool AddHeader(std::string_view name, std::string_view value);
  // Adds a prepared field line: a copy, checked when `header` was made. False for an invalid one.
  bool AddHeader(const PreparedHeader& header) {
    headers_.append(header.line().data(), header.line().size());
    return header.valid();
  }
  bool set_content_type(std::string_view type) { return AddHeader("Content-Type", type); }
  // The added fields, serialized as "Name: value\r\n" lines.
  const std::string& headers() const { return headers_; }

  const std::string& body() const { return body_; }
  std::string* mutable_body() { return &body_; }
  void set_body(std::string_view body) {
    if (body.data() >= body_.data() && body.data() < body_.data() + body_.size()) {
      body_.assign(body.data(), body.size());  // a part of the body itself: assign allows overlap
      return;
    }
    body_.clear();  // then an append: cheaper than assign, which must allow for aliasing
    body_.append(body.data(), body.size());
  }

  // Close the connection once this response is written.
  bool close_connection() const { return close_connection_; }
  void set_close_connection(bool close) { close_connection_ = close; }

 private:
  int status_ = 200;
  std::string headers_;
  std::string body_;
  bool close_connection_ = false;
};

// The reason phrase of a status code ("Not Found"); empty for codes without one here.
std::string_view HttpReasonPhrase(int status);

enum class ConnectionField : uint8_t { kNone, kKeepAlive, kClose };

// How a response is framed on the wire for the request it answers.
struct ResponseFraming {
  bool head = false;  // answering HEAD: the same fields as for GET, no body (RFC 9110 §9.3.2)
  ConnectionField connection = ConnectionField::kNone;
  std::string_view date;  // the Date field value; omitted when empty
};

// Appends the whole response (status line, fields, body) to `out` with one Reserve and one
// Commit. No allocation beyond `out` growing.
void AppendHttpResponse(const HttpResponse& response, const ResponseFraming& framing, Buffer& out);

// Fills `response` with `status`, a text/plain body naming it, and nothing else.
void SetErrorResponse(int status, HttpResponse& response);

}  // namespace percore
