// GetConfig, the control verbs, read-only mode, health and reflection.

#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "services/admin/health.grpc.pb.h"
#include "tests/services/admin/admin_fixture.h"
#include "tests/testing/client_socket.h"

namespace percore::testing {
namespace {

using grpc::StatusCode;

TEST_F(AdminTest, GetConfigReportsTheEffectiveConfiguration) {
  StartAll();
  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  EXPECT_EQ(config.loops(), 2);
  // Auto, resolved by Start: the back end the loops run, and why.
  EXPECT_EQ(config.backend(), PollerBackendName(server_->backend()));
  EXPECT_NE(config.backend(), "auto");
  EXPECT_EQ(config.requested_backend(), "auto");
  EXPECT_EQ(config.backend_reason(), server_->backend_reason());
  EXPECT_EQ(config.backend_reason().rfind(config.backend() + " (auto: ", 0), 0u) << config.backend_reason();
  ASSERT_EQ(config.loop_backends_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(config.loop_backends(i).loop(), i);
    EXPECT_EQ(config.loop_backends(i).backend(), config.backend());
  }
  EXPECT_EQ(config.has_uring(), server_->backend() == PollerBackend::kIoUring);
  EXPECT_EQ(config.balance_policy(), "round_robin");
  EXPECT_EQ(config.initial_balance_policy(), "round_robin");
  EXPECT_FALSE(config.pin());
  EXPECT_EQ(config.max_connections(), ServerOptions().max_connections);
  EXPECT_EQ(config.connection().idle_timeout_ns(), absl::ToInt64Nanoseconds(ConnectionOptions().idle_timeout));
  EXPECT_EQ(config.connection().high_water(), ConnectionOptions().high_water);
  ASSERT_EQ(config.services_size(), 2);
  EXPECT_EQ(config.services(0), "echo");
  EXPECT_EQ(config.services(1), "blocker");
  ASSERT_EQ(config.endpoints_size(), 2);
  EXPECT_EQ(config.endpoints(0).service(), "echo");
  EXPECT_EQ(config.endpoints(0).requested(), "127.0.0.1:0");
  EXPECT_EQ(config.endpoints(0).bound(), absl::StrCat("127.0.0.1:", echo_port_));
  EXPECT_EQ(config.endpoints(1).bound(), absl::StrCat("127.0.0.1:", blocker_port_));
  ASSERT_EQ(config.flags_size(), 2);
  EXPECT_EQ(config.flags(0).name(), "listen");
  EXPECT_EQ(config.flags(0).value(), "echo=127.0.0.1:0");
  EXPECT_FALSE(config.admin_readonly());
  EXPECT_EQ(config.draining_loops_size(), 0);
}

TEST_F(AdminTest, GetConfigReportsAnExplicitEpoll) {
  AdminSetup setup;
  setup.backend = PollerBackend::kEpoll;
  StartAll(setup);
  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  EXPECT_EQ(config.backend(), "epoll");
  EXPECT_EQ(config.requested_backend(), "epoll");
  EXPECT_EQ(config.backend_reason(), "epoll (asked for)");
  ASSERT_EQ(config.loop_backends_size(), 2);
  for (const v1::LoopBackend& lb : config.loop_backends()) {
    EXPECT_EQ(lb.backend(), "epoll");
    EXPECT_EQ(lb.uring_mode(), "");
    EXPECT_EQ(lb.uring_buffers(), 0u);
  }
  EXPECT_FALSE(config.has_uring());
}

TEST_F(AdminTest, GetConfigReportsTheRingsOfIoUring) {
  if (!IoUringAvailable()) GTEST_SKIP() << "io_uring cannot run here";
  AdminSetup setup;
  setup.backend = PollerBackend::kIoUring;
  setup.uring.entries = 64;
  setup.uring.buffers = 32;
  setup.uring.buffer_size = 4096;
  StartAll(setup);
  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  EXPECT_EQ(config.backend(), "io_uring");
  EXPECT_EQ(config.requested_backend(), "io_uring");
  EXPECT_EQ(config.backend_reason(), "io_uring (asked for)");
  ASSERT_EQ(config.loop_backends_size(), 2);
  for (const v1::LoopBackend& lb : config.loop_backends()) {
    SCOPED_TRACE(lb.loop());
    EXPECT_EQ(lb.backend(), "io_uring");
    EXPECT_TRUE(lb.uring_mode() == "defer_taskrun" || lb.uring_mode() == "coop_taskrun" || lb.uring_mode() == "plain")
        << lb.uring_mode();
    EXPECT_EQ(lb.uring_mode(), server_->loop(lb.loop()).uring()->mode());
    EXPECT_EQ(lb.uring_buffers(), 32u);
  }
  ASSERT_TRUE(config.has_uring());
  EXPECT_EQ(config.uring().entries(), 64u);
  EXPECT_EQ(config.uring().buffers(), 32u);
  EXPECT_EQ(config.uring().buffer_size(), 4096u);
}

TEST_F(AdminTest, SetBalancePolicyChangesThePolicyInForce) {
  StartAll();
  v1::SetBalancePolicyRequest request;
  request.set_policy("least_connections");
  v1::SetBalancePolicyResponse reply;
  ASSERT_TRUE(stub_->SetBalancePolicy(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.previous(), "round_robin");
  EXPECT_EQ(reply.current(), "least_connections");
  EXPECT_EQ(GetStats().server().balance_policy(), "least_connections");
  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  EXPECT_EQ(config.balance_policy(), "least_connections");
  EXPECT_EQ(config.initial_balance_policy(), "round_robin");

  request.set_policy("least_loaded");
  ASSERT_TRUE(stub_->SetBalancePolicy(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.previous(), "least_connections");
  EXPECT_EQ(reply.current(), "least_loaded");
  EXPECT_EQ(GetStats().server().balance_policy(), "least_loaded");

  request.set_policy("fastest_first");
  EXPECT_EQ(stub_->SetBalancePolicy(Context().get(), request, &reply).error_code(), StatusCode::INVALID_ARGUMENT);
  request.set_policy("reuseport");
  EXPECT_EQ(stub_->SetBalancePolicy(Context().get(), request, &reply).error_code(), StatusCode::FAILED_PRECONDITION);
}

TEST_F(AdminTest, DrainedLoopGetsNoNewConnectionUntilResumed) {
  StartAll();
  v1::DrainLoopRequest drain;
  drain.set_loop(1);
  v1::DrainLoopResponse drained;
  ASSERT_TRUE(stub_->DrainLoop(Context().get(), drain, &drained).ok());
  const v1::Stats before = GetStats();
  EXPECT_TRUE(before.loops(1).draining());
  for (int i = 0; i < 6; ++i) ASSERT_NO_FATAL_FAILURE(Echo(Connect(echo_port_), "to loop 0"));
  v1::Stats s = GetStats();
  EXPECT_EQ(s.loops(0).conns_handed_in(), 6u);
  EXPECT_EQ(s.loops(1).conns_handed_in(), 0u);
  EXPECT_EQ(s.distributor().handed(1), 0u);
  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  ASSERT_EQ(config.draining_loops_size(), 1);
  EXPECT_EQ(config.draining_loops(0), 1);

  v1::ResumeLoopRequest resume;
  resume.set_loop(1);
  v1::ResumeLoopResponse resumed;
  ASSERT_TRUE(stub_->ResumeLoop(Context().get(), resume, &resumed).ok());
  for (int i = 0; i < 4; ++i) ASSERT_NO_FATAL_FAILURE(Echo(Connect(echo_port_), "anywhere"));
  s = GetStats();
  EXPECT_FALSE(s.loops(1).draining());
  EXPECT_GE(s.loops(1).conns_handed_in(), 1u);
  EXPECT_EQ(s.loops(0).conns_handed_in() + s.loops(1).conns_handed_in(), 10u);

  drain.set_loop(2);
  EXPECT_EQ(stub_->DrainLoop(Context().get(), drain, &drained).error_code(), StatusCode::OUT_OF_RANGE);
  resume.set_loop(-1);
  EXPECT_EQ(stub_->ResumeLoop(Context().get(), resume, &resumed).error_code(), StatusCode::OUT_OF_RANGE);
}

TEST_F(AdminTest, DrainWithCloseIdleClosesThatLoopsIdleConnections) {
  StartAll();
  const int first = Connect(echo_port_);
  const int second = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(first, "one"));
  ASSERT_NO_FATAL_FAILURE(Echo(second, "two"));
  // Round robin put them on different loops; drain the first one's.
  absl::StatusOr<uint16_t> first_port = test::LocalPort(first);
  ASSERT_TRUE(first_port.ok()) << first_port.status();
  const std::string first_peer = absl::StrCat("127.0.0.1:", *first_port);
  int first_loop = -1;
  const v1::ListConnectionsResponse listing = List();
  for (const auto& c : listing.connections()) {
    if (c.peer() == first_peer) first_loop = c.loop();
  }
  ASSERT_GE(first_loop, 0);
  v1::DrainLoopRequest drain;
  drain.set_loop(first_loop);
  drain.set_close_idle(true);
  v1::DrainLoopResponse drained;
  ASSERT_TRUE(stub_->DrainLoop(Context().get(), drain, &drained).ok());
  EXPECT_TRUE(test::ReadUntilEofOrReset(first, Soon()).ok());
  ASSERT_NO_FATAL_FAILURE(Echo(second, "still open"));
}

TEST_F(AdminTest, ReadOnlyAdminRefusesEveryControlCall) {
  StartAll({.readonly = true});
  const int fd = Connect(echo_port_);
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "hi"));
  const v1::ListConnectionsResponse all = List();
  ASSERT_EQ(all.connections_size(), 1);

