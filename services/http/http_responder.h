#pragma once

#include <memory>
#include <utility>

#include "services/http/http_response.h"

namespace percore {

class Connection;
class EventLoop;

// The answer to one request of an asynchronous route (Router::HandleAsync), given later: after
// work on another loop (EventLoop::RunOn, Sharded<T>::Call) or a timer (EventLoop::RunAfter).
// Fill response(), then Send() it, once. Move-only; used by one thread at a time.
//
// Until it is answered the connection reads no further request, so pipelined requests are
// still answered in order. Send() may be called on any thread while the server runs: the answer
// is handed to the connection's loop, and dropped there if the connection has closed meanwhile
// (it holds no pointer to the connection, only its name, resolved on its loop). A responder
// destroyed unanswered answers 500, so a lost responder cannot leave its client hanging.
class HttpResponder {
 public:
  // The server's side of one deferred answer (HttpConnectionHandler implements it).
  class Exchange {
   public:
    virtual ~Exchange() = default;
    virtual EventLoop& loop() const = 0;
    virtual Connection* connection() const = 0;
    // Takes the answer; called once.
    virtual void Answer(HttpResponse response) = 0;
  };

  explicit HttpResponder(std::unique_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}
  HttpResponder(HttpResponder&& other) noexcept = default;
  // Answers this one first (500) if it is still unanswered.
  HttpResponder& operator=(HttpResponder&& other) noexcept;
  ~HttpResponder();

  // What Send() sends: status 200, no fields, empty body until the route fills it (the server
  // adds the framing fields, as for synchronous routes).
  HttpResponse& response() { return response_; }
  // Sends response(). Does nothing once answered.
  void Send();
  // Sends `status` with the server's short error body instead of response().
  void SendError(int status);
  bool answered() const { return exchange_ == nullptr; }

  // The loop of the connection the request came on: where timers for the answer belong
  // (loop().RunAfter) and where cross-loop work returns (loop().RunOn). Not once answered.
  EventLoop& loop() const { return exchange_->loop(); }
  // That connection while the route call runs, else nullptr: for Sharded<T>::Call, which runs
  // its continuation as a callback of the connection (and drops it if the connection closed).
  // Take it before moving the responder into a continuation.
  Connection* connection() const { return exchange_ == nullptr ? nullptr : exchange_->connection(); }

 private:
  // Answers 500 if still unanswered; never throws.
  void Abandon() noexcept;

  std::unique_ptr<Exchange> exchange_;  // null once answered
  HttpResponse response_;
};

}  // namespace percore
