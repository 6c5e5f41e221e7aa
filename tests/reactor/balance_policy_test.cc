// Balancing policies: round_robin's cycle and its skipping of ineligible loops,
// least_connections' choice and tie-break, power_of_two's "less loaded of the two drawn",
// least_loaded's load first, connections among equal loads, and the policy names.

#include "reactor/balance_policy.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

// Candidates for the given loop indexes, all with `live` connections.
std::vector<LoopLoad> Loops(std::initializer_list<int> indexes, int64_t live = 0) {
  std::vector<LoopLoad> out;
  for (int i : indexes) out.push_back(LoopLoad{i, live});
  return out;
}

std::vector<LoopLoad> Loads(std::initializer_list<int64_t> lives) {
  std::vector<LoopLoad> out;
  int i = 0;
  for (int64_t live : lives) out.push_back(LoopLoad{i++, live});
  return out;
}

// The loop index a policy picks (checking the returned position is in range).
int PickLoop(BalancePolicy& policy, const std::vector<LoopLoad>& candidates) {
  const size_t i = policy.Pick(std::span<const LoopLoad>(candidates));
  EXPECT_LT(i, candidates.size());
  return i < candidates.size() ? candidates[i].loop : -1;
}

// --- round_robin ---

TEST(RoundRobinPolicyTest, CyclesThroughAllLoops) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kRoundRobin);
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->kind(), BalancePolicyKind::kRoundRobin);
  const std::vector<LoopLoad> all = Loops({0, 1, 2, 3});
  std::vector<int> picks;
  for (int i = 0; i < 10; ++i) picks.push_back(PickLoop(*policy, all));
  EXPECT_EQ(picks, (std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1}));
}

TEST(RoundRobinPolicyTest, IgnoresLoad) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kRoundRobin);
  const std::vector<LoopLoad> loads = Loads({1000, 0, 500});
  std::vector<int> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(PickLoop(*policy, loads));
  EXPECT_EQ(picks, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobinPolicyTest, SkipsAbsentLoops) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kRoundRobin);
  const std::vector<LoopLoad> some = Loops({0, 2, 3, 5});  // 1 and 4 draining or full
  std::vector<int> picks;
  for (int i = 0; i < 9; ++i) picks.push_back(PickLoop(*policy, some));
  EXPECT_EQ(picks, (std::vector<int>{0, 2, 3, 5, 0, 2, 3, 5, 0}));
}

TEST(RoundRobinPolicyTest, ContinuesAfterTheLastPickWhenEligibilityChanges) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kRoundRobin);
  const std::vector<LoopLoad> all = Loops({0, 1, 2, 3});
  const std::vector<LoopLoad> without_2 = Loops({0, 1, 3});
  const std::vector<LoopLoad> only_0 = Loops({0});
  const std::vector<LoopLoad> only_2 = Loops({2});
  EXPECT_EQ(PickLoop(*policy, all), 0);
  EXPECT_EQ(PickLoop(*policy, all), 1);
  EXPECT_EQ(PickLoop(*policy, without_2), 3);  // 2 is skipped, not 0
  EXPECT_EQ(PickLoop(*policy, all), 0);        // wrapped
  EXPECT_EQ(PickLoop(*policy, only_0), 0);
  EXPECT_EQ(PickLoop(*policy, only_0), 0);
  EXPECT_EQ(PickLoop(*policy, all), 1);
  EXPECT_EQ(PickLoop(*policy, only_2), 2);
  EXPECT_EQ(PickLoop(*policy, only_2), 2);
  EXPECT_EQ(PickLoop(*policy, all), 3);
  EXPECT_EQ(PickLoop(*policy, all), 0);
}

TEST(RoundRobinPolicyTest, CountsDifferByAtMostOne) {
  for (int loops = 1; loops <= 7; ++loops) {
    std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kRoundRobin);
    std::vector<LoopLoad> all;
    for (int i = 0; i < loops; ++i) all.push_back(LoopLoad{i, 0});
    std::vector<int> counts(loops, 0);
    for (int n = 1; n <= 100; ++n) {
      ++counts[PickLoop(*policy, all)];
      const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
      ASSERT_LE(*hi - *lo, 1) << loops << " loops after " << n << " picks";
    }
  }
}

