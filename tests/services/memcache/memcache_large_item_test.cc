// Large items on a running two-loop Server over loopback, with a copied-output cap (8 MiB) far
// below the largest item (64 MiB): whatever the store accepts comes back whole, to a slow
// reader too; a multi-get of 100 MB arrives complete; a big reply in progress does not hold
// its loop; and commands pipelined behind a reply that is still being sent see and change the
// item in request order without touching the bytes already promised.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "core/output_queue.h"
#include "reactor/connection.h"
#include "reactor/sharded.h"
#include "services/memcache/item.h"
#include "services/memcache/memcache_shard.h"
#include "tests/services/memcache/large_value_support.h"
#include "tests/services/memcache/memcache_server_fixture.h"
#include "tests/testing/server_probe.h"

namespace percore::test {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kMaxItem = 64 * kMiB;
constexpr size_t kOutputCap = 8 * kMiB;
constexpr uint64_t kSmallValue = 1'000'000;

enum class Owner { kOwnLoop, kOtherLoop };

std::string OwnerName(const ::testing::TestParamInfo<Owner>& info) {
  return info.param == Owner::kOwnLoop ? "KeyOnOwnLoop" : "KeyOnOtherLoop";
}

class LargeItemTest : public MemcacheServerTest, public ::testing::WithParamInterface<Owner> {
 protected:
  static constexpr int kLoop = 0;  // where the test's connections are served

  void SetUp() override {
    MemcacheOptions options;
    options.memory_limit = 256 * kMiB;
    options.max_item_size = kMaxItem;
    ConnectionOptions connection;
    connection.output_cap = kOutputCap;
    ASSERT_NO_FATAL_FAILURE(StartServer(options, 2, connection));
    key_loop_ = GetParam() == Owner::kOwnLoop ? kLoop : 1 - kLoop;
    version_ = "VERSION " + service_->options().version + "\r\n";
  }

  Deadline long_deadline() const { return Deadline::In(absl::Seconds(120)); }

  // The largest value an item under `key` may have.
  static uint64_t LargestValue(const std::string& key) {
    return kMaxItem - memcache::ItemFootprint(key.size(), 0);
  }

  void Store(int fd, std::string_view verb, const std::string& key, uint32_t seed, uint64_t size) {
    ASSERT_TRUE(SendStorage(fd, verb, key, 0, pattern_, seed, size, long_deadline()).ok());
    ASSERT_EQ(Exchange(fd, "", 8), "STORED\r\n");
  }

  // Where the store keeps `key`'s item now (null if absent), read on the shard's loop.
  const void* ItemAddress(const std::string& key) {
    Sharded<memcache::Shard>& shards = service_->shards();
    auto address = std::make_shared<std::atomic<const void*>>(nullptr);
    EXPECT_TRUE(RunOnLoop(
        shards.owner_loop(shards.OwnerOf(key)),
        [&shards, address, key] {
          shards.local().store.ForEachByRecency([&](const memcache::Item& item) {
            if (item.key() == key) address->store(&item);
          });
        },
        deadline()));
    return address->load();
  }

  const ValuePattern pattern_;
  int key_loop_ = 0;
  std::string version_;
};

using HundredItemsTest = LargeItemTest;

TEST_P(HundredItemsTest, OneGetOfAHundredItemsOfOneMegabyte) {
  // Half the keys on each shard, alternating, so that the reply mixes local hits and hits sent
  // back from the other loop in request order. (The parameter says on which loop the request
  // arrives, relative to the shard of the first key.)
  const std::vector<std::string> first = KeysOwnedByLoop(key_loop_, 50, "h");
  const std::vector<std::string> second = KeysOwnedByLoop(1 - key_loop_, 50, "h");
  std::vector<std::string> keys;
  for (size_t i = 0; i < 50; ++i) {
    keys.push_back(first[i]);
    keys.push_back(second[i]);
  }
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_NO_FATAL_FAILURE(Store(fd.get(), "set", keys[i], static_cast<uint32_t>(i), kSmallValue));
  }
  EXPECT_EQ(Stat(fd.get(), "curr_items"), 100);
  EXPECT_EQ(Stat(fd.get(), "evictions"), 0);