  v1::SetBalancePolicyRequest policy;
  policy.set_policy("least_connections");
  v1::SetBalancePolicyResponse policy_reply;
  EXPECT_EQ(stub_->SetBalancePolicy(Context().get(), policy, &policy_reply).error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::DrainLoopRequest drain;
  drain.set_loop(0);
  v1::DrainLoopResponse drain_reply;
  EXPECT_EQ(stub_->DrainLoop(Context().get(), drain, &drain_reply).error_code(), StatusCode::PERMISSION_DENIED);
  v1::ResumeLoopRequest resume;
  v1::ResumeLoopResponse resume_reply;
  EXPECT_EQ(stub_->ResumeLoop(Context().get(), resume, &resume_reply).error_code(), StatusCode::PERMISSION_DENIED);
  v1::CloseConnectionRequest close;
  close.set_id(all.connections(0).id());
  v1::CloseConnectionResponse close_reply;
  EXPECT_EQ(stub_->CloseConnection(Context().get(), close, &close_reply).error_code(), StatusCode::PERMISSION_DENIED);
  v1::MigrateConnectionRequest migrate;
  migrate.set_id(all.connections(0).id());
  migrate.set_loop(1 - all.connections(0).loop());
  v1::MigrateConnectionResponse migrate_reply;
  EXPECT_EQ(stub_->MigrateConnection(Context().get(), migrate, &migrate_reply).error_code(),
            StatusCode::PERMISSION_DENIED);
  v1::ReloadCertificatesResponse reload_reply;
  EXPECT_EQ(stub_->ReloadCertificates(Context().get(), v1::ReloadCertificatesRequest(), &reload_reply).error_code(),
            StatusCode::PERMISSION_DENIED);

  // Nothing changed, and reading still works.
  EXPECT_EQ(List().connections(0).id(), all.connections(0).id()) << "the connection did not move";
  const v1::Stats s = GetStats();
  EXPECT_EQ(s.server().balance_policy(), "round_robin");
  EXPECT_FALSE(s.loops(0).draining());
  ASSERT_NO_FATAL_FAILURE(Echo(fd, "still open"));
  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  EXPECT_TRUE(config.admin_readonly());
}

TEST_F(AdminTest, HealthFollowsServingState) {
  StartAll();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse reply;
  ASSERT_TRUE(health->Check(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  admin_->SetServing(false);
  ASSERT_TRUE(health->Check(Context().get(), request, &reply).ok());
  EXPECT_EQ(reply.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(GetStats().server().serving());
}

// Watch: the status at once, then each change; Shutdown ends the stream with OK, after the
// last status, and does not wait for gRPC's shutdown grace to cut the watcher off.
TEST_F(AdminTest, HealthWatchFollowsChangesAndEndsCleanlyOnShutdown) {
  StartAll();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  std::unique_ptr<grpc::ClientContext> context = Context();
  std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>> watch =
      health->Watch(context.get(), grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  admin_->SetServing(true);  // no change: nothing is sent for it
  admin_->SetServing(false);
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  admin_->SetServing(true);
  ASSERT_TRUE(watch->Read(&status));
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  admin_->SetServing(false);
  admin_->Shutdown();
  // Whatever the watcher had not been sent yet arrives before the end.
  std::vector<int> after;
  while (watch->Read(&status)) after.push_back(status.status());
  EXPECT_EQ(after, std::vector<int>{grpc::health::v1::HealthCheckResponse::NOT_SERVING});
  const grpc::Status end = watch->Finish();
  EXPECT_TRUE(end.ok()) << end.error_code() << " " << end.error_message();
}

TEST_F(AdminTest, HealthOfAnUnknownServiceName) {
  StartAll();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("no.such.Service");
  grpc::health::v1::HealthCheckResponse reply;
  EXPECT_EQ(health->Check(Context().get(), request, &reply).error_code(), StatusCode::NOT_FOUND);

  std::unique_ptr<grpc::ClientContext> context = Context();
  std::unique_ptr<grpc::ClientReader<grpc::health::v1::HealthCheckResponse>> watch =
      health->Watch(context.get(), request);
  ASSERT_TRUE(watch->Read(&reply));
  EXPECT_EQ(reply.status(), grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN);
  admin_->Shutdown();
  EXPECT_FALSE(watch->Read(&reply));
  EXPECT_TRUE(watch->Finish().ok());
}

// Reflection is checked on the wire: a ServerReflectionRequest with list_services (field 7,
// empty string) and a search of the reply's bytes for the service names.
TEST_F(AdminTest, ServerReflectionListsTheServices) {
  StartAll();
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto call = stub.PrepareCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&](int tag) {
    void* got = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&got, &ok));
    EXPECT_EQ(got, reinterpret_cast<void*>(static_cast<intptr_t>(tag)));
    return ok;
  };
  auto tag = [](int t) { return reinterpret_cast<void*>(static_cast<intptr_t>(t)); };
  call->StartCall(tag(1));
  ASSERT_TRUE(step(1));
  const char request_bytes[] = {0x3a, 0x00};
  grpc::Slice slice(request_bytes, sizeof(request_bytes));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, tag(2));
  ASSERT_TRUE(step(2));
  grpc::ByteBuffer response;
  call->Read(&response, tag(3));
  ASSERT_TRUE(step(3));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(bytes.find("percore.admin.v1.Admin"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
  call->WritesDone(tag(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, tag(5));
  step(5);
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
}

TEST(AdminServerTest, UnixSocketIsOwnerOnly) {
  Server server(ServerOptions{.loops = 1});
  ASSERT_TRUE(server.AddService(NewEchoService()).ok());
  ASSERT_TRUE(server.Start().ok());
  AdminServer admin(server);
  const std::string path = absl::StrCat("/tmp/percore-admin-test-", getpid(), ".sock");
  absl::StatusOr<std::string> address = admin.Start(absl::StrCat("unix:", path));
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, absl::StrCat("unix:", path));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto stub = v1::Admin::NewStub(grpc::CreateChannel(*address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  v1::Stats stats;
  ASSERT_TRUE(stub->GetStats(&context, v1::GetStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.server().loop_count(), 1);
  admin.Shutdown();
  EXPECT_NE(stat(path.c_str(), &st), 0);
  server.Stop(absl::ZeroDuration());
}

TEST(AdminServerTest, StartRejectsBadAddresses) {
  Server server(ServerOptions{.loops = 1});
  ASSERT_TRUE(server.AddService(NewEchoService()).ok());
  AdminServer admin(server);
  EXPECT_EQ(admin.Start("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(admin.Start("no-port").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(admin.Start("unix:").status().code(), absl::StatusCode::kInvalidArgument);
  // A port another admin holds.
  AdminServer first(server);
  absl::StatusOr<std::string> taken = first.Start("127.0.0.1:0");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(admin.Start(*taken).ok());
}

}  // namespace
}  // namespace percore::testing
