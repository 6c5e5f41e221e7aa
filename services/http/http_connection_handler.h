#pragma once

#include <memory>

#include "core/buffer.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "services/http/http_options.h"
#include "services/http/http_parser.h"
#include "services/http/http_response.h"
#include "services/http/router.h"

namespace percore {

// The per-connection half of the HTTP service: parses requests from the input as they complete
// (pipelined ones included, answered in order), routes them, and appends each response to the
// connection's output. Runs on the connection's loop only. The parser and the response object
// are reused for every request, so a steady stream of requests to synchronous routes does not
// allocate.
//
// An asynchronous route that does not answer before it returns pauses the connection: nothing
// more is parsed until its HttpResponder answers, and the answer (posted to this loop, as a
// callback of the connection) queues the response and resumes reading.
class HttpConnectionHandler final : public Handler {
 public:
  // `options` (router included) belongs to the service and outlives every connection.
  explicit HttpConnectionHandler(const HttpOptions& options);

  Action OnData(Connection& conn, Buffer& input) override;
  // The header timeout passed: answers 408 and closes.
  Action OnDeadline(Connection& conn) override;

 private:
  enum class Outcome : uint8_t { kKeepOpen, kClose, kDeferred };

  // Routes and answers a complete request (or starts an asynchronous route).
  Outcome Respond(Connection& conn, const HttpRequest& request);
  Outcome RespondLater(Connection& conn, const HttpRequest& request, const HttpAsyncHandlerFn& route);
  // Answers a request the parser rejected (or that timed out) and closes after writing; `head`
  // leaves the body out (the request was a HEAD).
  Action Reject(Connection& conn, int status, bool head, CloseReason reason);
  void SetHeaderDeadline(Connection& conn);
  void ClearHeaderDeadline(Connection& conn);

  const HttpOptions& options_;
  HttpParser parser_;
  HttpResponse response_;
  RequestStart request_start_;
  Router::Hint route_hint_;
  // Names this connection to the answers of asynchronous routes: they hold it weakly, so one
  // that comes after the connection (and with it this handler) is gone finds nothing.
  // Made on the first asynchronous request.
  std::shared_ptr<const ConnectionHandle> self_;
  bool in_request_ = false;       // some bytes of the current request have arrived
  bool deadline_armed_ = false;
  bool continue_sent_ = false;    // "100 Continue" already sent for the current request
};

}  // namespace percore
