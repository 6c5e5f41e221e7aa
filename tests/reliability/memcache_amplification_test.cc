// percored under a 1 GiB address-space limit (`ulimit -v` in the shell that execs it), asked
// for replies that are each 3,000 times its 1 MB value: several connections at once read a
// little of their 3 GB replies slowly and then reset, twice over. A daemon that built such a
// reply in memory could not live under the limit; this one must stay up with its resident
// memory near where it started, answer new clients, deliver a whole 3 GB reply exactly, and
// exit 0 on SIGTERM.

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/services/admin/subprocess.h"
#include "tests/services/memcache/large_value_support.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::test {
namespace {

using ::percore::testing::Subprocess;

constexpr uint64_t kValueSize = 1'000'000;  // under the default 1 MiB item limit
constexpr size_t kRepeats = 3000;           // a 3 GB reply
constexpr int kConnections = 4;
constexpr int kRounds = 2;
constexpr uint64_t kAddressSpaceKib = 1 << 20;  // 1 GiB
constexpr uint64_t kSlowBytes = uint64_t{8} << 20;  // read of each reply before the reset
constexpr size_t kRssGrowthBound = size_t{64} << 20;

Deadline Soon() { return Deadline::In(absl::Seconds(30)); }

// The daemon's shard of `key` on two loops: FNV-1a-64 of the key, modulo the shard count
// (services/memcache/README.md, "Routing"). Only used to put one key on each shard.
size_t ShardOf(std::string_view key) {
  uint64_t h = 14695981039346656037ull;
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h % 2);
}

// The soft limit on a process's address space from /proc/<pid>/limits, or -1.
int64_t AddressSpaceLimit(pid_t pid) {
  std::ifstream limits(absl::StrCat("/proc/", pid, "/limits"));
  std::string line;
  while (std::getline(limits, line)) {
    if (line.rfind("Max address space", 0) != 0) continue;
    // "Max address space   <soft>   <hard>   bytes"
    std::istringstream fields(line.substr(17));
    std::string soft;
    fields >> soft;
    int64_t value = -1;
    return absl::SimpleAtoi(soft, &value) ? value : -1;
  }
  return -1;
}

class MemcacheAmplificationTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef PERCORE_TEST_SANITIZER
    GTEST_SKIP() << "ASan and TSan reserve terabytes of address space for shadow memory: a "
                    "sanitized percored cannot start under an address-space limit";
#endif
    const std::string percored = absl::StrCat(std::getenv("TEST_SRCDIR"), "/percore/tools/percored");
    daemon_ = std::make_unique<Subprocess>(std::vector<std::string>{
        "/bin/sh", "-c", absl::StrCat("ulimit -v ", kAddressSpaceKib, " && exec \"$0\" \"$@\""),
        percored, "--loops=2", "--listen=memcache=127.0.0.1:0", "--admin_listen=",
        "--drain_timeout=5s"});
    ASSERT_TRUE(daemon_->started());
    const std::string line = daemon_->WaitForLine("memcache listening on");
    ASSERT_FALSE(line.empty()) << daemon_->stdout_text() << daemon_->stderr_text();
    int port = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line.substr(line.rfind(':') + 1), &port)) << line;
    port_ = static_cast<uint16_t>(port);
    // The shell has exec'd the daemon, so the limit is the daemon's own.
    ASSERT_EQ(AddressSpaceLimit(daemon_->pid()), static_cast<int64_t>(kAddressSpaceKib * 1024));
  }

  ScopedFd Connect() {
    absl::StatusOr<ScopedFd> fd = ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : ScopedFd();
  }

  void ExpectVersion() {
    ScopedFd fd = Connect();
    ASSERT_TRUE(fd.valid());
    ASSERT_TRUE(WriteAll(fd.get(), "version\r\n", Soon()).ok());
    absl::StatusOr<std::string> reply = ReadExactly(fd.get(), kVersion.size(), Soon());
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, kVersion);
  }

  static constexpr std::string_view kVersion = "VERSION 1.6.0-percore\r\n";
  const ValuePattern pattern_;
  std::unique_ptr<Subprocess> daemon_;
  uint16_t port_ = 0;
};

