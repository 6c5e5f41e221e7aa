#include "services/http/http_connection_handler.h"

#include <string_view>

#include "core/clock.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "services/http/http_date.h"

namespace percore {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

HttpParserLimits ParserLimits(const HttpOptions& options) {
  HttpParserLimits limits;
  limits.max_head_bytes = options.max_head_bytes;
  limits.max_body_bytes = options.max_body_bytes;
  limits.max_headers = options.max_headers;
  return limits;
}

}  // namespace

HttpConnectionHandler::HttpConnectionHandler(const HttpOptions& options)
    : options_(options), parser_(ParserLimits(options)) {}

Action HttpConnectionHandler::OnData(Connection& conn, Buffer& input) {
  const size_t high_water = conn.loop().connection_options().high_water;
  for (;;) {
    if (input.empty()) {
      ClearHeaderDeadline(conn);
      return Action::Continue();
    }
    if (!in_request_) {
      in_request_ = true;
      request_start_ns_ = conn.loop().now_ns();
    }
    switch (parser_.Parse(input.view())) {
      case HttpParser::Result::kNeedMore:
        if (!parser_.head_complete()) {
          SetHeaderDeadline(conn);
        } else {
          ClearHeaderDeadline(conn);
          const HttpRequest& request = parser_.request();
          // RFC 9110 §10.1.1: tell a client waiting to send its body that it may.
          if (request.expect_continue && request.version_minor == 1 && !continue_sent_) {
            continue_sent_ = true;
            conn.Send(kContinue);
          }
        }
        return Action::Continue();
      case HttpParser::Result::kError: {
        const int status = parser_.error_status();
        // The request line (and so the method) is known only if the error came after it.
        return Reject(conn, status, parser_.request().method == "HEAD",
                      status == 413 || status == 431 ? CloseReason::kLimitExceeded
                                                     : CloseReason::kProtocolError);
      }
      case HttpParser::Result::kComplete:
        break;
    }
    const bool keep_alive = Respond(conn, parser_.request());
    input.Consume(parser_.consumed());
    parser_.Reset();
    in_request_ = false;
    continue_sent_ = false;
    if (!keep_alive) {
      ClearHeaderDeadline(conn);
      return Action::CloseAfterWrite(CloseReason::kServiceClose);
    }
    // A client pipelining faster than it reads: leave the rest of its requests in the input
    // until the output drains (the framework calls again when reading resumes).
    if (conn.queued_output() >= high_water) {
      ClearHeaderDeadline(conn);
      return Action::Continue();
    }
  }
}

bool HttpConnectionHandler::Respond(Connection& conn, const HttpRequest& request) {
  response_.Reset();
  const Router::Match match = options_.routes.Find(request.method, request.path);
  if (match.handler != nullptr) {
    (*match.handler)(request, response_);
  } else {
    SetErrorResponse(match.status, response_);
    if (match.status == 405) response_.AddHeader("Allow", match.allow);
  }
  const bool keep_alive = request.keep_alive && !response_.close_connection();
  ResponseFraming framing;
  framing.head = request.method == "HEAD";
  framing.date = CachedHttpDate(conn.loop().now_ns());
  if (!keep_alive) {
    framing.connection = ConnectionField::kClose;
  } else if (request.version_minor == 0) {
    framing.connection = ConnectionField::kKeepAlive;  // HTTP/1.0 persistence must be stated
  }
  AppendHttpResponse(response_, framing, conn.output().bytes());
  Record(conn, response_.status());
  return keep_alive;
}

Action HttpConnectionHandler::Reject(Connection& conn, int status, bool head, CloseReason reason) {
  ClearHeaderDeadline(conn);
  SetErrorResponse(status, response_);
  ResponseFraming framing;
  framing.head = head;
  framing.connection = ConnectionField::kClose;
  framing.date = CachedHttpDate(conn.loop().now_ns());
  AppendHttpResponse(response_, framing, conn.output().bytes());
  Record(conn, status);
  in_request_ = false;
  return Action::CloseAfterWrite(reason);
}

Action HttpConnectionHandler::OnDeadline(Connection& conn) {
  deadline_armed_ = false;
  if (!in_request_ || parser_.head_complete()) return Action::Continue();
  // Not the parser's request views: the input may have moved since they were taken.
  return Reject(conn, 408, /*head=*/false, CloseReason::kReadTimeout);
}

void HttpConnectionHandler::Record(Connection& conn, int status) {
  conn.RecordRequest(MonotonicNanos() - request_start_ns_, status >= 400);
}

void HttpConnectionHandler::SetHeaderDeadline(Connection& conn) {
  // Armed once per request at its first partial read, never pushed back by later bytes: a
  // client trickling its header section cannot hold the connection past the timeout.
  if (deadline_armed_ || options_.header_timeout_ns <= 0) return;
  const int64_t elapsed = conn.loop().now_ns() - request_start_ns_;
  conn.SetDeadline(elapsed < options_.header_timeout_ns ? options_.header_timeout_ns - elapsed : 1);
  deadline_armed_ = true;
}

void HttpConnectionHandler::ClearHeaderDeadline(Connection& conn) {
  if (!deadline_armed_) return;
  conn.ClearDeadline();
  deadline_armed_ = false;
}

}  // namespace percore
