// Replies far larger than memory, on a running two-loop Server over loopback: `get` naming one
// 1 MB item thousands of times (a 3 GB reply), pipelines of multi-gets, and such replies cut
// short by a client's reset, followed by `quit`, or under way when the server stops. The
// server must hold about its high-water mark of each reply, keep serving other clients,
// deliver every byte exactly, and let go of every item reference when a reply ends however it
// ends. Each test runs with its keys on the shard of the connection's own loop and on the
// other loop's.

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "tests/services/memcache/large_value_support.h"
#include "tests/services/memcache/memcache_server_fixture.h"
#include "tests/testing/server_probe.h"

namespace percore::test {
namespace {

constexpr uint64_t kValueSize = 1'000'000;
constexpr size_t kMiB = size_t{1} << 20;
#ifdef PERCORE_TEST_SANITIZER
// The sanitizers check every byte the server writes and the test reads: 300 MB per reply.
constexpr size_t kRepeats = 300;
constexpr size_t kPipelinedGets = 20;
#else
constexpr size_t kRepeats = 3000;  // 3 GB per reply, from one 1 MB value
constexpr size_t kPipelinedGets = 200;
#endif
constexpr size_t kKeysPerGet = 50;
// What the server may queue for one connection: it formats the next VALUE block only while its
// output is at or below the high-water mark, so at most one value (and a few lines) beyond.
constexpr size_t kQueuedBound = ConnectionOptions{}.high_water + kValueSize + 4096;
// The test process's resident growth while replies of gigabytes are under way (server and
// client share the process): what one value costs a few times over, nothing like a reply.
constexpr size_t kRssGrowthBound = 64 * kMiB;

enum class Owner { kOwnLoop, kOtherLoop };

std::string OwnerName(const ::testing::TestParamInfo<Owner>& info) {
  return info.param == Owner::kOwnLoop ? "KeyOnOwnLoop" : "KeyOnOtherLoop";
}

class LargeReplyTest : public MemcacheServerTest, public ::testing::WithParamInterface<Owner> {
 protected:
  // Connections are made on this loop; the keys live on its shard or on the other loop's.
  static constexpr int kLoop = 0;

  void SetUp() override {
    MemcacheOptions options;
    options.memory_limit = 256 * kMiB;  // 128 MiB a shard: room for every item a test stores
    ASSERT_NO_FATAL_FAILURE(StartServer(options));
    key_loop_ = GetParam() == Owner::kOwnLoop ? kLoop : 1 - kLoop;
    version_ = "VERSION " + service_->options().version + "\r\n";
  }

  Deadline long_deadline() const { return Deadline::In(absl::Seconds(240)); }

  // Stores value `seed` of kValueSize bytes under each of `keys`.
  void Store(const std::vector<std::string>& keys) {
    ScopedFd fd = Connect();
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(SendStorage(fd.get(), "set", keys[i], 0, pattern_, static_cast<uint32_t>(i),
                              kValueSize, deadline())
                      .ok());
      ASSERT_EQ(Exchange(fd.get(), "", 8), "STORED\r\n");
    }
    ASSERT_EQ(Stat(fd.get(), "curr_items"), static_cast<int64_t>(keys.size()));
  }

  // Answers `version` on a new connection on kLoop: the loop is not held by the big replies.
  void ExpectVersionAnswered(absl::Duration* slowest) {
    ScopedFd fd = ConnectOnLoop(kLoop);
    ASSERT_TRUE(fd.valid());
    const absl::Time start = absl::Now();
    EXPECT_EQ(Exchange(fd.get(), "version\r\n", version_.size()), version_);
    *slowest = std::max(*slowest, absl::Now() - start);
  }

