// The loop's load signal (LoopStats::load_permille) and --balance=least_loaded over a real
// Server: the load rises while a loop works and falls to zero once it idles; it comes from the
// thread's CPU clock, so loops outnumbering cores never add up to more than the cores; and
// least_loaded places new connections away from a busy loop, then by connections once the
// loads are equal again, counting each decision.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "reactor/balance_policy.h"
#include "reactor/server.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/server_probe.h"
#include "tests/testing/test_backend.h"

namespace percore {
namespace {

using test::Deadline;
using test::WaitUntil;

// Keeps a loop busy: a task that spins for 5 ms of wall time and posts itself again, so the
// loop still iterates (and samples its load) between spins. Stops when `stop` is set.
void Spin(EventLoop& loop, std::shared_ptr<std::atomic<bool>> stop) {
  if (stop->load()) return;
  const int64_t until = MonotonicNanos() + 5'000'000;
  while (MonotonicNanos() < until) {
  }
  loop.Post([&loop, stop] { Spin(loop, stop); });
}

class LoadSignalTest : public ::testing::Test {
 protected:
  void StartServer(int loops, BalancePolicyKind balance) {
    ServerOptions options;
    options.loops = loops;
    options.backend = test::TestBackend();
    options.balance = balance;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(NewEchoService()).ok());
    absl::StatusOr<ListenerInfo> listener = server_->Listen("echo", HostPort{"127.0.0.1", 0});
    ASSERT_TRUE(listener.ok()) << listener.status();
    port_ = listener->bound.port();
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    for (auto& stop : spinning_) stop->store(true);
    if (server_) server_->Stop();
  }
  void StartSpinning(int loop) {
    auto stop = std::make_shared<std::atomic<bool>>(false);
    spinning_.push_back(stop);
    EventLoop& l = server_->loop(loop);
    l.Post([&l, stop] { Spin(l, stop); });
  }
  void StopSpinning() {
    for (auto& stop : spinning_) stop->store(true);
  }
  int64_t Load(int loop) { return server_->loop(loop).stats().load_permille.Get(); }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::vector<std::shared_ptr<std::atomic<bool>>> spinning_;
};

TEST_F(LoadSignalTest, RisesWhileALoopWorksAndFallsToZeroWhenItIdles) {
  StartServer(2, BalancePolicyKind::kRoundRobin);
  EXPECT_EQ(Load(0), 0);
  const uint64_t cpu_before = server_->loop(0).stats().cpu_ns.Get();
  StartSpinning(0);
  ASSERT_TRUE(WaitUntil([&] { return Load(0) >= 300; }, Deadline::In(absl::Seconds(30)), absl::Milliseconds(20)))
      << "load " << Load(0);
  EXPECT_LE(Load(1), 100) << "the idle loop";
  EXPECT_GT(server_->loop(0).stats().cpu_ns.Get(), cpu_before);
  StopSpinning();
  // Within a window or so of the last work; the loop wakes for its samples until it is at zero.
  ASSERT_TRUE(WaitUntil([&] { return Load(0) == 0; }, Deadline::In(absl::Seconds(30)), absl::Milliseconds(20)))
      << "load " << Load(0);
}

TEST_F(LoadSignalTest, LoopsOutnumberingTheCoresNeverAddUpToMoreThanTheCores) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int loops = 2 * cores;
  StartServer(loops, BalancePolicyKind::kRoundRobin);
  for (int i = 0; i < loops; ++i) StartSpinning(i);
  // Every reading, at every moment: the loads are CPU time over wall time, so together they
  // cannot exceed the cores (plus the rounding of loads sampled at slightly different times).
  // Busy time by the wall clock would count each spinning loop as fully busy.
  int all_busy_readings = 0;
  int64_t worst_sum = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        int64_t sum = 0;
        bool all_busy = true;
        for (int i = 0; i < loops; ++i) {
          sum += Load(i);
          all_busy = all_busy && Load(i) >= 50;
        }
        worst_sum = std::max(worst_sum, sum);
        if (all_busy) ++all_busy_readings;
        return all_busy_readings >= 20;
      },
      Deadline::In(absl::Seconds(60)), absl::Milliseconds(50)));
  EXPECT_LE(worst_sum, int64_t{1000} * cores + 150) << loops << " loops on " << cores << " cores";
}

