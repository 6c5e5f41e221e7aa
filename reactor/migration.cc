#include "reactor/migration.h"

#include "core/socket.h"
#include "reactor/handler.h"

namespace percore {

std::string_view MigrationStatusName(MigrationStatus status) {
  switch (status) {
    case MigrationStatus::kMoved: return "moved";
    case MigrationStatus::kUnknownConnection: return "unknown_connection";
    case MigrationStatus::kNoSuchLoop: return "no_such_loop";
    case MigrationStatus::kSameLoop: return "same_loop";
    case MigrationStatus::kTargetDraining: return "target_draining";
    case MigrationStatus::kSourceDraining: return "source_draining";
    case MigrationStatus::kClosing: return "closing";
    case MigrationStatus::kPaused: return "paused";
    case MigrationStatus::kDeclined: return "declined";
    case MigrationStatus::kNotAtBoundary: return "not_at_boundary";
    case MigrationStatus::kAlreadyMoving: return "already_moving";
    case MigrationStatus::kNotRunning: return "not_running";
    case MigrationStatus::kNoAnswer: return "no_answer";
  }
  return "unknown";
}

MigrationReply::~MigrationReply() {
  if (done_) std::exchange(done_, nullptr)(MigrationResult{fallback_, -1, 0, std::move(fallback_detail_)});
}

Migrant::~Migrant() {
  // Never adopted: the target loop ended first. The connection is closed, and whoever asked
  // hears so.
  if (fd >= 0) CloseFd(fd);
  if (reply != nullptr) {
    reply->SetFallback(MigrationStatus::kTargetDraining,
                       "the target loop stopped before the connection arrived; it was closed");
  }
}

}  // namespace percore
