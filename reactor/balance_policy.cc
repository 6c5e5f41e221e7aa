#include "reactor/balance_policy.h"

#include <algorithm>
#include <cstdlib>
#include <random>

namespace percore {
namespace {

// Cycles through the loops by index, skipping ineligible ones, so that with all loops eligible
// the counts handed to any two loops differ by at most one.
class RoundRobinPolicy final : public BalancePolicy {
 public:
  BalancePolicyKind kind() const override { return BalancePolicyKind::kRoundRobin; }
  size_t Pick(std::span<const LoopLoad> candidates) override {
    size_t chosen = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (candidates[i].loop >= next_) {
        chosen = i;
        break;
      }
    }
    next_ = candidates[chosen].loop + 1;
    return chosen;
  }

 private:
  int next_ = 0;
};

// The loop with the fewest live connections; ties go to the lowest index, which keeps the
// choice deterministic (and testable).
class LeastConnectionsPolicy final : public BalancePolicy {
 public:
  BalancePolicyKind kind() const override { return BalancePolicyKind::kLeastConnections; }
  size_t Pick(std::span<const LoopLoad> candidates) override {
    size_t best = 0;
    for (size_t i = 1; i < candidates.size(); ++i) {
      if (candidates[i].live < candidates[best].live) best = i;
    }
    return best;
  }
};

// Two loops drawn at random, the less loaded wins (Mitzenmacher's "power of two choices"):
// nearly the balance of least_connections without every decision herding onto one loop when
// the counts it reads are stale.
class PowerOfTwoPolicy final : public BalancePolicy {
 public:
  PowerOfTwoPolicy() : rng_(std::random_device{}()) {}
  BalancePolicyKind kind() const override { return BalancePolicyKind::kPowerOfTwo; }
  size_t Pick(std::span<const LoopLoad> candidates) override {
    if (candidates.size() == 1) return 0;
    std::uniform_int_distribution<size_t> dist(0, candidates.size() - 1);
    const size_t a = dist(rng_);
    size_t b = dist(rng_);
    if (b == a) b = (a + 1) % candidates.size();
    return candidates[b].live < candidates[a].live ? b : a;
  }

 private:
  std::minstd_rand rng_;
};

// The loop with the least load: the lowest load signal, loads within kLoadTiePermille of each
// other counting as equal; among equals, the fewest connections (live plus handed but not yet
// taken in, so that a burst between two load samples spreads instead of herding onto the loop
// that looked idlest); then the lowest index.
class LeastLoadedPolicy final : public BalancePolicy {
 public:
  BalancePolicyKind kind() const override { return BalancePolicyKind::kLeastLoaded; }
  size_t Pick(std::span<const LoopLoad> candidates) override {
    int64_t lowest = candidates[0].load_permille;
    int64_t highest = lowest;
    for (const LoopLoad& c : candidates) {
      lowest = std::min(lowest, c.load_permille);
      highest = std::max(highest, c.load_permille);
    }
    size_t best = candidates.size();
    for (size_t i = 0; i < candidates.size(); ++i) {
      const LoopLoad& c = candidates[i];
      if (c.load_permille > lowest + kLoadTiePermille) continue;
      if (best == candidates.size() || c.live + c.pending < candidates[best].live + candidates[best].pending) best = i;
    }
    // Decided by load when some candidate was ruled out by it.
    by_load_ = highest > lowest + kLoadTiePermille;
    return best;
  }
  bool last_pick_by_load() const override { return by_load_; }

 private:
  bool by_load_ = false;
};

}  // namespace

std::string_view BalancePolicyName(BalancePolicyKind kind) {
  switch (kind) {
    case BalancePolicyKind::kRoundRobin: return "round_robin";
    case BalancePolicyKind::kLeastConnections: return "least_connections";
    case BalancePolicyKind::kPowerOfTwo: return "power_of_two";
    case BalancePolicyKind::kLeastLoaded: return "least_loaded";
    case BalancePolicyKind::kReusePort: return "reuseport";
  }
  return "unknown";
}

bool ParseBalancePolicy(std::string_view text, BalancePolicyKind* out) {
  for (BalancePolicyKind kind : {BalancePolicyKind::kRoundRobin, BalancePolicyKind::kLeastConnections,
                                 BalancePolicyKind::kPowerOfTwo, BalancePolicyKind::kLeastLoaded,
                                 BalancePolicyKind::kReusePort}) {
    if (text == BalancePolicyName(kind)) {
      *out = kind;
      return true;
    }
  }
  return false;
}

std::unique_ptr<BalancePolicy> NewBalancePolicy(BalancePolicyKind kind) {
  switch (kind) {
    case BalancePolicyKind::kRoundRobin: return std::make_unique<RoundRobinPolicy>();
    case BalancePolicyKind::kLeastConnections: return std::make_unique<LeastConnectionsPolicy>();
    case BalancePolicyKind::kPowerOfTwo: return std::make_unique<PowerOfTwoPolicy>();
    case BalancePolicyKind::kLeastLoaded: return std::make_unique<LeastLoadedPolicy>();
    case BalancePolicyKind::kReusePort: break;
  }
  std::abort();
}

}  // namespace percore
