// The memcache service on four loops: every loop serves keys owned by every loop (inline for
// its own, Sharded::Call for the others), and a client that goes away while the owners of its
// multi-get still hold its request costs nothing: the late answers are dropped with the item
// references they carry, and the server keeps serving.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/sharded.h"
#include "services/memcache/memcache_service.h"
#include "tests/services/memcache/memcache_server_fixture.h"

namespace percore::test {
namespace {

constexpr int kLoops = 4;
constexpr size_t kMaxItem = 4 << 10;

uint64_t CasOf(const std::string& gets_reply) {
  // "VALUE <key> <flags> <bytes> <cas>\r\n..."
  const size_t eol = gets_reply.find("\r\n");
  const size_t space = gets_reply.rfind(' ', eol);
  return std::stoull(gets_reply.substr(space + 1, eol - space - 1));
}

std::string ValueBlock(const std::string& key, const std::string& value, int flags = 0) {
  return absl::StrCat("VALUE ", key, " ", flags, " ", value.size(), "\r\n", value, "\r\n");
}

// Keeps loops busy inside a posted task until released, so that work sent to them waits.
class LoopBlocker {
 public:
  LoopBlocker() = default;
  LoopBlocker(const LoopBlocker&) = delete;
  LoopBlocker& operator=(const LoopBlocker&) = delete;
  ~LoopBlocker() { Release(); }

  // Returns once `loop` is inside the blocking task; false if it did not get there in time.
  bool Block(EventLoop& loop, Deadline deadline) {
    auto entered = std::make_shared<absl::Notification>();
    loop.Post([entered, release = release_] {
      entered->Notify();
      // Bounded, so that a failing test still ends.
      release->WaitForNotificationWithTimeout(absl::Seconds(60));
    });
    return entered->WaitForNotificationWithTimeout(deadline.remaining());
  }
  void Release() {
    if (!release_->HasBeenNotified()) release_->Notify();
  }

 private:
  std::shared_ptr<absl::Notification> release_ = std::make_shared<absl::Notification>();
};

class MemcacheCrossLoopTest : public MemcacheServerTest {
 protected:
  void SetUp() override {
    MemcacheOptions options;
    options.max_item_size = kMaxItem;
    ASSERT_NO_FATAL_FAILURE(StartServer(options, kLoops));
    ASSERT_EQ(service_->shard_count(), static_cast<size_t>(kLoops));
    // One key per owner, checked against the placement rule itself: FNV-1a mod the loops.
    for (int owner = 0; owner < kLoops; ++owner) {
      const std::vector<std::string> keys = KeysOwnedByLoop(owner, 1, absl::StrCat("owner", owner, "_"));
      ASSERT_EQ(keys.size(), 1u);
      ASSERT_EQ(ShardHash(keys[0]) % kLoops, static_cast<uint64_t>(owner)) << keys[0];
      keys_.push_back(keys[0]);
    }
  }

  // "get" of every key, in the order `order` gives, with a miss in the middle; and its reply
  // when key i holds `values[i]`.
  std::string GetAll(const std::vector<int>& order) const {
    std::string get = "get";
    for (size_t i = 0; i < order.size(); ++i) {
      absl::StrAppend(&get, " ", keys_[order[i]]);
      if (i == order.size() / 2) absl::StrAppend(&get, " missing");
    }
    return get + "\r\n";
  }
  std::string GetAllReply(const std::vector<int>& order, const std::vector<std::string>& values) const {
    std::string reply;
    for (int i : order) reply += ValueBlock(keys_[i], values[i]);
    return reply + "END\r\n";
  }

