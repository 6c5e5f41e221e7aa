// The RESP service on a running two-loop Server, over loopback sockets, plus interop with
// redis-cli and redis-benchmark when they are installed.

#include "services/resp/resp_service.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/server.h"
#include "reactor/sharded.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/server_probe.h"
#include "tests/testing/test_backend.h"

namespace percore {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kTimeout = absl::Seconds(10);

test::Deadline Soon() { return test::Deadline::In(kTimeout); }

// How many more bytes the RESP reply that starts at `pos` of `s` needs at the least: 0 once it
// is complete, and then *end is where it ends. Never more than the reply still lacks, so
// reading that many bytes never takes any of the next reply. InvalidArgument for a type byte
// that starts no reply.
absl::StatusOr<size_t> BytesShort(std::string_view s, size_t pos, size_t* end) {
  if (pos >= s.size()) return 3;  // the shortest reply, "+\r\n"
  const size_t eol = s.find("\r\n", pos);
  if (eol == std::string_view::npos) return s.back() == '\r' ? 1 : 2;
  const char type = s[pos];
  if (type == '+' || type == '-' || type == ':') {
    *end = eol + 2;
    return 0;
  }
  const long long n = std::atoll(std::string(s.substr(pos + 1, eol - pos - 1)).c_str());
  if (type == '$') {
    *end = n < 0 ? eol + 2 : eol + 2 + static_cast<size_t>(n) + 2;
    return *end > s.size() ? *end - s.size() : 0;
  }
  if (type == '*') {
    size_t at = eol + 2;
    for (long long i = 0; i < n; ++i) {
      absl::StatusOr<size_t> short_by = BytesShort(s, at, &at);
      if (!short_by.ok() || *short_by > 0) return short_by;
    }
    *end = at;
    return 0;
  }
  return absl::InvalidArgumentError("no RESP reply starts with '" + std::string(1, type) + "'");
}

std::string Cmd(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out.append(a);
    out += "\r\n";
  }
  return out;
}

std::string Bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}

// A loopback client that reads whole RESP replies, each call bounded by kTimeout. It reads no
// byte past the replies asked for, so what the server sends next is still on the socket.
class Client {
 public:
  explicit Client(uint16_t port) {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, Soon());
    if (fd.ok()) {
      fd_ = std::move(*fd);
    } else {
      ADD_FAILURE() << fd.status();
    }
  }
  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  // The client's own port: what the server sees as the connection's peer port.
  uint16_t local_port() const { return test::LocalPort(fd_.get()).value_or(0); }
  // Closes with an RST instead of a FIN.
  void Reset() {
    const absl::Status reset = test::ResetOnClose(fd_.get());
    EXPECT_TRUE(reset.ok()) << reset;
    fd_.reset();
  }

  // A server that closes on a bad request may reset the connection before all of it is
  // written; what it answered first is for the reads to check.
  void Send(std::string_view bytes, test::Deadline deadline = Soon()) {
    const absl::Status sent = test::WriteAll(fd_.get(), bytes, deadline);
    if (!sent.ok() && !absl::IsUnavailable(sent)) ADD_FAILURE() << sent;
  }
  void ShutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

  // Reads `count` complete replies; a failure stops at the replies complete by then.
  std::string ReadReplies(int count = 1) {
    const test::Deadline deadline = Soon();
    std::string out;
    for (int i = 0; i < count; ++i) {
      std::string reply;
      size_t end = 0;
      for (;;) {
        const absl::StatusOr<size_t> short_by = BytesShort(reply, 0, &end);
        if (!short_by.ok()) {
          ADD_FAILURE() << short_by.status() << " after " << i << " replies";
          return out;
        }
        if (*short_by == 0) break;
        absl::StatusOr<std::string> more = test::ReadExactly(fd_.get(), *short_by, deadline);
        if (!more.ok()) {
          ADD_FAILURE() << more.status() << " after " << i << " replies";
          return out;
        }
        reply += *more;
      }
      out += reply;
    }
    return out;
  }

  std::string Roundtrip(std::string_view request, int replies = 1) {
    Send(request);
    return ReadReplies(replies);
  }

  // True when the server closed the connection, by a FIN or a reset; the bytes it sent
  // before go to *rest.
  bool WaitClosed(std::string* rest = nullptr) {
    absl::StatusOr<std::string> got = test::ReadUntilEofOrReset(fd_.get(), Soon());
    if (!got.ok()) return false;
    if (rest != nullptr) *rest = std::move(*got);
    return true;
  }

 private:
  test::ScopedFd fd_;
};

class RespServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(RespOptions{}); }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(const RespOptions& options) {
    if (server_) server_->Stop();
    ServerOptions server_options;
    server_options.loops = 2;
    server_options.backend = test::TestBackend();
    server_ = std::make_unique<Server>(server_options);
    ASSERT_TRUE(server_->AddService(NewRespService(options)).ok());
    absl::StatusOr<ListenerInfo> info = server_->Listen("resp", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(info.ok()) << info.status();
    port_ = info->bound.port();
    ASSERT_TRUE(server_->Start().ok());
    // Both loops own a shard once they run; wait for that before the first request.
    ASSERT_TRUE(test::WaitUntil(
        [&] { return server_->loop(0).running() && server_->loop(1).running(); }, Soon()));
  }

