// Sharded<T> over a real Server: each loop's shard is built on that loop's thread, keys are
// placed by the documented hash, and a cross-loop call continues on the calling connection with
// its result — in request order when awaited, dropped when the connection is gone, and closing
// the connection (not the loop) when the owner's work throws.

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"
#include "reactor/server.h"
#include "reactor/sharded.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/server_probe.h"

namespace percore {
namespace {

using test::Deadline;

constexpr int kLoops = 4;

Deadline Soon() { return Deadline::In(absl::Seconds(20)); }

struct KvShard {
  ShardInfo info;
  EventLoop* built_on = nullptr;
  std::thread::id thread;
  absl::flat_hash_map<std::string, std::string> values;
  Counter sets;  // readable from other threads: what ForEachShard may sum
};

// One command per line: "VERB key [value]".
//   SET k v   (Await) -> "OK <loop that ran the work>"
//   GET k     (Await) -> "<value or -> <loop that ran the work>"
//   HERE      -> "<this connection's loop>"
//   LOCAL k   (Call)  -> "inline" when the continuation ran before Call returned, else "later"
//   POST k v  (Post)  -> "posted" at once; the owner stores v
//   HOLD k    (Await) the owner's work waits until the test releases it -> "held"
//   THROW k   (Await) the owner's work throws
class KvService final : public Service {
 public:
  std::string_view name() const override { return "kv"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override { return std::make_unique<KvHandler>(*this); }

  Sharded<KvShard> shards{*this, [](const ShardInfo& info) {
                            auto shard = std::make_unique<KvShard>();
                            shard->info = info;
                            shard->built_on = EventLoop::Current();
                            shard->thread = std::this_thread::get_id();
                            return shard;
                          }};
  std::atomic<bool> holding{false};
  std::atomic<bool> release{false};
  std::atomic<int> held_continuations{0};
  std::atomic<bool> gave_up{false};

 private:
  class KvHandler final : public Handler {
   public:
    explicit KvHandler(KvService& service) : service_(service) {}

    Action OnData(Connection& conn, Buffer& input) override {
      const size_t newline = input.view().find('\n');
      if (newline == std::string_view::npos) return Action::Continue();
      const std::vector<std::string> words = absl::StrSplit(std::string(input.view().substr(0, newline)), ' ');
      input.Consume(newline + 1);
      const std::string verb = words[0];
      const std::string key = words.size() > 1 ? words[1] : "";
      const std::string value = words.size() > 2 ? words[2] : "";
      Sharded<KvShard>& shards = service_.shards;
      const ShardId owner = shards.OwnerOf(key);
      if (verb == "SET") {
        return shards.Await(
            conn, owner,
            [key, value](KvShard& shard) {
              shard.values[key] = value;
              shard.sets.Increment();
              return EventLoop::Current()->index();
            },
            [](Connection& c, int ran_on) { c.Send(absl::StrCat("OK ", ran_on, "\n")); });
      }
      if (verb == "GET") {
        return shards.Await(
            conn, owner,
            [key](KvShard& shard) {
              auto it = shard.values.find(key);
              return absl::StrCat(it == shard.values.end() ? "-" : it->second, " ",
                                  EventLoop::Current()->index());
            },
            [](Connection& c, std::string reply) { c.Send(reply + "\n"); });
      }
      if (verb == "HERE") {
        conn.Send(absl::StrCat(conn.loop().index(), "\n"));
        return Action::Continue();
      }
      if (verb == "LOCAL") {
        bool ran = false;
        shards.Call(conn, owner, [](KvShard&) {}, [&ran](Connection&) { ran = true; });
        conn.Send(ran ? "inline\n" : "later\n");
        return Action::Continue();
      }
      if (verb == "POST") {
        shards.Post(owner, [key, value](KvShard& shard) { shard.values[key] = value; });
        conn.Send("posted\n");
        return Action::Continue();
      }
      if (verb == "HOLD") return Hold(conn, owner);
      if (verb == "HOLD-THEN-CLOSE") {  // HOLD, and the handler gives up 5 ms later
        EventLoop& loop = conn.loop();
        const uint64_t id = conn.id();
        KvService& service = service_;
        loop.RunAfter(absl::Milliseconds(5), [&loop, id, &service] {
          if (Connection* c = loop.FindConnection(id)) {
            c->Send("gave up\n");
            c->Close(CloseReason::kServiceClose, CloseMode::kFlush);
          }
          service.gave_up = true;
        });
        return Hold(conn, owner);
      }
      if (verb == "THROW") {
        return shards.Await(
            conn, owner, [](KvShard&) -> int { throw std::runtime_error("owner failed"); },
            [](Connection& c, int) { c.Send("unreachable\n"); });
      }
      conn.Send("?\n");
      return Action::Close(CloseMode::kFlush, CloseReason::kProtocolError);
    }

   private:
    // The owner's work waits until the test releases it; the answer is "held".
    Action Hold(Connection& conn, ShardId owner) {
      KvService& service = service_;
      return service.shards.Await(
          conn, owner,
          [&service](KvShard&) {
            service.holding = true;
            const Deadline limit = Deadline::In(absl::Seconds(30));
            while (!service.release.load() && !limit.expired()) std::this_thread::yield();
          },
          [&service](Connection& c) {
            service.held_continuations.fetch_add(1);
            c.Send("held\n");
          });
    }

    KvService& service_;
  };
};

class ShardedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.loops = kLoops;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(service_).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("kv", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    service_->release = true;
    server_->Stop(absl::Seconds(5));
  }

