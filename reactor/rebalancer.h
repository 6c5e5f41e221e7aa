#pragma once

// The rebalancer (ServerOptions::rebalance): moves the busiest connections off loops that are
// busier than the others, by live migration (reactor/migration.h).
//
// Every interval it reads each loop's load (LoopStats::load_permille). While no loop is more
// than `threshold` above the mean, or the busiest is under `min_load`, that is all a round
// costs: a few atomic loads. Otherwise it asks the overloaded loops for their migratable
// connections and what each did over the last rate period (Connection::recent_*), estimates
// each one's share of its loop's load from its share of the loop's requests (bytes when the
// loop answered none), and plans moves from the busiest loop to the least loaded one: the
// connection whose load is nearest half the gap between the two, and never one that would take
// more than three quarters of it (the imbalance would only turn round, and a later round move
// something back). Every move so planned lowers the spread of the loads. A connection that
// arrived within the last interval stays where it is: it moves at most once per interval.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/mutex.h"

namespace percore {

class Server;

enum class RebalanceMode : uint8_t {
  kOff,   // connections stay on the loop they were placed on
  kLoad,  // the rebalancer moves them by load
};

std::string_view RebalanceModeName(RebalanceMode mode);
bool ParseRebalanceMode(std::string_view name, RebalanceMode* mode);

struct RebalanceOptions {
  RebalanceMode mode = RebalanceMode::kOff;
  absl::Duration interval = absl::Seconds(1);
  // A loop is overloaded when its load is above the mean of the loops by more than this
  // fraction of the mean.
  double threshold = 0.25;
  // Nothing moves while the busiest loop is under this load (0..1): differences between
  // nearly idle loops are noise, not imbalance.
  double min_load = 0.1;
  // At most this many moves per round.
  int max_moves = 16;
};

// InvalidArgument naming the option that is out of range.
absl::Status CheckRebalanceOptions(const RebalanceOptions& options);

// What the rebalancer did; read from any thread.
struct RebalanceStats {
  std::atomic<uint64_t> rounds{0};             // load checks
  std::atomic<uint64_t> imbalanced_rounds{0};  // rounds that found an overloaded loop
  std::atomic<uint64_t> unmovable_rounds{0};   // ... and no connection whose move would help
  std::atomic<uint64_t> moves_started{0};
  std::atomic<uint64_t> moved{0};
  std::atomic<uint64_t> move_failures{0};  // refused or given up (MigrationStatus other than kMoved)
};

// --- The plan, apart from the thread, for tests ---

// A connection that may move, as its loop described it.
struct RebalanceCandidate {
  uint64_t id = 0;
  uint64_t requests_per_sec = 0;
  uint64_t bytes_per_sec = 0;
  bool recently_moved = false;  // arrived within the last interval
};

struct RebalanceLoop {
  int load_permille = 0;
  bool accepting = true;  // false: draining; neither gives nor takes connections
  std::vector<RebalanceCandidate> candidates;  // only asked of overloaded loops
  uint64_t total_requests_per_sec = 0;  // over all its connections, movable or not
  uint64_t total_bytes_per_sec = 0;
};

struct RebalanceMove {
  uint64_t id = 0;
  int from = 0;
  int to = 0;
  int estimated_permille = 0;  // the load it is expected to take along
};

// The loops (by index) that are overloaded: above the mean by more than the threshold, with
// the busiest at min_load or more. Empty when balanced.
std::vector<int> OverloadedLoops(const std::vector<RebalanceLoop>& loops, const RebalanceOptions& options);
// The moves that bring the loops towards their mean load.
std::vector<RebalanceMove> PlanRebalance(const std::vector<RebalanceLoop>& loops, const RebalanceOptions& options);

// The thread. Started by Server::Start when options.mode is kLoad, stopped by Server::Stop
// before the loops drain.
class Rebalancer {
 public:
  Rebalancer(Server& server, RebalanceOptions options);
  ~Rebalancer();  // Stop
  Rebalancer(const Rebalancer&) = delete;
  Rebalancer& operator=(const Rebalancer&) = delete;

  void Start();
  void Stop();
  const RebalanceStats& stats() const { return *stats_; }
  const RebalanceOptions& options() const { return options_; }

 private:
  void Run();
  void Round();
  absl::Duration MoveWait() const;

  Server& server_;
  const RebalanceOptions options_;
  // Shared with the migrations under way, whose answers may come after Stop.
  std::shared_ptr<RebalanceStats> stats_ = std::make_shared<RebalanceStats>();
  int64_t last_moves_ns_ = 0;  // when the last round's moves began (its thread only)
  Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace percore