TEST(RoundRobinPolicyTest, CountsAmongEligibleLoopsDifferByAtMostOne) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kRoundRobin);
  const std::vector<LoopLoad> some = Loops({1, 4, 6});
  std::vector<int> counts(8, 0);
  for (int n = 0; n < 100; ++n) ++counts[PickLoop(*policy, some)];
  EXPECT_EQ(counts[0] + counts[2] + counts[3] + counts[5] + counts[7], 0);
  EXPECT_EQ(counts[1], 34);
  EXPECT_EQ(counts[4], 33);
  EXPECT_EQ(counts[6], 33);
}

// --- least_connections ---

TEST(LeastConnectionsPolicyTest, PicksTheMinimum) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastConnections);
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->kind(), BalancePolicyKind::kLeastConnections);
  EXPECT_EQ(PickLoop(*policy, Loads({5, 3, 9, 4})), 1);
  EXPECT_EQ(PickLoop(*policy, Loads({0, 3, 9, 4})), 0);
  EXPECT_EQ(PickLoop(*policy, Loads({8, 3, 9, 1})), 3);
  EXPECT_EQ(PickLoop(*policy, Loads({7})), 0);
  // Deterministic: the same loads give the same choice every time.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(PickLoop(*policy, Loads({5, 3, 9, 4})), 1);
}

TEST(LeastConnectionsPolicyTest, TiesGoToTheLowestIndex) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastConnections);
  EXPECT_EQ(PickLoop(*policy, Loads({2, 1, 1, 1})), 1);
  EXPECT_EQ(PickLoop(*policy, Loads({0, 0, 0, 0})), 0);
  EXPECT_EQ(PickLoop(*policy, Loads({3, 2, 5, 2})), 1);
  std::vector<LoopLoad> gaps = {{1, 4}, {3, 2}, {6, 2}, {7, 9}};
  EXPECT_EQ(PickLoop(*policy, gaps), 3);
}

TEST(LeastConnectionsPolicyTest, FillsLoopsEvenlyWhenTheCallerCountsPicks) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastConnections);
  std::vector<LoopLoad> loads = Loads({3, 0, 1, 0});
  for (int n = 0; n < 40; ++n) ++loads[static_cast<size_t>(PickLoop(*policy, loads))].live;
  int64_t lo = loads[0].live;
  int64_t hi = loads[0].live;
  for (const LoopLoad& l : loads) {
    lo = std::min(lo, l.live);
    hi = std::max(hi, l.live);
  }
  EXPECT_LE(hi - lo, 1);
  EXPECT_EQ(loads[0].live + loads[1].live + loads[2].live + loads[3].live, 44);
}

// --- power_of_two ---

TEST(PowerOfTwoPolicyTest, OneCandidateIsAlwaysPicked) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kPowerOfTwo);
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->kind(), BalancePolicyKind::kPowerOfTwo);
  const std::vector<LoopLoad> one = {{5, 1000}};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(policy->Pick(std::span<const LoopLoad>(one)), 0u);
}

// With two candidates both are always drawn, so the less loaded one always wins.
TEST(PowerOfTwoPolicyTest, OfTwoCandidatesAlwaysPicksTheLessLoaded) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kPowerOfTwo);
  const std::vector<LoopLoad> low_first = Loads({0, 100});
  const std::vector<LoopLoad> low_second = Loads({100, 0});
  int wrong = 0;
  for (int i = 0; i < 10'000; ++i) {
    if (PickLoop(*policy, low_first) != 0) ++wrong;
    if (PickLoop(*policy, low_second) != 1) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
}

