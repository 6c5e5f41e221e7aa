// The rebalancer: its plan on given loads (which loops are overloaded, which connections move
// where, and which do not because the move would only turn the imbalance round), and a live
// server where two busy connections share a loop until the rebalancer parts them.

#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/rebalancer.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/server_probe.h"

namespace percore {
namespace {

using test::Deadline;

RebalanceLoop Loop(int load, std::vector<RebalanceCandidate> candidates = {}) {
  RebalanceLoop l;
  l.load_permille = load;
  for (const RebalanceCandidate& c : candidates) {
    l.total_requests_per_sec += c.requests_per_sec;
    l.total_bytes_per_sec += c.bytes_per_sec;
  }
  l.candidates = std::move(candidates);
  return l;
}

RebalanceCandidate Conn(uint64_t id, uint64_t rps, uint64_t bps = 0) { return {id, rps, bps, false}; }

TEST(RebalancePlanTest, BalancedOrIdleLoopsMoveNothing) {
  const RebalanceOptions options;
  // Within 25% of the mean.
  EXPECT_TRUE(OverloadedLoops({Loop(500), Loop(420), Loop(450), Loop(480)}, options).empty());
  // Skewed, but the busiest is under min_load (10%): noise.
  EXPECT_TRUE(OverloadedLoops({Loop(90), Loop(0), Loop(0), Loop(0)}, options).empty());
  // One loop has no one to give to.
  EXPECT_TRUE(OverloadedLoops({Loop(1000)}, options).empty());
  EXPECT_TRUE(PlanRebalance({Loop(500, {Conn(1, 100)}), Loop(420)}, options).empty());
}

TEST(RebalancePlanTest, FourHeavyConnectionsOnOneLoopSpreadOverFour) {
  const RebalanceOptions options;
  // Loop 0 carries four heavy connections and some light ones.
  std::vector<RebalanceCandidate> heavy = {Conn(1, 24000), Conn(2, 25000), Conn(3, 23000), Conn(4, 24500),
                                           Conn(5, 100), Conn(6, 80)};
  const std::vector<RebalanceLoop> loops = {Loop(1000, heavy), Loop(40), Loop(30), Loop(50)};
  EXPECT_EQ(OverloadedLoops(loops, options), std::vector<int>({0}));
  const std::vector<RebalanceMove> moves = PlanRebalance(loops, options);
  ASSERT_EQ(moves.size(), 3u);
  std::map<int, int> to;
  for (const RebalanceMove& m : moves) {
    EXPECT_EQ(m.from, 0);
    EXPECT_LE(m.id, 4u) << "a heavy connection, not a light one";
    to[m.to]++;
    EXPECT_GT(m.estimated_permille, 200);
  }
  EXPECT_EQ(to, (std::map<int, int>{{1, 1}, {2, 1}, {3, 1}})) << "one to each other loop";
}

TEST(RebalancePlanTest, AConnectionWhoseMoveWouldTurnTheImbalanceRoundStays) {
  const RebalanceOptions options;
  // One connection makes all of loop 0's load: moved, loop 1 would be as busy as loop 0 was.
  EXPECT_TRUE(PlanRebalance({Loop(800, {Conn(1, 50000)}), Loop(100)}, options).empty());
  // Three equal connections on two loops: one moves; two against one is then as good as it gets.
  std::vector<RebalanceLoop> loops = {Loop(900, {Conn(1, 1000), Conn(2, 1000), Conn(3, 1000)}), Loop(0)};
  std::vector<RebalanceMove> moves = PlanRebalance(loops, options);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].to, 1);
  // The next round sees 600 and 300: the one that moved is recent, and moving another of the
  // two left would make loop 1 the busier.
  loops = {Loop(600, {Conn(2, 1000), Conn(3, 1000)}), Loop(300, {RebalanceCandidate{1, 1000, 0, true}})};
  EXPECT_EQ(OverloadedLoops(loops, options), std::vector<int>({0}));
  EXPECT_TRUE(PlanRebalance(loops, options).empty());
}

