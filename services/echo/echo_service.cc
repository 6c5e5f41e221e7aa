#include "services/echo/echo_service.h"

#include <utility>

#include "reactor/connection.h"
#include "reactor/event_loop.h"

namespace percore {
namespace {

class EchoHandler final : public Handler {
 public:
  Action OnData(Connection& conn, Buffer& input) override {
    if (conn.output().empty()) {
      // Nothing queued: hand the input's storage to the output instead of copying it.
      conn.output().bytes().Swap(input);
    } else {
      conn.output().Append(input.view());
      input.Consume(input.size());
    }
    // A "request" is one read's worth of bytes.
    conn.RecordRequest();
    return Action::Continue();
  }
  // Nothing of the loop's is kept: it moves whenever the framework asks.
  MigrationVote CanMigrate(Connection&) override { return MigrationVote::kNow; }
};

class EchoService final : public Service {
 public:
  std::string_view name() const override { return "echo"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override { return std::make_unique<EchoHandler>(); }
};

}  // namespace

std::shared_ptr<Service> NewEchoService() { return std::make_shared<EchoService>(); }

}  // namespace percore