  uint64_t TasksRun() { return server_->Totals().tasks_run; }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(RespServiceTest, PingInlineAndMultibulk) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.Roundtrip("PING\r\n"), "+PONG\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"PING"})), "+PONG\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"ECHO", "hi"})), Bulk("hi"));
  EXPECT_EQ(c.Roundtrip("\r\n" + Cmd({"PING"})), "+PONG\r\n");  // blank line ignored
}

TEST_F(RespServiceTest, KeysAcrossShardsPipelined) {
  Client c(port_);
  const uint64_t tasks_before = TasksRun();
  std::string sets, gets, expected_gets;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "key:" + std::to_string(i);
    const std::string value = "value-" + std::to_string(i * 7);
    sets += Cmd({"SET", key, value});
    gets += Cmd({"GET", key});
    expected_gets += Bulk(value);
  }
  std::string expected_sets;
  for (int i = 0; i < 300; ++i) expected_sets += "+OK\r\n";
  EXPECT_EQ(c.Roundtrip(sets, 300), expected_sets);
  EXPECT_EQ(c.Roundtrip(gets, 300), expected_gets);
  // A second connection (maybe on the other loop) sees the same data.
  Client d(port_);
  EXPECT_EQ(d.Roundtrip(gets, 300), expected_gets);
  EXPECT_EQ(d.Roundtrip(Cmd({"DBSIZE"})), ":300\r\n");
  EXPECT_GT(TasksRun(), tasks_before);  // the cross-loop path ran
}

TEST_F(RespServiceTest, RepliesStayInRequestOrder) {
  Client c(port_);
  std::string request, expected;
  for (int i = 0; i < 50; ++i) {
    const std::string key = "k" + std::to_string(i);
    request += Cmd({"SET", key, std::to_string(i)}) + "PING\r\n" + Cmd({"INCR", key}) +
               Cmd({"GET", "missing" + std::to_string(i)}) + Cmd({"NOPE"}) +
               Cmd({"GET", key}) + Cmd({"ECHO", key});
    expected += "+OK\r\n+PONG\r\n:" + std::to_string(i + 1) + "\r\n$-1\r\n" +
                "-ERR unknown command 'NOPE', with args beginning with: \r\n" +
                Bulk(std::to_string(i + 1)) + Bulk(key);
  }
  EXPECT_EQ(c.Roundtrip(request, 350), expected);
}

TEST_F(RespServiceTest, MultiKeyCommandsAcrossShards) {
  Client c(port_);
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) keys.push_back("mk:" + std::to_string(i));
  std::string mset = "*" + std::to_string(1 + 2 * keys.size()) + "\r\n" + Bulk("MSET");
  std::string mget = "*" + std::to_string(2 + keys.size()) + "\r\n" + Bulk("MGET");
  std::string expected_mget = "*" + std::to_string(1 + keys.size()) + "\r\n";
  for (const std::string& k : keys) {
    mset += Bulk(k) + Bulk("v" + k);
    mget += Bulk(k);
    expected_mget += Bulk("v" + k);
  }
  mget += Bulk("absent");
  expected_mget += "$-1\r\n";
  EXPECT_EQ(c.Roundtrip(mset), "+OK\r\n");
  EXPECT_EQ(c.Roundtrip(mget), expected_mget);
  EXPECT_EQ(c.Roundtrip(Cmd({"EXISTS", "mk:1", "mk:2", "mk:3", "absent", "mk:1"})), ":4\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"DEL", "mk:1", "mk:2", "absent", "mk:1"})), ":2\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"DBSIZE"})), ":38\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"MSET", "a", "1", "b"})),
            "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"FLUSHDB", "bogus"})), "-ERR syntax error\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"DBSIZE"})), ":38\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"FLUSHALL"})), "+OK\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"DBSIZE"})), ":0\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"MGET", "mk:5", "mk:6"})), "*2\r\n$-1\r\n$-1\r\n");
}

TEST_F(RespServiceTest, SplitAtEveryByte) {
  std::string request, expected;
  for (int i = 0; i < 12; ++i) {
    const std::string key = "split:" + std::to_string(i);
    request += Cmd({"SET", key, "x" + std::to_string(i)}) + "GET " + key + "\r\n" +
               Cmd({"MGET", key, "split:none"});
    expected += "+OK\r\n" + Bulk("x" + std::to_string(i)) + "*2\r\n" +
                Bulk("x" + std::to_string(i)) + "$-1\r\n";
  }
  Client c(port_);
  for (char ch : request) c.Send(std::string_view(&ch, 1));
  EXPECT_EQ(c.ReadReplies(36), expected);
}

TEST_F(RespServiceTest, QuitClosesAfterReply) {
  Client c(port_);
  c.Send(Cmd({"SET", "q1", "1"}) + Cmd({"SET", "q2", "2"}) + Cmd({"QUIT"}) + Cmd({"PING"}));
  std::string rest;
  ASSERT_TRUE(c.WaitClosed(&rest));
  EXPECT_EQ(rest, "+OK\r\n+OK\r\n+OK\r\n");
}

