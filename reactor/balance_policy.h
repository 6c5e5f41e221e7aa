#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace percore {

enum class BalancePolicyKind { kRoundRobin, kLeastConnections, kPowerOfTwo, kLeastLoaded, kReusePort };

std::string_view BalancePolicyName(BalancePolicyKind kind);
bool ParseBalancePolicy(std::string_view text, BalancePolicyKind* out);

// What the distributor knows of a loop when it places a connection.
struct LoopLoad {
  int loop = 0;        // the loop's index
  int64_t live = 0;    // connections handed to it and not yet closed
  int64_t load_permille = 0;  // its load signal (LoopStats::load_permille)
  int64_t pending = 0;        // connections handed to it that it has not taken in yet
};

// least_loaded treats loads closer than this as equal and decides by connections.
inline constexpr int64_t kLoadTiePermille = 50;

// Chooses the loop for a new connection among the eligible ones (not draining, under their
// limit). Called only on the distributor thread; implementations keep their own state.
class BalancePolicy {
 public:
  virtual ~BalancePolicy() = default;
  virtual BalancePolicyKind kind() const = 0;
  // `candidates` is non-empty; returns an index into it.
  virtual size_t Pick(std::span<const LoopLoad> candidates) = 0;
  // least_loaded: whether the last Pick was decided by load (the others by connections).
  virtual bool last_pick_by_load() const { return false; }
};

// reuseport has no distributor and so no BalancePolicy: asking for it is a caller error.
std::unique_ptr<BalancePolicy> NewBalancePolicy(BalancePolicyKind kind);

}  // namespace percore
