// Descriptor exhaustion: with RLIMIT_NOFILE lowered so the distributor's accept4 fails with
// EMFILE, the distributor must back off (not spin on a listening socket that stays readable),
// established connections must keep being served, and accepting must resume once descriptors
// are available again. RLIMIT_NOFILE is per process and bazel runs each test in its own
// process, so lowering it here disturbs no other test.

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore {
namespace {

using test::Deadline;
using test::ScopedFd;

constexpr int kEstablished = 5;
constexpr int kAttempts = 200;

void ExpectEcho(int fd, const std::string& payload) {
  ASSERT_TRUE(test::WriteAll(fd, payload, Deadline::In(absl::Seconds(10))).ok());
  auto got = test::ReadExactly(fd, payload.size(), Deadline::In(absl::Seconds(10)));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, payload);
}

// The lowest descriptor number not in use: every number below it is taken.
int LowestFreeFd() {
  const int fd = ::dup(0);
  if (fd >= 0) ::close(fd);
  return fd;
}

// Starts `server` with the echo service on a loopback port of its choosing; returns the port,
// or 0 (after a test failure) if it could not.
uint16_t StartEcho(Server& server) {
  if (!server.AddService(NewEchoService()).ok()) return 0;
  auto listener = server.Listen("echo", {"127.0.0.1", 0});
  EXPECT_TRUE(listener.ok()) << listener.status();
  if (!listener.ok() || !server.Start().ok()) {
    ADD_FAILURE() << "the echo server did not start";
    return 0;
  }
  return listener->bound.port();
}

TEST(FdExhaustionTest, DistributorBacksOffOnEmfileAndRecovers) {
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  const uint16_t port = StartEcho(server);
  ASSERT_NE(port, 0);
  const AcceptCounters& counters = server.distributor_stats()->counters;

  std::vector<ScopedFd> established;
  for (int i = 0; i < kEstablished; ++i) {
    auto fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(fd.ok()) << fd.status();
    ExpectEcho(fd->get(), "hello " + std::to_string(i));
    established.push_back(std::move(*fd));
  }
  // The attempts' sockets are made before the limit drops; connect() needs no new descriptor.
  std::vector<ScopedFd> attempts;
  for (int i = 0; i < kAttempts; ++i) {
    absl::StatusOr<ScopedFd> fd = test::NewClientSocket();
    ASSERT_TRUE(fd.ok()) << fd.status();
    attempts.push_back(std::move(*fd));
  }
  const int free_from = LowestFreeFd();
  ASSERT_GT(free_from, 0);
  // Room for two more descriptors at most: the distributor runs out after a couple of accepts.
  rlimit lowered = original;
  lowered.rlim_cur = static_cast<rlim_t>(free_from + 2);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const uint64_t accepted_before = counters.accepted.Get();
  for (ScopedFd& fd : attempts) ASSERT_TRUE(test::StartConnect(fd.get(), test::LoopbackAddress(port)).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return counters.backoffs.Get() >= 1; },
                              Deadline::In(absl::Seconds(10))));
  const uint64_t wakeups_start = counters.wakeups.Get();
  const uint64_t backoffs_start = counters.backoffs.Get();
  // Established connections are still served while the distributor is starved.
  for (int i = 0; i < kEstablished; ++i) ExpectEcho(established[i].get(), "during " + std::to_string(i));
  // Let several backoff periods pass (counted, not timed).
  ASSERT_TRUE(test::WaitUntil([&] { return counters.backoffs.Get() >= backoffs_start + 5; },
                              Deadline::In(absl::Seconds(20))));
  const uint64_t wakeups = counters.wakeups.Get() - wakeups_start;
  const uint64_t backoffs = counters.backoffs.Get() - backoffs_start;
  const uint64_t emfile = counters.accept_errors[EMFILE].Get();
  EXPECT_GT(emfile, 0u);
  // A backoff costs about two wake-ups (the pause, then the retry that fails again); a spinning
  // distributor would make thousands per backoff.
  EXPECT_LE(wakeups, 4 * backoffs + 10) << wakeups << " wake-ups over " << backoffs << " backoffs";
  std::printf("EMFILE: %llu, backoffs: %llu, wake-ups during %llu backoffs: %llu, accepted while limited: %llu\n",
              static_cast<unsigned long long>(emfile),
              static_cast<unsigned long long>(counters.backoffs.Get()),
              static_cast<unsigned long long>(backoffs), static_cast<unsigned long long>(wakeups),
              static_cast<unsigned long long>(counters.accepted.Get() - accepted_before));

  // Descriptors come back: the queued attempts are accepted and new connections are served.
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
  attempts.clear();
  auto fresh = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(20)));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ExpectEcho(fresh->get(), "after the flood");
  for (int i = 0; i < kEstablished; ++i) ExpectEcho(established[i].get(), "after " + std::to_string(i));
  server.Stop();
}

