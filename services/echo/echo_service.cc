#include "services/echo/echo_service.h"

#include <utility>

#include "core/clock.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"

namespace percore {
namespace {

class EchoHandler final : public Handler {
 public:
  Action OnData(Connection& conn, Buffer& input) override {
    if (conn.output().empty()) {
      // Nothing queued: hand the input's storage to the output instead of copying it.
      std::swap(conn.output().bytes(), input);
    } else {
      conn.output().Append(input.view());
      input.Consume(input.size());
    }
    // A "request" is one read's worth of bytes; its latency is the time since the loop woke.
    conn.RecordRequest(MonotonicNanos() - conn.loop().now_ns());
    return Action::Continue();
  }
};

class EchoService final : public Service {
 public:
  std::string_view name() const override { return "echo"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<EchoHandler>(); }
};

}  // namespace

std::shared_ptr<Service> NewEchoService() { return std::make_shared<EchoService>(); }

}  // namespace percore