  std::vector<std::string> keys_;  // keys_[i] is owned by loop i
};

TEST_F(MemcacheCrossLoopTest, EveryLoopServesKeysOfEveryOwner) {
  for (int loop = 0; loop < kLoops; ++loop) {
    ScopedFd conn = ConnectOnLoop(loop);
    ASSERT_TRUE(conn.valid());
    const int fd = conn.get();
    for (int owner = 0; owner < kLoops; ++owner) {
      SCOPED_TRACE(absl::StrCat("connection on loop ", loop, ", key owned by loop ", owner));
      const std::string& k = keys_[owner];
      const std::string value = absl::StrCat("from", loop);
      Expect(fd, absl::StrCat("set ", k, " 7 0 ", value.size(), "\r\n", value, "\r\n"), "STORED\r\n");
      Expect(fd, "get " + k + "\r\n", ValueBlock(k, value, 7) + "END\r\n");
      // CAS values come from the owner's series: owner + 1, owner + 1 + loops, ...
      const std::string gets = ExchangeUntil(fd, "gets " + k + "\r\n", "END\r\n");
      EXPECT_EQ(CasOf(gets) % kLoops, static_cast<uint64_t>(owner + 1) % kLoops) << gets;
      Expect(fd, absl::StrCat("cas ", k, " 0 0 1 ", CasOf(gets) + kLoops, "\r\nx\r\n"), "EXISTS\r\n");
      Expect(fd, "append " + k + " 0 0 1\r\n!\r\n", "STORED\r\n");
      Expect(fd, "incr " + k + " 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
      // Bad input: a data block longer than its line says; the stored value is untouched.
      Expect(fd, "set " + k + " 0 0 1\r\nxyz\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
      Expect(fd, "get " + k + "\r\n", ValueBlock(k, value + "!", 7) + "END\r\n");
      // A set refused as too large drops the old value on its owner, before later requests.
      Expect(fd, absl::StrCat("set ", k, " 0 0 ", kMaxItem, " noreply\r\n", std::string(kMaxItem, 'z'), "\r\n"),
             "");
      Expect(fd, "get " + k + "\r\n", "END\r\n");
      Expect(fd, "set " + k + " 0 0 2\r\n41\r\nincr " + k + " 1\r\ndelete " + k + "\r\ndelete " + k + "\r\n",
             "STORED\r\n42\r\nDELETED\r\nNOT_FOUND\r\n");
    }
    // A multi-get over all four owners, answered in request order; then a flush that every
    // owner has done before its OK.
    std::vector<std::string> values;
    for (int owner = 0; owner < kLoops; ++owner) {
      values.push_back(absl::StrCat("v", loop, owner));
      Expect(fd, absl::StrCat("set ", keys_[owner], " 0 0 ", values[owner].size(), "\r\n", values[owner], "\r\n"),
             "STORED\r\n");
    }
    const std::vector<int> order = {3, 0, 2, 1, 3, (loop + 1) % kLoops};
    Expect(fd, GetAll(order), GetAllReply(order, values));
    Expect(fd, "flush_all\r\n" + GetAll(order), "OK\r\nEND\r\n");
  }
  ScopedFd conn = Connect();
  EXPECT_EQ(Stat(conn.get(), "shards"), kLoops);
  EXPECT_EQ(Stat(conn.get(), "threads"), kLoops);
  EXPECT_EQ(Stat(conn.get(), "cmd_flush"), kLoops);
  EXPECT_EQ(Stat(conn.get(), "store_too_large"), kLoops * kLoops);
}

TEST_F(MemcacheCrossLoopTest, ClientLeavingWhileItsMultiGetIsAwayLeaksNothing) {
  constexpr int kHome = 0;  // where the leaving clients are served
  std::vector<std::string> values;
  {
    ScopedFd writer = Connect();
    for (int owner = 0; owner < kLoops; ++owner) {
      values.push_back(std::string(100 + owner, static_cast<char>('a' + owner)));
      Expect(writer.get(),
             absl::StrCat("set ", keys_[owner], " 0 0 ", values[owner].size(), "\r\n", values[owner], "\r\n"),
             "STORED\r\n");
    }
  }
  auto all_closed = [&] { return server_->Totals().conns_active == 0; };
  ASSERT_TRUE(WaitUntil(all_closed, deadline()));
  const std::vector<int> order = {1, kHome, 2, 3, 1};
  // Round 0 leaves with a reset, which the server sees at once; round 1 with a plain close,
  // which it sees only when it reads or writes again, once the answers are in.
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "reset" : "close");
    ScopedFd conn = ConnectOnLoop(kHome);
    ASSERT_TRUE(conn.valid());
    Expect(conn.get(), "", "");
    const uint64_t resets = server_->Totals().closed_by(CloseReason::kPeerReset);
    {
      // Every other loop holds the keys it owns until the client is gone.
      LoopBlocker owners;
      for (int loop = 0; loop < kLoops; ++loop) {
        if (loop == kHome) continue;
        ASSERT_TRUE(owners.Block(server_->loop(loop), deadline()));
      }
      ASSERT_TRUE(WriteAll(conn.get(), GetAll(order), deadline()).ok());
      // Paused: the request went to the owners, and the home key's hit is held for the reply.
      ASSERT_TRUE(WaitUntil([&] { return StateOf(conn.get(), kHome) == ConnectionState::kPaused; },
                            deadline()));
      if (round == 0) {
        ASSERT_TRUE(ResetOnClose(conn.get()).ok());
        conn.reset();
        ASSERT_TRUE(WaitUntil([&] { return server_->Totals().closed_by(CloseReason::kPeerReset) == resets + 1; },
                              deadline()));
      } else {
        conn.reset();
      }
    }  // the owners answer now
    // The answers were dropped (or written to a closed socket), and every item reference with
    // them.
    ASSERT_TRUE(WaitUntil(all_closed, deadline()));
    std::vector<std::string> shared;
    EXPECT_TRUE(WaitUntil([&] { return (shared = SharedItems()).empty(); }, deadline()))
        << absl::StrJoin(shared, " ");
  }
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kHandlerError), 0u);
  // The server keeps serving, from every loop and across loops.
  for (int loop = 0; loop < kLoops; ++loop) {
    ScopedFd conn = ConnectOnLoop(loop);
    ASSERT_TRUE(conn.valid());
    Expect(conn.get(), GetAll(order), GetAllReply(order, values));
    Expect(conn.get(), "delete " + keys_[loop] + "\r\n", "DELETED\r\n");
    Expect(conn.get(),
           absl::StrCat("set ", keys_[loop], " 0 0 ", values[loop].size(), "\r\n", values[loop], "\r\n"),
           "STORED\r\n");
  }
}