TEST_F(MemcacheAmplificationTest, DaemonUnderAddressSpaceLimitSurvivesHugeRepliesAndResets) {
  // One key on each shard: the replies are sent from the loop that owns the value and from the
  // other one.
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 2; ++i) {
    const std::string key = absl::StrCat("amp", i);
    if (ShardOf(key) == keys.size()) keys.push_back(key);
  }
  {
    ScopedFd fd = Connect();
    ASSERT_TRUE(fd.valid());
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(SendStorage(fd.get(), "set", keys[i], 0, pattern_, static_cast<uint32_t>(i),
                              kValueSize, Soon())
                      .ok());
      absl::StatusOr<std::string> stored = ReadExactly(fd.get(), 8, Soon());
      ASSERT_TRUE(stored.ok()) << stored.status();
      ASSERT_EQ(*stored, "STORED\r\n");
    }
  }
  const pid_t pid = daemon_->pid();
  const size_t rss_before = ResidentBytes(pid);
  ASSERT_GT(rss_before, 0u);
  size_t max_rss = rss_before;

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    std::vector<ScopedFd> conns;
    std::vector<ReplyChecker> checkers;
    for (int c = 0; c < kConnections; ++c) {
      conns.push_back(Connect());
      ASSERT_TRUE(conns.back().valid());
      const size_t k = static_cast<size_t>(c) % keys.size();
      checkers.emplace_back(pattern_);
      checkers.back().ExpectValue(keys[k], 0, static_cast<uint32_t>(k), kValueSize, kRepeats).ExpectEnd();
      ASSERT_TRUE(WriteAll(conns.back().get(), RepeatedGet(keys[k], kRepeats), Soon()).ok());
    }
    // Slow readers, 4 KiB at a time, a megabyte from each in turn.
    for (uint64_t target = 1 << 20; target <= kSlowBytes; target += 1 << 20) {
      for (int c = 0; c < kConnections; ++c) {
        const absl::Status read = ReadInto(conns[c].get(), checkers[c], Soon(), 4096, target);
        ASSERT_TRUE(read.ok()) << read << "\n" << daemon_->stderr_text();
        max_rss = std::max(max_rss, ResidentBytes(pid));
      }
      if (target % (4 << 20) == 0) {
        ASSERT_NO_FATAL_FAILURE(ExpectVersion());
      }
    }
    for (ScopedFd& fd : conns) {
      ASSERT_TRUE(ResetOnClose(fd.get()).ok());
      fd.reset();
    }
    max_rss = std::max(max_rss, ResidentBytes(pid));
  }

  // Still up, and serving: a new client, then one whole 3 GB reply, checked as it streams.
  ASSERT_NO_FATAL_FAILURE(ExpectVersion());
  ScopedFd fd = Connect();
  ASSERT_TRUE(fd.valid());
  ReplyChecker checker(pattern_);
  checker.ExpectValue(keys[1], 0, 1, kValueSize, kRepeats).ExpectEnd().ExpectText(std::string(kVersion));
  ASSERT_TRUE(WriteAll(fd.get(), RepeatedGet(keys[1], kRepeats) + "version\r\n", Soon()).ok());
  const absl::Time start = absl::Now();
  const Deadline whole = Deadline::In(absl::Seconds(120));
  while (!checker.complete()) {
    // In steps, to sample the daemon's memory as the reply streams.
    const absl::Status read =
        ReadInto(fd.get(), checker, whole, 256 << 10, checker.received() + (uint64_t{64} << 20));
    ASSERT_TRUE(read.ok()) << read << "\n" << daemon_->stderr_text();
    max_rss = std::max(max_rss, ResidentBytes(pid));
  }
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(checker.values_received(), kRepeats);
  EXPECT_EQ(checker.received(), checker.expected_bytes());

  EXPECT_LT(max_rss - rss_before, kRssGrowthBound);
  std::printf("daemon VmRSS %zu KiB before, growth at most %zu KiB; 3 GB reply read in %s\n",
              rss_before >> 10, (max_rss - rss_before) >> 10, absl::FormatDuration(took).c_str());

  daemon_->Signal(SIGTERM);
  EXPECT_EQ(daemon_->Wait(30'000), 0) << daemon_->stderr_text();
  EXPECT_NE(daemon_->stdout_text().find("percored: stopped\n"), std::string::npos)
      << daemon_->stdout_text();
}

}  // namespace
}  // namespace percore::test
