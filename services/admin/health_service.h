#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "services/admin/health.grpc.pb.h"

namespace percore {

// grpc.health.v1.Health for the daemon as a whole, the service name "" (any other name is
// unknown: Check answers NOT_FOUND, Watch sends SERVICE_UNKNOWN, as the protocol asks).
// SERVING while the server accepts connections, NOT_SERVING from the moment it begins to stop.
//
// Watch sends the status at once and then every change. When the admin server shuts down,
// each Watch sends the last status it has not sent yet and ends with OK, so a watcher hears
// NOT_SERVING, then a clean end, and never holds the daemon's exit for the gRPC shutdown grace.
class HealthService final : public grpc::health::v1::Health::Service {
 public:
  void SetServing(bool serving);
  // Ends every Watch, now and later. Idempotent.
  void EndStreams();

  grpc::Status Check(grpc::ServerContext* context, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool serving_ = false;     // guarded by mu_
  uint64_t version_ = 0;     // guarded by mu_; counts changes of serving_
  bool ending_ = false;      // guarded by mu_
};

}  // namespace percore
