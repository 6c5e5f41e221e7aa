// The memcache service over real sockets: a percore::Server with two loops, so every request is
// tried against a key its connection's loop owns (served inline) and one the other loop owns
// (sent there with Sharded::Call and answered back). Replies are compared byte for byte.

#include "services/memcache/memcache_service.h"

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "services/memcache/item.h"
#include "tests/services/memcache/memcache_server_fixture.h"
#include "tests/testing/server_probe.h"

namespace percore::test {
namespace {

class MemcacheServiceTest : public MemcacheServerTest {
 protected:
  void SetUp() override {
    StartServer();
    // Round robin puts consecutive connections on different loops.
    for (int i = 0; i < 2; ++i) conns_.push_back(Connect());
    std::map<uint16_t, int> loops;
    ASSERT_TRUE(WaitUntil([&] { return (loops = LoopByPeerPort(*server_, deadline())).size() == 2; },
                          deadline()));
    std::set<int> seen;
    for (const auto& [port, loop] : loops) seen.insert(loop);
    ASSERT_EQ(seen.size(), 2u) << "the two connections should sit on different loops";
    ASSERT_EQ(service_->shard_count(), 2u);
    keys_ = {KeyOnShard(0, "a"), KeyOnShard(1, "b")};
  }

  // Runs `body` for every connection and key: each pair is once local, once remote.
  template <typename Fn>
  void ForEachConnAndKey(Fn&& body) {
    for (size_t c = 0; c < conns_.size(); ++c) {
      for (const std::string& key : keys_) {
        SCOPED_TRACE(absl::StrCat("connection ", c, " key ", key));
        Expect(conns_[c].get(), "flush_all\r\n", "OK\r\n");
        body(conns_[c].get(), key);
      }
    }
  }

  std::vector<ScopedFd> conns_;
  std::vector<std::string> keys_;
};

uint64_t CasOf(const std::string& gets_reply) {
  // "VALUE <key> <flags> <bytes> <cas>\r\n..."
  const size_t eol = gets_reply.find("\r\n");
  const size_t space = gets_reply.rfind(' ', eol);
  return std::stoull(gets_reply.substr(space + 1, eol - space - 1));
}

TEST_F(MemcacheServiceTest, StorageCommands) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd, "get " + k + "\r\n", "END\r\n");
    Expect(fd, "set " + k + " 5 0 5\r\nhello\r\n", "STORED\r\n");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 5 5\r\nhello\r\nEND\r\n");
    Expect(fd, "add " + k + " 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    Expect(fd, "replace " + k + " 7 0 3\r\nabc\r\n", "STORED\r\n");
    Expect(fd, "append " + k + " 0 0 2\r\nde\r\n", "STORED\r\n");
    Expect(fd, "prepend " + k + " 0 0 2\r\n__\r\n", "STORED\r\n");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 7 7\r\n__abcde\r\nEND\r\n");
    Expect(fd, "delete " + k + "\r\n", "DELETED\r\n");
    Expect(fd, "replace " + k + " 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    Expect(fd, "append " + k + " 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    Expect(fd, "prepend " + k + " 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    Expect(fd, "add " + k + " 0 0 0\r\n\r\n", "STORED\r\n");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 0 0\r\n\r\nEND\r\n");
    Expect(fd, "set " + k + " 4294967295 0 4\r\na\r\nb\r\n", "STORED\r\n");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 4294967295 4\r\na\r\nb\r\nEND\r\n");
  });
}

