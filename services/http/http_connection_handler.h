#pragma once

#include <memory>

#include "core/buffer.h"
#include "core/free_list.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/http/http_options.h"
#include "services/http/http_parser.h"
#include "services/http/http_response.h"
#include "services/http/router.h"

namespace percore {

// What a connection needs only while a request is in progress: the parser (with the request it
// fills), the response a synchronous route writes, and the bookkeeping of the header timeout
// and of "100 Continue". A connection takes one when bytes of a request arrive and gives it
// back to its loop once it has answered and no byte of a further request is left in its input,
// so an idle connection holds none, and the next request on the loop reuses the slots and
// string capacity an earlier one grew.
struct HttpRequestState {
  explicit HttpRequestState(const HttpOptions& options);
  // Out of line: so that what hands states around (FreeList::Give, which frees those it does
  // not keep) stays small enough to inline.
  ~HttpRequestState();

  // Ready for the next request of the same connection (the parser and the flags; the response
  // is blank already: it is reset after each use).
  void NextRequest() {
    parser.Reset();
    in_request = false;
    continue_sent = false;
  }

  HttpParser parser;
  HttpResponse response;
  // The route of the last request this state served: the next one, on whichever connection of
  // the loop, is likely the same (hints are the router's, so any connection may use one).
  Router::Hint route_hint;
  RequestStart start;
  bool in_request = false;      // some bytes of the current request have arrived
  bool deadline_armed = false;  // the header timeout is set on the connection
  bool continue_sent = false;   // "100 Continue" already sent for the current request
};

// One loop's share of the HTTP service: the options every connection reads, and the request
// states that connections of this loop gave back. Touched by the loop's thread only.
struct HttpLoopState {
  HttpLoopState(const HttpOptions& options, const Sharded<HttpLoopState>& every) : options(options), every(every) {}

  const HttpOptions& options;
  // Every loop's state: a connection that moves to another loop takes that loop's from here.
  const Sharded<HttpLoopState>& every;
  FreeList<HttpRequestState> request_states;
};

// The per-connection half of the HTTP service: parses requests from the input as they complete
// (pipelined ones included, answered in order), routes them, and appends each response to the
// connection's output. Runs on the connection's loop only. While no request is in progress it
// holds no request state (see HttpRequestState), only what names the loop and the connection;
// requests to synchronous routes do not allocate once the loop has states to hand out.
//
// An asynchronous route that does not answer before it returns pauses the connection: nothing
// more is parsed until its HttpResponder answers, and the answer (posted to this loop, as a
// callback of the connection) queues the response and resumes reading. The responder carries
// what framing the answer needs, so the connection waits without a request state unless
// pipelined bytes are left in its input.
class HttpConnectionHandler final : public Handler {
 public:
  // `loop` is the connection's loop's share of the service, which outlives every connection.
  explicit HttpConnectionHandler(HttpLoopState& loop);
  // Gives a request state still held (a connection closed mid-request) back to the loop.
  ~HttpConnectionHandler() override;

  Action OnData(Connection& conn, Buffer& input) override;
  // The header timeout passed: answers 408 and closes.
  Action OnDeadline(Connection& conn) override;
  // Between requests (no request state held) it moves; in the middle of one it waits.
  MigrationVote CanMigrate(Connection& conn) override;
  // Takes the new loop's state; the handle for asynchronous answers is made anew.
  void OnMigrated(Connection& conn) override;

 private:
  enum class Outcome : uint8_t { kKeepOpen, kClose, kDeferred };

  // Routes and answers the complete request in `state` (or starts an asynchronous route).
  Outcome Respond(Connection& conn, HttpRequestState& state);
  Outcome RespondLater(Connection& conn, const HttpRequestState& state, const HttpAsyncHandlerFn& route);
  // Answers a request the parser rejected (or that timed out) and closes after writing; `head`
  // leaves the body out (the request was a HEAD).
  Action Reject(Connection& conn, int status, bool head, CloseReason reason);
  void SetHeaderDeadline(Connection& conn);
  void ClearHeaderDeadline(Connection& conn);
  // Hands the request state to the loop for its next request. No request may be in progress
  // (the parser is reset, the response blank) and the header timeout must not be armed.
  void GiveBackState();
  // GiveBackState for a state in any condition: what is left of a request is dropped.
  void AbandonState();

  HttpLoopState* loop_;  // the connection's loop's
  std::unique_ptr<HttpRequestState> state_;  // null while no request is in progress
  // Names this connection to the answers of asynchronous routes: they hold it weakly, so one
  // that comes after the connection (and with it this handler) is gone finds nothing.
  // Made on the first asynchronous request.
  std::shared_ptr<const ConnectionHandle> self_;
};

}  // namespace percore
