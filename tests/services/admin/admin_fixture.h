#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "reactor/uring_poller.h"
#include "services/admin/admin.grpc.pb.h"
#include "services/admin/admin_server.h"
#include "services/echo/echo_service.h"
#include "tests/services/admin/blocking_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::testing {

namespace v1 = admin::v1;

struct AdminSetup {
  BalancePolicyKind balance = BalancePolicyKind::kRoundRobin;
  bool readonly = false;
  absl::Duration loop_timeout = absl::Seconds(1);
  PollerBackend backend = PollerBackend::kAuto;
  UringOptions uring = {};
  // Set: echo also listens on a TLS endpoint with these (tls_port_), the server's third.
  std::optional<TlsOptions> tls_echo = std::nullopt;
};

// How long a socket step of these tests may take; only reached on a bug.
inline test::Deadline Soon() { return test::Deadline::In(absl::Seconds(5)); }

// Whether this machine can run the io_uring back end (a container may forbid it).
inline bool IoUringAvailable() {
  std::string why;
  absl::StatusOr<PollerBackend> backend = ResolveBackend(PollerBackend::kAuto, UringOptions{}, &why);
  return backend.ok() && *backend == PollerBackend::kIoUring;
}

// A real percore::Server (two loops, echo and the loop-blocking test service on loopback port 0)
// with an AdminServer on 127.0.0.1:0 and a client stub for it.
class AdminTest : public ::testing::Test {
 protected:
  void StartAll(AdminSetup setup = {}) {
    ServerOptions options;
    options.loops = 2;
    options.balance = setup.balance;
    options.backend = setup.backend;
    options.uring = setup.uring;
    server_ = std::make_unique<Server>(options);
    blocker_ = std::make_shared<BlockingService>(release_.get_future().share());
    ASSERT_TRUE(server_->AddService(NewEchoService()).ok());
    ASSERT_TRUE(server_->AddService(blocker_).ok());
    absl::StatusOr<ListenerInfo> echo = server_->Listen("echo", {"127.0.0.1", 0});
    ASSERT_TRUE(echo.ok()) << echo.status();
    echo_port_ = echo->bound.port();
    absl::StatusOr<ListenerInfo> blocker = server_->Listen("blocker", {"127.0.0.1", 0});
    ASSERT_TRUE(blocker.ok()) << blocker.status();
    blocker_port_ = blocker->bound.port();
    if (setup.tls_echo.has_value()) {
      EndpointOptions endpoint;
      endpoint.tls = setup.tls_echo;
      absl::StatusOr<ListenerInfo> tls = server_->Listen("echo", {"127.0.0.1", 0}, endpoint);
      ASSERT_TRUE(tls.ok()) << tls.status();
      tls_port_ = tls->bound.port();
    }
    ASSERT_TRUE(server_->Start().ok());

    AdminOptions admin_options;
    admin_options.readonly = setup.readonly;
    admin_options.loop_timeout = setup.loop_timeout;
    admin_options.flags = {{"listen", "echo=127.0.0.1:0"}, {"drain_timeout", "10s"}};
    admin_ = std::make_unique<AdminServer>(*server_, admin_options);
    absl::StatusOr<std::string> address = admin_->Start("127.0.0.1:0");
    ASSERT_TRUE(address.ok()) << address.status();
    address_ = *address;
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::Admin::NewStub(channel_);
  }

  void TearDown() override {
    if (!released_) release_.set_value();
    released_ = true;
    fds_.clear();
    if (admin_) admin_->Shutdown();
    if (server_) server_->Stop(absl::ZeroDuration());
  }

  void ReleaseBlocker() {
    if (!released_) release_.set_value();
    released_ = true;
  }

  std::unique_ptr<grpc::ClientContext> Context(int timeout_ms = 3000) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
    return context;
  }

  // A client connection to `port`, closed at TearDown; -1 (and a test failure) if it fails.
  int Connect(uint16_t port) {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    fds_.push_back(std::move(*fd));
    return fds_.back().get();
  }

  // Sends `message` and waits for the same bytes back.
  void Echo(int fd, const std::string& message) {
    ASSERT_TRUE(test::WriteAll(fd, message, Soon()).ok());
    absl::StatusOr<std::string> reply = test::ReadExactly(fd, message.size(), Soon());
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(*reply, message);
  }

  v1::Stats GetStats() {
    v1::Stats stats;
    grpc::Status status = stub_->GetStats(Context().get(), v1::GetStatsRequest(), &stats);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return stats;
  }

  // Polls GetStats until `done` holds for a snapshot or five seconds pass; returns the last.
  v1::Stats StatsWhen(const std::function<bool(const v1::Stats&)>& done) {
    v1::Stats stats;
    test::WaitUntil(
        [&] {
          stats = GetStats();
          return done(stats);
        },
        test::Deadline::In(absl::Seconds(5)), absl::Milliseconds(5));
    return stats;
  }

  // The open connections; fails the test on an error.
  v1::ListConnectionsResponse List(v1::ListConnectionsRequest request = {}) {
    v1::ListConnectionsResponse reply;
    grpc::Status status = stub_->ListConnections(Context().get(), request, &reply);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return reply;
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<BlockingService> blocker_;
  std::promise<void> release_;
  bool released_ = false;
  std::unique_ptr<AdminServer> admin_;
  uint16_t echo_port_ = 0;
  uint16_t blocker_port_ = 0;
  uint16_t tls_port_ = 0;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Admin::Stub> stub_;
  std::vector<test::ScopedFd> fds_;
};

}  // namespace percore::testing