TEST_F(MemcacheServiceTest, CasAndGets) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd, "cas " + k + " 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    Expect(fd, "set " + k + " 3 0 2\r\nv1\r\n", "STORED\r\n");
    const std::string reply = ExchangeUntil(fd, "gets " + k + "\r\n", "END\r\n");
    const uint64_t cas = CasOf(reply);
    EXPECT_EQ(reply, absl::StrCat("VALUE ", k, " 3 2 ", cas, "\r\nv1\r\nEND\r\n"));
    Expect(fd, absl::StrCat("cas ", k, " 0 0 2 ", cas + 1, "\r\nv2\r\n"), "EXISTS\r\n");
    Expect(fd, absl::StrCat("cas ", k, " 9 0 2 ", cas, "\r\nv2\r\n"), "STORED\r\n");
    Expect(fd, absl::StrCat("cas ", k, " 9 0 2 ", cas, "\r\nv3\r\n"), "EXISTS\r\n");
    const uint64_t next = CasOf(ExchangeUntil(fd, "gets " + k + "\r\n", "END\r\n"));
    EXPECT_NE(next, cas);
    Expect(fd, absl::StrCat("cas ", k, " 1 0 2 ", next, " noreply\r\nv4\r\n"), "");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 1 2\r\nv4\r\nEND\r\n");
  });
}

TEST_F(MemcacheServiceTest, CasValuesAreUniqueAcrossShards) {
  const int fd = conns_[0].get();
  std::set<uint64_t> seen;
  for (int i = 0; i < 40; ++i) {
    const std::string k = absl::StrCat("u", i);
    Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
    seen.insert(CasOf(ExchangeUntil(fd, "gets " + k + "\r\n", "END\r\n")));
  }
  EXPECT_EQ(seen.size(), 40u);
}

TEST_F(MemcacheServiceTest, MultiGetKeepsRequestOrderAcrossLoops) {
  const std::string a0 = KeyOnShard(0, "x"), a1 = KeyOnShard(0, "y");
  const std::string b0 = KeyOnShard(1, "x"), b1 = KeyOnShard(1, "y");
  for (const ScopedFd& conn : conns_) {
    const int fd = conn.get();
    Expect(fd, "flush_all\r\n", "OK\r\n");
    for (const std::string& k : {a0, a1, b0, b1}) {
      Expect(fd, "set " + k + " 1 0 " + std::to_string(k.size()) + "\r\n" + k + "\r\n", "STORED\r\n");
    }
    auto value = [](const std::string& k) {
      return absl::StrCat("VALUE ", k, " 1 ", k.size(), "\r\n", k, "\r\n");
    };
    Expect(fd, "get " + b0 + " " + a0 + " missing " + b1 + " " + a1 + " " + b0 + "\r\n",
           value(b0) + value(a0) + value(b1) + value(a1) + value(b0) + "END\r\n");
    Expect(fd, "get nothing here\r\n", "END\r\n");
    const std::string gets = ExchangeUntil(fd, "gets " + a0 + " " + b0 + "\r\n", "END\r\n");
    EXPECT_EQ(gets.rfind(absl::StrCat("VALUE ", a0, " 1 ", a0.size(), " "), 0), 0u) << gets;
    EXPECT_NE(gets.find(absl::StrCat("\r\nVALUE ", b0, " 1 ", b0.size(), " ")), std::string::npos);
  }
}

TEST_F(MemcacheServiceTest, TouchGatAndExpiry) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd, "touch " + k + " 10\r\n", "NOT_FOUND\r\n");
    Expect(fd, "gat 10 " + k + "\r\n", "END\r\n");
    Expect(fd, "set " + k + " 0 10 1\r\nx\r\n", "STORED\r\n");
    Expect(fd, "touch " + k + " 100\r\n", "TOUCHED\r\n");
    now_ += 50;
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 0 1\r\nx\r\nEND\r\n");
    Expect(fd, "gat 10 " + k + "\r\n", "VALUE " + k + " 0 1\r\nx\r\nEND\r\n");
    now_ += 10;
    Expect(fd, "get " + k + "\r\n", "END\r\n");
    // Absolute expiry, negative expiry, gats with a CAS.
    Expect(fd, absl::StrCat("set ", k, " 0 ", now_.load() + 5, " 1\r\ny\r\n"), "STORED\r\n");
    const std::string gats = ExchangeUntil(fd, "gats 0 " + k + "\r\n", "END\r\n");
    EXPECT_EQ(gats, absl::StrCat("VALUE ", k, " 0 1 ", CasOf(gats), "\r\ny\r\nEND\r\n"));
    now_ += 1000;  // gats 0 made it permanent
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 0 1\r\ny\r\nEND\r\n");
    Expect(fd, "set " + k + " 0 -1 1\r\nz\r\n", "STORED\r\n");
    Expect(fd, "get " + k + "\r\n", "END\r\n");
    Expect(fd, "set " + k + " 0 0 1\r\nz\r\n", "STORED\r\n");
    Expect(fd, "gat -1 " + k + "\r\n", "VALUE " + k + " 0 1\r\nz\r\nEND\r\n");
    Expect(fd, "get " + k + "\r\n", "END\r\n");
    Expect(fd, "set " + k + " 0 0 1\r\nz\r\n", "STORED\r\n");
    Expect(fd, "touch " + k + " 1 noreply\r\n", "");
    now_ += 1;
    Expect(fd, "get " + k + "\r\n", "END\r\n");
  });
}

