// percored end to end, SIGTERM under load: the health service answers NOT_SERVING while the
// drain still runs, the listeners close, every request the server read is answered in full,
// every connection ends with an orderly EOF, and the daemon exits 0 before its drain deadline.
// Idle, health watchers hear NOT_SERVING before the daemon goes.

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "services/admin/admin.grpc.pb.h"
#include "services/admin/health.grpc.pb.h"
#include "tests/services/admin/subprocess.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/random_bytes.h"

namespace percore {
namespace {

using ::percore::testing::Subprocess;
using test::Deadline;
using test::ScopedFd;

constexpr absl::Duration kDrainTimeout = absl::Seconds(20);
constexpr int kHttpClients = 5;  // the last one held (see Load)
constexpr size_t kBatch = 32;    // requests queued whenever fewer wait to be written: pipelines as deep as TCP takes
constexpr size_t kEchoBytes = size_t{32} << 20;  // far more than the server buffers before it stops reading
constexpr std::string_view kRequest = "GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n";

// "percored: http listening on 127.0.0.1:41234" -> "127.0.0.1:41234".
std::string LastWord(const std::string& line) { return line.substr(line.rfind(' ') + 1); }

namespace health = ::grpc::health::v1;
using health::HealthCheckResponse;

// The status a health check answers for the server as a whole (service ""), or the RPC's error.
std::string CheckHealth(health::Health::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  HealthCheckResponse response;
  const grpc::Status status = stub.Check(&context, health::HealthCheckRequest(), &response);
  return status.ok() ? HealthCheckResponse::ServingStatus_Name(response.status()) : status.error_message();
}

// One snapshot of the daemon's statistics, or the admin's error.
absl::StatusOr<admin::v1::Stats> GetStats(admin::v1::Admin::Stub& stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  admin::v1::Stats stats;
  const grpc::Status status = stub.GetStats(&context, admin::v1::GetStatsRequest(), &stats);
  if (!status.ok()) return absl::UnavailableError(absl::StrCat("GetStats: ", status.error_message()));
  return stats;
}

// The sum of one per-loop counter over every loop.
uint64_t SumOverLoops(const admin::v1::Stats& stats, uint64_t (admin::v1::LoopStats::*counter)() const) {
  uint64_t sum = 0;
  for (const admin::v1::LoopStats& loop : stats.loops()) sum += (loop.*counter)();
  return sum;
}

// A grpc.health.v1 Watch stream: the status now, then every change, until the server ends it.
// The context's deadline bounds every read.
class HealthWatch {
 public:
  explicit HealthWatch(health::Health::Stub& stub) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    reader_ = stub.Watch(&context_, health::HealthCheckRequest());
  }
  ~HealthWatch() {
    if (finished_) return;
    context_.TryCancel();
    (void)reader_->Finish();
  }
  // After the end of the stream: how the server ended it.
  grpc::Status Finish() {
    finished_ = true;
    return reader_->Finish();
  }
  // The next status the server sends.
  std::string Next() {
    HealthCheckResponse response;
    return reader_->Read(&response) ? HealthCheckResponse::ServingStatus_Name(response.status()) : "end of stream";
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader_;
  bool finished_ = false;
};

// One thread drives every client in a poll() loop: HTTP clients that pipeline GETs until the server
// ends their connection, and two held clients, the last HTTP one and an echo one, that write without
// reading until Join(): the server's output to them backs up, it stops reading them with requests
// left unanswered in its input, and they hold the drain open.
class Load {
 public:
  struct Client {
    bool http = true;
    bool held = false;
    ScopedFd fd;
    std::string out;  // everything queued to send; out[0, written) is sent
    size_t written = 0;
    std::string in;  // HTTP: not yet parsed as a whole response; echo: all received
    uint64_t responses = 0;
    std::string error;  // the first problem: a reset, a malformed response
    bool eof = false;
  };

