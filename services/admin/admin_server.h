#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "reactor/server.h"
#include "services/admin/admin_service.h"
#include "services/admin/health_service.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace percore {

// The admin endpoint of a percore server: the percore.admin.v1.Admin service, the standard
// grpc.health.v1.Health service and server reflection, on one gRPC server of its own threads.
// Start, SetServing and Shutdown may be called from any thread, one at a time.
class AdminServer {
 public:
  AdminServer(Server& server, AdminOptions options = {});
  ~AdminServer();  // Shuts down.
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Listens on `address`: "HOST:PORT" (port 0 picks a free port; the default "127.0.0.1:9100"
  // is loopback only) or "unix:/path" (the socket file is made owner-only, mode 0600). Returns
  // the address it really listens on, in the same form ("127.0.0.1:41234", "unix:/path").
  // Health starts SERVING if the server runs.
  absl::StatusOr<std::string> Start(std::string_view address);

  // The health status of every service: SERVING while the server accepts connections,
  // NOT_SERVING once the daemon begins stopping (so that health checks fail first).
  void SetServing(bool serving);

  // Ends watch streams (stats and health), then stops the gRPC server (calls still running
  // after a short grace period are cancelled). Idempotent.
  void Shutdown();

  const std::string& address() const { return address_; }

 private:
  Server& server_;
  AdminService service_;
  HealthService health_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::string address_;
  std::string unix_path_;
};

}  // namespace percore
