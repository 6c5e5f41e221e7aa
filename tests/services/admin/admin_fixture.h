#pragma once

#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
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
#include "tests/services/admin/test_sockets.h"

namespace percore::testing {

namespace v1 = admin::v1;

struct AdminSetup {
  BalancePolicyKind balance = BalancePolicyKind::kRoundRobin;
  bool readonly = false;
  int64_t loop_timeout_ns = 1'000'000'000;
  PollerBackend backend = PollerBackend::kAuto;
  UringOptions uring = {};
};

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
    ASSERT_TRUE(server_->Start().ok());

    AdminOptions admin_options;
    admin_options.readonly = setup.readonly;
    admin_options.loop_timeout_ns = setup.loop_timeout_ns;
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
    for (int fd : fds_) close(fd);
    if (admin_) admin_->Shutdown();
    if (server_) server_->Stop(0);
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

  // A client connection to `port`, closed at TearDown.
  int Connect(uint16_t port) {
    const int fd = ConnectLoopback(port);
    EXPECT_GE(fd, 0);
    if (fd >= 0) fds_.push_back(fd);
    return fd;
  }

  // Sends `message` and waits for the same bytes back.
  void Echo(int fd, const std::string& message) {
    ASSERT_TRUE(SendAll(fd, message));
    std::string reply;
    ASSERT_TRUE(ReadExactly(fd, message.size(), &reply));
    ASSERT_EQ(reply, message);
  }

  v1::Stats GetStats() {
    v1::Stats stats;
    grpc::Status status = stub_->GetStats(Context().get(), v1::GetStatsRequest(), &stats);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return stats;
  }

  // Polls GetStats until `done` holds for a snapshot or `timeout_ms` passes; returns the last.
  v1::Stats StatsWhen(const std::function<bool(const v1::Stats&)>& done, int timeout_ms = 5000) {
    const int64_t deadline = MonotonicNanos() + int64_t{timeout_ms} * 1'000'000;
    v1::Stats stats = GetStats();
    while (!done(stats) && MonotonicNanos() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      stats = GetStats();
    }
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
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Admin::Stub> stub_;
  std::vector<int> fds_;
};

}  // namespace percore::testing
