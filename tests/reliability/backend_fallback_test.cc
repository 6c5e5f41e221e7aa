// Where io_uring cannot run: --backend=auto falls back to epoll and says why on its start-up
// line, and serves; an explicit --backend=io_uring refuses to start and names the reason.
// io_uring is denied the way a container does it, by a seccomp filter
// (tests/testing:without_io_uring), with EPERM (Docker's default answer) and with ENOSYS.
// Then the same decision in process: ResolveBackend and the ring's own argument checks.

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/poller.h"
#include "reactor/server.h"
#include "reactor/uring_poller.h"
#include "services/echo/echo_service.h"
#include "tests/services/admin/subprocess.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using testing::RunCommand;
using testing::Subprocess;

std::string Runfile(const std::string& path) { return absl::StrCat(std::getenv("TEST_SRCDIR"), "/percore/", path); }

std::vector<std::string> Daemon(const std::string& denied_with, const std::string& backend) {
  return {Runfile("tests/testing/without_io_uring"), "--errno=" + denied_with, Runfile("tools/percored"),
          "--loops=1", "--backend=" + backend, "--listen=echo=127.0.0.1:0", "--admin_listen="};
}

uint16_t PortOf(const std::string& line) {
  int port = 0;
  if (!absl::SimpleAtoi(line.substr(line.rfind(':') + 1), &port)) return 0;
  return static_cast<uint16_t>(port);
}

class DeniedTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DeniedTest, AutoFallsBackToEpollSaysWhyAndServes) {
  Subprocess daemon(Daemon(GetParam(), "auto"));
  ASSERT_TRUE(daemon.started());
  const std::string line = daemon.WaitForLine("backend ");
  ASSERT_FALSE(line.empty()) << daemon.stdout_text() << daemon.stderr_text();
  EXPECT_TRUE(absl::StrContains(line, "backend epoll (auto: io_uring unavailable: io_uring_setup: " + GetParam()))
      << line;
  if (GetParam() == "EPERM") {
    EXPECT_TRUE(absl::StrContains(line, "seccomp")) << line;
  }
  const uint16_t port = PortOf(daemon.WaitForLine("echo listening on"));
  ASSERT_NE(port, 0) << daemon.stdout_text();
  auto fd = test::ConnectToLoopback(port, test::Deadline::In(absl::Seconds(10)));
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), "still served", test::Deadline::In(absl::Seconds(10))).ok());
  auto echoed = test::ReadExactly(fd->get(), 12, test::Deadline::In(absl::Seconds(10)));
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "still served");
  daemon.Signal(SIGTERM);
  EXPECT_EQ(daemon.Wait(), 0) << daemon.stderr_text();
}

TEST_P(DeniedTest, ExplicitIoUringRefusesToStartAndNamesTheReason) {
  const testing::RunResult run = RunCommand(Daemon(GetParam(), "io_uring"));
  EXPECT_NE(run.exit_code, 0) << run.out;
  EXPECT_TRUE(absl::StrContains(run.err, "--backend=io_uring cannot start: io_uring_setup: " + GetParam())) << run.err;
  EXPECT_FALSE(absl::StrContains(run.out, "listening on")) << run.out;
}

INSTANTIATE_TEST_SUITE_P(Errno, DeniedTest, ::testing::Values("EPERM", "ENOSYS"));

// On this machine io_uring works: auto takes it.
TEST(ResolveBackendTest, AutoTakesIoUringWhereItRuns) {
  std::string why;
  absl::StatusOr<PollerBackend> backend = ResolveBackend(PollerBackend::kAuto, UringOptions{}, &why);
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ(*backend, PollerBackend::kIoUring);
  EXPECT_EQ(why, "io_uring (auto: available)");
}

TEST(ResolveBackendTest, ReadinessBackEndsAreTakenAsAsked) {
  for (PollerBackend asked : {PollerBackend::kPoll, PollerBackend::kEpoll}) {
    std::string why;
    absl::StatusOr<PollerBackend> backend = ResolveBackend(asked, UringOptions{}, &why);
    ASSERT_TRUE(backend.ok());
    EXPECT_EQ(*backend, asked);
    EXPECT_EQ(why, absl::StrCat(std::string(PollerBackendName(asked)), " (asked for)"));
  }
}

TEST(ResolveBackendTest, RingSizesOutOfRangeAreRefusedWithTheirValue) {
  UringOptions not_power_of_two;
  not_power_of_two.buffers = 300;
  UringOptions tiny_buffers;
  tiny_buffers.buffer_size = 100;
  UringOptions no_entries;
  no_entries.entries = 0;
  for (const auto& [options, text] :
       {std::pair{not_power_of_two, "buffers = 300"}, std::pair{tiny_buffers, "buffer_size = 100"},
        std::pair{no_entries, "entries = 0"}}) {
    // A configuration error on auto too: falling back to epoll would hide it.
    for (PollerBackend asked : {PollerBackend::kIoUring, PollerBackend::kAuto}) {
      absl::StatusOr<PollerBackend> backend = ResolveBackend(asked, options, nullptr);
      ASSERT_FALSE(backend.ok());
      EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_TRUE(absl::StrContains(backend.status().message(), text)) << backend.status();
    }
  }
}

TEST(ResolveBackendTest, ServerStartRefusesRingSizesNoRingCanHave) {
  ServerOptions options;
  options.loops = 1;
  options.backend = PollerBackend::kIoUring;
  options.uring.buffers = 3;
  Server server(options);
  ASSERT_TRUE(server.AddService(NewEchoService()).ok());
  ASSERT_TRUE(server.Listen("echo", {"127.0.0.1", 0}).ok());
  absl::Status started = server.Start();
  EXPECT_FALSE(started.ok());
  EXPECT_EQ(started.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(started.message(), "buffers = 3")) << started;
}

}  // namespace
}  // namespace percore
