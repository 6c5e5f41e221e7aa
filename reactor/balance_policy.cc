#include "reactor/balance_policy.h"

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

}  // namespace

std::string_view BalancePolicyName(BalancePolicyKind kind) {
  switch (kind) {
    case BalancePolicyKind::kRoundRobin: return "round_robin";
    case BalancePolicyKind::kLeastConnections: return "least_connections";
    case BalancePolicyKind::kPowerOfTwo: return "power_of_two";
    case BalancePolicyKind::kReusePort: return "reuseport";
  }
  return "unknown";
}

bool ParseBalancePolicy(std::string_view text, BalancePolicyKind* out) {
  for (BalancePolicyKind kind : {BalancePolicyKind::kRoundRobin, BalancePolicyKind::kLeastConnections,
                                 BalancePolicyKind::kPowerOfTwo, BalancePolicyKind::kReusePort}) {
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
    case BalancePolicyKind::kReusePort: break;
  }
  std::abort();
}

}  // namespace percore
