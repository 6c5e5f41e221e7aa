// Replies far larger than memory should allow, on a running two-loop Server over loopback:
// values are sent from the store in place, multi-key replies are produced as the output drains,
// and what the server holds stays bounded whatever the client asks for. Each test runs with its
// key on the shard of the connection's own loop and on the other loop's shard.

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "reactor/server.h"
#include "services/resp/resp_limits.h"
#include "services/resp/resp_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/server_probe.h"

namespace percore {
namespace {

using test::Deadline;

constexpr size_t kMiB = size_t{1} << 20;
constexpr absl::Duration kTimeout = absl::Seconds(240);

#ifdef PERCORE_TEST_SANITIZER
constexpr size_t kRepeats = 600;  // 600 MB of reply: the sanitizers check every byte sent
#else
constexpr size_t kRepeats = 3000;  // 3 GB of reply from one 1 MB value
#endif

// A value whose byte i is (i * 31 + seed) % 251: periodic in 251, so any stretch of it can be
// produced or checked from one block without holding the value.
class Pattern {
 public:
  explicit Pattern(int seed) : block_(251 * 4096, '\0') {
    for (size_t i = 0; i < block_.size(); ++i) {
      block_[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed)) % 251);
    }
  }
  // Up to `max` bytes of the value starting at `offset`.
  std::string_view At(uint64_t offset, size_t max) const {
    const size_t start = static_cast<size_t>(offset % 251);
    return std::string_view(block_).substr(start, std::min(max, block_.size() - start));
  }
  bool Matches(uint64_t offset, std::string_view bytes) const {
    while (!bytes.empty()) {
      const std::string_view want = At(offset, bytes.size());
      if (std::memcmp(want.data(), bytes.data(), want.size()) != 0) return false;
      bytes.remove_prefix(want.size());
      offset += want.size();
    }
    return true;
  }
  std::string Make(size_t size) const {
    std::string out;
    out.reserve(size);
    while (out.size() < size) out.append(At(out.size(), size - out.size()));
    return out;
  }

 private:
  std::string block_;
};

size_t ProcStatusKb(std::string_view field) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::string_view(line).substr(0, field.size()) == field) {
      kb = static_cast<size_t>(std::strtoull(line + field.size(), nullptr, 10));
      break;
    }
  }
  std::fclose(f);
  return kb;
}

size_t RssBytes() { return ProcStatusKb("VmRSS:") * 1024; }