TEST_F(RespServiceTest, QuitWaitsForCrossShardReplies) {
  std::string request, expected;
  for (int i = 0; i < 20; ++i) {
    request += Cmd({"INCR", "quit:" + std::to_string(i)});
    expected += ":1\r\n";
  }
  Client c(port_);
  c.Send(request + "QUIT\r\nPING\r\n");
  std::string rest;
  ASSERT_TRUE(c.WaitClosed(&rest));
  EXPECT_EQ(rest, expected + "+OK\r\n");
}

TEST_F(RespServiceTest, SmallBatchLimits) {
  // Batches of at most two commands or 16 argument bytes: a long pipeline crosses many of them.
  RespOptions options;
  options.max_batch_commands = 2;
  options.max_batch_bytes = 16;
  StartServer(options);
  std::string request, expected;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "sb:" + std::to_string(i % 37);
    request += Cmd({"APPEND", key, "ab"}) + Cmd({"MGET", key, "sb:x", key}) + "PING\r\n";
    const int64_t length = 2 * (i / 37 + 1);
    std::string repeated;
    for (int64_t j = 0; j < length / 2; ++j) repeated += "ab";
    expected += ":" + std::to_string(length) + "\r\n*3\r\n" + Bulk(repeated) + "$-1\r\n" +
                Bulk(repeated) + "+PONG\r\n";
  }
  Client c(port_);
  EXPECT_EQ(c.Roundtrip(request, 600), expected);
}

TEST_F(RespServiceTest, ProtocolErrorRepliesThenCloses) {
  struct Case {
    std::string request;
    std::string reply;
  };
  const std::vector<Case> cases = {
      {"*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"},
      {"ECHO \"unterminated\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {std::string(70 * 1024, 'a'), "-ERR Protocol error: too big inline request\r\n"},
  };
  for (const Case& tc : cases) {
    Client c(port_);
    c.Send("PING\r\n" + tc.request);
    std::string rest;
    ASSERT_TRUE(c.WaitClosed(&rest)) << tc.request.substr(0, 40);
    EXPECT_EQ(rest, "+PONG\r\n" + tc.reply) << tc.request.substr(0, 40);
  }
}

TEST_F(RespServiceTest, ProtocolErrorAfterCrossShardBatch) {
  // Twenty keys: some surely live on the other loop, so the error waits for their replies.
  std::string request, expected;
  for (int i = 0; i < 20; ++i) {
    request += Cmd({"SET", "pe:" + std::to_string(i), "v"});
    expected += "+OK\r\n";
  }
  Client c(port_);
  c.Send(request + "*1\r\n$x\r\n");
  std::string rest;
  ASSERT_TRUE(c.WaitClosed(&rest));
  EXPECT_EQ(rest, expected + "-ERR Protocol error: invalid bulk length\r\n");
  Client d(port_);
  EXPECT_EQ(d.Roundtrip(Cmd({"EXISTS", "pe:0", "pe:19"})), ":2\r\n");
}

TEST_F(RespServiceTest, ConfiguredBulkCap) {
  RespOptions options;
  options.max_bulk_bytes = 1024;
  StartServer(options);
  Client c(port_);
  EXPECT_EQ(c.Roundtrip(Cmd({"SET", "k", std::string(1024, 'a')})), "+OK\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"APPEND", "k", "b"})),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
  c.Send(Cmd({"SET", "k", std::string(1025, 'a')}));
  std::string rest;
  ASSERT_TRUE(c.WaitClosed(&rest));
  EXPECT_EQ(rest, "-ERR Protocol error: invalid bulk length\r\n");
}

TEST_F(RespServiceTest, TruncatedRequestThenHalfCloseGetsNoReply) {
  Client c(port_);
  c.Send(Cmd({"PING"}) + "*2\r\n$3\r\nGET\r\n$5\r\nab");
  c.ShutdownWrite();
  std::string rest;
  ASSERT_TRUE(c.WaitClosed(&rest));
  EXPECT_EQ(rest, "+PONG\r\n");
}

TEST_F(RespServiceTest, GarbageDoesNotHurtOthers) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::string junk;
    for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>(rng()));
    Client c(port_);
    c.Send(junk);
    c.ShutdownWrite();
    EXPECT_TRUE(c.WaitClosed());
  }
  Client ok(port_);
  EXPECT_EQ(ok.Roundtrip(Cmd({"PING"})), "+PONG\r\n");
}

TEST_F(RespServiceTest, LargeValues) {
  Client c(port_);
  for (int i = 0; i < 4; ++i) {
    const std::string key = "big:" + std::to_string(i);
    const std::string value(1 << 20, static_cast<char>('a' + i));
    EXPECT_EQ(c.Roundtrip(Cmd({"SET", key, value})), "+OK\r\n");
    EXPECT_EQ(c.Roundtrip(Cmd({"GET", key})), Bulk(value));
    EXPECT_EQ(c.Roundtrip(Cmd({"STRLEN", key})), ":1048576\r\n");
  }
}

TEST_F(RespServiceTest, EchoLargerThanTheOutputCap) {
  // The argument is copied once into a shared string, which the output cap (64 MiB of copied
  // bytes) does not count: the reply arrives whole instead of closing the connection.
  Client c(port_);
  std::string arg(70 << 20, 'e');
  for (size_t i = 0; i < arg.size(); i += 4096) arg[i] = static_cast<char>('a' + i % 26);
  // 70 MiB each way takes seconds under the sanitizers.
  const test::Deadline deadline = test::Deadline::In(absl::Seconds(60));
  c.Send(Cmd({"ECHO", arg}), deadline);
  const absl::StatusOr<std::string> reply = test::ReadExactly(c.fd(), Bulk(arg).size(), deadline);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(*reply == Bulk(arg));
  EXPECT_EQ(c.Roundtrip(Cmd({"PING"})), "+PONG\r\n");
}