  // Reads every connection, in large reads, until each checker is complete; samples this
  // process's resident memory into `max_rss` as it goes.
  void ReadAll(const std::vector<ScopedFd>& conns, std::vector<ReplyChecker>& checkers,
               size_t* max_rss) {
    const Deadline until = long_deadline();
    std::vector<char> buffer(256 << 10);
    for (uint64_t round = 1;; ++round) {
      if (round % 256 == 0) *max_rss = std::max(*max_rss, ResidentBytes());
      std::vector<pollfd> fds;
      std::vector<size_t> which;
      for (size_t i = 0; i < conns.size(); ++i) {
        if (checkers[i].complete()) continue;
        fds.push_back({conns[i].get(), POLLIN, 0});
        which.push_back(i);
      }
      if (fds.empty()) return;
      const int ready = ::poll(fds.data(), fds.size(), until.PollTimeoutMs());
      ASSERT_GT(ready, 0) << "replies incomplete at the deadline";
      for (size_t j = 0; j < fds.size(); ++j) {
        if (fds[j].revents == 0) continue;
        ReplyChecker& checker = checkers[which[j]];
        const ssize_t n = ::recv(fds[j].fd, buffer.data(), buffer.size(), 0);
        ASSERT_NE(n, 0) << "EOF on connection " << which[j] << " after " << checker.received()
                        << " of " << checker.expected_bytes() << " bytes";
        if (n < 0) {
          ASSERT_TRUE(errno == EAGAIN || errno == EINTR)
              << "connection " << which[j] << ": " << absl::ErrnoToStatus(errno, "recv");
          continue;  // nothing after all
        }
        ASSERT_TRUE(checker.Feed(std::string_view(buffer.data(), static_cast<size_t>(n))))
            << "connection " << which[j] << ": " << checker.error();
      }
    }
  }

  // Once every reply is out, nothing but the store references an item.
  void ExpectNoItemStillShared() {
    std::vector<std::string> shared;
    EXPECT_TRUE(WaitUntil([&] { return (shared = SharedItems()).empty(); }, deadline()))
        << "still referenced: " << absl::StrJoin(shared, ", ");
  }

  const ValuePattern pattern_;
  int key_loop_ = 0;
  std::string version_;
};

TEST_P(LargeReplyTest, OneValueRepeatedThousandsOfTimesOnThreeConnections) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  ASSERT_NO_FATAL_FAILURE(Store({key}));
  constexpr size_t kConns = 3;
  std::vector<ScopedFd> conns;
  std::vector<ReplyChecker> checkers;
  for (size_t i = 0; i < kConns; ++i) {
    conns.push_back(ConnectOnLoop(kLoop));
    ASSERT_TRUE(conns.back().valid());
    checkers.emplace_back(pattern_);
    // The version after END shows the reply ends exactly there.
    checkers.back().ExpectValue(key, 0, 0, kValueSize, kRepeats).ExpectEnd().ExpectText(version_);
  }
  const size_t rss_before = ResidentBytes();
  ASSERT_GT(rss_before, 0u);
  const std::string request = RepeatedGet(key, kRepeats) + "version\r\n";
  for (const ScopedFd& c : conns) ASSERT_TRUE(WriteAll(c.get(), request, deadline()).ok());

  // Every connection has a reply waiting that its socket did not take: the server is holding
  // back the rest of 3 GB for each.
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const ScopedFd& c : conns) {
          const size_t queued = QueuedOutput(c.get(), kLoop);
          if (queued == 0 || queued == SIZE_MAX) return false;
        }
        return true;
      },
      deadline()));

  // A slow reader on the first connection (4 KiB at a time), the others not read at all.
  size_t max_queued = 0;
  size_t max_rss = rss_before;
  absl::Duration slowest_version;
  constexpr uint64_t kSlowBytes = 24 * kMiB;
  for (uint64_t target = kMiB; target <= kSlowBytes; target += kMiB) {
    ASSERT_TRUE(ReadInto(conns[0].get(), checkers[0], long_deadline(), 4096, target).ok())
        << checkers[0].error();
    for (const ScopedFd& c : conns) max_queued = std::max(max_queued, QueuedOutput(c.get(), kLoop));
    max_rss = std::max(max_rss, ResidentBytes());
    if (target % (8 * kMiB) == 0) {
      ASSERT_NO_FATAL_FAILURE(ExpectVersionAnswered(&slowest_version));
    }
  }
  EXPECT_LE(max_queued, kQueuedBound);
  EXPECT_LT(max_rss - rss_before, kRssGrowthBound);
  std::printf("slow phase: max queued output %zu bytes, RSS growth %zu KiB, slowest version %s\n",
              max_queued, (max_rss - rss_before) >> 10,
              absl::FormatDuration(slowest_version).c_str());

  // The rest as fast as the client can take it; memory stays as bounded.
  const absl::Time start = absl::Now();
  ASSERT_NO_FATAL_FAILURE(ReadAll(conns, checkers, &max_rss));
  const absl::Duration took = absl::Now() - start;
  uint64_t total = 0;
  for (const ReplyChecker& checker : checkers) {
    EXPECT_TRUE(checker.complete()) << checker.error();
    EXPECT_EQ(checker.values_received(), kRepeats);
    EXPECT_EQ(checker.received(), kRepeats * (absl::StrCat("VALUE ", key, " 0 ", kValueSize).size() +
                                              2 + kValueSize + 2) +
                                      5 + version_.size());
    total += checker.received();
  }
  EXPECT_LT(max_rss - rss_before, kRssGrowthBound);
  std::printf("read %llu bytes in %s; RSS growth overall %zu KiB\n",
              static_cast<unsigned long long>(total), absl::FormatDuration(took).c_str(),
              (max_rss - rss_before) >> 10);
  ExpectNoItemStillShared();
}

