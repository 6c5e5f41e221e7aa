// Descriptor exhaustion: with RLIMIT_NOFILE lowered so the distributor's accept4 fails with
// EMFILE, the distributor must back off (not spin on a listening socket that stays readable),
// established connections must keep being served, and accepting must resume once descriptors
// are available again. RLIMIT_NOFILE is per process and bazel runs each test in its own
// process, so lowering it here disturbs no other test.

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

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

TEST(FdExhaustionTest, DistributorBacksOffOnEmfileAndRecovers) {
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  ASSERT_TRUE(server.AddService(NewEchoService()).ok());
  auto listener = server.Listen("echo", {"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  const uint16_t port = listener->bound.port();
  ASSERT_TRUE(server.Start().ok());
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
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0) << errno;
    attempts.emplace_back(fd);
  }
  const int free_from = LowestFreeFd();
  ASSERT_GT(free_from, 0);
  // Room for two more descriptors at most: the distributor runs out after a couple of accepts.
  rlimit lowered = original;
  lowered.rlim_cur = static_cast<rlim_t>(free_from + 2);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const uint64_t accepted_before = counters.accepted.Get();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (ScopedFd& fd : attempts) {
    const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << errno;
  }
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

}  // namespace
}  // namespace percore