// A blocking loopback client that reads through a fixed window, so a reply of gigabytes can be
// checked as it streams without the test holding it.
class Client {
 public:
  explicit Client(uint16_t port) {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, Deadline::In(kTimeout));
    if (fd.ok()) fd_ = std::move(*fd);
    port_ = fd_.valid() ? test::LocalPort(fd_.get()).value_or(0) : 0;
  }
  bool connected() const { return fd_.valid(); }
  uint16_t local_port() const { return port_; }
  uint64_t received() const { return received_; }

  void Send(std::string_view bytes) {
    ASSERT_TRUE(test::WriteAll(fd_.get(), bytes, Deadline::In(kTimeout)).ok());
  }
  void ShutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }
  // Until `received()` reaches `bytes`, reads are small (16 KiB) and paced (1 ms apart): a slow
  // reader, which makes the server hold the rest back.
  void ReadSlowlyUntil(uint64_t bytes) { slow_until_ = bytes; }

  // Reads one CRLF-terminated line (without the CRLF); empty on EOF or timeout.
  std::string Line() {
    for (;;) {
      const std::string_view have(window_.data() + begin_, end_ - begin_);
      const size_t crlf = have.find("\r\n");
      if (crlf != std::string_view::npos) {
        std::string line(have.substr(0, crlf));
        begin_ += crlf + 2;
        return line;
      }
      if (!Fill()) return "";
    }
  }
  // Hands the next `n` bytes to `check` in the pieces they arrive in; false on EOF, timeout or
  // a piece `check` rejects.
  template <typename Check>
  bool Bytes(uint64_t n, Check check) {
    uint64_t done = 0;
    while (done < n) {
      if (begin_ == end_ && !Fill()) return false;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(end_ - begin_, n - done));
      if (!check(done, std::string_view(window_.data() + begin_, take))) return false;
      begin_ += take;
      done += take;
    }
    return true;
  }
  bool Expect(std::string_view bytes) {
    return Bytes(bytes.size(), [&](uint64_t at, std::string_view got) {
      return got == bytes.substr(static_cast<size_t>(at), got.size());
    });
  }
  // Checks a bulk reply of `size` pattern bytes followed by `tail`.
  bool ExpectBulk(const Pattern& pattern, size_t size, std::string_view tail = {}) {
    if (Line() != absl::StrCat("$", size + tail.size())) return false;
    if (!Bytes(size, [&](uint64_t at, std::string_view got) { return pattern.Matches(at, got); })) {
      return false;
    }
    return Expect(tail) && Expect("\r\n");
  }
  // Whether the server closed the connection with nothing more to read.
  bool AtEof() {
    if (begin_ != end_) return false;
    return !Fill() && eof_;
  }
  // Called between reads (sampling what the server holds).
  void set_on_fill(std::function<void(uint64_t received)> fn) { on_fill_ = std::move(fn); }

 private:
  bool Fill() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == window_.size()) {
      std::memmove(window_.data(), window_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (!test::WaitReadable(fd_.get(), Deadline::In(kTimeout)).ok()) return false;
    size_t room = window_.size() - end_;
    if (received_ < slow_until_) {
      room = std::min<size_t>(room, 16 * 1024);
      ::poll(nullptr, 0, 1);  // paces the reader; nothing is awaited
    }
    const ssize_t n = ::recv(fd_.get(), window_.data() + end_, room, 0);
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    end_ += static_cast<size_t>(n);
    received_ += static_cast<uint64_t>(n);
    if (on_fill_) on_fill_(received_);
    return true;
  }

  test::ScopedFd fd_;
  uint16_t port_ = 0;
  std::vector<char> window_ = std::vector<char>(kMiB);
  size_t begin_ = 0;
  size_t end_ = 0;
  uint64_t slow_until_ = 0;
  uint64_t received_ = 0;
  bool eof_ = false;
  std::function<void(uint64_t)> on_fill_;
};

std::string Cmd(const std::vector<std::string_view>& args) {
  std::string out = absl::StrCat("*", args.size(), "\r\n");
  for (std::string_view a : args) {
    absl::StrAppend(&out, "$", a.size(), "\r\n");
    out.append(a);
    out.append("\r\n");
  }
  return out;
}

std::string Mget(std::string_view key, size_t times) {
  std::vector<std::string_view> args(times + 1, key);
  args[0] = "MGET";
  return Cmd(args);
}

// What a server connection holds, seen from its loop.
struct ConnectionFigures {
  bool found = false;
  size_t queued = 0;  // OutputQueue::size(): copied and shared bytes
  size_t copied = 0;  // OutputQueue::copied_size()
};

enum class Where { kOwnShard, kOtherShard };

std::string WhereName(const ::testing::TestParamInfo<Where>& info) {
  return info.param == Where::kOwnShard ? "OwnShard" : "OtherShard";
}

