#include "services/http/http_responder.h"

namespace percore {

HttpResponder& HttpResponder::operator=(HttpResponder&& other) noexcept {
  if (this != &other) {
    Abandon();
    exchange_ = std::move(other.exchange_);
    response_ = std::move(other.response_);
  }
  return *this;
}

HttpResponder::~HttpResponder() { Abandon(); }

void HttpResponder::Abandon() noexcept {
  if (exchange_ == nullptr) return;
  try {
    SendError(500);
  } catch (...) {
    // Building the answer failed (no memory): nothing is sent, and the connection's idle
    // timeout ends it. This runs in a destructor, which must not throw.
  }
}

void HttpResponder::Send() {
  if (exchange_ == nullptr) return;
  std::unique_ptr<Exchange> exchange = std::move(exchange_);
  exchange->Answer(std::move(response_));
}

void HttpResponder::SendError(int status) {
  if (exchange_ == nullptr) return;
  SetErrorResponse(status, response_);
  Send();
}

}  // namespace percore