TEST(RebalancePlanTest, RecentlyMovedAndDrainingAreLeftAlone) {
  const RebalanceOptions options;
  RebalanceCandidate recent = Conn(1, 1000);
  recent.recently_moved = true;
  EXPECT_TRUE(PlanRebalance({Loop(900, {recent, Conn(2, 1000)}), Loop(0)}, options).size() == 1);
  EXPECT_EQ(PlanRebalance({Loop(900, {recent, Conn(2, 1000)}), Loop(0)}, options)[0].id, 2u);
  // The only other loop is draining: nowhere to go.
  RebalanceLoop draining = Loop(0);
  draining.accepting = false;
  EXPECT_TRUE(PlanRebalance({Loop(900, {Conn(1, 100), Conn(2, 100)}), draining}, options).empty());
  // A draining loop's load does not count in the mean either.
  RebalanceLoop busy_draining = Loop(1000);
  busy_draining.accepting = false;
  EXPECT_TRUE(OverloadedLoops({Loop(500), Loop(450), busy_draining}, options).empty());
}

TEST(RebalancePlanTest, LoopsThatAnswerNoRequestsAreWeighedByBytes) {
  const RebalanceOptions options;
  const std::vector<RebalanceMove> moves =
      PlanRebalance({Loop(800, {Conn(1, 0, 9'000'000), Conn(2, 0, 1'000'000), Conn(3, 0, 8'000'000)}), Loop(0)},
                    options);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].id, 1u) << "by bytes, it carries half the loop's load";
}

TEST(RebalancePlanTest, OptionsOutOfRangeAreRefused) {
  RebalanceOptions o;
  EXPECT_TRUE(CheckRebalanceOptions(o).ok());
  o.interval = absl::Milliseconds(1);
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  o.interval = absl::InfiniteDuration();  // a wait that overflows the clock would never wait
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  o.interval = absl::Hours(25);
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  o = {};
  o.threshold = std::nan("");
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  o = {};
  o.threshold = -0.1;
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  o = {};
  o.min_load = 1.5;
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  o = {};
  o.max_moves = 0;
  EXPECT_FALSE(CheckRebalanceOptions(o).ok());
  RebalanceMode mode;
  EXPECT_TRUE(ParseRebalanceMode("load", &mode));
  EXPECT_EQ(mode, RebalanceMode::kLoad);
  EXPECT_FALSE(ParseRebalanceMode("lo", &mode));
}

// Two connections pumping checked echo traffic; both start on loop 0 of two.
class LiveRebalanceTest : public ::testing::Test {
 protected:
  void Start(RebalanceMode mode) {
    ServerOptions options;
    options.loops = 2;
    options.rebalance.mode = mode;
    options.rebalance.interval = absl::Milliseconds(200);
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(NewEchoService()).ok());
    absl::StatusOr<ListenerInfo> echo = server_->Listen("echo", {"127.0.0.1", 0});
    ASSERT_TRUE(echo.ok()) << echo.status();
    ASSERT_TRUE(server_->Start().ok());
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(echo->bound.port(), Deadline::In(absl::Seconds(5)));
      ASSERT_TRUE(fd.ok()) << fd.status();
      ASSERT_TRUE(test::WriteAll(fd->get(), "x", Deadline::In(absl::Seconds(5))).ok());
      ASSERT_TRUE(test::ReadExactly(fd->get(), 1, Deadline::In(absl::Seconds(5))).ok());
      absl::StatusOr<uint16_t> port = test::LocalPort(fd->get());
      ASSERT_TRUE(port.ok());
      ports_.push_back(*port);
      fds_.push_back(std::move(*fd));
    }
    // Round robin put them on loops 0 and 1: the second joins the first.
    std::map<uint16_t, uint64_t> ids = test::IdByPeerPort(*server_, Deadline::In(absl::Seconds(5)));
    ASSERT_EQ(ids.size(), 2u);
    for (uint16_t port : ports_) {
      if ((ids[port] >> 48) == 1) {
        ASSERT_EQ(server_->MigrateConnection(ids[port], 0).status, MigrationStatus::kMoved);
      }
    }
    ASSERT_EQ(Loops(), (std::vector<int>{0, 0}));
    for (size_t i = 0; i < fds_.size(); ++i) {
      pumps_.emplace_back([this, fd = fds_[i].get()] { Pump(fd); });
    }
  }

  void TearDown() override {
    stop_ = true;
    for (std::thread& t : pumps_) t.join();
    fds_.clear();
    if (server_) server_->Stop(absl::ZeroDuration());
  }

  // 16 KiB out, the same 16 KiB back, checked, until told to stop.
  void Pump(int fd) {
    std::string block(16384, '\0');
    uint8_t next = 0;
    while (!stop_) {
      for (char& c : block) c = static_cast<char>(next++);
      if (!test::WriteAll(fd, block, Deadline::In(absl::Seconds(10))).ok()) {
        failures_++;
        return;
      }
      absl::StatusOr<std::string> back = test::ReadExactly(fd, block.size(), Deadline::In(absl::Seconds(10)));
      if (!back.ok() || *back != block) {
        failures_++;
        return;
      }
      rounds_++;
    }
  }

  std::vector<int> Loops() {
    std::map<uint16_t, int> loops = test::LoopByPeerPort(*server_, Deadline::In(absl::Seconds(5)));
    std::vector<int> out;
    for (uint16_t port : ports_) out.push_back(loops.count(port) ? loops[port] : -1);
    return out;
  }

  std::unique_ptr<Server> server_;
  std::vector<test::ScopedFd> fds_;
  std::vector<uint16_t> ports_;
  std::vector<std::thread> pumps_;
  std::atomic<bool> stop_{false};
  std::atomic<int> failures_{0};
  std::atomic<uint64_t> rounds_{0};
};