class LargeReplyTest : public ::testing::TestWithParam<Where> {
 protected:
  void SetUp() override { StartServer(RespOptions{}); }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(const RespOptions& options) {
    if (server_) server_->Stop();
    ASSERT_TRUE(ValidateRespLimits(options, connection_).ok());
    ServerOptions server_options;
    server_options.loops = 2;
    server_options.connection = connection_;
    server_ = std::make_unique<Server>(server_options);
    service_ = std::make_shared<RespService>(options);
    ASSERT_TRUE(server_->AddService(service_).ok());
    absl::StatusOr<ListenerInfo> info = server_->Listen("resp", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(info.ok()) << info.status();
    port_ = info->bound.port();
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_TRUE(test::WaitUntil(
        [&] { return server_->loop(0).running() && server_->loop(1).running(); },
        Deadline::In(kTimeout)));
  }

  // The loop serving `client`. A round trip first, so that its connection has reached a loop.
  int LoopOf(Client& client) {
    client.Send(Cmd({"PING"}));
    EXPECT_EQ(client.Line(), "+PONG");
    const std::map<uint16_t, int> loops = test::LoopByPeerPort(*server_, Deadline::In(kTimeout));
    const auto it = loops.find(client.local_port());
    EXPECT_NE(it, loops.end()) << "no connection from port " << client.local_port();
    return it == loops.end() ? 0 : it->second;
  }

  // A key whose shard is owned by loop `loop` (kOwnShard) or by the other loop.
  std::string KeyFor(Where where, int loop, std::string_view prefix = "key") {
    for (int i = 0;; ++i) {
      std::string key = std::string(prefix) + ":" + std::to_string(i);
      const bool own = service_->OwnerOf(key) == server_->loop(loop).index();
      if (own == (where == Where::kOwnShard)) return key;
    }
  }
  std::string KeyFor(Client& client, std::string_view prefix = "key") {
    return KeyFor(GetParam(), LoopOf(client), prefix);
  }

  // Stores `size` bytes of `pattern` at `key`, streamed from the pattern's block.
  void SetPattern(Client& client, std::string_view key, const Pattern& pattern, size_t size) {
    client.Send(absl::StrCat("*3\r\n$3\r\nSET\r\n$", key.size(), "\r\n") + std::string(key) +
                absl::StrCat("\r\n$", size, "\r\n"));
    for (uint64_t sent = 0; sent < size;) {
      const std::string_view chunk = pattern.At(sent, std::min<uint64_t>(size - sent, kMiB));
      client.Send(chunk);
      sent += chunk.size();
    }
    client.Send("\r\n");
    ASSERT_EQ(client.Line(), "+OK");
  }

  ConnectionFigures Figures(const Client& client) {
    auto figures = std::make_shared<ConnectionFigures>();
    for (int i = 0; i < server_->loop_count(); ++i) {
      EventLoop& loop = server_->loop(i);
      const uint16_t port = client.local_port();
      EXPECT_TRUE(test::RunOnLoop(
          loop,
          [&loop, port, figures] {
            loop.ForEachConnection([&](Connection& c) {
              if (c.peer().port() != port) return;
              figures->found = true;
              figures->queued = c.queued_output();
              figures->copied = c.output().copied_size();
            });
          },
          Deadline::In(kTimeout)));
    }
    return *figures;
  }

  // Samples the server's side of `client` and the process RSS every `every` bytes received.
  struct Peaks {
    size_t queued = 0;
    size_t copied = 0;
    size_t rss = 0;
    int samples = 0;
  };
  void Watch(Client& client, Peaks& peaks, uint64_t every) {
    auto next = std::make_shared<uint64_t>(every);
    client.set_on_fill([this, &client, &peaks, next, every](uint64_t received) {
      if (received < *next) return;
      *next = received + every;
      const ConnectionFigures f = Figures(client);
      peaks.queued = std::max(peaks.queued, f.queued);
      peaks.copied = std::max(peaks.copied, f.copied);
      peaks.rss = std::max(peaks.rss, RssBytes());
      ++peaks.samples;
    });
  }

  ConnectionOptions connection_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<RespService> service_;
  uint16_t port_ = 0;
};

// The bound a connection's output must keep while streaming: the high-water mark, the value
// being sent past it, and a copied piece.
size_t OutputBound(const ConnectionOptions& connection, size_t value) {
  return connection.high_water + value + kRespLargestCopiedPiece;
}

TEST_P(LargeReplyTest, MgetOfOneValueThousandsOfTimesStaysBounded) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = KeyFor(c);
  const Pattern pattern(7);
  SetPattern(c, key, pattern, kMiB);
  const size_t rss_before = RssBytes();

  c.Send(Mget(key, kRepeats));
  Peaks peaks;
  Watch(c, peaks, 32 * kMiB);
  // A slow reader first (the server must hold the reply back, not build it), then one as fast
  // as the reply comes; every element is checked.
  c.ReadSlowlyUntil(c.received() + 16 * kMiB);
  ASSERT_EQ(c.Line(), absl::StrCat("*", kRepeats));
  for (size_t i = 0; i < kRepeats; ++i) {
    ASSERT_TRUE(c.ExpectBulk(pattern, kMiB)) << "element " << i;
  }
  c.set_on_fill(nullptr);
  c.Send(Cmd({"PING"}));
  EXPECT_EQ(c.Line(), "+PONG");  // and nothing between the last element and it

