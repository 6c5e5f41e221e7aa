// Live migration of connections between loops (Server::MigrateConnection), over real loopback
// sockets, on the back end PERCORE_TEST_BACKEND names (each back end has its own variant):
// a moved connection keeps serving with its figures and deadlines; thousands of migrations
// forced while clients stream checksummed data lose, duplicate and reorder nothing; and every
// request that cannot be carried out is refused with its reason, the connection untouched.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/migration.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/random_bytes.h"
#include "tests/testing/server_probe.h"
#include "tests/testing/test_backend.h"

namespace percore {
namespace {

using test::Deadline;
using test::ScopedFd;

#ifdef PERCORE_TEST_SANITIZER
constexpr int kForcedMigrations = 1500;
#else
constexpr int kForcedMigrations = 10000;
#endif

// An echo handler the test steers: "pause" pauses it (the test resumes it), its vote on
// migration is the service's, and it notes every arrival.
struct Steering {
  std::atomic<int> vote{static_cast<int>(MigrationVote::kNow)};
  std::atomic<int> arrivals{0};
  std::atomic<int> last_loop{-1};
};

class SteeredHandler final : public Handler {
 public:
  explicit SteeredHandler(Steering& steering) : steering_(steering) {}
  Action OnData(Connection& conn, Buffer& input) override {
    if (input.view().substr(0, 5) == "pause") {
      input.Consume(5);
      return Action::Pause();
    }
    if (input.view().substr(0, 4) == "big:") {
      // A reply much larger than the socket buffers: queued output while the client does not read.
      input.Consume(4);
      conn.Send(std::string(8 << 20, 'b'));
      return Action::Continue();
    }
    conn.output().Append(input.view());
    input.Consume(input.size());
    conn.RecordRequest();
    return Action::Continue();
  }
  MigrationVote CanMigrate(Connection&) override { return static_cast<MigrationVote>(steering_.vote.load()); }
  void OnMigrated(Connection& conn) override {
    steering_.arrivals.fetch_add(1);
    steering_.last_loop.store(conn.loop().index());
  }