  test::ScopedFd Connect() {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port_, Soon());
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : test::ScopedFd();
  }

  // Sends `lines` and reads one reply line per line.
  std::vector<std::string> Ask(int fd, const std::vector<std::string>& lines) {
    std::string request;
    for (const std::string& line : lines) absl::StrAppend(&request, line, "\n");
    EXPECT_TRUE(test::WriteAll(fd, request, Soon()).ok());
    std::vector<std::string> replies;
    std::string pending;
    while (replies.size() < lines.size()) {
      absl::StatusOr<std::string> byte = test::ReadExactly(fd, 1, Soon());
      if (!byte.ok()) {
        ADD_FAILURE() << byte.status() << " after " << replies.size() << " replies";
        break;
      }
      if (*byte == "\n") {
        replies.push_back(pending);
        pending.clear();
      } else {
        pending += *byte;
      }
    }
    return replies;
  }

  int LoopOf(int fd) {
    std::vector<std::string> here = Ask(fd, {"HERE"});
    int loop = -1;
    EXPECT_TRUE(!here.empty() && absl::SimpleAtoi(here[0], &loop));
    return loop;
  }

  // A key `shards` places on `owner`.
  std::string KeyOwnedBy(ShardId owner, int skip = 0) {
    for (int i = 0;; ++i) {
      std::string key = absl::StrCat("key", i);
      if (service_->shards.OwnerOf(key) == owner && skip-- == 0) return key;
    }
  }