// Connections the kernel completed but the server never accepted wait in the listen backlog.
// Here the distributor is held in a long back-off by EMFILE while five clients connect and send
// a request each; then descriptors come back and the server stops. Stop accepts the backlog and
// the drain answers each request: every client gets its echo and then an orderly EOF, where
// closing the listener on them would have reset them. Both ways of accepting: the distributor
// (two loops) and reuseport (one loop, so one listening socket holds the whole backlog).
class BacklogAtStopTest : public ::testing::TestWithParam<BalancePolicyKind> {};

uint64_t SumCounters(const Server& server, uint64_t (*field)(const AcceptCounters&)) {
  uint64_t sum = 0;
  for (const AcceptCounters* c : server.accept_counters()) sum += field(*c);
  return sum;
}
uint64_t Accepted(const AcceptCounters& c) { return c.accepted.Get(); }
uint64_t Backoffs(const AcceptCounters& c) { return c.backoffs.Get(); }

TEST_P(BacklogAtStopTest, BacklogWaitingAtStopIsAnsweredNotReset) {
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  // The limit is lowered before the server starts and the table is filled up to it later:
  // an io_uring accept takes RLIMIT_NOFILE when it is armed, so lowering the limit under an
  // armed multishot accept would not reach it (a real EMFILE is a full table, not a new limit).
  rlimit lowered = original;
  lowered.rlim_cur = static_cast<rlim_t>(LowestFreeFd() + 256);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  struct RestoreLimit {
    const rlimit& limit;
    ~RestoreLimit() { ::setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{original};
  ServerOptions options;
  options.balance = GetParam();
  options.loops = GetParam() == BalancePolicyKind::kReusePort ? 1 : 2;
  options.accept_backoff = absl::Minutes(1);  // longer than the test: only Stop ends the back-off
  Server server(options);
  const uint16_t port = StartEcho(server);
  ASSERT_NE(port, 0);

  // One connection served first. Besides showing the server works, it warms the sanitizers'
  // caches: under UBSan a first-time virtual call check needs two new descriptors, which the
  // exhaustion below would deny it.
  {
    auto warm = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(warm.ok()) << warm.status();
    ExpectEcho(warm->get(), "warm-up");
  }
  ASSERT_TRUE(test::WaitUntil([&] { return server.Totals().closed_total() == 1; }, Deadline::In(absl::Seconds(10))));

  constexpr int kWaiting = 5;
  std::vector<ScopedFd> clients;
  for (int i = 0; i < kWaiting; ++i) {
    absl::StatusOr<ScopedFd> fd = test::NewClientSocket();
    ASSERT_TRUE(fd.ok()) << fd.status();
    clients.push_back(std::move(*fd));
  }
  // No descriptor left: the first accept fails and accepting backs off.
  std::vector<ScopedFd> fillers;
  for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) fillers.emplace_back(fd);
  ASSERT_EQ(errno, EMFILE);
  for (int i = 0; i < kWaiting; ++i) {
    ASSERT_TRUE(test::StartConnect(clients[i].get(), test::LoopbackAddress(port)).ok());
    ASSERT_TRUE(test::WriteAll(clients[i].get(), "waiting " + std::to_string(i), Deadline::In(absl::Seconds(10))).ok());
  }
  ASSERT_TRUE(test::WaitUntil([&] { return SumCounters(server, Backoffs) >= 1; },
                              Deadline::In(absl::Seconds(10))));
  ASSERT_EQ(SumCounters(server, Accepted), 1u);  // the warm-up only
  fillers.clear();

  // Stop runs beside the clients: the drain's lingering close waits for their FINs.
  std::thread stopper([&server] { server.Stop(absl::Seconds(10)); });
  for (int i = 0; i < kWaiting; ++i) {
    const std::string expected = "waiting " + std::to_string(i);
    auto got = test::ReadExactly(clients[i].get(), expected.size(), Deadline::In(absl::Seconds(10)));
    EXPECT_EQ(got.ok() ? *got : got.status().ToString(), expected) << "client " << i;
    EXPECT_TRUE(test::ExpectEof(clients[i].get(), Deadline::In(absl::Seconds(10))).ok()) << "client " << i;
    clients[i].reset();
  }
  stopper.join();
  EXPECT_EQ(SumCounters(server, Accepted), static_cast<uint64_t>(1 + kWaiting));
  EXPECT_EQ(server.Totals().closed_by(CloseReason::kServerDrain), static_cast<uint64_t>(kWaiting));
}

INSTANTIATE_TEST_SUITE_P(Modes, BacklogAtStopTest,
                         ::testing::Values(BalancePolicyKind::kRoundRobin, BalancePolicyKind::kReusePort),
                         [](const ::testing::TestParamInfo<BalancePolicyKind>& info) {
                           return info.param == BalancePolicyKind::kReusePort ? std::string("reuseport")
                                                                               : std::string("distributor");
                         });

}  // namespace
}  // namespace percore