  absl::Status Start(uint16_t http_port, uint16_t echo_port) {
    for (int i = 0; i <= kHttpClients; ++i) {
      Client& c = clients_[i];
      c.http = i < kHttpClients;
      c.held = i >= kHttpClients - 1;
      absl::StatusOr<ScopedFd> fd =
          test::ConnectToLoopback(c.http ? http_port : echo_port, Deadline::In(absl::Seconds(5)));
      if (!fd.ok()) return fd.status();
      c.fd = std::move(*fd);
    }
    std::mt19937_64 rng(7);
    clients_.back().out = test::RandomBytes(rng, kEchoBytes);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }
  ~Load() {  // on a failed assertion: stop at once
    abandoned_.store(true);
    Join();
  }
  // Lets the held clients read (and stop writing), then waits until every connection is over.
  void Join() {
    released_.store(true);
    const uint64_t one = 1;
    (void)!write(wake_.get(), &one, sizeof(one));
    if (thread_.joinable()) thread_.join();
  }
  uint64_t responses() const { return responses_.load(); }
  int http_ended() const { return http_ended_.load(); }  // of those not held
  // After Join(): the HTTP clients, then the echo client.
  const std::vector<Client>& clients() const { return clients_; }

 private:
  void Run() {
    const Deadline deadline = Deadline::In(absl::Seconds(90));
    std::vector<pollfd> fds(clients_.size() + 1);
    fds.back() = {wake_.get(), POLLIN, 0};
    while (!deadline.expired()) {
      const bool released = released_.load();
      bool open = false;
      for (size_t i = 0; i < clients_.size(); ++i) {
        Client& c = clients_[i];
        if (c.http && c.fd.valid() && c.out.size() - c.written < kBatch * kRequest.size()) {
          for (size_t n = 0; n < kBatch; ++n) c.out.append(kRequest);
        }
        const bool reads = !c.held || released;
        const bool writes = c.written < c.out.size() && (!c.held || !released);
        fds[i] = {c.fd.get(), static_cast<short>((reads ? POLLIN : 0) | (writes ? POLLOUT : 0)), 0};
        open |= c.fd.valid();
      }
      if (!open || abandoned_.load()) return;
      if (poll(fds.data(), fds.size(), deadline.PollTimeoutMs()) < 0) continue;
      for (size_t i = 0; i < clients_.size(); ++i) {
        if (fds[i].revents & POLLOUT) Write(clients_[i]);
        if (clients_[i].fd.valid() && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) Read(clients_[i]);
      }
      uint64_t count;
      if (fds.back().revents & POLLIN) (void)!read(wake_.get(), &count, sizeof(count));
    }
  }

  void Write(Client& c) {
    const size_t size = std::min<size_t>(c.out.size() - c.written, 1 << 20);
    const ssize_t n = send(c.fd.get(), c.out.data() + c.written, size, MSG_NOSIGNAL);
    if (n > 0) c.written += static_cast<size_t>(n);
    if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    c.error = absl::StrCat("write: ", std::strerror(errno));
    End(c);
  }

  void Read(Client& c) {
    char chunk[64 << 10];
    ssize_t n;
    while ((n = recv(c.fd.get(), chunk, sizeof(chunk), 0)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) c.in.append(chunk, static_cast<size_t>(n));
    }
    const bool more = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (!more && n < 0) c.error = absl::StrCat("read: ", std::strerror(errno));
    c.eof = n == 0;
    size_t at = 0;
    for (size_t next; c.http && c.error.empty() && (next = ParseResponse(c.in, at, c.error)) > at; at = next) {
      ++c.responses;
      responses_.fetch_add(1);
    }
    if (c.http) c.in.erase(0, at);
    if (!more || !c.error.empty()) End(c);
  }

  // If `in` holds a whole response at `at`, the plaintext 200 (only the Date value varies), its
  // end; `at` while it is incomplete or malformed (then `error` says how).
  static size_t ParseResponse(const std::string& in, size_t at, std::string& error) {
    const size_t head_end = in.find("\r\n\r\n", at);
    if (head_end == std::string::npos) return at;
    const absl::string_view head(in.data() + at, head_end + 2 - at);  // with its last CRLF
    const size_t field = head.find("\r\nContent-Length: ");
    size_t length = 0;
    if (!absl::StartsWith(head, "HTTP/1.1 200 OK\r\n") || field == absl::string_view::npos ||
        !absl::SimpleAtoi(head.substr(field + 18, head.find("\r\n", field + 2) - field - 18), &length)) {
      error = absl::StrCat("bad head: ", head);
      return at;
    }
    if (in.size() < head_end + 4 + length) return at;
    if (in.compare(head_end + 4, length, "Hello, World!") != 0) error = "bad body";
    return error.empty() ? head_end + 4 + length : at;
  }

