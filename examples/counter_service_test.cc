// The counter service on a real Server with four loops, over loopback sockets.

#include "counter_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/server.h"

namespace counter {
namespace {

constexpr int kLoops = 4;
// Bounds a failing wait; a passing test never waits for it.
constexpr absl::Duration kTimeout = absl::Seconds(20);

// A client connection whose every wait is bounded, so that a test that goes wrong fails saying
// what it waited for instead of hanging.
class Client {
 public:
  static absl::StatusOr<Client> Connect(uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
    Client client(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::ErrnoToStatus(errno, "connect");
    }
    const int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return client;
  }

  Client(Client&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Client& operator=(Client&&) = delete;
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }

  absl::Status Write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::ErrnoToStatus(errno, "send");
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  // Reads until `count` newlines have arrived; returns exactly those lines, newlines included.
  absl::StatusOr<std::string> ReadLines(size_t count) {
    const percore::MonoTime deadline = percore::MonoTime::Now() + kTimeout;
    size_t seen = 0;
    size_t end = 0;
    for (;;) {
      while (seen < count && end < pending_.size()) {
        if (pending_[end++] == '\n') ++seen;
      }
      if (seen == count) {
        std::string lines = pending_.substr(0, end);
        pending_.erase(0, end);
        return lines;
      }
      absl::StatusOr<bool> more = ReadSome(deadline);
      if (!more.ok()) return more.status();
      if (!*more) {
        return absl::OutOfRangeError(
            absl::StrCat("EOF after ", seen, " of ", count, " lines: \"", pending_, "\""));
      }
    }
  }

  // Reads until the server closes; returns everything not read yet.
  absl::StatusOr<std::string> ReadToEof() {
    const percore::MonoTime deadline = percore::MonoTime::Now() + kTimeout;
    for (;;) {
      absl::StatusOr<bool> more = ReadSome(deadline);
      if (!more.ok()) return more.status();
      if (!*more) return std::exchange(pending_, std::string());
    }
  }

 private:
  explicit Client(int fd) : fd_(fd) {}

  // One read into pending_: true when bytes arrived, false at EOF.
  absl::StatusOr<bool> ReadSome(percore::MonoTime deadline) {
    for (;;) {
      const absl::Duration left = deadline - percore::MonoTime::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(absl::StrCat("no reply; got so far: \"", pending_, "\""));
      }
      pollfd p{fd_, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll");
      if (ready <= 0) continue;
      char chunk[16384];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::ErrnoToStatus(errno, "read");
      pending_.append(chunk, static_cast<size_t>(n));
      return n > 0;
    }
  }