// A connection holds its parser and pending replies only while it has requests in progress:
// idle ones have given them back to their loop, which reuses them, so a loop makes as many as
// it has connections busy at once, not as many as it has connections.
TEST_F(MemcacheCrossLoopTest, IdleConnectionsGiveTheirRequestStateBack) {
  constexpr int kConnections = 40;
  std::vector<ScopedFd> idle;
  for (int i = 0; i < kConnections; ++i) {
    ScopedFd conn = Connect();
    ASSERT_TRUE(conn.valid());
    // Keys of every owner: requests answered on the connection's loop and on others.
    const std::string& k = keys_[static_cast<size_t>(i % kLoops)];
    Expect(conn.get(), absl::StrCat("set ", k, " 0 0 2\r\n", i % 10, "x\r\n"), "STORED\r\n");
    idle.push_back(std::move(conn));
  }
  // One request at a time: each loop made one state, and its free list holds it again.
  for (int loop = 0; loop < kLoops; ++loop) {
    SCOPED_TRACE(absl::StrCat("loop ", loop));
    EXPECT_EQ(RequestStates(loop), (RequestStateCounts{1, 1}));
  }
  for (const ScopedFd& conn : idle) {
    Expect(conn.get(), "get " + keys_[0] + "\r\n", ValueBlock(keys_[0], "6x") + "END\r\n");
  }
  for (int loop = 0; loop < kLoops; ++loop) {
    EXPECT_EQ(RequestStates(loop), (RequestStateCounts{1, 1})) << "loop " << loop;
  }
}

