#pragma once

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/tls.h"

namespace percore {

// A TLS endpoint's context as it is now. Every loop's new connections take the current one;
// Reload swaps in a context built from the files read again, so connections accepted after it
// get the new certificate while open ones keep theirs. Thread-safe.
class TlsEndpoint {
 public:
  explicit TlsEndpoint(std::shared_ptr<const TlsContext> context) : context_(std::move(context)) {}

  std::shared_ptr<const TlsContext> current() const {
    absl::MutexLock lock(&mu_);
    return context_;
  }
  // Reads the certificate and key again. A file that does not load is an error and the
  // context in use stays.
  absl::Status Reload() {
    std::shared_ptr<const TlsContext> now = current();
    absl::StatusOr<std::shared_ptr<const TlsContext>> next = now->Reload();
    if (!next.ok()) return next.status();
    absl::MutexLock lock(&mu_);
    context_ = std::move(*next);
    return absl::OkStatus();
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const TlsContext> context_ ABSL_GUARDED_BY(mu_);
};

}  // namespace percore