  std::shared_ptr<KvService> service_ = std::make_shared<KvService>();
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(ShardedTest, EachLoopBuildsItsOwnShardOnItsOwnThread) {
  EXPECT_EQ(service_->shards.count(), kLoops);
  for (int i = 0; i < kLoops; ++i) {
    EventLoop& loop = server_->loop(i);
    bool checked = false;
    ASSERT_TRUE(test::RunOnLoop(
        loop,
        [&] {
          const KvShard& shard = service_->shards.local();
          EXPECT_EQ(shard.built_on, &loop);
          EXPECT_EQ(shard.thread, std::this_thread::get_id());
          EXPECT_EQ(shard.info.index, i);
          EXPECT_EQ(shard.info.count, kLoops);
          EXPECT_EQ(service_->shards.here(), i);
          checked = true;
        },
        Soon()));
    EXPECT_TRUE(checked);
  }
  int visited = 0;
  service_->shards.ForEachShard([&](ShardId id, const KvShard& shard) {
    EXPECT_EQ(shard.info.index, id);
    ++visited;
  });
  EXPECT_EQ(visited, kLoops);
}

TEST_F(ShardedTest, OwnerOfIsFnv1aOfTheKeyModuloTheShardCount) {
  // Published FNV-1a 64-bit test vectors.
  EXPECT_EQ(ShardHash(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(ShardHash("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(ShardHash("foobar"), 0x85944171f73967e8ull);
  std::vector<int> per_owner(kLoops);
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("k", i);
    const ShardId owner = service_->shards.OwnerOf(key);
    EXPECT_EQ(owner, static_cast<ShardId>(ShardHash(key) % kLoops));
    ++per_owner[owner];
  }
  for (int n : per_owner) EXPECT_GT(n, 150);  // every shard gets a fair part
}

TEST_F(ShardedTest, WorkRunsOnTheOwnerAndTheReplyComesBackOnTheConnection) {
  test::ScopedFd fd = Connect();
  for (ShardId owner = 0; owner < kLoops; ++owner) {
    const std::string key = KeyOwnedBy(owner);
    EXPECT_EQ(Ask(fd.get(), {"SET " + key + " v" + key}),
              std::vector<std::string>{absl::StrCat("OK ", owner)});
    EXPECT_EQ(Ask(fd.get(), {"GET " + key}), std::vector<std::string>{absl::StrCat("v", key, " ", owner)});
  }
  uint64_t sets = 0;
  service_->shards.ForEachShard([&](ShardId, const KvShard& shard) { sets += shard.sets.Get(); });
  EXPECT_EQ(sets, static_cast<uint64_t>(kLoops));
}

TEST_F(ShardedTest, PipelinedAwaitsAreAnsweredInRequestOrder) {
  // One write of 400 lines: a SET and a GET of the same key, the keys going round the owners.
  test::ScopedFd fd = Connect();
  std::vector<std::string> lines;
  std::vector<std::string> expected;
  for (int i = 0; i < 200; ++i) {
    const ShardId owner = i % kLoops;
    const std::string key = KeyOwnedBy(owner, i / kLoops);
    lines.push_back(absl::StrCat("SET ", key, " ", i));
    expected.push_back(absl::StrCat("OK ", owner));
    lines.push_back("GET " + key);
    expected.push_back(absl::StrCat(i, " ", owner));
  }
  EXPECT_EQ(Ask(fd.get(), lines), expected);
}

TEST_F(ShardedTest, AContinuationOnThisLoopRunsBeforeCallReturns) {
  test::ScopedFd fd = Connect();
  const int here = LoopOf(fd.get());
  ASSERT_GE(here, 0);
  EXPECT_EQ(Ask(fd.get(), {"LOCAL " + KeyOwnedBy(here)}), std::vector<std::string>{"inline"});
  EXPECT_EQ(Ask(fd.get(), {"LOCAL " + KeyOwnedBy((here + 1) % kLoops)}), std::vector<std::string>{"later"});
}

TEST_F(ShardedTest, PostRunsTheWorkOnTheOwner) {
  test::ScopedFd fd = Connect();
  const std::string key = KeyOwnedBy(2);
  EXPECT_EQ(Ask(fd.get(), {"POST " + key + " posted-value"}), std::vector<std::string>{"posted"});
  // Posts from one loop run in order, and the GET's work is posted after the POST's.
  EXPECT_EQ(Ask(fd.get(), {"GET " + key}), std::vector<std::string>{"posted-value 2"});
}

TEST_F(ShardedTest, TheAnswerForAConnectionThatClosedIsDropped) {
  test::ScopedFd fd = Connect();
  const int here = LoopOf(fd.get());
  ASSERT_GE(here, 0);
  const ShardId owner = (here + 1) % kLoops;
  ASSERT_TRUE(test::WriteAll(fd.get(), "HOLD " + KeyOwnedBy(owner) + "\n", Soon()).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return service_->holding.load(); }, Soon()));
  // The owner is busy with the work; the caller's loop is free and sees the reset.
  ASSERT_TRUE(test::ResetOnClose(fd.get()).ok());
  fd.reset();
  ASSERT_TRUE(test::WaitUntil([&] { return server_->loop(here).stats().closed_total() == 1; }, Soon()));
  service_->release = true;
  // The owner finishes the work and posts the answer; the caller's loop then runs it (or drops
  // it). Tasks run in the order they were queued, so a probe queued after both has seen it.
  ASSERT_TRUE(test::RunOnLoop(server_->loop(owner), [] {}, Soon()));
  ASSERT_TRUE(test::RunOnLoop(server_->loop(here), [] {}, Soon()));
  EXPECT_EQ(service_->held_continuations.load(), 0);
  // Both loops serve on.
  test::ScopedFd next = Connect();
  const std::string key = KeyOwnedBy(owner, 1);
  EXPECT_EQ(Ask(next.get(), {"SET " + key + " x", "GET " + key}),
            (std::vector<std::string>{absl::StrCat("OK ", owner), absl::StrCat("x ", owner)}));
}

TEST_F(ShardedTest, AHandlerThatClosesWhileAwaitingDropsTheAnswer) {
  test::ScopedFd fd = Connect();
  const int here = LoopOf(fd.get());
  ASSERT_GE(here, 0);
  const ShardId owner = (here + 1) % kLoops;
  ASSERT_TRUE(test::WriteAll(fd.get(), "HOLD-THEN-CLOSE " + KeyOwnedBy(owner) + "\n", Soon()).ok());
  // The close takes effect while the connection is paused on the held work: no Resume needed.
  absl::StatusOr<std::string> rest = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, "gave up\n");
  EXPECT_TRUE(service_->gave_up.load());
  service_->release = true;
  ASSERT_TRUE(test::RunOnLoop(server_->loop(owner), [] {}, Soon()));
  ASSERT_TRUE(test::RunOnLoop(server_->loop(here), [] {}, Soon()));
  EXPECT_EQ(service_->held_continuations.load(), 0);
  fd.reset();
  EXPECT_TRUE(test::WaitUntil([&] { return server_->Totals().closed_by(CloseReason::kServiceClose) == 1; }, Soon()));
}

TEST_F(ShardedTest, WorkThatThrowsClosesTheCallingConnectionAsAHandlerError) {
  test::ScopedFd fd = Connect();
  const int here = LoopOf(fd.get());
  ASSERT_GE(here, 0);
  const ShardId owner = (here + 1) % kLoops;
  ASSERT_TRUE(test::WriteAll(fd.get(), "THROW " + KeyOwnedBy(owner) + "\n", Soon()).ok());
  absl::StatusOr<std::string> rest = test::ReadToEof(fd.get(), Soon());
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, "");
  EXPECT_TRUE(test::WaitUntil(
      [&] { return server_->loop(here).stats().closed[static_cast<int>(CloseReason::kHandlerError)].Get() == 1; },
      Soon()));
  // The owner's loop carries on.
  test::ScopedFd next = Connect();
  const std::string key = KeyOwnedBy(owner);
  EXPECT_EQ(Ask(next.get(), {"SET " + key + " y"}), std::vector<std::string>{absl::StrCat("OK ", owner)});
}

TEST_F(ShardedTest, AnAwaitedAnswerResumesTheConnection) {
  // While the owner holds the work, the connection reads nothing more (the GET waits behind the
  // HOLD); once the answer is in, the connection resumes and serves the GET.
  test::ScopedFd fd = Connect();
  const int here = LoopOf(fd.get());
  ASSERT_GE(here, 0);
  const ShardId owner = (here + 1) % kLoops;
  const std::string key = KeyOwnedBy(here);
  ASSERT_EQ(Ask(fd.get(), {"SET " + key + " z"}), std::vector<std::string>{absl::StrCat("OK ", here)});
  ASSERT_TRUE(test::WriteAll(fd.get(), "HOLD " + KeyOwnedBy(owner) + "\nGET " + key + "\n", Soon()).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return service_->holding.load(); }, Soon()));
  service_->release = true;
  absl::StatusOr<std::string> replies = test::ReadExactly(fd.get(), std::string("held\nz 0\n").size(), Soon());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*replies, absl::StrCat("held\nz ", here, "\n"));
  EXPECT_EQ(service_->held_continuations.load(), 1);
}