TEST_F(MemcacheCrossLoopTest, PartialRequestKeepsItsRequestState) {
  constexpr int kHome = 0;
  ScopedFd partial = ConnectOnLoop(kHome);
  ScopedFd other = ConnectOnLoop(kHome);
  ASSERT_TRUE(partial.valid() && other.valid());
  const std::string& k = keys_[kHome];
  // Half a set: the state stays with the connection until the rest arrives.
  ASSERT_TRUE(WriteAll(partial.get(), "set " + k + " 3 0 5\r\nab", deadline()).ok());
  ASSERT_TRUE(WaitUntil([&] { return RequestStates(kHome) == RequestStateCounts{1, 0}; }, deadline()));
  // Another connection on the loop needs a state of its own meanwhile.
  Expect(other.get(), "get " + k + "\r\n", "END\r\n");
  EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 1}));
  ASSERT_TRUE(WriteAll(partial.get(), "cde\r\n", deadline()).ok());
  EXPECT_EQ(ReadExactly(partial.get(), 8, deadline()).value_or(""), "STORED\r\n");
  EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 2}));
  Expect(other.get(), "get " + k + "\r\n", ValueBlock(k, "abcde", 3) + "END\r\n");

  // A data block over the item size is refused at once (and the old value dropped, as
  // memcached does), but the state stays while the rest of the block is still to come.
  const std::string big(kMaxItem, 'z');
  ASSERT_TRUE(WriteAll(partial.get(), absl::StrCat("set ", k, " 0 0 ", big.size(), "\r\n", big.substr(0, 100)),
                       deadline()).ok());
  const std::string refused = "SERVER_ERROR object too large for cache\r\n";
  EXPECT_EQ(ReadExactly(partial.get(), refused.size(), deadline()).value_or(""), refused);
  EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 1}));
  Expect(other.get(), "get " + k + "\r\n", "END\r\n");
  EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 1}));
  Expect(partial.get(), big.substr(100) + "\r\n", "");
  EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 2}));
}

TEST_F(MemcacheCrossLoopTest, RequestAwayOnAnotherLoopKeepsItsRequestState) {
  constexpr int kHome = 0;
  constexpr int kOwner = 1;
  ScopedFd waiting = ConnectOnLoop(kHome);
  ScopedFd other = ConnectOnLoop(kHome);
  ASSERT_TRUE(waiting.valid() && other.valid());
  Expect(waiting.get(), "set " + keys_[kOwner] + " 0 0 4\r\naway\r\n", "STORED\r\n");
  ASSERT_EQ(RequestStates(kHome), (RequestStateCounts{1, 1}));
  {
    LoopBlocker owner;
    ASSERT_TRUE(owner.Block(server_->loop(kOwner), deadline()));
    // A get of the blocked owner's key, and a local one pipelined behind it.
    ASSERT_TRUE(WriteAll(waiting.get(), "get " + keys_[kOwner] + "\r\nget " + keys_[kHome] + "\r\n",
                         deadline()).ok());
    ASSERT_TRUE(WaitUntil([&] { return StateOf(waiting.get(), kHome) == ConnectionState::kPaused; },
                          deadline()));
    EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{1, 0}));
    Expect(other.get(), "get " + keys_[kHome] + "\r\n", "END\r\n");
    EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 1}));
  }  // the owner answers now
  const std::string reply = ValueBlock(keys_[kOwner], "away") + "END\r\nEND\r\n";
  EXPECT_EQ(ReadExactly(waiting.get(), reply.size(), deadline()).value_or(""), reply);
  EXPECT_EQ(RequestStates(kHome), (RequestStateCounts{2, 2}));
  Expect(waiting.get(), "get " + keys_[kOwner] + "\r\n", ValueBlock(keys_[kOwner], "away") + "END\r\n");
}

}  // namespace
}  // namespace percore::test
