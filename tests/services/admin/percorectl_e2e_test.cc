// End to end: percored with its admin on a free port, real traffic, and percorectl in every mode.

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "services/admin/admin.grpc.pb.h"
#include "tests/services/admin/subprocess.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::testing {
namespace {

namespace v1 = admin::v1;

std::string Runfile(const std::string& path) {
  const char* root = std::getenv("TEST_SRCDIR");
  return absl::StrCat(root != nullptr ? root : ".", "/percore/", path);
}

test::Deadline Soon() { return test::Deadline::In(absl::Seconds(10)); }

// "percored: echo listening on 127.0.0.1:41234" -> "127.0.0.1:41234".
std::string LastWord(const std::string& line) { return line.substr(line.rfind(' ') + 1); }

template <typename Message>
Message FromJson(const std::string& json) {
  Message m;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &m).ok()) << json;
  return m;
}

// The "name{labels}" keys of a Prometheus text, without the values (which move with time).
std::set<std::string> SeriesOf(const std::string& text) {
  std::set<std::string> keys;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') {
      keys.insert(std::string(line));
      continue;
    }
    keys.insert(std::string(line.substr(0, line.rfind(' '))));
  }
  return keys;
}

// The value of one row of `percorectl config`'s table ("" if there is no such row).
std::string SettingOf(const std::string& table, const std::string& setting) {
  for (absl::string_view line : absl::StrSplit(table, '\n', absl::SkipEmpty())) {
    if (line.rfind(setting + "  ", 0) != 0) continue;
    line.remove_prefix(setting.size());
    return std::string(line.substr(line.find_first_not_of(' ')));
  }
  return "";
}

class PercoredTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<Subprocess>(std::vector<std::string>{
        Runfile("tools/percored"), "--loops=2", "--listen=echo=127.0.0.1:0", "--admin_listen=127.0.0.1:0"});
    ASSERT_TRUE(daemon_->started());
    const std::string echo = daemon_->WaitForLine("echo listening on");
    ASSERT_FALSE(echo.empty()) << daemon_->stdout_text();
    const std::string admin = daemon_->WaitForLine("admin listening on");
    ASSERT_FALSE(admin.empty()) << daemon_->stdout_text();
    admin_ = LastWord(admin);
    const std::string echo_address = LastWord(echo);
    int port = 0;
    ASSERT_TRUE(absl::SimpleAtoi(echo_address.substr(echo_address.rfind(':') + 1), &port));
    echo_port_ = static_cast<uint16_t>(port);
  }

  void TearDown() override { fds_.clear(); }

  RunResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {Runfile("tools/percorectl"), "--admin=" + admin_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  // Four clients, ten 50-byte echoes each: 2,000 bytes in and out.
  void DriveTraffic() {
    const std::string message(50, 'e');
    for (int c = 0; c < 4; ++c) {
      absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(echo_port_, Soon());
      ASSERT_TRUE(fd.ok()) << fd.status();
      for (int m = 0; m < 10; ++m) {
        ASSERT_TRUE(test::WriteAll(fd->get(), message, Soon()).ok());
        ASSERT_TRUE(test::ReadExactly(fd->get(), message.size(), Soon()).ok());
      }
      fds_.push_back(std::move(*fd));
    }
  }

  std::unique_ptr<Subprocess> daemon_;
  std::string admin_;
  uint16_t echo_port_ = 0;
  std::vector<test::ScopedFd> fds_;
};