TEST_F(RespServiceTest, ConcurrentIncrementsAreExact) {
  constexpr int kClients = 4;
  constexpr int kPerClient = 500;
  std::vector<std::thread> threads;
  std::vector<std::string> last(kClients);
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      Client c(port_);
      std::string batch;
      for (int i = 0; i < kPerClient; ++i) batch += Cmd({"INCR", "counter"});
      last[t] = c.Roundtrip(batch, kPerClient);
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& replies : last) EXPECT_THAT(replies, StartsWith(":"));
  Client c(port_);
  EXPECT_EQ(c.Roundtrip(Cmd({"GET", "counter"})), Bulk(std::to_string(kClients * kPerClient)));
}

TEST_F(RespServiceTest, ExpiryLazyAndActive) {
  Client c(port_);
  EXPECT_EQ(c.Roundtrip(Cmd({"SET", "lazy", "v", "PX", "30"})), "+OK\r\n");
  const test::Deadline deadline = Soon();
  std::string reply;
  EXPECT_TRUE(test::WaitUntil(
      [&] { return (reply = c.Roundtrip(Cmd({"GET", "lazy"}))) == "$-1\r\n"; }, deadline))
      << reply;
  // Keys nobody reads again still go: the per-loop sampler removes them.
  std::string sets;
  for (int i = 0; i < 30; ++i) sets += Cmd({"SET", "active:" + std::to_string(i), "v", "PX", "20"});
  c.Roundtrip(sets, 30);
  // Probes 10 ms apart: the sampler runs on the loops' timer, not on requests.
  EXPECT_TRUE(test::WaitUntil([&] { return (reply = c.Roundtrip(Cmd({"DBSIZE"}))) == ":0\r\n"; },
                              deadline, absl::Milliseconds(10)))
      << reply;
}