  int fd_;
  std::string pending_;
};

// Evaluates `done` until it holds or kTimeout passes; the result of the last evaluation.
bool Eventually(absl::FunctionRef<bool()> done) {
  const percore::MonoTime deadline = percore::MonoTime::Now() + kTimeout;
  for (;;) {
    if (done()) return true;
    if (percore::MonoTime::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

// "" when `got` is `want`, else where the first line differs (a burst's replies are too long to
// print whole).
std::string FirstDifference(const absl::StatusOr<std::string>& got, const std::string& want) {
  if (!got.ok()) return got.status().ToString();
  const std::vector<std::string> got_lines = absl::StrSplit(*got, '\n');
  const std::vector<std::string> want_lines = absl::StrSplit(want, '\n');
  for (size_t i = 0; i < got_lines.size() && i < want_lines.size(); ++i) {
    if (got_lines[i] != want_lines[i]) {
      return absl::StrCat("reply ", i, ": \"", got_lines[i], "\", expected \"", want_lines[i], "\"");
    }
  }
  if (got_lines.size() != want_lines.size()) {
    return absl::StrCat(got_lines.size(), " replies, expected ", want_lines.size());
  }
  return "";
}

class CounterServiceTest : public ::testing::Test {
 protected:
  void StartServer(CounterOptions options = {}) {
    service_ = std::make_shared<CounterService>(options);
    // Round-robin hand-off: n connections opened one after another land on n different loops.
    server_ = std::make_unique<percore::Server>(
        percore::ServerOptions{.loops = kLoops, .balance = percore::BalancePolicyKind::kRoundRobin});
    ASSERT_TRUE(server_->AddService(service_).ok());
    const absl::StatusOr<percore::ListenerInfo> listener = server_->Listen("counter", {"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    const absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  Client Connect() {
    absl::StatusOr<Client> client = Client::Connect(port_);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) std::abort();
    return std::move(*client);
  }

  // Keys named "key-<i>", the first `per_shard` that each shard owns, shard by shard.
  std::vector<std::string> KeysOnEveryShard(int per_shard) const {
    std::vector<std::vector<std::string>> by_shard(kLoops);
    for (int i = 0, complete = 0; complete < kLoops; ++i) {
      std::string key = absl::StrCat("key-", i);
      std::vector<std::string>& owned = by_shard[service_->OwnerOf(key)];
      if (static_cast<int>(owned.size()) == per_shard) continue;
      owned.push_back(std::move(key));
      if (static_cast<int>(owned.size()) == per_shard) ++complete;
    }
    std::vector<std::string> keys;
    for (std::vector<std::string>& owned : by_shard) {
      for (std::string& key : owned) keys.push_back(std::move(key));
    }
    return keys;
  }

  percore::ServerTotals Totals() const { return server_->Totals(); }

  std::shared_ptr<CounterService> service_;
  std::unique_ptr<percore::Server> server_;
  uint16_t port_ = 0;
};

TEST_F(CounterServiceTest, IncrementsFromConnectionsOnEveryLoopAddUpExactly) {
  StartServer();
  constexpr int kKeysPerShard = 3;
  constexpr int kConnections = 2 * kLoops;
  constexpr uint64_t kRounds = 50;
  const std::vector<std::string> keys = KeysOnEveryShard(kKeysPerShard);

  std::vector<Client> clients;
  for (int i = 0; i < kConnections; ++i) clients.push_back(Connect());
  ASSERT_TRUE(Eventually([&] { return Totals().conns_handed_in == kConnections; }));
  for (int i = 0; i < kLoops; ++i) {
    EXPECT_EQ(server_->loop(i).stats().conns_handed_in.Get(), static_cast<uint64_t>(kConnections / kLoops))
        << "loop " << i;
  }

  std::string round;
  for (const std::string& key : keys) absl::StrAppend(&round, "INCR ", key, "\n");
  // Every connection increments every key kRounds times, all connections at once. The values
  // one connection sees for a key rise strictly (others' increments come in between).
  std::vector<std::string> failures(kConnections);
  std::vector<std::thread> threads;
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      std::vector<uint64_t> last(keys.size(), 0);
      for (uint64_t r = 0; r < kRounds; ++r) {
        if (absl::Status s = clients[c].Write(round); !s.ok()) {
          failures[c] = s.ToString();
          return;
        }
        const absl::StatusOr<std::string> replies = clients[c].ReadLines(keys.size());
        if (!replies.ok()) {
          failures[c] = replies.status().ToString();
          return;
        }
        const std::vector<std::string> values = absl::StrSplit(*replies, '\n', absl::SkipEmpty());
        if (values.size() != keys.size()) {
          failures[c] = absl::StrCat("round ", r, ": \"", *replies, "\"");
          return;
        }
        for (size_t k = 0; k < keys.size(); ++k) {
          uint64_t value = 0;
          if (!absl::SimpleAtoi(values[k], &value) || value <= last[k] || value > kConnections * kRounds) {
            failures[c] = absl::StrCat("round ", r, ", ", keys[k], ": \"", values[k], "\" after ", last[k]);
            return;
          }
          last[k] = value;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int c = 0; c < kConnections; ++c) EXPECT_EQ(failures[c], "") << "connection " << c;

  std::string gets;
  std::string expected;
  for (const std::string& key : keys) {
    absl::StrAppend(&gets, "GET ", key, "\n");
    absl::StrAppend(&expected, kConnections * kRounds, "\n");
  }
  Client reader = Connect();
  ASSERT_TRUE(reader.Write(gets).ok());
  EXPECT_EQ(reader.ReadLines(keys.size()).value_or("(no reply)"), expected);

  // Each shard holds exactly the keys it owns and did exactly their increments.
  const std::vector<ShardFigures> figures = service_->Figures();
  ASSERT_EQ(figures.size(), static_cast<size_t>(kLoops));
  for (const ShardFigures& shard : figures) {
    EXPECT_EQ(shard.keys, kKeysPerShard) << "shard " << shard.shard;
    EXPECT_EQ(shard.increments, kKeysPerShard * kConnections * kRounds) << "shard " << shard.shard;
  }
  const uint64_t requests = keys.size() * (kConnections * kRounds + 1);
  ASSERT_TRUE(Eventually([&] { return Totals().services[0].requests == requests; }))
      << Totals().services[0].requests << " of " << requests;
  EXPECT_EQ(Totals().services[0].errors, 0u);
}

TEST_F(CounterServiceTest, PipelinedBurstIsAnsweredInOrder) {
  StartServer();
  const std::vector<std::string> keys = KeysOnEveryShard(2);
  std::map<std::string, uint64_t> model;
  std::string burst;
  std::string expected;
  constexpr int kRequests = 2000;
  for (int i = 0; i < kRequests; ++i) {
    // Consecutive requests go to different owners, local and remote mixed.
    const std::string& key = keys[(i * 5) % keys.size()];
    if (i % 3 == 2) {
      absl::StrAppend(&burst, "GET ", key, "\n");
      absl::StrAppend(&expected, model[key], "\n");
    } else {
      absl::StrAppend(&burst, "INCR ", key, "\r\n");
      absl::StrAppend(&expected, ++model[key], "\n");
    }
  }
  Client client = Connect();
  ASSERT_TRUE(client.Write(burst).ok());
  EXPECT_EQ(FirstDifference(client.ReadLines(kRequests), expected), "");

  // The same burst again, in pieces that split lines at every position.
  std::string expected_again;
  for (int i = 0; i < kRequests; ++i) {
    const std::string& key = keys[(i * 5) % keys.size()];
    absl::StrAppend(&expected_again, i % 3 == 2 ? model[key] : ++model[key], "\n");
  }
  for (size_t at = 0, piece = 1; at < burst.size(); at += piece, piece = piece % 23 + 1) {
    ASSERT_TRUE(client.Write(std::string_view(burst).substr(at, piece)).ok());
  }
  EXPECT_EQ(FirstDifference(client.ReadLines(kRequests), expected_again), "");
  EXPECT_TRUE(Eventually([&] { return Totals().services[0].requests == 2 * kRequests; }));
}

TEST_F(CounterServiceTest, BadLineGetsAnErrorAndAClose) {
  StartServer();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"FROB a\n", "ERROR unknown command\n"},
      {"incr a\n", "ERROR unknown command\n"},
      {"\n", "ERROR unknown command\n"},
      {" INCR a\n", "ERROR unknown command\n"},
      {"INCR\n", "ERROR bad key\n"},
      {"INCR \n", "ERROR bad key\n"},
      {"INCR  a\n", "ERROR bad key\n"},
      {"GET a b\n", "ERROR bad key\n"},
      {"GET a\tb\n", "ERROR bad key\n"},
      {std::string("GET a\0b\n", 8), "ERROR bad key\n"},
      {"INCR \x7f\n", "ERROR bad key\n"},
      {"INCR \xc3\xa9\n", "ERROR bad key\n"},
  };
  // A good request before the bad line is answered; the one after it is never run.
  const std::string good = KeysOnEveryShard(1)[1];
  for (size_t i = 0; i < cases.size(); ++i) {
    Client client = Connect();
    ASSERT_TRUE(client.Write(absl::StrCat("INCR ", good, "\n", cases[i].first, "INCR ", good, "\n")).ok());
    EXPECT_EQ(client.ReadToEof().value_or("(no EOF)"), absl::StrCat(i + 1, "\n", cases[i].second))
        << "case " << i;
  }
  Client client = Connect();
  ASSERT_TRUE(client.Write(absl::StrCat("GET ", good, "\n")).ok());
  EXPECT_EQ(client.ReadLines(1).value_or("(no reply)"), absl::StrCat(cases.size(), "\n"));

  EXPECT_TRUE(Eventually([&] { return Totals().closed_by(percore::CloseReason::kProtocolError) == cases.size(); }))
      << Totals().closed_by(percore::CloseReason::kProtocolError);
  EXPECT_TRUE(Eventually([&] { return Totals().services[0].errors == cases.size(); }));
}

TEST_F(CounterServiceTest, OversizeLineIsRefused) {
  StartServer(CounterOptions{.max_line = 64});
  {
    Client client = Connect();  // exactly max_line: served
    ASSERT_TRUE(client.Write(absl::StrCat("GET ", std::string(60, 'k'), "\n")).ok());
    EXPECT_EQ(client.ReadLines(1).value_or("(no reply)"), "0\n");
  }
  {
    Client client = Connect();  // exactly max_line before "\r\n": the terminator is not counted
    ASSERT_TRUE(client.Write(absl::StrCat("GET ", std::string(60, 'k'), "\r\n")).ok());
    EXPECT_EQ(client.ReadLines(1).value_or("(no reply)"), "0\n");
  }
  {
    Client client = Connect();  // one byte more
    ASSERT_TRUE(client.Write(absl::StrCat("GET ", std::string(61, 'k'), "\n")).ok());
    EXPECT_EQ(client.ReadToEof().value_or("(no EOF)"), "ERROR line too long\n");
  }
  {
    Client client = Connect();  // no newline at all: refused without waiting for one
    ASSERT_TRUE(client.Write(std::string(4096, 'x')).ok());
    EXPECT_EQ(client.ReadToEof().value_or("(no EOF)"), "ERROR line too long\n");
  }
  {
    Client client = Connect();  // a good request first, then the oversize line
    ASSERT_TRUE(client.Write(absl::StrCat("INCR a\nINCR ", std::string(100, 'a'), "\n")).ok());
    EXPECT_EQ(client.ReadToEof().value_or("(no EOF)"), "1\nERROR line too long\n");
  }
  EXPECT_TRUE(Eventually([&] { return Totals().closed_by(percore::CloseReason::kProtocolError) == 3; }))
      << Totals().closed_by(percore::CloseReason::kProtocolError);
}

TEST_F(CounterServiceTest, UnfinishedLineTimesOut) {
  StartServer(CounterOptions{.line_timeout = absl::Milliseconds(200)});
  Client quiet = Connect();  // sends nothing until the other has timed out
  {
    Client slow = Connect();
    ASSERT_TRUE(slow.Write("INCR a").ok());
    EXPECT_EQ(slow.ReadToEof().value_or("(no EOF)"), "ERROR timeout\n");
  }
  // The timeout is for a line begun, not for a connection that is silent between lines.
  ASSERT_TRUE(quiet.Write("INCR a\n").ok());
  EXPECT_EQ(quiet.ReadLines(1).value_or("(no reply)"), "1\n");
  EXPECT_TRUE(Eventually([&] { return Totals().closed_by(percore::CloseReason::kReadTimeout) == 1; }));
}

TEST_F(CounterServiceTest, FullShardRefusesNewKeysAndKeepsTheConnection) {
  StartServer(CounterOptions{.max_keys = kLoops});  // one key per shard
  // Two keys of one shard.
  std::string first;
  std::string second;
  for (int i = 0; second.empty(); ++i) {
    std::string key = absl::StrCat("k", i);
    if (service_->OwnerOf(key) != 0) continue;
    (first.empty() ? first : second) = std::move(key);
  }
  Client client = Connect();
  ASSERT_TRUE(client.Write(absl::StrCat("INCR ", first, "\nINCR ", second, "\nINCR ", first, "\nGET ", second,
                                        "\n"))
                  .ok());
  EXPECT_EQ(client.ReadLines(4).value_or("(no reply)"), "1\nERROR too many keys\n2\n0\n");
  EXPECT_TRUE(Eventually([&] { return Totals().services[0].errors == 1; }));
  EXPECT_EQ(Totals().closed_by(percore::CloseReason::kProtocolError), 0u);
}

TEST_F(CounterServiceTest, MaxKeysHoldsOverAllLoopsWhenItDoesNotDivideEvenly) {
  StartServer(CounterOptions{.max_keys = kLoops + 1});
  Client client = Connect();
  std::string request;
  for (int i = 0; i < 40 * kLoops; ++i) absl::StrAppend(&request, "INCR spread", i, "\n");
  ASSERT_TRUE(client.Write(request).ok());
  const absl::StatusOr<std::string> replies = client.ReadLines(40 * kLoops);
  ASSERT_TRUE(replies.ok()) << replies.status();
  // Forty keys a shard on average, so every share fills: exactly max_keys are counted.
  size_t stored = 0;
  for (absl::string_view line : absl::StrSplit(*replies, '\n')) stored += line == "1" ? 1 : 0;
  EXPECT_EQ(stored, static_cast<size_t>(kLoops + 1));
}

}  // namespace
}  // namespace counter