TEST_F(PercoredTest, EveryModeOfPercorectl) {
  // The start-up line names the back end auto resolved to, and why.
  // (SetUp has read past it.)
  const std::string& out = daemon_->stdout_text();
  EXPECT_TRUE(out.rfind("percored: 2 loops, backend io_uring (auto: available), balance round_robin, rebalance off\n", 0) == 0 ||
              out.rfind("percored: 2 loops, backend epoll (auto: io_uring unavailable: ", 0) == 0)
      << out;
  ASSERT_NO_FATAL_FAILURE(DriveTraffic());

  RunResult r = Ctl({"stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 loops"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("accept (distributor): accepted 4 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("handed [2 2]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\necho "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("p99 iter"), std::string::npos) << r.out;

  r = Ctl({"--json", "stats"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const v1::Stats stats = FromJson<v1::Stats>(r.out);
  ASSERT_EQ(stats.loops_size(), 2);
  EXPECT_EQ(stats.loops(0).bytes_in() + stats.loops(1).bytes_in(), 2000u);
  EXPECT_EQ(stats.distributor().accepted(), 4u);
  EXPECT_EQ(stats.services(0).name(), "echo");

  // --prometheus prints what GetPrometheus (and so /metrics) returns: the same series.
  r = Ctl({"stats", "--prometheus"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto stub = v1::Admin::NewStub(grpc::CreateChannel(admin_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  v1::PrometheusText direct;
  ASSERT_TRUE(stub->GetPrometheus(&context, v1::GetPrometheusRequest(), &direct).ok());
  EXPECT_EQ(SeriesOf(r.out), SeriesOf(direct.text()));
  EXPECT_NE(r.out.find("percore_loop_received_bytes_total{loop=\"0\"} 1000\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("percore_loop_uring_enters_total{loop=\"1\"} "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(absl::StrCat("backend=\"", stats.server().backend(), "\"")), std::string::npos) << r.out;

  r = Ctl({"watch", "--interval=50ms", "--count=3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t headers = 0;
  for (size_t at = r.out.find("=== "); at != std::string::npos; at = r.out.find("=== ", at + 1)) ++headers;
  EXPECT_EQ(headers, 3u) << r.out;
  EXPECT_NE(r.out.find("rates over the last"), std::string::npos) << r.out;

  r = Ctl({"--json", "watch", "--interval=50ms", "--count=2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(FromJson<v1::Stats>(lines[1]).distributor().accepted(), 4u);

  r = Ctl({"conns"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("4 connections\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" reading "), std::string::npos) << r.out;
  r = Ctl({"conns", "--loop", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 connections\n"), std::string::npos) << r.out;
  r = Ctl({"--json", "conns"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto listing = FromJson<v1::ListConnectionsResponse>(r.out);
  ASSERT_EQ(listing.connections_size(), 4);
  for (const auto& c : listing.connections()) EXPECT_EQ(c.bytes_in(), 500u);
  EXPECT_NE(r.out.find("\"recent_requests_per_sec\""), std::string::npos) << r.out;

  // Move the last client's connection to the other loop; it keeps answering under its new id.
  const v1::ConnectionInfo& last = listing.connections(3);
  r = Ctl({"migrate", absl::StrCat(last.id()), absl::StrCat(1 - last.loop())});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(absl::StrCat("connection ", last.id(), " moved to loop ", 1 - last.loop(), " (now id "), 0), 0u)
      << r.out;
  r = Ctl({"migrate", absl::StrCat(last.id()), "0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;
  r = Ctl({"migrate", absl::StrCat(listing.connections(0).id()), "9"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.err;
  r = Ctl({"migrate", "--wait=0s", absl::StrCat(listing.connections(0).id()), "1"});
  EXPECT_EQ(r.exit_code, 2) << "a wait of nothing is a usage error";
  r = Ctl({"migrate", "x", "1"});
  EXPECT_EQ(r.exit_code, 2) << "a usage error";
  r = Ctl({"conns"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(" req/s "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" bytes/s"), std::string::npos) << r.out;

  r = Ctl({"config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--listen"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("echo=127.0.0.1:0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--admin_listen"), std::string::npos) << r.out;
  EXPECT_EQ(SettingOf(r.out, "requested_backend"), "auto") << r.out;
  EXPECT_EQ(SettingOf(r.out, "backend_reason").rfind(stats.server().backend() + " (auto: ", 0), 0u) << r.out;
  EXPECT_EQ(SettingOf(r.out, "loop 1 backend").rfind(stats.server().backend(), 0), 0u) << r.out;
  EXPECT_NE(r.out.find("--uring_buffers"), std::string::npos) << r.out;
  r = Ctl({"--json", "config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const v1::Config config = FromJson<v1::Config>(r.out);
  EXPECT_EQ(config.loops(), 2);
  EXPECT_EQ(config.backend(), stats.server().backend());
  EXPECT_EQ(config.requested_backend(), "auto");
  EXPECT_EQ(config.loop_backends_size(), 2);
  EXPECT_EQ(config.has_uring(), config.backend() == "io_uring");

  r = Ctl({"balance", "least_connections"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "balance policy: round_robin -> least_connections\n");
  r = Ctl({"balance", "nonsense"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.err;

  r = Ctl({"drain", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loop 1 draining\n");
  r = Ctl({"--json", "stats"});
  EXPECT_TRUE(FromJson<v1::Stats>(r.out).loops(1).draining());
  r = Ctl({"resume", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loop 1 accepting\n");
  r = Ctl({"drain", "7"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("OUT_OF_RANGE"), std::string::npos) << r.err;

  // Close the connection of the first client; the others keep working.
  const uint64_t id = listing.connections(0).id();
  r = Ctl({"close", absl::StrCat(id)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("connection ", id, " closed\n"));
  int closed_fd = -1;
  for (const test::ScopedFd& fd : fds_) {
    if (listing.connections(0).peer() == absl::StrCat("127.0.0.1:", test::LocalPort(fd.get()).value_or(0))) {
      closed_fd = fd.get();
    }
  }
  ASSERT_GE(closed_fd, 0);
  EXPECT_TRUE(test::ReadUntilEofOrReset(closed_fd, Soon()).ok());
  for (const test::ScopedFd& fd : fds_) {
    if (fd.get() == closed_fd) continue;
    ASSERT_TRUE(test::WriteAll(fd.get(), "after", Soon()).ok());
    EXPECT_TRUE(test::ReadExactly(fd.get(), 5, Soon()).ok());
  }
  r = Ctl({"close", absl::StrCat(id)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NOT_FOUND"), std::string::npos) << r.err;

  r = Ctl({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");

  r = Ctl({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  r = Ctl({"drain"});
  EXPECT_EQ(r.exit_code, 2);
  r = Ctl({});
  EXPECT_EQ(r.exit_code, 2);

  // SIGTERM: the daemon drains and exits 0.
  daemon_->Signal(SIGTERM);
  EXPECT_EQ(daemon_->Wait(), 0) << daemon_->stderr_text();
  EXPECT_NE(daemon_->stdout_text().find("percored: stopped"), std::string::npos);
  // The closed client saw EOF; every client sees it now that the server is gone.
  for (const test::ScopedFd& fd : fds_) EXPECT_TRUE(test::ReadUntilEofOrReset(fd.get(), Soon()).ok());
}

TEST_F(PercoredTest, WatchRunsUntilSigint) {
  Subprocess watch({Runfile("tools/percorectl"), "--admin=" + admin_, "watch", "--interval=50ms"});
  ASSERT_TRUE(watch.started());
  ASSERT_FALSE(watch.WaitForLine("=== ").empty()) << watch.stderr_text();
  ASSERT_FALSE(watch.WaitForLine("=== ").empty()) << watch.stderr_text();
  watch.Signal(SIGINT);
  EXPECT_EQ(watch.Wait(), 0) << watch.stderr_text();
}

TEST(PercoredFlagsTest, BadBackEndOrRingSizesAreUsageErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--backend=kqueue", "--backend: 'kqueue' is not auto, io_uring, epoll or poll"},
      {"--uring_entries=4", "--uring_*: io_uring entries = 4: must be in [8, 32768]"},
      {"--uring_buffers=100", "--uring_*: io_uring buffers = 100: must be a power of two in [1, 32768]"},
      {"--uring_buffer_size=100", "--uring_*: io_uring buffer_size = 100: must be in [512, 1048576]"},
  };
  for (const auto& [flag, message] : cases) {
    SCOPED_TRACE(flag);
    const RunResult r = RunCommand(
        {Runfile("tools/percored"), flag, "--loops=1", "--listen=echo=127.0.0.1:0", "--admin_listen="});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err, "percored: " + message + "\n");
  }
}

TEST(PercorectlTest, UnreachableAdminFailsWithOneClearLine) {
  // Port 1 on loopback: nothing listens there.
  for (const char* command : {"stats", "watch", "conns", "config", "health", "close"}) {
    std::vector<std::string> argv = {Runfile("tools/percorectl"), "--admin=127.0.0.1:1", "--timeout=2s", command};
    if (std::string(command) == "close") argv.push_back("5");
    const RunResult r = RunCommand(argv);
    SCOPED_TRACE(command);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(r.err.rfind("percorectl: cannot reach admin at 127.0.0.1:1: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace percore::testing