  void End(Client& c) {
    c.fd.reset();  // after EOF nothing is left unread, so this sends a FIN
    if (!c.held) http_ended_.fetch_add(1);
  }

  std::vector<Client> clients_ = std::vector<Client>(kHttpClients + 1);
  ScopedFd wake_{eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  std::atomic<bool> released_{false};
  std::atomic<bool> abandoned_{false};
  std::atomic<uint64_t> responses_{0};
  std::atomic<int> http_ended_{0};
  std::thread thread_;
};

class SigtermTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Subprocess>(std::vector<std::string>{
        absl::StrCat(std::getenv("TEST_SRCDIR"), "/percore/tools/percored"), "--loops=2", "--balance=round_robin",
        "--listen=http=127.0.0.1:0,echo=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
        "--drain_timeout=" + absl::FormatDuration(kDrainTimeout)});
    ASSERT_TRUE(daemon_->started());
    // Listeners are printed in --listen order, then the admin.
    for (auto [service, port] : {std::pair{"http", &http_port_}, std::pair{"echo", &echo_port_}}) {
      const std::string address = LastWord(daemon_->WaitForLine(absl::StrCat(service, " listening on")));
      int value = 0;
      ASSERT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &value)) << daemon_->stdout_text();
      *port = static_cast<uint16_t>(value);
    }
    const std::string admin_line = daemon_->WaitForLine("admin listening on");
    ASSERT_FALSE(admin_line.empty()) << daemon_->stdout_text() << daemon_->stderr_text();
    const std::shared_ptr<grpc::Channel> channel =
        grpc::CreateChannel(LastWord(admin_line), grpc::InsecureChannelCredentials());
    health_ = health::Health::NewStub(channel);
    admin_ = admin::v1::Admin::NewStub(channel);
  }

  void SendSigterm() {
    sigterm_at_ = absl::Now();
    daemon_->Signal(SIGTERM);
    ASSERT_FALSE(daemon_->WaitForLine("percored: SIGTERM received, draining").empty()) << daemon_->stdout_text();
  }

  // Exit 0, with "stopped", before the drain deadline (the one timing the contract states).
  void ExpectCleanExit() {
    const int code = daemon_->Wait(static_cast<int>(absl::ToInt64Milliseconds(kDrainTimeout + absl::Seconds(20))));
    const absl::Duration took = absl::Now() - sigterm_at_;
    EXPECT_EQ(code, 0) << daemon_->stderr_text();
    EXPECT_LT(took, kDrainTimeout);
    EXPECT_TRUE(absl::StrContains(daemon_->stdout_text(), "percored: stopped\n")) << daemon_->stdout_text();
    std::printf("SIGTERM to exit: %s\n", absl::FormatDuration(took).c_str());
  }

  std::unique_ptr<Subprocess> daemon_;
  uint16_t http_port_ = 0;
  uint16_t echo_port_ = 0;
  std::unique_ptr<health::Health::Stub> health_;
  std::unique_ptr<admin::v1::Admin::Stub> admin_;
  absl::Time sigterm_at_;
};