TEST_F(RespServiceTest, ServerCommands) {
  Client c(port_);
  EXPECT_EQ(c.Roundtrip(Cmd({"SELECT", "0"})), "+OK\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"SELECT", "3"})), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"CLIENT", "SETNAME", "tester"})), "+OK\r\n");
  EXPECT_EQ(c.Roundtrip(Cmd({"CLIENT", "GETNAME"})), Bulk("tester"));
  EXPECT_EQ(c.Roundtrip(Cmd({"CONFIG", "GET", "save"})), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
  EXPECT_THAT(c.Roundtrip(Cmd({"INFO"})), HasSubstr("connected_clients:1\r\n"));
  EXPECT_THAT(c.Roundtrip(Cmd({"COMMAND", "DOCS"})), StartsWith("*"));
  EXPECT_THAT(c.Roundtrip(Cmd({"COMMAND", "COUNT"})), StartsWith(":"));
  EXPECT_EQ(c.Roundtrip(Cmd({"TYPE", "nothing"})), "+none\r\n");
}

// --- Four loops: keys on every loop's shard ---

// Holds a loop inside one posted task until Open(): work sent to the loop waits in its queue,
// which keeps a cross-loop call away for as long as a test needs.
class LoopGate {
 public:
  LoopGate() = default;
  LoopGate(const LoopGate&) = delete;
  LoopGate& operator=(const LoopGate&) = delete;
  ~LoopGate() { Open(); }

  // Posts the holding task to `loop`; true once it runs.
  bool Close(EventLoop& loop) {
    auto entered = std::make_shared<std::promise<void>>();
    std::future<void> running = entered->get_future();
    loop.Post([entered, open = open_.get_future().share()] {
      entered->set_value();
      open.wait();
    });
    return running.wait_for(absl::ToChronoMilliseconds(kTimeout)) == std::future_status::ready;
  }
  void Open() {
    if (opened_) return;
    opened_ = true;
    open_.set_value();
  }

 private:
  std::promise<void> open_;
  bool opened_ = false;
};

class RespFourLoopsTest : public ::testing::Test {
 protected:
  static constexpr int kLoops = 4;

  void SetUp() override {
    ServerOptions options;
    options.loops = kLoops;
    options.backend = test::TestBackend();
    server_ = std::make_unique<Server>(options);
    service_ = std::make_shared<RespService>(RespOptions{});
    ASSERT_TRUE(server_->AddService(service_).ok());
    absl::StatusOr<ListenerInfo> info = server_->Listen("resp", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(info.ok()) << info.status();
    port_ = info->bound.port();
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_TRUE(test::WaitUntil(
        [&] {
          for (int i = 0; i < kLoops; ++i) {
            if (!server_->loop(i).running()) return false;
          }
          return true;
        },
        Soon()));
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // `count` keys that loop `owner`'s shard holds, chosen with the placement hash.
  static std::vector<std::string> KeysOwnedBy(int owner, int count, const std::string& prefix) {
    std::vector<std::string> keys;
    for (int i = 0; static_cast<int>(keys.size()) < count; ++i) {
      std::string key = prefix + ":" + std::to_string(i);
      if (static_cast<int>(ShardHash(key) % kLoops) == owner) keys.push_back(std::move(key));
    }
    return keys;
  }

  // How many keys each shard holds, as the shards publish it.
  std::vector<size_t> KeysPerShard() {
    std::vector<size_t> counts(kLoops, 0);
    service_->shards().ForEachShard(
        [&](ShardId shard, const StringStore& store) { counts[shard] = store.key_count(); });
    return counts;
  }

  // The loop serving `client`, after a round trip that makes sure it reached one.
  int LoopOf(Client& client) {
    EXPECT_EQ(client.Roundtrip(Cmd({"PING"})), "+PONG\r\n");
    const std::map<uint16_t, int> loops = test::LoopByPeerPort(*server_, Soon());
    const auto it = loops.find(client.local_port());
    EXPECT_NE(it, loops.end());
    return it == loops.end() ? -1 : it->second;
  }

  // Whether the connection from client port `port` on loop `loop` is paused.
  bool IsPaused(int loop, uint16_t port) {
    EventLoop& on = server_->loop(loop);
    bool paused = false;
    EXPECT_TRUE(test::RunOnLoop(
        on,
        [&] {
          on.ForEachConnection([&](Connection& conn) {
            if (conn.peer().port() == port) paused = conn.state() == ConnectionState::kPaused;
          });
        },
        Soon()));
    return paused;
  }

  // A client the server put on loop `loop` (round robin: a few tries find one).
  std::unique_ptr<Client> ClientOnLoop(int loop) {
    for (int attempt = 0; attempt < 2 * kLoops; ++attempt) {
      auto client = std::make_unique<Client>(port_);
      if (client->connected() && LoopOf(*client) == loop) return client;
    }
    ADD_FAILURE() << "no connection landed on loop " << loop;
    return nullptr;
  }

  // The request states loop `loop` has made and how many its free list holds, read there.
  RespService::RequestStateCounts RequestStates(int loop) {
    RespService::RequestStateCounts counts;
    EXPECT_TRUE(test::RunOnLoop(
        server_->loop(loop), [&] { counts = service_->LocalRequestStatesForTest(); }, Soon()));
    return counts;
  }

  std::unique_ptr<Server> server_;
  std::shared_ptr<RespService> service_;
  uint16_t port_ = 0;
};

using StateCounts = RespService::RequestStateCounts;

TEST_F(RespFourLoopsTest, PlacementIsTheShardHash) {
  for (const std::string_view key : {std::string_view(), std::string_view("a"),
                                    std::string_view("user:1000:name"),
                                    std::string_view("\xff\x00\x01", 3)}) {
    EXPECT_EQ(service_->OwnerOf(key), static_cast<ShardId>(ShardHash(key) % kLoops)) << key;
  }
  // FNV-1a, fixed across builds: the empty key hashes to the offset basis.
  EXPECT_EQ(ShardHash(""), 14695981039346656037ull);
}

TEST_F(RespFourLoopsTest, KeysOnEveryLoopFromOneConnection) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const int home = LoopOf(c);
  ASSERT_GE(home, 0);
  std::vector<std::vector<std::string>> keys;
  for (int owner = 0; owner < kLoops; ++owner) {
    keys.push_back(KeysOwnedBy(owner, 3, "owned" + std::to_string(owner)));
  }
  for (int owner = 0; owner < kLoops; ++owner) {
    SCOPED_TRACE(owner == home ? "own loop" : "another loop");
    for (const std::string& key : keys[owner]) {
      EXPECT_EQ(c.Roundtrip(Cmd({"SET", key, "v-" + key})), "+OK\r\n");
      EXPECT_EQ(c.Roundtrip(Cmd({"GET", key})), Bulk("v-" + key));
      EXPECT_EQ(c.Roundtrip(Cmd({"EXISTS", key})), ":1\r\n");
    }
  }
  // Each key is stored by its owner and nowhere else.
  EXPECT_EQ(KeysPerShard(), std::vector<size_t>(kLoops, 3));
  EXPECT_EQ(c.Roundtrip(Cmd({"DBSIZE"})), ":12\r\n");
  EXPECT_THAT(c.Roundtrip(Cmd({"INFO", "keyspace"})), HasSubstr("db0:keys=12,expires=0,"));
  EXPECT_THAT(c.Roundtrip(Cmd({"INFO", "server"})), HasSubstr("shards:4\r\n"));
  for (int owner = 0; owner < kLoops; ++owner) {
    for (const std::string& key : keys[owner]) {
      EXPECT_EQ(c.Roundtrip(Cmd({"DEL", key})), ":1\r\n");
      EXPECT_EQ(c.Roundtrip(Cmd({"GET", key})), "$-1\r\n");
      EXPECT_EQ(c.Roundtrip(Cmd({"DEL", key})), ":0\r\n");
    }
  }
  EXPECT_EQ(KeysPerShard(), std::vector<size_t>(kLoops, 0));
  EXPECT_EQ(c.Roundtrip(Cmd({"DBSIZE"})), ":0\r\n");
}

TEST_F(RespFourLoopsTest, PipelinedMultiKeyCommandsSpanningEveryOwnerStayInOrder) {
  // Keys taken from the owners in turn: every multi-key command has parts on all four loops.
  constexpr int kPerOwner = 6;
  std::vector<std::vector<std::string>> owned;
  for (int owner = 0; owner < kLoops; ++owner) {
    owned.push_back(KeysOwnedBy(owner, kPerOwner, "span" + std::to_string(owner)));
  }
  std::vector<std::string> keys;
  for (int i = 0; i < kPerOwner; ++i) {
    for (int owner = 0; owner < kLoops; ++owner) keys.push_back(owned[owner][i]);
  }
  auto array = [](const std::string& name, const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(1 + args.size()) + "\r\n" + Bulk(name);
    for (const std::string& a : args) out += Bulk(a);
    return out;
  };
  std::string request, expected;
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    const std::string tag = "-r" + std::to_string(round);
    std::vector<std::string> pairs, reversed(keys.rbegin(), keys.rend());
    for (const std::string& key : keys) {
      pairs.push_back(key);
      pairs.push_back(key + tag);
    }
    reversed.push_back("absent");
    request += array("MSET", pairs);
    expected += "+OK\r\n";
    request += array("MGET", reversed);
    expected += "*" + std::to_string(reversed.size()) + "\r\n";
    for (size_t i = 0; i + 1 < reversed.size(); ++i) expected += Bulk(reversed[i] + tag);
    expected += "$-1\r\n";
    // A single-key write between multi-key reads: the second MGET sees it, the first did not.
    request += Cmd({"SET", keys[round % keys.size()], "changed"});
    expected += "+OK\r\n";
    request += array("MGET", keys);
    expected += "*" + std::to_string(keys.size()) + "\r\n";
    for (size_t i = 0; i < keys.size(); ++i) {
      expected += Bulk(i == static_cast<size_t>(round) % keys.size() ? "changed" : keys[i] + tag);
    }
    request += array("EXISTS", keys);
    expected += ":" + std::to_string(keys.size()) + "\r\n";
    request += "PING\r\n";
    expected += "+PONG\r\n";
  }
  std::vector<std::string> doomed = keys;
  doomed.push_back("absent");
  request += array("DEL", doomed) + array("MGET", {keys[0], keys[1], keys[2], keys[3]}) +
             Cmd({"DBSIZE"});
  expected += ":" + std::to_string(keys.size()) + "\r\n*4\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n:0\r\n";
  Client c(port_);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.Roundtrip(request, kRounds * 6 + 3), expected);
}

TEST_F(RespFourLoopsTest, ClientResetWhileItsBatchIsAwayLeavesTheServerHealthy) {
  Client doomed(port_);
  ASSERT_TRUE(doomed.connected());
  const int home = LoopOf(doomed);
  ASSERT_GE(home, 0);
  // One other loop holds its part of the batch until the client is gone; the rest answer.
  const int held = (home + 1) % kLoops;
  std::string request;
  std::vector<std::string> keys;
  for (int owner = 0; owner < kLoops; ++owner) {
    for (const std::string& key : KeysOwnedBy(owner, 5, "reset" + std::to_string(owner))) {
      keys.push_back(key);
      request += Cmd({"SET", key, "from-" + key});
    }
  }
  std::vector<std::string_view> mget = {"MGET"};
  for (const std::string& key : keys) mget.push_back(key);
  std::string mget_request = "*" + std::to_string(mget.size()) + "\r\n";
  for (std::string_view a : mget) mget_request += Bulk(a);
  request += mget_request;

  const uint64_t resets_before = server_->Totals().closed_by(CloseReason::kPeerReset);
  LoopGate gate;
  ASSERT_TRUE(gate.Close(server_->loop(held)));
  doomed.Send(request);
  // The connection waits for the held loop's answer.
  ASSERT_TRUE(test::WaitUntil([&] { return IsPaused(home, doomed.local_port()); }, Soon()));
  doomed.Reset();
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        return server_->Totals().closed_by(CloseReason::kPeerReset) == resets_before + 1;
      },
      Soon()));
  gate.Open();  // the held loop runs its part now; the answer finds no connection

  // The writes ran on their owners all the same; only the replies were dropped.
  Client next(port_);
  ASSERT_TRUE(next.connected());
  std::string expected = "*" + std::to_string(keys.size()) + "\r\n";
  for (const std::string& key : keys) expected += Bulk("from-" + key);
  EXPECT_EQ(next.Roundtrip(mget_request), expected);
  EXPECT_EQ(KeysPerShard(), std::vector<size_t>(kLoops, 5));
  for (int owner = 0; owner < kLoops; ++owner) {
    const std::string key = KeysOwnedBy(owner, 1, "after")[0];
    EXPECT_EQ(next.Roundtrip(Cmd({"SET", key, "ok"}) + Cmd({"GET", key}), 2),
              "+OK\r\n$2\r\nok\r\n");
  }
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kHandlerError), 0u);
}

