#include "tests/services/admin/blocking_service.h"

#include "reactor/connection.h"

namespace percore::testing {

class BlockingHandler final : public Handler {
 public:
  explicit BlockingHandler(BlockingService& service) : service_(service) {}

  Action OnData(Connection& conn, Buffer& input) override {
    service_.blocking_.store(true);
    service_.release_.wait();
    conn.Send(input.view());
    input.Consume(input.size());
    return Action::Continue();
  }

 private:
  BlockingService& service_;
};

std::unique_ptr<Handler> BlockingService::NewHandler(Connection& conn) {
  return std::make_unique<BlockingHandler>(*this);
}

}  // namespace percore::testing
