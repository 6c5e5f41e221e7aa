#pragma once

#include <atomic>
#include <future>
#include <memory>

#include "reactor/handler.h"

namespace percore::testing {

// A test-only service whose handler blocks its whole loop, on the first bytes it receives,
// until the test releases a future: the way to make a loop stall on purpose. Then it echoes.
class BlockingService final : public Service {
 public:
  explicit BlockingService(std::shared_future<void> release) : release_(std::move(release)) {}

  std::string_view name() const override { return "blocker"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;

  // True once a handler is blocked (or has been).
  bool blocking() const { return blocking_.load(); }

 private:
  friend class BlockingHandler;
  std::shared_future<void> release_;
  std::atomic<bool> blocking_{false};
};

}  // namespace percore::testing