  std::string get = "get";
  for (const std::string& k : keys) absl::StrAppend(&get, " ", k);
  ReplyChecker checker(pattern_);
  for (size_t i = 0; i < keys.size(); ++i) {
    checker.ExpectValue(keys[i], 0, static_cast<uint32_t>(i), kSmallValue);
  }
  checker.ExpectEnd().ExpectText(version_);
  ASSERT_TRUE(WriteAll(fd.get(), get + "\r\nversion\r\n", deadline()).ok());
  ASSERT_TRUE(ReadInto(fd.get(), checker, long_deadline()).ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
  EXPECT_EQ(checker.values_received(), 100u);
  EXPECT_EQ(checker.received(), checker.expected_bytes());
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kOutputOverflow), 0u);
}

TEST_P(LargeItemTest, LargestItemComesBackWholeToASlowReader) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "huge")[0];
  const uint64_t size = LargestValue(key);
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  ASSERT_NO_FATAL_FAILURE(Store(fd.get(), "set", key, 7, size));
  // One byte more is refused (on another key: a refused set drops the key's old value).
  const std::string other = KeysOwnedByLoop(key_loop_, 2, "huge")[1];
  ASSERT_TRUE(SendStorage(fd.get(), "set", other, 0, pattern_, 8, size + 1, long_deadline()).ok());
  EXPECT_EQ(ExchangeUntil(fd.get(), "", "\r\n"), "SERVER_ERROR object too large for cache\r\n");

  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 7, size).ExpectEnd().ExpectText(version_);
  ASSERT_TRUE(WriteAll(fd.get(), "get " + key + "\r\nversion\r\n", deadline()).ok());
  // Unread, the server holds the value far past the copied-output cap: it is sent from the
  // item, so it is not a copy the cap would close the connection for.
  size_t queued = 0;
  ASSERT_TRUE(WaitUntil([&] { return (queued = QueuedOutput(fd.get(), kLoop)) > 2 * kOutputCap; },
                        deadline()))
      << queued;
  // 16 KiB at a time.
  ASSERT_TRUE(ReadInto(fd.get(), checker, long_deadline(), 16 << 10).ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
  EXPECT_EQ(checker.received(), checker.expected_bytes());
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kOutputOverflow), 0u);
}

TEST_P(LargeItemTest, OtherConnectionOnTheLoopIsAnsweredWhileA64MegabyteValueStreams) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "huge")[0];
  const uint64_t size = LargestValue(key);
  ScopedFd slow = ConnectOnLoop(kLoop);
  ASSERT_TRUE(slow.valid());
  ASSERT_NO_FATAL_FAILURE(Store(slow.get(), "set", key, 3, size));
  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 3, size).ExpectEnd();
  ASSERT_TRUE(WriteAll(slow.get(), "get " + key + "\r\n", deadline()).ok());
  ASSERT_TRUE(ReadInto(slow.get(), checker, deadline(), 4096, kMiB).ok()) << checker.error();

  ScopedFd other = ConnectOnLoop(kLoop);
  ASSERT_TRUE(other.valid());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Exchange(other.get(), "version\r\n", version_.size()), version_);
  }
  // All of that happened while the big reply was still under way.
  EXPECT_FALSE(checker.complete());
  EXPECT_GT(QueuedOutput(slow.get(), kLoop), 0u);

  ASSERT_TRUE(ReadInto(slow.get(), checker, long_deadline(), 4096).ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
  EXPECT_EQ(checker.received(), checker.expected_bytes());
}