TEST_F(MemcacheServiceTest, IncrDecr) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd, "incr " + k + " 1\r\n", "NOT_FOUND\r\n");
    Expect(fd, "decr " + k + " 1\r\n", "NOT_FOUND\r\n");
    Expect(fd, "set " + k + " 5 0 2\r\n99\r\n", "STORED\r\n");
    Expect(fd, "incr " + k + " 1\r\n", "100\r\n");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 5 3\r\n100\r\nEND\r\n");
    Expect(fd, "decr " + k + " 1000\r\n", "0\r\n");
    Expect(fd, "incr " + k + " 18446744073709551615\r\n", "18446744073709551615\r\n");
    Expect(fd, "incr " + k + " 2\r\n", "1\r\n");
    Expect(fd, "incr " + k + " 5 noreply\r\n", "");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 5 1\r\n6\r\nEND\r\n");
    Expect(fd, "set " + k + " 0 0 3\r\nabc\r\n", "STORED\r\n");
    Expect(fd, "incr " + k + " 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    Expect(fd, "decr " + k + " 1 noreply\r\n", "");
    Expect(fd, "incr " + k + " x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    Expect(fd, "incr " + k + " -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
  });
}

TEST_F(MemcacheServiceTest, DeleteForms) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd, "delete " + k + "\r\n", "NOT_FOUND\r\n");
    Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
    Expect(fd, "delete " + k + " 0\r\n", "DELETED\r\n");
    Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
    Expect(fd, "delete " + k + " noreply\r\n", "");
    Expect(fd, "get " + k + "\r\n", "END\r\n");
    Expect(fd, "delete " + k + " 5\r\n",
           "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
  });
}