  EXPECT_GT(peaks.samples, 10);
  EXPECT_LE(peaks.queued, OutputBound(connection_, kMiB));
  EXPECT_LE(peaks.copied, connection_.high_water + kRespLargestCopiedPiece);
  // The process (server and client both) grows by about the output bound, not by the reply.
  const size_t rss_growth = peaks.rss > rss_before ? peaks.rss - rss_before : 0;
  EXPECT_LE(rss_growth, connection_.high_water + 2 * kMiB + 64 * kMiB);
  std::printf("MGET of %zu x 1 MiB (%s): peak queued output %zu bytes, peak copied %zu bytes, "
              "RSS %zu -> peak %zu bytes (+%zu)\n",
              kRepeats, GetParam() == Where::kOwnShard ? "own shard" : "other shard",
              peaks.queued, peaks.copied, rss_before, peaks.rss, rss_growth);
}

// The same reply with the address space limited to a few hundred megabytes above what the
// process uses: a reply built whole would die of std::bad_alloc.
TEST_P(LargeReplyTest, MgetUnderAddressSpaceLimit) {
#ifdef PERCORE_TEST_SANITIZER
  GTEST_SKIP() << "ASan and TSan reserve terabytes of address space for shadow memory; a limit "
                  "a few hundred megabytes above the current use cannot be set";
#endif
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = KeyFor(c);
  const Pattern pattern(11);
  SetPattern(c, key, pattern, kMiB);
  const std::string request = Mget(key, kRepeats);

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_AS, &saved), 0);
  const size_t vm_size = ProcStatusKb("VmSize:") * 1024;
  ASSERT_GT(vm_size, 0u);
  rlimit limited = saved;
  limited.rlim_cur = vm_size + 384 * kMiB;
  if (saved.rlim_max != RLIM_INFINITY) limited.rlim_cur = std::min(limited.rlim_cur, saved.rlim_max);
  ASSERT_EQ(::setrlimit(RLIMIT_AS, &limited), 0);
  struct Restore {
    rlimit saved;
    ~Restore() { ::setrlimit(RLIMIT_AS, &saved); }
  } restore{saved};

  c.Send(request);
  ASSERT_EQ(c.Line(), absl::StrCat("*", kRepeats));
  for (size_t i = 0; i < kRepeats; ++i) {
    ASSERT_TRUE(c.ExpectBulk(pattern, kMiB)) << "element " << i;
  }
  c.Send(Cmd({"PING"}));
  EXPECT_EQ(c.Line(), "+PONG");
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kHandlerError), 0u);
}

// The largest value the store accepts, bigger than the output cap, comes back whole, read
// slowly at first; it is sent in place, never copied into the output.
TEST_P(LargeReplyTest, LargestAcceptedValueComesBackWhole) {
  constexpr size_t kLargest = 100'000'000;
  RespOptions options;
  options.max_bulk_bytes = kLargest;
  ASSERT_LT(connection_.output_cap, kLargest);
  StartServer(options);
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = KeyFor(c);
  const Pattern pattern(3);
  SetPattern(c, key, pattern, kLargest);
  c.Send(Cmd({"STRLEN", key}));
  ASSERT_EQ(c.Line(), absl::StrCat(":", kLargest));

  for (const bool slow : {true, false}) {
    SCOPED_TRACE(slow ? "slow reader" : "fast reader");
    c.Send(Cmd({"GET", key}));
    Peaks peaks;
    Watch(c, peaks, 4 * kMiB);
    if (slow) c.ReadSlowlyUntil(c.received() + 4 * kMiB);
    ASSERT_TRUE(c.ExpectBulk(pattern, kLargest));
    c.set_on_fill(nullptr);
    EXPECT_GT(peaks.samples, 5);
    if (slow) {
      EXPECT_GT(peaks.queued, 50 * kMiB);  // the value waits in the output ...
    }
    EXPECT_LT(peaks.copied, kMiB);  // ... shared, not copied
    std::printf("GET of %zu bytes, %s reader (%s): peak queued %zu bytes, peak copied %zu\n",
                kLargest, slow ? "slow" : "fast",
                GetParam() == Where::kOwnShard ? "own shard" : "other shard", peaks.queued,
                peaks.copied);
  }
  c.Send(Cmd({"PING"}));
  EXPECT_EQ(c.Line(), "+PONG");
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kOutputOverflow), 0u);
}

