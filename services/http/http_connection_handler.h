#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "reactor/handler.h"
#include "services/http/http_options.h"
#include "services/http/http_parser.h"
#include "services/http/http_response.h"

namespace percore {

// The per-connection half of the HTTP service: parses requests from the input as they complete
// (pipelined ones included, answered in order), routes them, and appends each response to the
// connection's output. Runs on the connection's loop only. The parser and the response object
// are reused for every request, so a steady stream of requests does not allocate.
class HttpConnectionHandler final : public Handler {
 public:
  // `options` (router included) belongs to the service and outlives every connection.
  explicit HttpConnectionHandler(const HttpOptions& options);

  Action OnData(Connection& conn, Buffer& input) override;
  // The header timeout passed: answers 408 and closes.
  Action OnDeadline(Connection& conn) override;

 private:
  // Routes and answers a complete request. Returns whether the connection stays open.
  bool Respond(Connection& conn, const HttpRequest& request);
  // Answers a request the parser rejected (or that timed out) and closes after writing; `head`
  // leaves the body out (the request was a HEAD).
  Action Reject(Connection& conn, int status, bool head, CloseReason reason);
  void Record(Connection& conn, int status);
  void SetHeaderDeadline(Connection& conn);
  void ClearHeaderDeadline(Connection& conn);

  const HttpOptions& options_;
  HttpParser parser_;
  HttpResponse response_;
  int64_t request_start_ns_ = 0;
  bool in_request_ = false;       // some bytes of the current request have arrived
  bool deadline_armed_ = false;
  bool continue_sent_ = false;    // "100 Continue" already sent for the current request
};

}  // namespace percore
