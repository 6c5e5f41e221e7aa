#pragma once

// Live migration of a connection from its loop to another (Server::MigrateConnection).
//
// A connection moves at a request boundary: nothing it read is waiting for its handler,
// nothing is queued for the peer, it is not paused, no cross-loop call of its is away, its TLS
// handshake (if any) is done, and its handler agrees (Handler::CanMigrate). On its loop it is
// taken out of the poller (io_uring: its receive is cancelled, and what that receive still
// brings is carried along), its timer and buffers stay behind, and a Migrant carrying its
// socket, handler, TLS session, figures and deadlines is posted to the target loop, which makes
// a new Connection of it (a new id there), watches the socket (or arms a receive on its ring)
// and lets the handler re-bind (Handler::OnMigrated) before anything more is read. Bytes the
// peer sends meanwhile wait in the socket, or come along in the Migrant, in order.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "core/socket.h"
#include "core/tls.h"

namespace percore {

class Handler;

enum class MigrationStatus : uint8_t {
  kMoved,
  kUnknownConnection,  // no open connection has the id
  kNoSuchLoop,         // the target loop does not exist
  kSameLoop,           // the connection is on the target loop already
  kTargetDraining,     // the target loop takes no new connections (DrainLoop, Stop)
  kSourceDraining,     // the connection's own loop is stopping
  kClosing,            // the connection is closing (or closed before it could move)
  kPaused,             // stayed paused (on a call to another loop, a handler's wait) for the whole wait
  kDeclined,           // its handler does not move (Handler::CanMigrate)
  kNotAtBoundary,      // it did not reach a request boundary within the wait
  kAlreadyMoving,      // another migration of it is under way
  kNotRunning,         // the server is not running
  kNoAnswer,           // the blocking call's timeout passed first: the move may still complete
};

std::string_view MigrationStatusName(MigrationStatus status);

struct MigrationResult {
  MigrationStatus status = MigrationStatus::kMoved;
  int loop = -1;        // kMoved: where it is now
  uint64_t new_id = 0;  // kMoved: its id there
  std::string detail;   // what the status means for this connection, for people
};

// Called once with the outcome, on the caller's thread (an error found at once), the source
// loop's or the target loop's.
using MigrationDone = absl::AnyInvocable<void(MigrationResult) &&>;

// A MigrationDone that is answered exactly once: destroyed unanswered (the task carrying it was
// dropped because its loop had ended), it answers with its fallback.
class MigrationReply {
 public:
  explicit MigrationReply(MigrationDone done) : done_(std::move(done)) {}
  MigrationReply(MigrationReply&& other) noexcept = default;
  MigrationReply& operator=(MigrationReply&& other) noexcept = default;
  ~MigrationReply();

  void Send(MigrationResult result) {
    if (done_) std::exchange(done_, nullptr)(std::move(result));
  }
  void SetFallback(MigrationStatus status, std::string detail) {
    fallback_ = status;
    fallback_detail_ = std::move(detail);
  }

 private:
  MigrationDone done_;
  MigrationStatus fallback_ = MigrationStatus::kSourceDraining;
  std::string fallback_detail_ = "the connection's loop stopped before it could move";
};

// A connection between two loops: everything the target needs to carry it on. Destroyed
// without being adopted (the target loop ended first), it closes the socket.
struct Migrant {
  Migrant() = default;
  ~Migrant();
  Migrant(const Migrant&) = delete;
  Migrant& operator=(const Migrant&) = delete;

  int fd = -1;
  SocketAddress peer;
  int service_index = 0;
  int tls_endpoint = -1;  // index of its TLS endpoint, or -1 for plaintext
  std::unique_ptr<Handler> handler;
  std::unique_ptr<TlsSession> tls;
  int64_t opened_ns = 0;
  int64_t last_activity_ns = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t requests = 0;
  uint64_t recent_requests_per_sec = 0;
  uint64_t recent_bytes_per_sec = 0;
  int64_t handler_deadline_ns = -1;  // -1: none
  // io_uring: what the cancelled receive brought after the move began, and whether it brought
  // the peer's FIN.
  std::string carried;
  bool carried_eof = false;
  int from_loop = -1;
  uint64_t from_id = 0;
  std::unique_ptr<MigrationReply> reply;
};

}  // namespace percore
