#include "services/http/http_connection_handler.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "services/http/http_date.h"

namespace percore {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// A response body bigger than this is not kept with a request state given back: the loop keeps
// many states, and one large answer should not stay resident in each.
constexpr size_t kMaxKeptBodyBytes = 64 * 1024;

[[gnu::noinline]] void ReleaseBodyStorage(HttpResponse& response) {
  std::string().swap(*response.mutable_body());
}

HttpParserLimits ParserLimits(const HttpOptions& options) {
  HttpParserLimits limits;
  limits.max_head_bytes = options.max_head_bytes;
  limits.max_body_bytes = options.max_body_bytes;
  limits.max_headers = options.max_headers;
  return limits;
}

bool HasHeaderTimeout(const HttpOptions& options) {
  return options.header_timeout > absl::ZeroDuration() && options.header_timeout != absl::InfiniteDuration();
}

// What framing a response needs from the request it answers, kept beyond the request's views.
struct RequestFraming {
  bool head = false;        // HEAD: the fields of GET, no body
  bool http10 = false;      // persistence must be stated
  bool keep_alive = true;   // the request lets the connection persist
};

inline RequestFraming FramingOf(const HttpRequest& request) {
  return RequestFraming{request.method == "HEAD", request.version_minor == 0, request.keep_alive};
}

// Appends `response` to the connection's output, framed for its request, and counts the request
// as answered (timed from `start`). Returns whether the connection stays open after it.
// Inlined: it is most of a synchronous request's path.
[[gnu::always_inline]] inline bool QueueResponse(Connection& conn, RequestStart start,
                                                 const RequestFraming& request,
                                                 const HttpResponse& response) {
  const bool keep_alive = request.keep_alive && !response.close_connection();
  ResponseFraming framing;
  framing.head = request.head;
  framing.date = CachedHttpDate(conn.loop().now());
  if (!keep_alive) {
    framing.connection = ConnectionField::kClose;
  } else if (request.http10) {
    framing.connection = ConnectionField::kKeepAlive;
  }
  AppendHttpResponse(response, framing, conn.output().bytes());
  conn.EndRequest(start, response.status() >= 400);
  return keep_alive;
}

// The asynchronous route whose call is running on this thread (routes do not nest: one runs
// inside its connection's OnData), and its answer if the route gave it before returning. Such
// an answer is queued at once, like a synchronous route's, without pausing the connection.
struct RouteInProgress {
  const HttpResponder::Exchange* exchange = nullptr;
  Connection* conn = nullptr;
  std::optional<HttpResponse> answer;
};

thread_local RouteInProgress route_in_progress;

// Marks a route call as in progress for its duration, an exception from the route included.
class RouteScope {
 public:
  RouteScope(const HttpResponder::Exchange* exchange, Connection& conn) {
    route_in_progress.exchange = exchange;
    route_in_progress.conn = &conn;
    route_in_progress.answer.reset();
  }
  ~RouteScope() { route_in_progress = RouteInProgress(); }
  RouteScope(const RouteScope&) = delete;
  RouteScope& operator=(const RouteScope&) = delete;
};

// One deferred answer. It names its connection by a weak token rather than a pointer: from any
// thread, an answer that comes after the connection closed finds the token expired and is
// dropped; otherwise it is posted to the connection's loop, which looks the connection up by id
// (PostToConnection) and drops it too if the connection closed in between.
class PendingExchange final : public HttpResponder::Exchange {
 public:
  PendingExchange(EventLoop& loop, std::weak_ptr<const ConnectionHandle> conn, RequestStart start,
                  RequestFraming request)
      : loop_(loop), conn_(std::move(conn)), start_(start), request_(request) {}

  EventLoop& loop() const override { return loop_; }
  Connection* connection() const override {
    return route_in_progress.exchange == this ? route_in_progress.conn : nullptr;
  }