TEST_P(LargeReplyTest, HundredLargeValuesInOneMget) {
  constexpr int kValues = 100;
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const int loop = LoopOf(c);
  std::vector<std::string> keys;
  std::vector<Pattern> patterns;
  for (int i = 0; i < kValues; ++i) {
    keys.push_back(KeyFor(GetParam(), loop, absl::StrCat("big", i)));
    patterns.emplace_back(i);
    SetPattern(c, keys.back(), patterns.back(), kMiB + static_cast<size_t>(i));
  }
  std::vector<std::string_view> args = {"MGET"};
  for (const std::string& key : keys) args.push_back(key);
  args.push_back("absent");
  c.Send(Cmd(args));
  Peaks peaks;
  Watch(c, peaks, 8 * kMiB);
  c.ReadSlowlyUntil(c.received() + 4 * kMiB);
  ASSERT_EQ(c.Line(), absl::StrCat("*", kValues + 1));
  for (int i = 0; i < kValues; ++i) {
    ASSERT_TRUE(c.ExpectBulk(patterns[i], kMiB + static_cast<size_t>(i))) << "value " << i;
  }
  EXPECT_EQ(c.Line(), "$-1");
  c.set_on_fill(nullptr);
  EXPECT_LE(peaks.queued, OutputBound(connection_, kMiB + kValues));
  c.Send(Cmd({"PING"}));
  EXPECT_EQ(c.Line(), "+PONG");
}

// One connection's large reply streams to a reader that does not read, while another
// connection on the same loop is answered.
TEST_P(LargeReplyTest, OtherConnectionsServedWhileLargeReplyStreams) {
  Client slow(port_);
  ASSERT_TRUE(slow.connected());
  const int loop = LoopOf(slow);
  const std::string key = KeyFor(GetParam(), loop);
  const Pattern pattern(5);
  SetPattern(slow, key, pattern, kMiB);
  std::vector<std::unique_ptr<Client>> others;
  Client* neighbour = nullptr;
  while (neighbour == nullptr && others.size() < 8) {
    others.push_back(std::make_unique<Client>(port_));
    if (LoopOf(*others.back()) == loop) neighbour = others.back().get();
  }
  ASSERT_NE(neighbour, nullptr) << "no second connection landed on loop " << loop;

  constexpr size_t kTimes = 200;
  const uint64_t received_before = slow.received();
  slow.Send(Mget(key, kTimes));
  ASSERT_TRUE(test::WaitUntil([&] { return Figures(slow).queued > 0; }, Deadline::In(kTimeout)));
  for (int i = 0; i < 20; ++i) {
    neighbour->Send(Cmd({"PING"}));
    ASSERT_EQ(neighbour->Line(), "+PONG");
    neighbour->Send(Cmd({"GET", key}));
    ASSERT_TRUE(neighbour->ExpectBulk(pattern, kMiB));
  }
  // The slow reader has not read a byte: its reply is still being held back, and what the
  // server holds of it is bounded.
  EXPECT_EQ(slow.received(), received_before);
  const ConnectionFigures held = Figures(slow);
  EXPECT_GT(held.queued, 0u);
  EXPECT_LE(held.queued, OutputBound(connection_, kMiB));
  std::printf("stalled reader of a %zu MiB MGET (%s): server holds %zu bytes queued, %zu copied\n",
              kTimes, GetParam() == Where::kOwnShard ? "own shard" : "other shard", held.queued,
              held.copied);
  ASSERT_EQ(slow.Line(), absl::StrCat("*", kTimes));
  for (size_t i = 0; i < kTimes; ++i) ASSERT_TRUE(slow.ExpectBulk(pattern, kMiB)) << i;
}