TEST_P(LargeItemTest, SetAndGetPipelinedBehindAGetStillSending) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  constexpr uint64_t kOld = 8 * kMiB;
  constexpr uint64_t kNew = 5 * kMiB + 3;
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  ASSERT_NO_FATAL_FAILURE(Store(fd.get(), "set", key, 1, kOld));

  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 1, kOld).ExpectEnd();
  checker.ExpectText("STORED\r\n");
  checker.ExpectValue(key, 0, 2, kNew).ExpectEnd();
  // The server stops reading while the first reply backs up, so the writes (8 MB of them) go
  // from another thread while this one reads slowly.
  absl::Status written;
  std::thread writer([&] {
    written = WriteAll(fd.get(), "get " + key + "\r\n", long_deadline());
    if (written.ok()) written = SendStorage(fd.get(), "set", key, 0, pattern_, 2, kNew, long_deadline());
    if (written.ok()) written = WriteAll(fd.get(), "get " + key + "\r\n", long_deadline());
  });
  const absl::Status read = ReadInto(fd.get(), checker, long_deadline(), 4096);
  writer.join();
  ASSERT_TRUE(written.ok()) << written;
  ASSERT_TRUE(read.ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
  EXPECT_EQ(checker.received(), checker.expected_bytes());
}

TEST_P(LargeItemTest, AppendBehindAGetStillSendingLeavesItsBytesAlone) {
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  constexpr uint64_t kOld = 8 * kMiB;
  constexpr uint64_t kMore = 3 * kMiB + 1;
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  ASSERT_NO_FATAL_FAILURE(Store(fd.get(), "set", key, 1, kOld));

  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 1, kOld).ExpectEnd();
  checker.ExpectText("STORED\r\n");
  checker.ExpectText(absl::StrCat("VALUE ", key, " 0 ", kOld + kMore, "\r\n"))
      .ExpectBytes(1, kOld)
      .ExpectBytes(4, kMore)
      .ExpectText("\r\nEND\r\n");
  absl::Status written;
  std::thread writer([&] {
    written = WriteAll(fd.get(), "get " + key + "\r\n", long_deadline());
    if (written.ok()) written = SendStorage(fd.get(), "append", key, 0, pattern_, 4, kMore, long_deadline());
    if (written.ok()) written = WriteAll(fd.get(), "get " + key + "\r\n", long_deadline());
  });
  const absl::Status read = ReadInto(fd.get(), checker, long_deadline(), 4096);
  writer.join();
  ASSERT_TRUE(written.ok()) << written;
  ASSERT_TRUE(read.ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
}

TEST_P(LargeItemTest, DeleteAndFlushBehindAGetStillSending) {
  // The store lets go of the item while the reply still sends from it: the reply keeps it.
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "big")[0];
  constexpr uint64_t kSize = 8 * kMiB;
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  ASSERT_NO_FATAL_FAILURE(Store(fd.get(), "set", key, 1, kSize));

  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 1, kSize).ExpectEnd().ExpectText("DELETED\r\n").ExpectEnd();
  checker.ExpectText("STORED\r\n");
  checker.ExpectValue(key, 0, 2, kSize).ExpectEnd().ExpectText("OK\r\n").ExpectEnd();
  absl::Status written;
  std::thread writer([&] {
    const std::string get = "get " + key + "\r\n";
    written = WriteAll(fd.get(), get + "delete " + key + "\r\n" + get, long_deadline());
    if (written.ok()) written = SendStorage(fd.get(), "set", key, 0, pattern_, 2, kSize, long_deadline());
    if (written.ok()) written = WriteAll(fd.get(), get + "flush_all\r\n" + get, long_deadline());
  });
  const absl::Status read = ReadInto(fd.get(), checker, long_deadline(), 4096);
  writer.join();
  ASSERT_TRUE(written.ok()) << written;
  ASSERT_TRUE(read.ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
  EXPECT_EQ(Stat(fd.get(), "curr_items"), 0);
}