 private:
  Steering& steering_;
};

class SteeredService final : public Service {
 public:
  std::string_view name() const override { return "steered"; }
  std::unique_ptr<Handler> NewHandler(Connection&) override { return std::make_unique<SteeredHandler>(steering); }
  Steering steering;
};

class MigrationTest : public ::testing::Test {
 protected:
  void StartServer(std::shared_ptr<Service> service, int loops = 2) {
    ServerOptions options;
    options.loops = loops;
    options.backend = test::TestBackend();
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(service).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen(std::string(service->name()), HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  ScopedFd Connect() {
    absl::StatusOr<ScopedFd> fd = test::ConnectToLoopback(port_, Deadline::In(absl::Seconds(10)));
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : ScopedFd();
  }
  // Sends `message` and expects it back.
  void Echo(const ScopedFd& fd, const std::string& message) {
    ASSERT_TRUE(test::WriteAll(fd.get(), message, Deadline::In(absl::Seconds(10))).ok());
    absl::StatusOr<std::string> got = test::ReadExactly(fd.get(), message.size(), Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, message);
  }
  // The server's id and loop for the connection of client socket `fd`.
  uint64_t IdOf(const ScopedFd& fd) {
    const uint16_t port = test::LocalPort(fd.get()).value_or(0);
    std::map<uint16_t, uint64_t> ids = test::IdByPeerPort(*server_, Deadline::In(absl::Seconds(10)));
    auto it = ids.find(port);
    EXPECT_NE(it, ids.end()) << "no server connection for local port " << port;
    return it == ids.end() ? 0 : it->second;
  }
  int LoopOf(const ScopedFd& fd) {
    const uint16_t port = test::LocalPort(fd.get()).value_or(0);
    std::map<uint16_t, int> loops = test::LoopByPeerPort(*server_, Deadline::In(absl::Seconds(10)));
    auto it = loops.find(port);
    return it == loops.end() ? -1 : it->second;
  }
  // The figures of connection `id` (on its loop), or nothing if it is not open.
  std::optional<ConnectionStats> StatsOf(uint64_t id) {
    EventLoop& loop = server_->loop(static_cast<int>(id >> 48));
    auto out = std::make_shared<std::optional<ConnectionStats>>();
    EXPECT_TRUE(test::RunOnLoop(
        loop,
        [&loop, id, out] {
          if (Connection* c = loop.FindConnection(id)) *out = c->stats();
        },
        Deadline::In(absl::Seconds(10))));
    return *out;
  }
  Connection* Find(uint64_t id) { return server_->loop(static_cast<int>(id >> 48)).FindConnection(id); }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(MigrationTest, AMovedConnectionKeepsServingWithItsFigures) {
  auto service = std::make_shared<SteeredService>();
  StartServer(service);
  ScopedFd fd = Connect();
  Echo(fd, "before the move");
  const uint64_t id = IdOf(fd);
  const int from = static_cast<int>(id >> 48);
  const int to = 1 - from;
  const std::optional<ConnectionStats> before = StatsOf(id);
  ASSERT_TRUE(before.has_value());

  const MigrationResult moved = server_->MigrateConnection(id, to);
  ASSERT_EQ(moved.status, MigrationStatus::kMoved) << moved.detail;
  EXPECT_EQ(moved.loop, to);
  EXPECT_NE(moved.new_id, id);
  EXPECT_EQ(static_cast<int>(moved.new_id >> 48), to);
  EXPECT_EQ(service->steering.arrivals.load(), 1);
  EXPECT_EQ(service->steering.last_loop.load(), to);
  EXPECT_EQ(LoopOf(fd), to);
  EXPECT_FALSE(StatsOf(id).has_value()) << "the old id is gone";

  // Its figures came along.
  const std::optional<ConnectionStats> after = StatsOf(moved.new_id);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->bytes_in, before->bytes_in);
  EXPECT_EQ(after->bytes_out, before->bytes_out);
  EXPECT_EQ(after->requests, before->requests);
  EXPECT_EQ(after->opened, before->opened);

  Echo(fd, "after the move");
  EXPECT_EQ(StatsOf(moved.new_id)->bytes_in, before->bytes_in + 14);

  // Counted on both loops, and the connection counts where it is now.
  EXPECT_EQ(server_->loop(from).stats().migrations_out.Get(), 1u);
  EXPECT_EQ(server_->loop(to).stats().migrations_in.Get(), 1u);
  EXPECT_EQ(server_->loop(from).stats().conns_active.Get(), 0);
  EXPECT_EQ(server_->loop(to).stats().conns_active.Get(), 1);

  // And back again.
  const MigrationResult back = server_->MigrateConnection(moved.new_id, from);
  ASSERT_EQ(back.status, MigrationStatus::kMoved) << back.detail;
  Echo(fd, "home");
  fd.reset();
  ASSERT_TRUE(test::WaitUntil([&] { return server_->Totals().conns_active == 0; }, Deadline::In(absl::Seconds(10))));
  EXPECT_EQ(server_->Totals().closed_total(), 1u) << "one connection, closed once, wherever it moved";
}

TEST_F(MigrationTest, BytesSentDuringTheMoveArriveInOrder) {
  StartServer(NewEchoService());
  ScopedFd fd = Connect();
  Echo(fd, "x");
  uint64_t id = IdOf(fd);
  std::mt19937_64 rng(11);
  for (int round = 0; round < 50; ++round) {
    // The request goes out while the connection moves: it waits in the socket (readiness back
    // ends) or comes along from the cancelled receive (io_uring).
    const std::string message = test::RandomBytes(rng, 1 + rng() % 20000);
    std::thread sender([&] { ASSERT_TRUE(test::WriteAll(fd.get(), message, Deadline::In(absl::Seconds(10))).ok()); });
    const MigrationResult r = server_->MigrateConnection(id, 1 - static_cast<int>(id >> 48));
    sender.join();
    absl::StatusOr<std::string> got = test::ReadExactly(fd.get(), message.size(), Deadline::In(absl::Seconds(10)));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, message) << "round " << round;
    if (r.status == MigrationStatus::kMoved) {
      id = r.new_id;
    } else {
      ASSERT_EQ(r.status, MigrationStatus::kNotAtBoundary) << r.detail;
    }
  }
}

// Clients stream random data and check every byte that comes back, in order, while a thread
// moves their connections between the loops as fast as it can.
TEST_F(MigrationTest, NothingIsLostDuplicatedOrReorderedUnderForcedMigrations) {
  constexpr int kLoops = 3;
  constexpr int kClients = 6;
  StartServer(NewEchoService(), kLoops);
  std::vector<ScopedFd> fds;
  for (int c = 0; c < kClients; ++c) {
    fds.push_back(Connect());
    Echo(fds.back(), "hello");
  }
  std::mutex mu;
  std::vector<uint64_t> ids;
  for (const ScopedFd& fd : fds) ids.push_back(IdOf(fd));

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> checked{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(100 + c);
      while (!stop.load()) {
        // Pipelined: several messages out before reading any back.
        std::string burst;
        const int messages = 1 + static_cast<int>(rng() % 8);
        for (int m = 0; m < messages; ++m) burst += test::RandomBytes(rng, 1 + rng() % 4096);
        if (!test::WriteAll(fds[c].get(), burst, Deadline::In(absl::Seconds(20))).ok()) {
          failures.fetch_add(1);
          return;
        }
        absl::StatusOr<std::string> got = test::ReadExactly(fds[c].get(), burst.size(), Deadline::In(absl::Seconds(20)));
        if (!got.ok() || *got != burst) {
          failures.fetch_add(1);
          return;
        }
        checked.fetch_add(burst.size());
      }
    });
  }
  int moved = 0;
  int not_at_boundary = 0;
  std::mt19937_64 rng(7);
  const Deadline deadline = Deadline::In(absl::Seconds(240));
  while (moved < kForcedMigrations && failures.load() == 0 && !deadline.expired()) {
    const size_t c = rng() % kClients;
    const uint64_t id = ids[c];
    const int target = static_cast<int>(((id >> 48) + 1 + rng() % (kLoops - 1)) % kLoops);
    const MigrationResult r = server_->MigrateConnection(id, target, absl::Milliseconds(200));
    if (r.status == MigrationStatus::kMoved) {
      ids[c] = r.new_id;
      ++moved;
    } else {
      ASSERT_EQ(r.status, MigrationStatus::kNotAtBoundary) << r.detail;
      ++not_at_boundary;
    }
  }
  stop.store(true);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0) << "a client saw a byte lost, added or out of order";
  EXPECT_EQ(moved, kForcedMigrations) << "moved " << moved << ", not at a boundary " << not_at_boundary;
  EXPECT_GT(checked.load(), 0u);
  uint64_t in = 0;
  uint64_t out = 0;
  for (int i = 0; i < kLoops; ++i) {
    in += server_->loop(i).stats().migrations_in.Get();
    out += server_->loop(i).stats().migrations_out.Get();
  }
  EXPECT_EQ(in, static_cast<uint64_t>(moved));
  EXPECT_EQ(out, static_cast<uint64_t>(moved));
  EXPECT_EQ(server_->Totals().conns_active, kClients);
  EXPECT_EQ(server_->Totals().closed_total(), 0u);
  // Every client is still served, wherever it ended up.
  for (const ScopedFd& fd : fds) Echo(fd, "still here");
}