TEST(PowerOfTwoPolicyTest, NeverPicksTheUniqueMaximum) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kPowerOfTwo);
  const std::vector<LoopLoad> loads = Loads({5, 1000, 7, 3, 6});
  std::vector<int> counts(loads.size(), 0);
  constexpr int kPicks = 20'000;
  for (int i = 0; i < kPicks; ++i) ++counts[static_cast<size_t>(PickLoop(*policy, loads))];
  EXPECT_EQ(counts[1], 0);
  // The least loaded wins whenever it is drawn: far more often than any other.
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i != 3) {
      EXPECT_GT(counts[3], counts[i]) << "loop " << i;
    }
  }
  // Every loop but the maximum gets some (2,000 picks each would be expected even for the
  // second most loaded; zero would mean the draw is not random).
  for (size_t i : {0u, 2u, 3u, 4u}) EXPECT_GT(counts[i], 0) << "loop " << i;
}

TEST(PowerOfTwoPolicyTest, AmongEqualLoadsEveryLoopIsUsed) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kPowerOfTwo);
  const std::vector<LoopLoad> loads = Loads({4, 4, 4, 4});
  std::vector<int> counts(loads.size(), 0);
  for (int i = 0; i < 4000; ++i) ++counts[static_cast<size_t>(PickLoop(*policy, loads))];
  for (size_t i = 0; i < counts.size(); ++i) EXPECT_GT(counts[i], 0) << "loop " << i;
}

TEST(PowerOfTwoPolicyTest, ReturnsPositionsNotLoopIndexes) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kPowerOfTwo);
  const std::vector<LoopLoad> gaps = {{3, 50}, {9, 0}};
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(policy->Pick(std::span<const LoopLoad>(gaps)), 1u);
}

// --- least_loaded ---

// Candidates 0..n-1 with the given loads (thousandths) and live connections.
std::vector<LoopLoad> Loaded(std::initializer_list<std::pair<int64_t, int64_t>> load_and_live) {
  std::vector<LoopLoad> out;
  int i = 0;
  for (auto [load, live] : load_and_live) out.push_back(LoopLoad{i++, live, load, 0});
  return out;
}

TEST(LeastLoadedPolicyTest, TheLeastLoadedLoopWinsWhateverItsConnections) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastLoaded);
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->kind(), BalancePolicyKind::kLeastLoaded);
  EXPECT_EQ(PickLoop(*policy, Loaded({{900, 1}, {100, 50}, {500, 0}})), 1);
  EXPECT_TRUE(policy->last_pick_by_load());
  EXPECT_EQ(PickLoop(*policy, Loaded({{0, 100}, {1000, 0}})), 0);
  EXPECT_TRUE(policy->last_pick_by_load());
}

TEST(LeastLoadedPolicyTest, LoadsWithinTheTieBandAreDecidedByConnections) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastLoaded);
  // 300 and 300 + kLoadTiePermille are equal; one more thousandth is not.
  EXPECT_EQ(PickLoop(*policy, Loaded({{300, 9}, {300 + kLoadTiePermille, 2}})), 1);
  EXPECT_FALSE(policy->last_pick_by_load());
  EXPECT_EQ(PickLoop(*policy, Loaded({{300, 9}, {301 + kLoadTiePermille, 2}})), 0);
  EXPECT_TRUE(policy->last_pick_by_load());
  // Among the equals only: the loop ruled out by load does not win on connections.
  EXPECT_EQ(PickLoop(*policy, Loaded({{500, 0}, {100, 7}, {120, 3}})), 2);
  EXPECT_TRUE(policy->last_pick_by_load());
  // Idle loops: fewest connections, then the lowest index.
  EXPECT_EQ(PickLoop(*policy, Loaded({{0, 4}, {0, 2}, {0, 2}})), 1);
  EXPECT_FALSE(policy->last_pick_by_load());
}