TEST_P(LargeItemTest, CopiedValuesRepeatedFarPastTheOutputCapStream) {
  // Values just under the size that is sent from the item are copied into the output: a reply
  // naming one 20,000 times is about 39 times the copied-output cap, and must still arrive
  // whole, formatted as the output drains instead of copied in at once.
  const std::string key = KeysOwnedByLoop(key_loop_, 1, "copied")[0];
  constexpr uint64_t kSize = OutputQueue::kShareAtLeast - 3;  // with its "\r\n", one byte short
  constexpr size_t kTimes = 20'000;
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  ASSERT_NO_FATAL_FAILURE(Store(fd.get(), "set", key, 5, kSize));
  ReplyChecker checker(pattern_);
  checker.ExpectValue(key, 0, 5, kSize, kTimes).ExpectEnd().ExpectText(version_);
  ASSERT_GT(checker.expected_bytes(), 32 * kOutputCap);
  ASSERT_TRUE(WriteAll(fd.get(), RepeatedGet(key, kTimes) + "version\r\n", deadline()).ok());
  // Unread for a while: the server fills the socket, then holds about its high-water mark.
  size_t queued = 0;
  ASSERT_TRUE(WaitUntil([&] { return (queued = QueuedOutput(fd.get(), kLoop)) > 0; }, deadline()));
  ASSERT_TRUE(ReadInto(fd.get(), checker, long_deadline(), 4096, 4 * kMiB).ok()) << checker.error();
  queued = QueuedOutput(fd.get(), kLoop);
  EXPECT_LE(queued, ConnectionOptions{}.high_water + kSize + 4096);
  ASSERT_TRUE(ReadInto(fd.get(), checker, long_deadline()).ok()) << checker.error();
  EXPECT_TRUE(checker.complete());
  EXPECT_EQ(checker.values_received(), kTimes);
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kOutputOverflow), 0u);
}

TEST_P(LargeItemTest, IncrWhileARetrievalHoldsTheCounter) {
  // The counter lives on the parameter's shard; the get names a key on the other shard too,
  // so it waits on that loop. When the counter is on the connection's own loop, the get holds
  // a reference to it while the incr behind it runs: the incr must then leave that item alone
  // (the get answers the old value) and store a new one.
  const std::string counter = KeysOwnedByLoop(key_loop_, 1, "counter")[0];
  const std::string far = KeysOwnedByLoop(1 - key_loop_, 1, "far")[0];
  ScopedFd fd = ConnectOnLoop(kLoop);
  ASSERT_TRUE(fd.valid());
  Expect(fd.get(), "set " + counter + " 0 0 3\r\n100\r\n", "STORED\r\n");
  Expect(fd.get(), "set " + far + " 0 0 1\r\nf\r\n", "STORED\r\n");
  const void* stored = ItemAddress(counter);
  ASSERT_NE(stored, nullptr);

  // One write of a few dozen bytes: the server reads the three commands at once, so the incr
  // runs before the other loop's answer to the get has come back.
  Expect(fd.get(),
         "get " + far + " " + counter + "\r\nincr " + counter + " 1\r\nget " + counter + "\r\n",
         "VALUE " + far + " 0 1\r\nf\r\nVALUE " + counter + " 0 3\r\n100\r\nEND\r\n101\r\n" +
             "VALUE " + counter + " 0 3\r\n101\r\nEND\r\n");
  const void* after_shared = ItemAddress(counter);
  ASSERT_NE(after_shared, nullptr);
  if (key_loop_ == kLoop) {
    EXPECT_NE(after_shared, stored) << "an item a reply held was rewritten in place";
  }
  // Nobody holds it now: same length, rewritten in place.
  Expect(fd.get(), "incr " + counter + " 1\r\n", "102\r\n");
  EXPECT_EQ(ItemAddress(counter), after_shared);
  Expect(fd.get(), "get " + counter + "\r\n", "VALUE " + counter + " 0 3\r\n102\r\nEND\r\n");
  // A longer result needs a new item.
  Expect(fd.get(), "incr " + counter + " 900\r\n", "1002\r\n");
  Expect(fd.get(), "get " + counter + "\r\n", "VALUE " + counter + " 0 4\r\n1002\r\nEND\r\n");
  std::vector<std::string> shared;
  EXPECT_TRUE(WaitUntil([&] { return (shared = SharedItems()).empty(); }, deadline()))
      << absl::StrJoin(shared, ", ");
}

INSTANTIATE_TEST_SUITE_P(Owners, LargeItemTest, ::testing::Values(Owner::kOwnLoop, Owner::kOtherLoop),
                         OwnerName);
INSTANTIATE_TEST_SUITE_P(Owners, HundredItemsTest, ::testing::Values(Owner::kOwnLoop, Owner::kOtherLoop),
                         OwnerName);

}  // namespace
}  // namespace percore::test