TEST_P(LargeReplyTest, PipelineOfMultiGetsReadSlowly) {
  // kKeysPerGet distinct items, every other one on each shard unless the parameter keeps them
  // all on one: the gets of the first kind each wait on the other loop.
  std::vector<std::string> keys;
  if (GetParam() == Owner::kOwnLoop) {
    keys = KeysOwnedByLoop(kLoop, kKeysPerGet, "m");
  } else {
    const std::vector<std::string> own = KeysOwnedByLoop(kLoop, kKeysPerGet / 2, "m");
    const std::vector<std::string> other = KeysOwnedByLoop(1 - kLoop, kKeysPerGet / 2, "m");
    for (size_t i = 0; i < kKeysPerGet / 2; ++i) {
      keys.push_back(other[i]);
      keys.push_back(own[i]);
    }
  }
  ASSERT_NO_FATAL_FAILURE(Store(keys));
  std::string get = "get";
  for (const std::string& k : keys) absl::StrAppend(&get, " ", k);
  get += "\r\n";
  std::string pipeline;
  for (size_t i = 0; i < kPipelinedGets; ++i) pipeline += get;
  pipeline += "version\r\n";
  ReplyChecker checker(pattern_);
  for (size_t i = 0; i < kPipelinedGets; ++i) {
    for (size_t k = 0; k < keys.size(); ++k) {
      checker.ExpectValue(keys[k], 0, static_cast<uint32_t>(k), kValueSize);
    }
    checker.ExpectEnd();
  }
  checker.ExpectText(version_);

  std::vector<ScopedFd> conns;
  conns.push_back(ConnectOnLoop(kLoop));
  ASSERT_TRUE(conns[0].valid());
  const int fd = conns[0].get();
  const size_t rss_before = ResidentBytes();
  // The whole pipeline (kPipelinedGets x kKeysPerGet MB of replies) is sent at once; the server
  // takes it as its output drains.
  ASSERT_TRUE(WriteAll(fd, pipeline, deadline()).ok());
  size_t max_queued = 0;
  size_t max_rss = rss_before;
  absl::Duration slowest_version;
  constexpr uint64_t kSlowBytes = 24 * kMiB;
  for (uint64_t target = kMiB; target <= kSlowBytes; target += kMiB) {
    ASSERT_TRUE(ReadInto(fd, checker, long_deadline(), 4096, target).ok()) << checker.error();
    max_queued = std::max(max_queued, QueuedOutput(fd, kLoop));
    max_rss = std::max(max_rss, ResidentBytes());
    if (target % (8 * kMiB) == 0) {
      ASSERT_NO_FATAL_FAILURE(ExpectVersionAnswered(&slowest_version));
    }
  }
  EXPECT_LE(max_queued, kQueuedBound);
  EXPECT_LT(max_rss - rss_before, kRssGrowthBound);
  std::printf("slow phase: max queued output %zu bytes, RSS growth %zu KiB, slowest version %s\n",
              max_queued, (max_rss - rss_before) >> 10,
              absl::FormatDuration(slowest_version).c_str());

  std::vector<ReplyChecker> checkers;
  checkers.push_back(std::move(checker));
  ASSERT_NO_FATAL_FAILURE(ReadAll(conns, checkers, &max_rss));
  EXPECT_TRUE(checkers[0].complete()) << checkers[0].error();
  EXPECT_EQ(checkers[0].values_received(), kPipelinedGets * kKeysPerGet);
  EXPECT_EQ(checkers[0].received(), checkers[0].expected_bytes());
  EXPECT_LT(max_rss - rss_before, kRssGrowthBound);
  ExpectNoItemStillShared();
}