// Lookups happen when the command is read, in request order: the MGET shows the value before
// the SET that follows it in the same pipeline, however long its reply takes to send.
TEST_P(LargeReplyTest, PipelinedCommandsKeepTheirOrder) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = KeyFor(c);
  const Pattern old_value(21);
  SetPattern(c, key, old_value, kMiB);
  constexpr size_t kTimes = 40;
  c.Send(Mget(key, kTimes) + Cmd({"SET", key, "other"}) + Cmd({"GET", key}) + Cmd({"MGET", key}));
  c.ReadSlowlyUntil(8 * kMiB);
  ASSERT_EQ(c.Line(), absl::StrCat("*", kTimes));
  for (size_t i = 0; i < kTimes; ++i) ASSERT_TRUE(c.ExpectBulk(old_value, kMiB)) << i;
  EXPECT_EQ(c.Line(), "+OK");
  EXPECT_EQ(c.Line(), "$5");
  EXPECT_EQ(c.Line(), "other");
  EXPECT_EQ(c.Line(), "*1");
  EXPECT_EQ(c.Line(), "$5");
  EXPECT_EQ(c.Line(), "other");
}

// APPEND while a reply is sending the value: the reply's bytes are the value as it was when
// the reply looked it up, whether the APPEND has to grow the value (a new buffer) or fits in
// place.
TEST_P(LargeReplyTest, AppendDoesNotChangeBytesBeingSent) {
  Client reader(port_);
  Client writer(port_);
  ASSERT_TRUE(reader.connected() && writer.connected());
  const std::string key = KeyFor(reader);
  const Pattern pattern(9);
  SetPattern(reader, key, pattern, kMiB);
  std::string tail;
  for (const std::string_view more : {"+grow", "+fit"}) {
    SCOPED_TRACE(more);
    constexpr size_t kTimes = 30;
    reader.Send(Mget(key, kTimes));
    ASSERT_TRUE(
        test::WaitUntil([&] { return Figures(reader).queued > 0; }, Deadline::In(kTimeout)));
    writer.Send(Cmd({"APPEND", key, more}));
    const std::string before = tail;
    tail += more;
    ASSERT_EQ(writer.Line(), absl::StrCat(":", kMiB + tail.size()));
    ASSERT_EQ(reader.Line(), absl::StrCat("*", kTimes));
    for (size_t i = 0; i < kTimes; ++i) ASSERT_TRUE(reader.ExpectBulk(pattern, kMiB, before)) << i;
  }
  reader.Send(Cmd({"GET", key}));
  ASSERT_TRUE(reader.ExpectBulk(pattern, kMiB, tail));
}

// A client may half-close right after asking: the reply still arrives whole, then the FIN.
TEST_P(LargeReplyTest, HalfCloseAfterLargeRequest) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = KeyFor(c);
  const Pattern pattern(13);
  SetPattern(c, key, pattern, kMiB);
  constexpr size_t kTimes = 50;
  c.Send(Mget(key, kTimes) + Cmd({"PING"}));
  c.ShutdownWrite();
  c.ReadSlowlyUntil(4 * kMiB);
  ASSERT_EQ(c.Line(), absl::StrCat("*", kTimes));
  for (size_t i = 0; i < kTimes; ++i) ASSERT_TRUE(c.ExpectBulk(pattern, kMiB)) << i;
  EXPECT_EQ(c.Line(), "+PONG");
  EXPECT_TRUE(c.AtEof());
}

// A server stop while a reply is streaming answers the request whole before it closes, as it
// does for any request already read.
TEST_P(LargeReplyTest, DrainFinishesStreamedReply) {
  Client c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = KeyFor(c);
  const Pattern pattern(17);
  SetPattern(c, key, pattern, kMiB);
  constexpr size_t kTimes = 100;
  c.Send(Mget(key, kTimes));
  ASSERT_TRUE(test::WaitUntil([&] { return Figures(c).queued > 0; }, Deadline::In(kTimeout)));
  std::thread stop([this] { server_->Stop(absl::Seconds(60)); });
  c.ReadSlowlyUntil(c.received() + 4 * kMiB);
  ASSERT_EQ(c.Line(), absl::StrCat("*", kTimes));
  for (size_t i = 0; i < kTimes; ++i) EXPECT_TRUE(c.ExpectBulk(pattern, kMiB)) << i;
  EXPECT_TRUE(c.AtEof());
  stop.join();
  EXPECT_EQ(server_->Totals().closed_by(CloseReason::kServerDrain), 1u);
}

INSTANTIATE_TEST_SUITE_P(Shards, LargeReplyTest,
                         ::testing::Values(Where::kOwnShard, Where::kOtherShard), WhereName);

}  // namespace
}  // namespace percore