TEST_F(MemcacheServiceTest, FlushAll) {
  const int fd = conns_[0].get();
  for (const std::string& k : keys_) Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
  Expect(fd, "flush_all\r\n", "OK\r\n");
  // Seen from the other loop too: OK came only after every shard flushed.
  for (const std::string& k : keys_) Expect(conns_[1].get(), "get " + k + "\r\n", "END\r\n");
  for (const std::string& k : keys_) Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
  Expect(fd, "flush_all 10\r\n", "OK\r\n");
  now_ += 9;
  for (const std::string& k : keys_) Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 0 1\r\nx\r\nEND\r\n");
  now_ += 1;
  for (const std::string& k : keys_) Expect(fd, "get " + k + "\r\n", "END\r\n");
  for (const std::string& k : keys_) Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
  Expect(fd, "flush_all noreply\r\n", "");
  Expect(fd, "flush_all 0 noreply\r\n", "");
  for (const std::string& k : keys_) Expect(fd, "get " + k + "\r\n", "END\r\n");
  Expect(fd, "flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
  Expect(fd, "flush_all 1 2 3\r\n", "ERROR\r\n");
}

TEST_F(MemcacheServiceTest, MiscCommandsAndErrors) {
  const int fd = conns_[1].get();
  Expect(fd, "version\r\n", "VERSION 1.6.0-percore\r\n");
  Expect(fd, "verbosity 1\r\n", "OK\r\n");
  Expect(fd, "verbosity 1 noreply\r\n", "");
  Expect(fd, "verbosity\r\n", "ERROR\r\n");
  Expect(fd, "verbosity x\r\n", "CLIENT_ERROR bad command line format\r\n");
  Expect(fd, "bogus\r\n", "ERROR\r\n");
  Expect(fd, "\r\n", "ERROR\r\n");
  Expect(fd, "get\r\n", "ERROR\r\n");
  Expect(fd, "touch k\r\n", "ERROR\r\n");
  Expect(fd, "touch k x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
  Expect(fd, "gat x k\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
  Expect(fd, "set k 0 0\r\n", "ERROR\r\n");
  Expect(fd, "set k x 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
  Expect(fd, "set k x 0 1 noreply\r\nx\r\n", "ERROR\r\n");
  Expect(fd, "set k 0 0 1\r\nxyz\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
  const std::string long_key(memcache::kMaxKeySize + 1, 'k');
  Expect(fd, "get " + long_key + "\r\n", "CLIENT_ERROR bad command line format\r\n");
  Expect(fd, "set " + long_key + " 0 0 1\r\nx\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
  const std::string max_key(memcache::kMaxKeySize, 'k');
  Expect(fd, "set " + max_key + " 0 0 1\r\nx\r\n", "STORED\r\n");
  Expect(fd, "get " + max_key + "\r\n", "VALUE " + max_key + " 0 1\r\nx\r\nEND\r\n");
  Expect(fd, "stats bogus\r\n", "ERROR\r\n");
  Expect(fd, "stats items\r\n", "END\r\n");
  const std::string settings = ExchangeUntil(fd, "stats settings\r\n", "END\r\n");
  EXPECT_NE(settings.find("STAT maxbytes 67108864\r\n"), std::string::npos);
  EXPECT_NE(settings.find("STAT item_size_max 1048576\r\n"), std::string::npos);
}

TEST_F(MemcacheServiceTest, TooLargeIsSwallowedAndDropsOldValue) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd, "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
    const std::string big(size_t{1} << 20, 'b');
    Expect(fd, "add " + k + " 0 0 1048576\r\n" + big + "\r\n", "SERVER_ERROR object too large for cache\r\n");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 0 1\r\nx\r\nEND\r\n");
    Expect(fd, "set " + k + " 0 0 1048576 noreply\r\n" + big + "\r\n", "");
    Expect(fd, "get " + k + "\r\n", "END\r\n");  // a refused set drops the old value
    // The largest value that fits goes through, and comes back intact.
    const size_t fits = (size_t{1} << 20) - memcache::ItemFootprint(k.size(), 0);
    const std::string value(fits, 'v');
    Expect(fd, absl::StrCat("set ", k, " 0 0 ", fits, "\r\n", value, "\r\n"), "STORED\r\n");
    Expect(fd, "get " + k + "\r\n", absl::StrCat("VALUE ", k, " 0 ", fits, "\r\n", value, "\r\nEND\r\n"));
  });
}

TEST_F(MemcacheServiceTest, NoreplyEverywhere) {
  ForEachConnAndKey([&](int fd, const std::string& k) {
    Expect(fd,
           "set " + k + " 0 0 1 noreply\r\n1\r\nadd " + k + " 0 0 1 noreply\r\n2\r\n"
           "replace " + k + " 0 0 1 noreply\r\n3\r\nappend " + k + " 0 0 1 noreply\r\n4\r\n"
           "prepend " + k + " 0 0 1 noreply\r\n5\r\nincr " + k + " 1 noreply\r\n"
           "decr " + k + " 2 noreply\r\ntouch " + k + " 0 noreply\r\n",
           "");
    Expect(fd, "get " + k + "\r\n", "VALUE " + k + " 0 3\r\n533\r\nEND\r\n");
    Expect(fd, "delete " + k + " noreply\r\nget " + k + "\r\n", "END\r\n");
  });
}

TEST_F(MemcacheServiceTest, PipelinedMixedKeysKeepOrder) {
  for (const ScopedFd& conn : conns_) {
    const int fd = conn.get();
    Expect(fd, "flush_all\r\n", "OK\r\n");
    std::string request, reply;
    for (int i = 0; i < 200; ++i) {
      const std::string& k = keys_[i % 2];
      absl::StrAppend(&request, "set ", k, " 0 0 ", std::to_string(i).size(), "\r\n", i, "\r\n",
                      "get ", k, "\r\nincr ", k, " 1\r\nbogus\r\n");
      absl::StrAppend(&reply, "STORED\r\nVALUE ", k, " 0 ", std::to_string(i).size(), "\r\n", i,
                      "\r\nEND\r\n", i + 1, "\r\nERROR\r\n");
    }
    absl::StrAppend(&request, "get ", keys_[1], " ", keys_[0], "\r\n");
    absl::StrAppend(&reply, "VALUE ", keys_[1], " 0 3\r\n200\r\nVALUE ", keys_[0], " 0 3\r\n199\r\nEND\r\n");
    Expect(fd, request, reply);
  }
}

TEST_F(MemcacheServiceTest, SplitAtEveryByte) {
  const std::string k0 = keys_[0], k1 = keys_[1];
  const std::string request = "set " + k0 + " 1 0 3\r\nabc\r\nset " + k1 + " 2 0 2\r\nde\r\n" +
                              "get " + k1 + " " + k0 + "\r\nincr " + k1 + " 1\r\nbogus\r\n" +
                              "set " + k1 + " 0 0 1\r\n7\r\nincr " + k1 + " 5\r\ndelete " + k0 + "\r\n";
  const std::string reply = "STORED\r\nSTORED\r\nVALUE " + k1 + " 2 2\r\nde\r\nVALUE " + k0 +
                            " 1 3\r\nabc\r\nEND\r\n"
                            "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
                            "ERROR\r\nSTORED\r\n12\r\nDELETED\r\n";
  for (const ScopedFd& conn : conns_) {
    const int fd = conn.get();
    for (char c : request) {
      ASSERT_TRUE(WriteAll(fd, std::string_view(&c, 1), deadline()).ok());
    }
    absl::StatusOr<std::string> got = ReadExactly(fd, reply.size(), deadline());
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, reply);
    Expect(fd, "", "");  // nothing more came
  }
}

TEST_F(MemcacheServiceTest, QuitClosesAfterPendingReplies) {
  for (ScopedFd& conn : conns_) {
    const int fd = conn.get();
    absl::StatusOr<std::string> all = [&]() -> absl::StatusOr<std::string> {
      absl::Status s = WriteAll(fd, "set " + keys_[1] + " 0 0 1\r\nq\r\nget " + keys_[1] + " " +
                                        keys_[0] + "\r\nquit\r\nget " + keys_[1] + "\r\n",
                                deadline());
      if (!s.ok()) return s;
      return ReadToEof(fd, deadline());
    }();
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(*all, "STORED\r\nVALUE " + keys_[1] + " 0 1\r\nq\r\nEND\r\n");
    conn.reset();  // our FIN ends the server's lingering close
  }
  EXPECT_TRUE(WaitUntil([&] { return server_->Totals().closed_by(CloseReason::kServiceClose) == 2; },
                        deadline()));
}

TEST_F(MemcacheServiceTest, LineTooLongClosesConnection) {
  const int fd = conns_[0].get();
  ASSERT_TRUE(WriteAll(fd, "set a 0 0 1\r\nx\r\n" + std::string(3000, 'x'), deadline()).ok());
  absl::StatusOr<std::string> all = ReadToEof(fd, deadline());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, "STORED\r\nCLIENT_ERROR line too long\r\n");
  conns_[0].reset();
  EXPECT_TRUE(WaitUntil([&] { return server_->Totals().closed_by(CloseReason::kProtocolError) == 1; },
                        deadline()));
  // A long multi-get is fine.
  for (const std::string& k : keys_) Expect(conns_[1].get(), "set " + k + " 0 0 1\r\nx\r\n", "STORED\r\n");
  std::string get = "get";
  while (get.size() < 20'000) absl::StrAppend(&get, " ", keys_[get.size() % 2]);
  EXPECT_EQ(ExchangeUntil(conns_[1].get(), get + "\r\n", "END\r\n").substr(0, 6), "VALUE ");
}

TEST_F(MemcacheServiceTest, StatsCountAcrossShards) {
  const int fd = conns_[0].get();
  Expect(fd, "stats reset\r\n", "RESET\r\n");
  for (const std::string& k : keys_) {
    Expect(fd, "set " + k + " 0 0 2\r\nab\r\n", "STORED\r\n");
    Expect(fd, "get " + k + " nope\r\n", "VALUE " + k + " 0 2\r\nab\r\nEND\r\n");
  }
  Expect(conns_[1].get(), "get " + keys_[0] + "\r\n", "VALUE " + keys_[0] + " 0 2\r\nab\r\nEND\r\n");
  EXPECT_EQ(Stat(fd, "cmd_set"), 2);
  EXPECT_EQ(Stat(fd, "cmd_get"), 5);
  EXPECT_EQ(Stat(fd, "get_hits"), 3);
  EXPECT_EQ(Stat(fd, "get_misses"), 2);
  EXPECT_EQ(Stat(fd, "curr_items"), 2);
  EXPECT_EQ(Stat(fd, "curr_connections"), 2);
  EXPECT_EQ(Stat(fd, "bytes"), static_cast<int64_t>(memcache::ItemFootprint(keys_[0].size(), 2) +
                                                    memcache::ItemFootprint(keys_[1].size(), 2)));
  EXPECT_EQ(Stat(fd, "threads"), 2);
  EXPECT_EQ(Stat(fd, "shards"), 2);
  EXPECT_EQ(Stat(fd, "limit_maxbytes"), 64 << 20);
  EXPECT_EQ(Stat(fd, "evictions"), 0);
  EXPECT_EQ(Stat(fd, "time"), now_.load());
  const std::string stats = ExchangeUntil(fd, "stats\r\n", "END\r\n");
  EXPECT_EQ(stats.substr(0, 9), "STAT pid ");
  EXPECT_NE(stats.find("STAT version 1.6.0-percore\r\n"), std::string::npos);
}

TEST_F(MemcacheServiceTest, ConcurrentIncrementsFromBothLoops) {
  constexpr int kPerClient = 300;
  std::vector<ScopedFd> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(Connect());
  Expect(clients[0].get(), "set counter 0 0 1\r\n0\r\n", "STORED\r\n");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (ScopedFd& client : clients) {
    threads.emplace_back([&, fd = client.get()] {
      std::string request;
      for (int i = 0; i < kPerClient; ++i) request += "incr counter 1 noreply\r\n";
      request += "version\r\n";
      if (!WriteAll(fd, request, deadline()).ok()) ++failures;
      absl::StatusOr<std::string> reply = ReadExactly(fd, 23, deadline());
      if (!reply.ok() || *reply != "VERSION 1.6.0-percore\r\n") ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  Expect(clients[1].get(), "get counter\r\n",
         absl::StrCat("VALUE counter 0 ", std::to_string(4 * kPerClient).size(), "\r\n", 4 * kPerClient,
                      "\r\nEND\r\n"));
}

TEST_F(MemcacheServiceTest, LargeRepliesThroughBackpressure) {
  // Ten 500 KB values on both shards, fetched five times in one pipelined batch: 25 MB of
  // replies that back up far past the output high-water mark while the client is not reading.
  const int fd = conns_[0].get();
  const std::string value(500'000, 'v');
  std::string keys, one_reply;
  for (int i = 0; i < 10; ++i) {
    const std::string k = KeyOnShard(i % 2, absl::StrCat("big", i, "_"));
    Expect(fd, absl::StrCat("set ", k, " 0 0 ", value.size(), "\r\n", value, "\r\n"), "STORED\r\n");
    absl::StrAppend(&keys, " ", k);
    absl::StrAppend(&one_reply, "VALUE ", k, " 0 ", value.size(), "\r\n", value, "\r\n");
  }
  one_reply += "END\r\n";
  std::string request;
  for (int i = 0; i < 5; ++i) absl::StrAppend(&request, "get", keys, "\r\n");
  const std::string got = Exchange(fd, request, 5 * one_reply.size());
  ASSERT_EQ(got.size(), 5 * one_reply.size());
  for (size_t i = 0; i < 5; ++i) {
    const bool same = got.compare(i * one_reply.size(), one_reply.size(), one_reply) == 0;
    EXPECT_TRUE(same) << "batch " << i;
  }
  Expect(fd, "", "");
}

TEST_F(MemcacheServiceTest, PeersVanishingWithRequestsInFlight) {
  // Each connection leaves with many cross-loop requests outstanding; the results coming back
  // find no connection and are dropped. The server carries on.
  for (int round = 0; round < 20; ++round) {
    ScopedFd conn = Connect();
    // Served once first, so the connection is counted before it vanishes.
    Expect(conn.get(), "", "");
    std::string request;
    for (int i = 0; i < 100; ++i) {
      absl::StrAppend(&request, "get ", keys_[0], " ", keys_[1], "\r\nset ", keys_[i % 2],
                      " 0 0 1\r\nx\r\n");
    }
    ASSERT_TRUE(WriteAll(conn.get(), request, deadline()).ok());
    if (round % 2 == 0) {
      ASSERT_TRUE(ResetOnClose(conn.get()).ok());
    }
  }
  // A connection that closed with FIN still has its pipeline executed, so its sets may land
  // after anything a survivor writes now. Wait until every one of them is gone (each was
  // counted in curr_connections before it wrote its pipeline), then send one
  // request from each survivor through both shards: a shard runs work posted from one loop in
  // order, so anything the vanished connections posted has run once these come back.
  ASSERT_TRUE(WaitUntil([&] { return Stat(conns_[0].get(), "curr_connections") == 2; }, deadline()));
  for (const ScopedFd& conn : conns_) {
    ExchangeUntil(conn.get(), absl::StrCat("get ", keys_[0], " ", keys_[1], "\r\n"), "END\r\n");
  }
  // The survivors are served, inline and across loops.
  for (size_t c = 0; c < conns_.size(); ++c) {
    const int fd = conns_[c].get();
    const std::string value = absl::StrCat("survivor", c);
    for (const std::string& key : keys_) {
      Expect(fd, absl::StrCat("set ", key, " 0 0 ", value.size(), "\r\n", value, "\r\n"), "STORED\r\n");
    }
    Expect(fd, absl::StrCat("get ", keys_[0], " ", keys_[1], "\r\n"),
           absl::StrCat("VALUE ", keys_[0], " 0 ", value.size(), "\r\n", value, "\r\nVALUE ", keys_[1],
                        " 0 ", value.size(), "\r\n", value, "\r\nEND\r\n"));
  }
}

class MemcacheEvictionTest : public MemcacheServerTest {};

TEST_F(MemcacheEvictionTest, EvictsUnderMemoryLimit) {
  MemcacheOptions options;
  options.memory_limit = 256 << 10;  // 128 KiB per shard
  options.max_item_size = 64 << 10;
  StartServer(options);
  ScopedFd conn = Connect();
  const int fd = conn.get();
  const std::string value(1000, 'v');
  for (int i = 0; i < 1000; ++i) {
    Expect(fd, absl::StrCat("set k", i, " 0 0 1000 noreply\r\n", value, "\r\n"), "");
  }
  const int64_t evictions = Stat(fd, "evictions");
  const int64_t items = Stat(fd, "curr_items");
  EXPECT_GT(evictions, 0);
  EXPECT_EQ(evictions + items, 1000);
  EXPECT_LE(Stat(fd, "bytes"), 256 << 10);
  EXPECT_EQ(Stat(fd, "evicted_unfetched"), evictions);
  // The most recent keys survive; the oldest went first.
  Expect(fd, "get k999\r\n", "VALUE k999 0 1000\r\n" + value + "\r\nEND\r\n");
  Expect(fd, "get k0\r\n", "END\r\n");
}

TEST_F(MemcacheEvictionTest, SingleLoopServesEverythingInline) {
  StartServer(MemcacheOptions(), /*loops=*/1);
  ScopedFd conn = Connect();
  Expect(conn.get(), "set a 0 0 1\r\n1\r\nget a b\r\nflush_all\r\nget a\r\n",
         "STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nOK\r\nEND\r\n");
  EXPECT_EQ(service_->shard_count(), 1u);
}

}  // namespace
}  // namespace percore::test