// A connection holds its parser, batch and reply queues only while it has requests in
// progress: idle ones have given them back to their loop, which reuses them, so a loop makes as
// many as it has connections busy at once, not as many as it has connections.
TEST_F(RespFourLoopsTest, IdleConnectionsGiveTheirRequestStateBack) {
  constexpr int kClients = 40;
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < kClients; ++i) {
    auto client = std::make_unique<Client>(port_);
    ASSERT_TRUE(client->connected());
    // Keys of every owner: requests run on the connection's loop and in batches to others.
    const std::string key = KeysOwnedBy(i % kLoops, 1, "idle" + std::to_string(i))[0];
    EXPECT_EQ(client->Roundtrip(Cmd({"SET", key, "v"}) + Cmd({"GET", key}), 2), "+OK\r\n$1\r\nv\r\n");
    idle.push_back(std::move(client));
  }
  for (int loop = 0; loop < kLoops; ++loop) {
    EXPECT_EQ(RequestStates(loop), (StateCounts{1, 1})) << "loop " << loop;
  }
}

TEST_F(RespFourLoopsTest, PartialRequestKeepsItsRequestState) {
  constexpr int kHome = 0;
  std::unique_ptr<Client> partial = ClientOnLoop(kHome);
  std::unique_ptr<Client> other = ClientOnLoop(kHome);
  ASSERT_TRUE(partial != nullptr && other != nullptr);
  ASSERT_EQ(RequestStates(kHome), (StateCounts{1, 1}));
  const std::string set = Cmd({"SET", "split", "abcde"});
  partial->Send(set.substr(0, set.size() - 4));
  ASSERT_TRUE(test::WaitUntil([&] { return RequestStates(kHome) == StateCounts{1, 0}; }, Soon()));
  // Another connection on the loop needs a state of its own meanwhile.
  EXPECT_EQ(other->Roundtrip(Cmd({"PING"})), "+PONG\r\n");
  EXPECT_EQ(RequestStates(kHome), (StateCounts{2, 1}));
  partial->Send(set.substr(set.size() - 4));
  EXPECT_EQ(partial->ReadReplies(), "+OK\r\n");
  EXPECT_EQ(RequestStates(kHome), (StateCounts{2, 2}));
  EXPECT_EQ(other->Roundtrip(Cmd({"GET", "split"})), Bulk("abcde"));
}