TEST_P(LargeReplyTest, ResetInTheMiddleOfAHugeReply) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  ASSERT_NO_FATAL_FAILURE(Store({key}));
  const uint64_t resets_before = server_->Totals().closed_by(CloseReason::kPeerReset);
  const std::string request = RepeatedGet(key, kRepeats);

  // One client reads 2 MB of the reply, then resets.
  ScopedFd reader = ConnectOnLoop(kLoop);
  ASSERT_TRUE(reader.valid());
  ASSERT_TRUE(WriteAll(reader.get(), request, deadline()).ok());
  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 0, kValueSize, kRepeats).ExpectEnd();
  ASSERT_TRUE(ReadInto(reader.get(), checker, deadline(), 64 << 10, 2 * kMiB).ok())
      << checker.error();
  // Another resets right after asking, before a byte of the reply was read.
  ScopedFd asker = ConnectOnLoop(kLoop);
  ASSERT_TRUE(asker.valid());
  ASSERT_TRUE(WriteAll(asker.get(), request, deadline()).ok());
  for (ScopedFd* fd : {&reader, &asker}) {
    ASSERT_TRUE(ResetOnClose(fd->get()).ok());
    fd->reset();
  }
  EXPECT_TRUE(WaitUntil(
      [&] { return server_->Totals().closed_by(CloseReason::kPeerReset) == resets_before + 2; },
      deadline()))
      << server_->Totals().closed_by(CloseReason::kPeerReset) - resets_before;
  // The replies' references to the item went with their connections.
  ExpectNoItemStillShared();
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  ReplyChecker again(pattern_);
  again.ExpectValue(key, 0, 0, kValueSize).ExpectEnd();
  ASSERT_TRUE(WriteAll(fd.get(), "get " + key + "\r\n", deadline()).ok());
  EXPECT_TRUE(ReadInto(fd.get(), again, deadline()).ok()) << again.error();
  EXPECT_TRUE(again.complete());
}

TEST_P(LargeReplyTest, QuitAfterAHugeReplyClosesOnceItIsOut) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  ASSERT_NO_FATAL_FAILURE(Store({key}));
  const uint64_t closes_before = server_->Totals().closed_by(CloseReason::kServiceClose);
  constexpr size_t kTimes = kRepeats / 10;
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  // The quit arrives with the get (for a key on the other loop it is parsed while the get still
  // waits there); either way the close must wait until the whole reply is out.
  ASSERT_TRUE(WriteAll(fd.get(), RepeatedGet(key, kTimes) + "quit\r\n", deadline()).ok());
  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 0, kValueSize, kTimes).ExpectEnd();
  ASSERT_TRUE(ReadInto(fd.get(), checker, long_deadline()).ok()) << checker.error();
  EXPECT_EQ(checker.values_received(), kTimes);
  EXPECT_TRUE(ExpectEof(fd.get(), deadline()).ok());
  fd.reset();  // our FIN ends the server's lingering close, which is when it counts the close
  EXPECT_TRUE(WaitUntil(
      [&] { return server_->Totals().closed_by(CloseReason::kServiceClose) == closes_before + 1; },
      deadline()));
  ExpectNoItemStillShared();
}

TEST_P(LargeReplyTest, StopWhileHugeRepliesAreUnderWay) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  ASSERT_NO_FATAL_FAILURE(Store({key}));
  std::vector<ScopedFd> conns;
  std::vector<ReplyChecker> checkers;
  for (int i = 0; i < 2; ++i) {
    conns.push_back(ConnectOnLoop(kLoop));
    ASSERT_TRUE(conns.back().valid());
    ASSERT_TRUE(WriteAll(conns.back().get(), RepeatedGet(key, kRepeats), deadline()).ok());
    checkers.emplace_back(pattern_);
    checkers.back().ExpectValue(key, 0, 0, kValueSize, kRepeats).ExpectEnd();
    ASSERT_TRUE(ReadInto(conns.back().get(), checkers.back(), deadline(), 64 << 10, kMiB).ok())
        << checkers.back().error();
  }
  const uint64_t drained_before = server_->Totals().closed_by(CloseReason::kServerDrain);
  // The clients stop reading: the drain cannot finish these replies and cuts them at its
  // deadline, dropping the output and the item references it held.
  server_->Stop(absl::Milliseconds(200));
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kServerDrain), drained_before + 2);
  for (size_t i = 0; i < conns.size(); ++i) {
    // What was already in flight is still the right bytes; then the stream ends.
    const absl::Status end = ReadInto(conns[i].get(), checkers[i], deadline());
    EXPECT_TRUE(absl::IsOutOfRange(end) || absl::IsUnavailable(end)) << end;
    EXPECT_FALSE(checkers[i].failed()) << checkers[i].error();
    EXPECT_LT(checkers[i].received(), checkers[i].expected_bytes());
  }
}

INSTANTIATE_TEST_SUITE_P(Owners, LargeReplyTest, ::testing::Values(Owner::kOwnLoop, Owner::kOtherLoop),
                         OwnerName);

}  // namespace
}  // namespace percore::test