TEST_F(LiveRebalanceTest, TwoBusyConnectionsOnOneLoopArePartedAndStayParted) {
  ASSERT_NO_FATAL_FAILURE(Start(RebalanceMode::kLoad));
  const RebalanceStats* stats = server_->rebalance_stats();
  ASSERT_NE(stats, nullptr);
  const bool parted = test::WaitUntil(
      [&] {
        const std::vector<int> loops = Loops();
        return loops.size() == 2 && loops[0] >= 0 && loops[1] >= 0 && loops[0] != loops[1];
      },
      Deadline::In(absl::Seconds(20)), absl::Milliseconds(20));
  ASSERT_TRUE(parted) << "rounds " << stats->rounds << ", imbalanced " << stats->imbalanced_rounds << ", unmovable "
                      << stats->unmovable_rounds << ", moved " << stats->moved << ", failed " << stats->move_failures
                      << "; loads " << server_->loop(0).stats().load_permille.Get() << " / "
                      << server_->loop(1).stats().load_permille.Get();
  EXPECT_GE(stats->moved.load(), 1u);
  // Ten more rounds with both still busy: no connection goes back.
  const uint64_t moved = stats->moved.load();
  const uint64_t rounds = stats->rounds.load();
  ASSERT_TRUE(test::WaitUntil([&] { return stats->rounds.load() >= rounds + 10; }, Deadline::In(absl::Seconds(20))));
  EXPECT_EQ(stats->moved.load(), moved) << "no ping-pong";
  const std::vector<int> loops = Loops();
  EXPECT_NE(loops[0], loops[1]);
  EXPECT_EQ(failures_.load(), 0) << "every echoed byte came back in order";
  EXPECT_GT(rounds_.load(), 0u);
}

TEST_F(LiveRebalanceTest, WithoutTheRebalancerTheyStayTogether) {
  ASSERT_NO_FATAL_FAILURE(Start(RebalanceMode::kOff));
  EXPECT_EQ(server_->rebalance_stats(), nullptr);
  // As long as the other test needs at most to part them: until loop 0's load window has
  // filled several times over.
  const uint64_t start = rounds_.load();
  ASSERT_TRUE(test::WaitUntil([&] { return server_->loop(0).stats().load_permille.Get() > 100; },
                              Deadline::In(absl::Seconds(10))));
  ASSERT_TRUE(test::WaitUntil([&] { return rounds_.load() > start + 2000; }, Deadline::In(absl::Seconds(30))));
  EXPECT_EQ(Loops(), (std::vector<int>{0, 0}));
  EXPECT_EQ(server_->loop(0).stats().migrations_out.Get(), 0u);
  EXPECT_EQ(failures_.load(), 0);
}

}  // namespace
}  // namespace percore
