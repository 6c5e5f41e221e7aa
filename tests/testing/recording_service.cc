#include "tests/testing/recording_service.h"

#include <utility>

#include "reactor/connection.h"
#include "reactor/event_loop.h"

namespace percore::test {

class RecordingService::RecordingHandler final : public Handler {
 public:
  RecordingHandler(RecordingService& owner, std::unique_ptr<Handler> inner)
      : owner_(owner), inner_(std::move(inner)) {}

  void OnOpen(Connection& conn) override { inner_->OnOpen(conn); }
  Action OnData(Connection& conn, Buffer& input) override { return inner_->OnData(conn, input); }
  void OnWritable(Connection& conn) override { inner_->OnWritable(conn); }
  Action OnPeerClosed(Connection& conn) override { return inner_->OnPeerClosed(conn); }
  Action OnDeadline(Connection& conn) override { return inner_->OnDeadline(conn); }
  void OnClose(Connection& conn, CloseReason reason) override {
    inner_->OnClose(conn, reason);
    owner_.Record(
        ClosedConnection{conn.peer().port(), conn.loop().index(), reason, conn.bytes_in(), conn.bytes_out()});
  }

 private:
  RecordingService& owner_;
  const std::unique_ptr<Handler> inner_;
};

std::unique_ptr<Handler> RecordingService::NewHandler(Connection& conn) {
  return std::make_unique<RecordingHandler>(*this, inner_->NewHandler(conn));
}

std::vector<ClosedConnection> RecordingService::closed() const {
  percore::MutexLock lock(mu_);
  return closed_;
}

size_t RecordingService::closed_count() const {
  percore::MutexLock lock(mu_);
  return closed_.size();
}

void RecordingService::Record(const ClosedConnection& closed) {
  percore::MutexLock lock(mu_);
  closed_.push_back(closed);
}

}  // namespace percore::test