  void Answer(HttpResponse response) override {
    if (route_in_progress.exchange == this) {
      route_in_progress.answer.emplace(std::move(response));
      return;
    }
    const std::shared_ptr<const ConnectionHandle> conn = conn_.lock();
    if (conn == nullptr) return;
    conn->loop->PostToConnection(
        conn->id, [start = start_, request = request_, response = std::move(response)](Connection& c) {
          // The connection is paused on this request, unless it began closing meanwhile (a
          // drain's deadline, an admin close): then nobody reads the answer.
          if (c.state() != ConnectionState::kPaused) return;
          if (!QueueResponse(c, start, request, response)) {
            c.Close(CloseReason::kServiceClose, CloseMode::kFlush);
          }
          c.Resume();  // reads the next request, or carries out the close
        });
  }

 private:
  EventLoop& loop_;
  const std::weak_ptr<const ConnectionHandle> conn_;
  const RequestStart start_;
  const RequestFraming request_;
};

}  // namespace

HttpRequestState::HttpRequestState(const HttpOptions& options) : parser(ParserLimits(options)) {}

HttpRequestState::~HttpRequestState() = default;

HttpConnectionHandler::HttpConnectionHandler(HttpLoopState& loop) : loop_(&loop) {}

MigrationVote HttpConnectionHandler::CanMigrate(Connection&) {
  return state_ == nullptr ? MigrationVote::kNow : MigrationVote::kLater;
}

void HttpConnectionHandler::OnMigrated(Connection&) {
  loop_ = &loop_->every.local();
  self_.reset();  // named the connection on its old loop; the next asynchronous request makes one
}

HttpConnectionHandler::~HttpConnectionHandler() {
  if (state_ != nullptr) AbandonState();
}

// Inlined: it runs for every request after which the connection is idle, where a call and its
// frame would cost as much as the work.
[[gnu::always_inline]] inline void HttpConnectionHandler::GiveBackState() {
  if (state_->response.body().capacity() > kMaxKeptBodyBytes) [[unlikely]] {
    ReleaseBodyStorage(state_->response);
  }
  loop_->request_states.Give(std::move(state_));
}

void HttpConnectionHandler::AbandonState() {
  state_->NextRequest();
  state_->response.Reset();       // a route may have thrown while filling it
  state_->deadline_armed = false;  // cleared by the caller, or gone with the connection
  GiveBackState();
}

Action HttpConnectionHandler::OnData(Connection& conn, Buffer& input) {
  if (input.empty()) {
    // A resume with nothing left to read.
    if (state_ != nullptr) {
      ClearHeaderDeadline(conn);
      if (!state_->in_request) GiveBackState();
    }
    return Action::Continue();
  }
  if (state_ == nullptr) state_ = loop_->request_states.Take(loop_->options);
  // One state for everything this call reads, pipelined requests included: it goes back once
  // the input holds nothing more.
  HttpRequestState& state = *state_;
  for (;;) {
    if (!state.in_request) {
      state.in_request = true;
      state.start = conn.BeginRequest();
    }
    switch (state.parser.Parse(input.view())) {
      case HttpParser::Result::kNeedMore:
        if (!state.parser.head_complete()) {
          SetHeaderDeadline(conn);
        } else {
          ClearHeaderDeadline(conn);
          const HttpRequest& request = state.parser.request();
          // RFC 9110 §10.1.1: tell a client waiting to send its body that it may.
          if (request.expect_continue && request.version_minor == 1 && !state.continue_sent) {
            state.continue_sent = true;
            conn.Send(kContinue);
          }
        }
        return Action::Continue();
      case HttpParser::Result::kError: {
        const int status = state.parser.error_status();
        // The request line (and so the method) is known only if the error came after it.
        return Reject(conn, status, state.parser.request().method == "HEAD",
                      status == 413 || status == 431 ? CloseReason::kLimitExceeded
                                                     : CloseReason::kProtocolError);
      }
      case HttpParser::Result::kComplete:
        break;
    }
    // The next request's header section gets a deadline of its own.
    ClearHeaderDeadline(conn);
    const Outcome outcome = Respond(conn, state);
    input.Consume(state.parser.consumed());
    state.NextRequest();
    // Nothing of another request has arrived: the connection goes idle (or waits for an
    // asynchronous answer, which needs nothing of the state) without holding it.
    const bool idle = input.empty();
    if (idle) GiveBackState();
    switch (outcome) {
      case Outcome::kKeepOpen:
        break;
      case Outcome::kClose:
        return Action::CloseAfterWrite(CloseReason::kServiceClose);
      case Outcome::kDeferred:
        // The rest of the input waits until the answer resumes the connection, so responses
        // leave in request order.
        return Action::Pause();
    }
    if (idle) return Action::Continue();
    // A client pipelining faster than it reads: leave the rest of its requests in the input
    // until the output drains (the framework calls again when reading resumes).
    if (conn.above_high_water()) return Action::Continue();
  }
}

