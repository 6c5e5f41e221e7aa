#include "services/admin/health_service.h"

#include <chrono>

namespace percore {
namespace {

namespace health = ::grpc::health::v1;

// How often a waiting Watch looks for its client's cancellation, which is only seen by polling.
constexpr auto kCancelPoll = std::chrono::milliseconds(50);

bool IsKnown(const health::HealthCheckRequest& request) { return request.service().empty(); }

}  // namespace

void HealthService::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (serving_ == serving && version_ != 0) return;
  serving_ = serving;
  ++version_;
  changed_.notify_all();
}

void HealthService::EndStreams() {
  std::lock_guard<std::mutex> lock(mu_);
  ending_ = true;
  changed_.notify_all();
}

grpc::Status HealthService::Check(grpc::ServerContext*, const health::HealthCheckRequest* request,
                                  health::HealthCheckResponse* response) {
  if (!IsKnown(*request)) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
  std::lock_guard<std::mutex> lock(mu_);
  response->set_status(serving_ ? health::HealthCheckResponse::SERVING : health::HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context, const health::HealthCheckRequest* request,
                                  grpc::ServerWriter<health::HealthCheckResponse>* writer) {
  health::HealthCheckResponse response;
  if (!IsKnown(*request)) {
    // The status of a name that is never registered never changes: one message, then wait.
    response.set_status(health::HealthCheckResponse::SERVICE_UNKNOWN);
    if (!writer->Write(response)) return grpc::Status::OK;
  }
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t sent = IsKnown(*request) ? version_ - 1 : version_;  // known: send the status now
  while (true) {
    if (IsKnown(*request) && sent != version_) {
      sent = version_;
      response.set_status(serving_ ? health::HealthCheckResponse::SERVING
                                   : health::HealthCheckResponse::NOT_SERVING);
      lock.unlock();
      const bool written = writer->Write(response);
      lock.lock();
      if (!written) return grpc::Status::OK;  // the client went away
      continue;
    }
    if (ending_) return grpc::Status::OK;
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    changed_.wait_for(lock, kCancelPoll);
  }
}

}  // namespace percore
