#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "core/mutex.h"
#include "reactor/close_reason.h"
#include "reactor/handler.h"

namespace percore::test {

// What a connection had done when it closed, as the server saw it.
struct ClosedConnection {
  uint16_t peer_port = 0;  // the client's local port
  int loop = -1;
  CloseReason reason = CloseReason::kPeerClosed;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// Wraps a service (same name, same behaviour: every callback is forwarded) and records each
// connection's final figures when it closes. The loops' stats only give totals; this tells a
// test exactly how much the server read from, and wrote to, each client.
// Thread-safe: loops record concurrently, the test reads whenever it likes.
class RecordingService final : public Service {
 public:
  explicit RecordingService(std::shared_ptr<Service> inner) : inner_(std::move(inner)) {}

  std::string_view name() const override { return inner_->name(); }
  void OnLoopStart(EventLoop& loop) override { inner_->OnLoopStart(loop); }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;
  std::string_view OverloadResponse() const override { return inner_->OverloadResponse(); }

  // Connections closed so far, in the order they closed.
  std::vector<ClosedConnection> closed() const;
  size_t closed_count() const;

 private:
  class RecordingHandler;
  void Record(const ClosedConnection& closed);

  const std::shared_ptr<Service> inner_;
  mutable percore::Mutex mu_;
  std::vector<ClosedConnection> closed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace percore::test