HttpConnectionHandler::Outcome HttpConnectionHandler::Respond(Connection& conn, HttpRequestState& state) {
  const HttpRequest& request = state.parser.request();
  const Router::Match match = loop_->options.routes.Find(request.method, request.path, state.route_hint);
  if (match.async_handler != nullptr) return RespondLater(conn, state, *match.async_handler);
  HttpResponse& response = state.response;  // blank: reset after every use
  if (match.handler != nullptr) {
    (*match.handler)(request, response);
  } else {
    SetErrorResponse(match.status, response);
    if (match.status == 405) response.AddHeader("Allow", match.allow);
  }
  const bool keep_open = QueueResponse(conn, state.start, FramingOf(request), response);
  // Blank again for the next request, of this connection or (given back) another's.
  response.Reset();
  return keep_open ? Outcome::kKeepOpen : Outcome::kClose;
}

HttpConnectionHandler::Outcome HttpConnectionHandler::RespondLater(Connection& conn,
                                                                  const HttpRequestState& state,
                                                                  const HttpAsyncHandlerFn& route) {
  if (self_ == nullptr) self_ = std::make_shared<const ConnectionHandle>(conn.handle());
  const HttpRequest& request = state.parser.request();
  const RequestFraming framing = FramingOf(request);
  auto exchange = std::make_unique<PendingExchange>(conn.loop(), self_, state.start, framing);
  std::optional<HttpResponse> answer;
  {
    RouteScope scope(exchange.get(), conn);
    route(request, HttpResponder(std::move(exchange)));
    answer = std::move(route_in_progress.answer);
  }
  if (!answer.has_value()) return Outcome::kDeferred;
  return QueueResponse(conn, state.start, framing, *answer) ? Outcome::kKeepOpen : Outcome::kClose;
}

Action HttpConnectionHandler::Reject(Connection& conn, int status, bool head, CloseReason reason) {
  ClearHeaderDeadline(conn);
  HttpResponse& response = state_->response;
  SetErrorResponse(status, response);
  RequestFraming request;
  request.head = head;
  request.keep_alive = false;
  QueueResponse(conn, state_->start, request, response);
  // Nothing more is read: the state can serve another connection at once.
  AbandonState();
  return Action::CloseAfterWrite(reason);
}

Action HttpConnectionHandler::OnDeadline(Connection& conn) {
  if (state_ == nullptr) return Action::Continue();
  state_->deadline_armed = false;
  if (!state_->in_request || state_->parser.head_complete()) return Action::Continue();
  // Not the parser's request views: the input may have moved since they were taken.
  return Reject(conn, 408, /*head=*/false, CloseReason::kReadTimeout);
}

void HttpConnectionHandler::SetHeaderDeadline(Connection& conn) {
  // Armed once per request, at its first partial read (this callback: no time has passed since
  // the request began), and never pushed back by later bytes: a client trickling its header
  // section cannot hold the connection past the timeout.
  if (state_->deadline_armed || !HasHeaderTimeout(loop_->options)) return;
  conn.SetDeadline(loop_->options.header_timeout);
  state_->deadline_armed = true;
}

void HttpConnectionHandler::ClearHeaderDeadline(Connection& conn) {
  if (!state_->deadline_armed) return;
  conn.ClearDeadline();
  state_->deadline_armed = false;
}

}  // namespace percore