TEST_F(SigtermTest, UnderLoadAnswersEveryRequestReadAndEndsEveryConnectionWithEof) {
  ASSERT_EQ(CheckHealth(*health_), "SERVING");
  Load load;
  ASSERT_TRUE(load.Start(http_port_, echo_port_).ok());
  // Responses flow, and the server stopped reading a held client (its output backed up).
  ASSERT_TRUE(test::WaitUntil([&] { return load.responses() >= 2000; }, Deadline::In(absl::Seconds(30))));
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        const absl::StatusOr<admin::v1::Stats> stats = GetStats(*admin_);
        return stats.ok() && SumOverLoops(*stats, &admin::v1::LoopStats::backpressure_pauses) > 0;
      },
      Deadline::In(absl::Seconds(30)), absl::Milliseconds(10)));

  ASSERT_NO_FATAL_FAILURE(SendSigterm());
  // The held clients hold the drain open: every health check in it answers NOT_SERVING.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(CheckHealth(*health_), "NOT_SERVING") << "check " << i;
  // The listeners close: a new connection is refused.
  EXPECT_TRUE(test::WaitUntil(
      [&] {
        absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(http_port_, Deadline::In(absl::Seconds(2)));
        return !fd.ok() && absl::StrContains(fd.status().message(), "refused");
      },
      Deadline::In(absl::Seconds(10)), absl::Milliseconds(5)));
  // The HTTP clients not held have ended, on both loops (round robin put them on 0, 1, 0, 1): each
  // loop has begun draining, after which it reads no more, so the bytes it read are final. (It may
  // still be answering a held client's input, so the count of requests served may still grow.)
  // Read both while the admin still answers: the drain is held.
  EXPECT_TRUE(test::WaitUntil([&] { return load.http_ended() == kHttpClients - 1; }, Deadline::In(absl::Seconds(15))));
  const absl::StatusOr<admin::v1::Stats> stats = GetStats(*admin_);
  ASSERT_TRUE(stats.ok()) << stats.status();
  const auto http =
      absl::c_find_if(stats->services(), [](const admin::v1::ServiceStats& s) { return s.name() == "http"; });
  ASSERT_NE(http, stats->services().end());
  const uint64_t served = http->requests();  // over every loop
  const uint64_t read = SumOverLoops(*stats, &admin::v1::LoopStats::bytes_in);
  EXPECT_EQ(CheckHealth(*health_), "NOT_SERVING");

  load.Join();  // releases the held clients, which read until EOF
  ExpectCleanExit();

  uint64_t responses = 0;
  for (const Load::Client& c : load.clients()) {
    SCOPED_TRACE(absl::StrCat(c.held ? "held " : "", c.http ? "HTTP" : "echo", " client, ", c.written, " bytes sent"));
    EXPECT_EQ(c.error, "");
    EXPECT_TRUE(c.eof);  // not a reset
    if (!c.http) continue;
    EXPECT_EQ(c.in.size(), 0u) << "a partial response before EOF";
    EXPECT_GT(c.responses, 0u);
    EXPECT_LE(c.responses, c.written / kRequest.size());
    responses += c.responses;
  }
  EXPECT_GE(responses, served);  // every request counted by then was answered
  const Load::Client& echo = load.clients().back();
  EXPECT_GT(echo.in.size(), 0u);
  EXPECT_LE(echo.in.size(), echo.written);
  EXPECT_TRUE(echo.in == std::string_view(echo.out).substr(0, echo.in.size())) << "not a prefix of what was sent";
  // Every byte the server read was answered: all of the echo's, and every whole HTTP request (at
  // most a partial one per connection was left unanswered).
  EXPECT_GE(read, echo.in.size() + responses * kRequest.size());
  EXPECT_LT(read, echo.in.size() + (responses + kHttpClients) * kRequest.size());
}

TEST_F(SigtermTest, IdleDaemonTellsWatchersNotServingThenExits) {
  HealthWatch watch(*health_);
  ASSERT_EQ(watch.Next(), "SERVING");
  ASSERT_NO_FATAL_FAILURE(SendSigterm());
  // Watchers hear of the change before the admin service goes away with the daemon.
  EXPECT_EQ(watch.Next(), "NOT_SERVING");
  EXPECT_EQ(watch.Next(), "end of stream");
  // Ended by the daemon, cleanly: not cut off when gRPC's shutdown grace ran out.
  const grpc::Status end = watch.Finish();
  EXPECT_TRUE(end.ok()) << end.error_code() << " " << end.error_message();
  ExpectCleanExit();
}

}  // namespace
}  // namespace percore