// State registered with the server rather than a service: a service built before it (as the
// HTTP service is, from its options) reaches it through a pointer it is given.
struct Hits {
  ShardInfo info;
  EventLoop* built_on = nullptr;
  int64_t hits = 0;
};

class HitService final : public Service {
 public:
  explicit HitService(Sharded<Hits>** state) : state_(state) {}
  std::string_view name() const override { return "hits"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override { return std::make_unique<HitHandler>(**state_); }

 private:
  class HitHandler final : public Handler {
   public:
    explicit HitHandler(Sharded<Hits>& state) : state_(state) {}
    Action OnData(Connection& conn, Buffer& input) override {
      const size_t newline = input.view().find('\n');
      if (newline == std::string_view::npos) return Action::Continue();
      const std::string key(input.view().substr(0, newline));
      input.Consume(newline + 1);
      return state_.Await(
          conn, state_.OwnerOf(key),
          [](Hits& h) { return absl::StrCat(++h.hits, " ", h.info.index, "/", h.info.count); },
          [](Connection& c, std::string reply) { c.Send(reply + "\n"); });
    }

   private:
    Sharded<Hits>& state_;
  };
  Sharded<Hits>** const state_;
};

TEST(ShardedServerStateTest, StateRegisteredWithTheServerIsBuiltOnEveryLoop) {
  Sharded<Hits>* state = nullptr;
  ServerOptions options;
  options.loops = 3;
  Server server(options);
  ASSERT_TRUE(server.AddService(std::make_shared<HitService>(&state)).ok());
  Sharded<Hits> hits(server, [](const ShardInfo& info) {
    auto h = std::make_unique<Hits>();
    h->info = info;
    h->built_on = EventLoop::Current();
    return h;
  });
  state = &hits;
  absl::StatusOr<ListenerInfo> listener = server.Listen("hits", HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(hits.count(), 3);
  int built = 0;
  hits.ForEachShard([&](ShardId id, const Hits& h) {
    EXPECT_EQ(h.built_on, &server.loop(id));
    ++built;
  });
  EXPECT_EQ(built, 3);
  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(listener->bound.port(), Soon());
  ASSERT_TRUE(fd.ok()) << fd.status();
  ASSERT_TRUE(test::WriteAll(fd->get(), "a\nb\na\n", Soon()).ok());
  // Each shard counts the lines it was asked about.
  std::vector<int> per_shard(3);
  std::string expected;
  for (const char* key : {"a", "b", "a"}) {
    const ShardId owner = hits.OwnerOf(key);
    absl::StrAppend(&expected, ++per_shard[owner], " ", owner, "/3\n");
  }
  absl::StatusOr<std::string> replies = test::ReadExactly(fd->get(), expected.size(), Soon());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*replies, expected);
  fd->reset();
  server.Stop(absl::Seconds(5));
}

}  // namespace
}  // namespace percore