TEST(LeastLoadedPolicyTest, ConnectionsNotYetTakenInCount) {
  // Between two load samples the loads do not move: the hand-offs a loop has not taken in yet
  // keep a burst from landing on one loop.
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastLoaded);
  std::vector<LoopLoad> loops = {{0, 5, 200, 0}, {1, 5, 210, 0}, {2, 5, 190, 0}};
  std::vector<int> placed(3);
  for (int n = 0; n < 30; ++n) {
    const int i = PickLoop(*policy, loops);
    ++loops[static_cast<size_t>(i)].pending;
    ++placed[static_cast<size_t>(i)];
  }
  EXPECT_EQ(placed, (std::vector<int>{10, 10, 10}));
}

TEST(LeastLoadedPolicyTest, ReturnsPositionsNotLoopIndexes) {
  std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(BalancePolicyKind::kLeastLoaded);
  const std::vector<LoopLoad> gaps = {{3, 0, 800, 0}, {9, 10, 100, 0}};
  EXPECT_EQ(policy->Pick(std::span<const LoopLoad>(gaps)), 1u);
}

// --- Names ---

TEST(BalancePolicyNameTest, ParseAndNameRoundTrip) {
  for (BalancePolicyKind kind : {BalancePolicyKind::kRoundRobin, BalancePolicyKind::kLeastConnections,
                                 BalancePolicyKind::kPowerOfTwo, BalancePolicyKind::kLeastLoaded,
                                 BalancePolicyKind::kReusePort}) {
    const std::string name(BalancePolicyName(kind));
    BalancePolicyKind parsed = kind == BalancePolicyKind::kRoundRobin ? BalancePolicyKind::kPowerOfTwo
                                                                     : BalancePolicyKind::kRoundRobin;
    ASSERT_TRUE(ParseBalancePolicy(name, &parsed)) << name;
    EXPECT_EQ(parsed, kind) << name;
  }
  EXPECT_EQ(BalancePolicyName(BalancePolicyKind::kRoundRobin), "round_robin");
  EXPECT_EQ(BalancePolicyName(BalancePolicyKind::kLeastConnections), "least_connections");
  EXPECT_EQ(BalancePolicyName(BalancePolicyKind::kPowerOfTwo), "power_of_two");
  EXPECT_EQ(BalancePolicyName(BalancePolicyKind::kLeastLoaded), "least_loaded");
  EXPECT_EQ(BalancePolicyName(BalancePolicyKind::kReusePort), "reuseport");
}

TEST(BalancePolicyNameTest, UnknownNamesAreRejectedAndLeaveTheOutputAlone) {
  for (const char* text : {"", "round-robin", "ROUND_ROBIN", "Round_Robin", "round_robin ", " round_robin",
                           "roundrobin", "least", "least_connection", "power_of_2", "p2c", "random",
                           "reuse_port", "unknown", "round_robin\n"}) {
    BalancePolicyKind out = BalancePolicyKind::kLeastConnections;
    EXPECT_FALSE(ParseBalancePolicy(text, &out)) << "'" << text << "'";
    EXPECT_EQ(out, BalancePolicyKind::kLeastConnections) << "'" << text << "'";
  }
  // A name followed by a NUL is not the name.
  BalancePolicyKind out = BalancePolicyKind::kLeastConnections;
  EXPECT_FALSE(ParseBalancePolicy(std::string_view("round_robin\0", 12), &out));
}

TEST(BalancePolicyNameTest, EachDistributedPolicyReportsItsKind) {
  for (BalancePolicyKind kind : {BalancePolicyKind::kRoundRobin, BalancePolicyKind::kLeastConnections,
                                 BalancePolicyKind::kPowerOfTwo, BalancePolicyKind::kLeastLoaded}) {
    std::unique_ptr<BalancePolicy> policy = NewBalancePolicy(kind);
    ASSERT_NE(policy, nullptr);
    EXPECT_EQ(policy->kind(), kind);
  }
}

TEST(BalancePolicyDeathTest, ReusePortHasNoPolicy) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(NewBalancePolicy(BalancePolicyKind::kReusePort), "");
}

}  // namespace
}  // namespace percore