TEST_F(MigrationTest, RequestsThatCannotBeCarriedOutAreRefusedWithTheReason) {
  auto service = std::make_shared<SteeredService>();
  StartServer(service, 3);
  ScopedFd fd = Connect();
  Echo(fd, "x");
  const uint64_t id = IdOf(fd);
  const int here = static_cast<int>(id >> 48);
  const int there = (here + 1) % 3;

  EXPECT_EQ(server_->MigrateConnection(id + 1000, there).status, MigrationStatus::kUnknownConnection);
  EXPECT_EQ(server_->MigrateConnection(uint64_t{77} << 48, there).status, MigrationStatus::kUnknownConnection);
  EXPECT_EQ(server_->MigrateConnection(id, 3).status, MigrationStatus::kNoSuchLoop);
  EXPECT_EQ(server_->MigrateConnection(id, -1).status, MigrationStatus::kNoSuchLoop);
  EXPECT_EQ(server_->MigrateConnection(id, here).status, MigrationStatus::kSameLoop);

  ASSERT_TRUE(server_->DrainLoop(there, /*close_idle=*/false).ok());
  const MigrationResult draining = server_->MigrateConnection(id, there);
  EXPECT_EQ(draining.status, MigrationStatus::kTargetDraining) << draining.detail;
  ASSERT_TRUE(server_->ResumeLoop(there).ok());

  service->steering.vote.store(static_cast<int>(MigrationVote::kNever));
  const MigrationResult declined = server_->MigrateConnection(id, there);
  EXPECT_EQ(declined.status, MigrationStatus::kDeclined) << declined.detail;
  service->steering.vote.store(static_cast<int>(MigrationVote::kLater));
  const MigrationResult later = server_->MigrateConnection(id, there, absl::Milliseconds(50));
  EXPECT_EQ(later.status, MigrationStatus::kNotAtBoundary) << later.detail;
  service->steering.vote.store(static_cast<int>(MigrationVote::kNow));

  // Paused for longer than the wait: refused.
  ASSERT_TRUE(test::WriteAll(fd.get(), "pause", Deadline::In(absl::Seconds(10))).ok());
  ASSERT_TRUE(test::WaitUntil(
      [&] {
        auto state = std::make_shared<ConnectionState>(ConnectionState::kOpen);
        test::RunOnLoop(
            server_->loop(here),
            [&, state] {
              if (Connection* c = Find(id)) *state = c->state();
            },
            Deadline::In(absl::Seconds(10)));
        return *state == ConnectionState::kPaused;
      },
      Deadline::In(absl::Seconds(10))));
  const MigrationResult paused = server_->MigrateConnection(id, there, absl::Milliseconds(100));
  EXPECT_EQ(paused.status, MigrationStatus::kPaused) << paused.detail;
  ASSERT_TRUE(test::RunOnLoop(
      server_->loop(here),
      [&] {
        if (Connection* c = Find(id)) c->Resume();
      },
      Deadline::In(absl::Seconds(10))));

  // Output queued that the client does not read: not at a boundary within the wait.
  ASSERT_TRUE(test::WriteAll(fd.get(), "big:", Deadline::In(absl::Seconds(10))).ok());
  ASSERT_TRUE(test::WaitUntil([&] { return StatsOf(id).value_or(ConnectionStats{}).queued_output > 0; },
                              Deadline::In(absl::Seconds(10))));
  const MigrationResult busy = server_->MigrateConnection(id, there, absl::Milliseconds(100));
  EXPECT_EQ(busy.status, MigrationStatus::kNotAtBoundary) << busy.detail;

  // Untouched by all of it: on its loop, under its id, every byte of the reply delivered, and
  // it echoes.
  absl::StatusOr<std::string> reply = test::ReadExactly(fd.get(), 8 << 20, Deadline::In(absl::Seconds(30)));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, std::string(8 << 20, 'b'));
  Echo(fd, "untouched");
  EXPECT_EQ(IdOf(fd), id);
  EXPECT_EQ(service->steering.arrivals.load(), 0);
  EXPECT_EQ(server_->loop(here).stats().migrations_out.Get(), 0u);
  EXPECT_GE(server_->loop(here).stats().migrations_refused.Get(), 5u);

  // A connection whose peer has closed is closing: refused.
  ScopedFd closing = Connect();
  Echo(closing, "y");
  const uint64_t closing_id = IdOf(closing);
  ::shutdown(closing.get(), SHUT_WR);
  ASSERT_TRUE(test::ExpectEof(closing.get(), Deadline::In(absl::Seconds(10))).ok());
  const MigrationResult gone = server_->MigrateConnection(closing_id, (static_cast<int>(closing_id >> 48) + 1) % 3);
  EXPECT_TRUE(gone.status == MigrationStatus::kClosing || gone.status == MigrationStatus::kUnknownConnection)
      << MigrationStatusName(gone.status) << ": " << gone.detail;
}

TEST_F(MigrationTest, AHandlerThatDoesNotKnowAboutMigrationIsNeverMoved) {
  // The default vote is kNever.
  class Plain final : public Handler {
   public:
    Action OnData(Connection& conn, Buffer& input) override {
      conn.output().Append(input.view());
      input.Consume(input.size());
      return Action::Continue();
    }
  };
  class PlainService final : public Service {
   public:
    std::string_view name() const override { return "plain"; }
    std::unique_ptr<Handler> NewHandler(Connection&) override { return std::make_unique<Plain>(); }
  };
  StartServer(std::make_shared<PlainService>());
  ScopedFd fd = Connect();
  Echo(fd, "x");
  const uint64_t id = IdOf(fd);
  EXPECT_EQ(server_->MigrateConnection(id, 1 - static_cast<int>(id >> 48)).status, MigrationStatus::kDeclined);
  Echo(fd, "y");
}

TEST_F(MigrationTest, ANotRunningServerRefuses) {
  ServerOptions options;
  options.loops = 2;
  Server server(options);
  EXPECT_EQ(server.MigrateConnection(1, 1).status, MigrationStatus::kNotRunning);
}

}  // namespace
}  // namespace percore