// A batch away on another loop keeps the state, and so does the parser's progress through a
// request that arrived only in part behind it: the state goes back once both are done.
TEST_F(RespFourLoopsTest, BatchAwayKeepsItsRequestState) {
  constexpr int kHome = 0;
  constexpr int kOwner = 1;
  std::unique_ptr<Client> waiting = ClientOnLoop(kHome);
  std::unique_ptr<Client> other = ClientOnLoop(kHome);
  ASSERT_TRUE(waiting != nullptr && other != nullptr);
  const std::string key = KeysOwnedBy(kOwner, 1, "away")[0];
  const std::string get = Cmd({"GET", key});
  {
    LoopGate gate;
    ASSERT_TRUE(gate.Close(server_->loop(kOwner)));
    waiting->Send(Cmd({"SET", key, "there"}) + get.substr(0, get.size() - 3));
    ASSERT_TRUE(test::WaitUntil([&] { return IsPaused(kHome, waiting->local_port()); }, Soon()));
    EXPECT_EQ(RequestStates(kHome), (StateCounts{1, 0}));
    EXPECT_EQ(other->Roundtrip(Cmd({"PING"})), "+PONG\r\n");
    EXPECT_EQ(RequestStates(kHome), (StateCounts{2, 1}));
  }  // the owner runs the SET now
  EXPECT_EQ(waiting->ReadReplies(), "+OK\r\n");
  EXPECT_EQ(RequestStates(kHome), (StateCounts{2, 1}));  // the GET is still partial
  waiting->Send(get.substr(get.size() - 3));
  EXPECT_EQ(waiting->ReadReplies(), Bulk("there"));
  EXPECT_EQ(RequestStates(kHome), (StateCounts{2, 2}));
}

// What a client set stays with its connection while the request state comes and goes.
TEST_F(RespFourLoopsTest, SessionSettingsOutliveTheRequestState) {
  constexpr int kHome = 0;
  std::unique_ptr<Client> named = ClientOnLoop(kHome);
  std::unique_ptr<Client> other = ClientOnLoop(kHome);
  ASSERT_TRUE(named != nullptr && other != nullptr);
  const std::string id = named->Roundtrip(Cmd({"CLIENT", "ID"}));
  EXPECT_EQ(named->Roundtrip(Cmd({"CLIENT", "SETNAME", "worker-7"})), "+OK\r\n");
  EXPECT_EQ(RequestStates(kHome), (StateCounts{1, 1}));
  // The state named's requests used goes to other's, and back.
  EXPECT_EQ(other->Roundtrip(Cmd({"CLIENT", "GETNAME"})), "$-1\r\n");
  const std::string key = KeysOwnedBy(2, 1, "named")[0];
  EXPECT_EQ(named->Roundtrip(Cmd({"SET", key, "1"}) + Cmd({"CLIENT", "GETNAME"}), 2),
            "+OK\r\n" + Bulk("worker-7"));
  EXPECT_EQ(named->Roundtrip(Cmd({"CLIENT", "GETNAME"})), Bulk("worker-7"));
  EXPECT_EQ(named->Roundtrip(Cmd({"CLIENT", "ID"})), id);
  EXPECT_EQ(RequestStates(kHome), (StateCounts{1, 1}));
  // An empty name removes it.
  EXPECT_EQ(named->Roundtrip(Cmd({"CLIENT", "SETNAME", ""})), "+OK\r\n");
  EXPECT_EQ(named->Roundtrip(Cmd({"CLIENT", "GETNAME"})), "$-1\r\n");
}

