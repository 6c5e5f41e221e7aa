#pragma once

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "core/mutex.h"
#include "core/tls.h"

namespace percore {

// A TLS endpoint's context as it is now. Every loop's new connections take the current one;
// Reload swaps in a context built from the files read again, so connections accepted after it
// get the new certificate while open ones keep theirs. Thread-safe.
class TlsEndpoint {
 public:
  // `index`: its position among the server's TLS endpoints (LoopStats::tls).
  TlsEndpoint(std::shared_ptr<const TlsContext> context, int index) : index_(index), context_(std::move(context)) {}

  int index() const { return index_; }
  // Successful reloads so far.
  uint64_t reloads() const {
    MutexLock lock(mu_);
    return reloads_;
  }

  std::shared_ptr<const TlsContext> current() const {
    MutexLock lock(mu_);
    return context_;
  }
  // Reads the certificate and key again. A file that does not load is an error and the
  // context in use stays.
  absl::Status Reload() {
    std::shared_ptr<const TlsContext> now = current();
    absl::StatusOr<std::shared_ptr<const TlsContext>> next = now->Reload();
    if (!next.ok()) return next.status();
    MutexLock lock(mu_);
    context_ = std::move(*next);
    ++reloads_;
    return absl::OkStatus();
  }

 private:
  const int index_;
  mutable Mutex mu_;
  uint64_t reloads_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const TlsContext> context_ ABSL_GUARDED_BY(mu_);
};

}  // namespace percore