// A connection to `port` that has had one echo answered: the loop has taken it in.
test::ScopedFd Echoed(uint16_t port, const std::string& message) {
  absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, Deadline::In(absl::Seconds(10)));
  EXPECT_TRUE(fd.ok()) << fd.status();
  if (!fd.ok()) return test::ScopedFd();
  EXPECT_TRUE(test::WriteAll(fd->get(), message, Deadline::In(absl::Seconds(10))).ok());
  EXPECT_EQ(test::ReadExactly(fd->get(), message.size(), Deadline::In(absl::Seconds(10))).value_or(""), message);
  return std::move(*fd);
}

// Which loop each of `clients` was placed on.
std::vector<int> LoopsOf(Server& server, const std::vector<test::ScopedFd>& clients) {
  const std::map<uint16_t, int> loop_of = test::LoopByPeerPort(server, Deadline::In(absl::Seconds(10)));
  std::vector<int> out;
  for (const test::ScopedFd& c : clients) {
    auto it = loop_of.find(test::LocalPort(c.get()).value_or(0));
    out.push_back(it == loop_of.end() ? -1 : it->second);
  }
  return out;
}

TEST_F(LoadSignalTest, LeastLoadedPlacesAwayFromABusyLoopThenByConnections) {
  StartServer(2, BalancePolicyKind::kLeastLoaded);
  const AcceptCounters& counters = server_->distributor_stats()->counters;
  StartSpinning(0);
  ASSERT_TRUE(WaitUntil([&] { return Load(0) >= 300 && Load(1) <= 100; }, Deadline::In(absl::Seconds(30)),
                        absl::Milliseconds(20)))
      << "loads " << Load(0) << " " << Load(1);
  std::vector<test::ScopedFd> clients;
  for (int i = 0; i < 6; ++i) clients.push_back(Echoed(port_, "ping"));
  EXPECT_EQ(LoopsOf(*server_, clients), (std::vector<int>{1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(counters.placed_by_load.Get(), 6u);
  EXPECT_EQ(counters.placed_by_connections.Get(), 0u);

  // Equal loads again (both idle): the loop with fewer connections takes the next ones.
  StopSpinning();
  ASSERT_TRUE(WaitUntil([&] { return Load(0) <= kLoadTiePermille && Load(1) <= kLoadTiePermille; },
                        Deadline::In(absl::Seconds(30)), absl::Milliseconds(20)))
      << "loads " << Load(0) << " " << Load(1);
  std::vector<test::ScopedFd> more;
  for (int i = 0; i < 6; ++i) more.push_back(Echoed(port_, "pong"));
  EXPECT_EQ(LoopsOf(*server_, more), (std::vector<int>{0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(counters.placed_by_load.Get(), 6u);
  EXPECT_EQ(counters.placed_by_connections.Get(), 6u);
}

TEST_F(LoadSignalTest, LeastLoadedCanBeSwitchedToAndFromWhileRunning) {
  StartServer(2, BalancePolicyKind::kRoundRobin);
  ASSERT_TRUE(server_->SetBalancePolicy(BalancePolicyKind::kLeastLoaded).ok());
  EXPECT_EQ(server_->balance_policy(), BalancePolicyKind::kLeastLoaded);
  test::ScopedFd c = Echoed(port_, "x");
  const AcceptCounters& counters = server_->distributor_stats()->counters;
  EXPECT_EQ(counters.placed_by_load.Get() + counters.placed_by_connections.Get(), 1u);
  ASSERT_TRUE(server_->SetBalancePolicy(BalancePolicyKind::kRoundRobin).ok());
  test::ScopedFd d = Echoed(port_, "y");
  EXPECT_EQ(counters.placed_by_load.Get() + counters.placed_by_connections.Get(), 1u) << "round_robin counts none";
}

}  // namespace
}  // namespace percore