// A connection closed on the server's side (as an operator closes one) while its batch is
// away closes at once; the answer that comes back later finds it closing and writes nothing.
TEST_F(RespFourLoopsTest, CloseWhileTheBatchIsAwayTakesEffectAtOnce) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const int home = LoopOf(c);
  ASSERT_GE(home, 0);
  const int held = (home + 1) % kLoops;
  const std::string key = KeysOwnedBy(held, 1, "closing")[0];
  const std::string local_key = KeysOwnedBy(home, 1, "closing")[0];
  LoopGate gate;
  ASSERT_TRUE(gate.Close(server_->loop(held)));
  c.Send(Cmd({"SET", key, "v"}) + Cmd({"SET", local_key, "w"}) + Cmd({"GET", key}));
  const uint16_t port = c.local_port();
  EventLoop& home_loop = server_->loop(home);
  ASSERT_TRUE(test::WaitUntil([&] { return IsPaused(home, port); }, Soon()));
  ASSERT_TRUE(test::RunOnLoop(
      home_loop,
      [&] {
        home_loop.ForEachConnectionThatMayClose([&](Connection& conn) {
          if (conn.peer().port() == port) conn.Close(CloseReason::kAdminClose, CloseMode::kFlush);
        });
      },
      Soon()));
  // The FIN comes with nothing before it, although the held loop has not answered yet.
  std::string rest = "unread";
  ASSERT_TRUE(c.WaitClosed(&rest));
  EXPECT_EQ(rest, "");
  // The answer arrives while the connection still lingers for the client's FIN.
  gate.Open();
  auto answered = std::make_shared<std::promise<void>>();
  std::future<void> done = answered->get_future();
  // Posted from the held loop, behind its answer: run on the home loop after the answer.
  ASSERT_TRUE(test::RunOnLoop(
      server_->loop(held),
      [&home_loop, answered] { home_loop.Post([answered] { answered->set_value(); }); }, Soon()));
  ASSERT_EQ(done.wait_for(absl::ToChronoMilliseconds(kTimeout)), std::future_status::ready);
  c.ShutdownWrite();
  ASSERT_TRUE(test::WaitUntil(
      [&] { return server_->Totals().closed_by(CloseReason::kAdminClose) == 1; }, Soon()));
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kHandlerError), 0u);
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kIoError), 0u);
  // The commands ran on their shards all the same.
  Client next(port_);
  EXPECT_EQ(next.Roundtrip(Cmd({"MGET", key, local_key})), "*2\r\n" + Bulk("v") + Bulk("w"));
}

// --- Interop with the real Redis tools ---

std::string FindTool(const char* name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  dirs += ":/usr/bin:/usr/local/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// Runs `command` through the shell; returns its output (stdout and stderr) and exit status.
std::string RunTool(const std::string& command, int* status) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    *status = -1;
    return output;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  *status = ::pclose(pipe);
  return output;
}

TEST_F(RespServiceTest, RedisCli) {
  const std::string cli = FindTool("redis-cli");
  if (cli.empty()) GTEST_SKIP() << "redis-cli is not installed";
  const std::string base = "timeout 60 " + cli + " -h 127.0.0.1 -p " + std::to_string(port_);
  int status = 0;
  EXPECT_EQ(RunTool(base + " ping", &status), "PONG\n");
  EXPECT_EQ(status, 0);
  EXPECT_EQ(RunTool(base + " set greeting 'hello world'", &status), "OK\n");
  EXPECT_EQ(RunTool(base + " get greeting", &status), "hello world\n");
  EXPECT_EQ(RunTool(base + " incrby n 41", &status), "41\n");
  EXPECT_EQ(RunTool(base + " get missing", &status), "\n");
  EXPECT_THAT(RunTool(base + " foo bar", &status),
              StartsWith("ERR unknown command 'foo', with args beginning with: 'bar' \n"));
  // Commands read from stdin, several per connection.
  EXPECT_EQ(RunTool("printf 'set a 1\\nincr a\\nget a\\n' | " + base, &status), "OK\n2\n2\n");
  EXPECT_THAT(RunTool(base + " command docs get", &status), HasSubstr("Get the value of a key"));
}

TEST_F(RespServiceTest, RedisBenchmark) {
  const std::string bench = FindTool("redis-benchmark");
  if (bench.empty()) GTEST_SKIP() << "redis-benchmark is not installed";
  int status = 0;
  const std::string output =
      RunTool("timeout 300 " + bench + " -h 127.0.0.1 -p " + std::to_string(port_) +
                  " -t ping,set,get,incr,mset -n 2000 -c 8 -q",
              &status);
  EXPECT_EQ(status, 0) << output;
  for (std::string_view test :
       {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET (10 keys)"}) {
    EXPECT_THAT(output, HasSubstr(std::string(test) + ": ")) << output;
  }
  size_t finished = 0;
  for (size_t at = output.find("requests per second"); at != std::string::npos;
       at = output.find("requests per second", at + 1)) {
    ++finished;
  }
  EXPECT_EQ(finished, 6u) << output;
  EXPECT_THAT(output, ::testing::Not(HasSubstr("ERR"))) << output;
  EXPECT_THAT(output, ::testing::Not(HasSubstr("rror"))) << output;
  EXPECT_THAT(output, ::testing::Not(HasSubstr("WARN"))) << output;
}

}  // namespace
}  // namespace percore
