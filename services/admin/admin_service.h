#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "reactor/server.h"
#include "services/admin/admin.grpc.pb.h"
#include "services/admin/stats_collector.h"

namespace percore {

struct AdminOptions {
  // Every control RPC fails with PERMISSION_DENIED.
  bool readonly = false;
  // How long ListConnections and CloseConnection wait for a loop before calling it stalled.
  absl::Duration loop_timeout = absl::Seconds(1);
  // Reported by GetConfig as they are (the daemon's command-line flags).
  std::vector<std::pair<std::string, std::string>> flags;
  // When the server started; unset: when the admin was created.
  std::optional<absl::Time> server_start;
};

// The percore.admin.v1.Admin service over a Server. Its methods run on gRPC's threads, never
// on a loop: counters are read lock-free, and loop state is reached by tasks posted to the
// loops (services/admin/loop_queries.h).
class AdminService final : public admin::v1::Admin::Service {
 public:
  AdminService(Server& server, AdminOptions options);

  // Thread-safe. Reported in ServerInfo.serving (the health status follows it in AdminServer).
  void SetServing(bool serving) { serving_.store(serving); }
  // Thread-safe. Ends every WatchStats stream promptly (before the gRPC server shuts down).
  void EndStreams();

  grpc::Status GetStats(grpc::ServerContext* context, const admin::v1::GetStatsRequest* request,
                        admin::v1::Stats* response) override;
  grpc::Status WatchStats(grpc::ServerContext* context, const admin::v1::WatchStatsRequest* request,
                          grpc::ServerWriter<admin::v1::Stats>* writer) override;
  grpc::Status GetPrometheus(grpc::ServerContext* context, const admin::v1::GetPrometheusRequest* request,
                             admin::v1::PrometheusText* response) override;
  grpc::Status ListConnections(grpc::ServerContext* context, const admin::v1::ListConnectionsRequest* request,
                               admin::v1::ListConnectionsResponse* response) override;
  grpc::Status GetConfig(grpc::ServerContext* context, const admin::v1::GetConfigRequest* request,
                         admin::v1::Config* response) override;
  grpc::Status SetBalancePolicy(grpc::ServerContext* context, const admin::v1::SetBalancePolicyRequest* request,
                                admin::v1::SetBalancePolicyResponse* response) override;
  grpc::Status DrainLoop(grpc::ServerContext* context, const admin::v1::DrainLoopRequest* request,
                         admin::v1::DrainLoopResponse* response) override;
  grpc::Status ResumeLoop(grpc::ServerContext* context, const admin::v1::ResumeLoopRequest* request,
                          admin::v1::ResumeLoopResponse* response) override;
  grpc::Status CloseConnection(grpc::ServerContext* context, const admin::v1::CloseConnectionRequest* request,
                               admin::v1::CloseConnectionResponse* response) override;
  grpc::Status MigrateConnection(grpc::ServerContext* context, const admin::v1::MigrateConnectionRequest* request,
                                 admin::v1::MigrateConnectionResponse* response) override;
  grpc::Status ReloadCertificates(grpc::ServerContext* context, const admin::v1::ReloadCertificatesRequest* request,
                                  admin::v1::ReloadCertificatesResponse* response) override;

  static constexpr int kDefaultPageSize = 100;
  static constexpr int kMaxPageSize = 1000;

 private:
  grpc::Status CheckWritable() const;
  // The loop wait of this call: the configured one, shortened to end before the call's deadline.
  absl::Duration LoopTimeout(const grpc::ServerContext& context) const;

  Server& server_;
  const AdminOptions options_;
  const BalancePolicyKind initial_policy_;
  StatsCollector collector_;
  std::atomic<bool> serving_{true};
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  bool ending_streams_ = false;  // guarded by streams_mu_
};

}  // namespace percore
