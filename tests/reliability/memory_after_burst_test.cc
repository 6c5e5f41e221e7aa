// percored end to end: after a burst of connections that each upload a large value (so the
// daemon's input buffers grow to megabytes at once) and reset, the daemon's resident memory
// falls back near what it was before the burst plus what the store still holds, within seconds
// (EventLoop::ReturnFreeMemory). glibc alone keeps that memory resident.

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/services/admin/subprocess.h"
#include "tests/services/memcache/large_value_support.h"
#include "tests/testing/client_socket.h"

namespace percore {
namespace {

using ::percore::test::ConnectToLoopback;
using ::percore::test::Deadline;
using ::percore::test::ResidentBytes;
using ::percore::test::ScopedFd;
using ::percore::testing::Subprocess;

uint16_t PortOf(const std::string& line) {
  const size_t colon = line.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(line.substr(colon + 1), &port)) return 0;
  return static_cast<uint16_t>(port);
}

absl::Status ReadLine(int fd, std::string_view expected, Deadline deadline) {
  absl::StatusOr<std::string> got = test::ReadExactly(fd, expected.size(), deadline);
  if (!got.ok()) return got.status();
  if (*got != expected) return absl::InternalError(absl::StrCat("expected '", std::string(expected), "', got '", *got, "'"));
  return absl::OkStatus();
}

TEST(MemoryAfterBurstTest, ResidentMemoryFallsBackAfterABurstOfLargeUploads) {
#ifdef PERCORE_TEST_SANITIZER
  GTEST_SKIP() << "the sanitizers' allocators keep and return memory by their own rules";
#endif
  constexpr int kConnections = 40;
  constexpr size_t kValue = 4'000'000;
  constexpr int kKeys = 4;  // what the store keeps after the burst: 4 values of 4 MB
  Subprocess daemon({absl::StrCat(std::getenv("TEST_SRCDIR"), "/percore/tools/percored"), "--loops=2",
                     "--admin_listen=", "--listen=memcache=127.0.0.1:0", "--memcache_memory_mb=256",
                     "--memcache_max_item_bytes=8000000"});
  ASSERT_TRUE(daemon.started());
  const uint16_t port = PortOf(daemon.WaitForLine("memcache listening on"));
  ASSERT_NE(port, 0) << daemon.stdout_text() << daemon.stderr_text();
  const std::string value(kValue, 'v');
  const std::string header_of[kKeys] = {
      absl::StrCat("set big0 0 0 ", kValue, "\r\n"), absl::StrCat("set big1 0 0 ", kValue, "\r\n"),
      absl::StrCat("set big2 0 0 ", kValue, "\r\n"), absl::StrCat("set big3 0 0 ", kValue, "\r\n")};
  const size_t baseline = ResidentBytes(daemon.pid());
  ASSERT_GT(baseline, 0u);

  size_t peak = 0;
  for (int round = 0; round < 3; ++round) {
    const Deadline deadline = Deadline::In(absl::Seconds(30));
    std::vector<ScopedFd> conns;
    // Every connection sends all of its value but the last 100 KB first, so the daemon holds
    // all of the partial uploads at once.
    for (int i = 0; i < kConnections; ++i) {
      absl::StatusOr<ScopedFd> fd = ConnectToLoopback(port, deadline);
      ASSERT_TRUE(fd.ok()) << fd.status();
      ASSERT_TRUE(test::WriteAll(fd->get(), header_of[i % kKeys], deadline).ok());
      ASSERT_TRUE(test::WriteAll(fd->get(), std::string_view(value).substr(0, kValue - 100'000), deadline).ok());
      conns.push_back(std::move(*fd));
    }
    peak = std::max(peak, ResidentBytes(daemon.pid()));
    for (ScopedFd& fd : conns) {
      ASSERT_TRUE(test::WriteAll(fd.get(), std::string_view(value).substr(kValue - 100'000), deadline).ok());
      ASSERT_TRUE(test::WriteAll(fd.get(), "\r\n", deadline).ok());
    }
    for (ScopedFd& fd : conns) ASSERT_TRUE(ReadLine(fd.get(), "STORED\r\n", deadline).ok());
    peak = std::max(peak, ResidentBytes(daemon.pid()));
    // Each asks for every value, then resets before reading the reply.
    for (ScopedFd& fd : conns) {
      ASSERT_TRUE(test::WriteAll(fd.get(), "get big0 big1 big2 big3\r\n", deadline).ok());
      ASSERT_TRUE(test::ResetOnClose(fd.get()).ok());
    }
  }
  // The burst held many of the 40 partial uploads (160 MB in all) at once.
  EXPECT_GT(peak, baseline + (size_t{64} << 20));

  // Back near the baseline plus the values the store keeps, with room for the allocator's
  // own bookkeeping and the pool blocks the loops keep.
  const size_t bound = baseline + kKeys * kValue + (size_t{48} << 20);
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  size_t now = ResidentBytes(daemon.pid());
  while (now > bound && absl::Now() < give_up) {
    // The daemon trims on its own schedule (a quiet second); this only paces the samples.
    absl::SleepFor(absl::Milliseconds(100));
    now = ResidentBytes(daemon.pid());
  }
  EXPECT_LE(now, bound) << "baseline " << baseline << ", peak " << peak;

  // And it still serves.
  const Deadline deadline = Deadline::In(absl::Seconds(10));
  absl::StatusOr<ScopedFd> fd = ConnectToLoopback(port, deadline);
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(test::WriteAll(fd->get(), "version\r\n", deadline).ok());
  ASSERT_TRUE(ReadLine(fd->get(), "VERSION 1.6.0-percore\r\n", deadline).ok());
}

}  // namespace
}  // namespace percore
