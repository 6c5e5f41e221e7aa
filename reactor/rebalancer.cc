#include "reactor/rebalancer.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "reactor/event_loop.h"
#include "reactor/migration.h"
#include "reactor/server.h"

namespace percore {

namespace {

// Candidates a loop reports, the heaviest first: more than enough for one round's moves.
constexpr size_t kCandidatesPerLoop = 64;

int64_t Nanos(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

// What a connection weighs on its loop: its requests, or its bytes on a loop that answered no
// requests over the rate period.
bool ByRequests(const RebalanceLoop& loop) { return loop.total_requests_per_sec > 0; }
uint64_t Weight(bool by_requests, const RebalanceCandidate& c) {
  return by_requests ? c.requests_per_sec : c.bytes_per_sec;
}

// Its expected share of its loop's load: the loop's load in proportion to its weight.
int EstimatedPermille(const RebalanceLoop& loop, const RebalanceCandidate& c) {
  const bool by_requests = ByRequests(loop);
  const uint64_t total = by_requests ? loop.total_requests_per_sec : loop.total_bytes_per_sec;
  const uint64_t own = Weight(by_requests, c);
  if (total == 0) return 0;
  return static_cast<int>(static_cast<double>(loop.load_permille) * static_cast<double>(std::min(own, total)) /
                          static_cast<double>(total));
}

}  // namespace

std::string_view RebalanceModeName(RebalanceMode mode) {
  switch (mode) {
    case RebalanceMode::kOff: return "off";
    case RebalanceMode::kLoad: return "load";
  }
  return "off";
}

bool ParseRebalanceMode(std::string_view name, RebalanceMode* mode) {
  for (RebalanceMode m : {RebalanceMode::kOff, RebalanceMode::kLoad}) {
    if (RebalanceModeName(m) == name) {
      *mode = m;
      return true;
    }
  }
  return false;
}

absl::Status CheckRebalanceOptions(const RebalanceOptions& options) {
  if (options.interval < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rebalance interval ", absl::FormatDuration(options.interval), " is under 10ms"));
  }
  if (options.interval > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rebalance interval ", absl::FormatDuration(options.interval), " is over 24h"));
  }
  if (!(options.threshold >= 0 && options.threshold <= 100)) {  // NaN fails too
    return absl::InvalidArgumentError(absl::StrCat("rebalance threshold ", options.threshold, " is not within 0..100"));
  }
  if (!(options.min_load >= 0 && options.min_load <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("rebalance min load ", options.min_load, " is not within 0..1"));
  }
  if (options.max_moves < 1) {
    return absl::InvalidArgumentError(absl::StrCat("rebalance max moves ", options.max_moves, " is under 1"));
  }
  return absl::OkStatus();
}

namespace {

// The loops that give and take connections (not draining): how many, their mean load, the
// busiest one's load.
struct LoadSummary {
  int accepting = 0;
  double mean = 0;
  int busiest = 0;
};

LoadSummary Summarize(const std::vector<RebalanceLoop>& loops) {
  LoadSummary summary;
  int64_t sum = 0;
  for (const RebalanceLoop& l : loops) {
    if (!l.accepting) continue;
    ++summary.accepting;
    sum += l.load_permille;
    summary.busiest = std::max(summary.busiest, l.load_permille);
  }
  if (summary.accepting > 0) summary.mean = static_cast<double>(sum) / summary.accepting;
  return summary;
}

}  // namespace

std::vector<int> OverloadedLoops(const std::vector<RebalanceLoop>& loops, const RebalanceOptions& options) {
  const LoadSummary summary = Summarize(loops);
  std::vector<int> over;
  if (summary.accepting < 2 || summary.busiest < options.min_load * 1000) return over;
  for (size_t i = 0; i < loops.size(); ++i) {
    if (loops[i].accepting && loops[i].load_permille > summary.mean * (1 + options.threshold)) {
      over.push_back(static_cast<int>(i));
    }
  }
  std::sort(over.begin(), over.end(), [&](int a, int b) { return loops[a].load_permille > loops[b].load_permille; });
  return over;
}

std::vector<RebalanceMove> PlanRebalance(const std::vector<RebalanceLoop>& loops, const RebalanceOptions& options) {
  std::vector<RebalanceMove> moves;
  if (OverloadedLoops(loops, options).empty()) return moves;
  const double limit = Summarize(loops).mean * (1 + options.threshold);

  // Each loop's load as the plan goes, and its candidates heaviest first.
  struct Pick {
    uint64_t id;
    int permille;
    bool taken;
  };
  std::vector<double> load(loops.size());
  std::vector<std::vector<Pick>> picks(loops.size());
  std::vector<bool> stuck(loops.size(), false);
  for (size_t i = 0; i < loops.size(); ++i) {
    load[i] = loops[i].load_permille;
    for (const RebalanceCandidate& c : loops[i].candidates) {
      if (c.recently_moved) continue;  // at most one move per interval
      const int permille = EstimatedPermille(loops[i], c);
      if (permille > 0) picks[i].push_back({c.id, permille, false});
    }
    std::sort(picks[i].begin(), picks[i].end(), [](const Pick& a, const Pick& b) { return a.permille > b.permille; });
  }

  while (static_cast<int>(moves.size()) < options.max_moves) {
    int from = -1;
    int to = -1;
    for (size_t i = 0; i < loops.size(); ++i) {
      if (!loops[i].accepting) continue;
      if (!stuck[i] && (from < 0 || load[i] > load[from])) from = static_cast<int>(i);
    }
    if (from < 0 || load[from] <= limit) break;
    for (size_t i = 0; i < loops.size(); ++i) {
      if (!loops[i].accepting || static_cast<int>(i) == from) continue;
      if (to < 0 || load[i] < load[to]) to = static_cast<int>(i);
    }
    if (to < 0) break;
    // Moving a connection of load e from `from` to `to` changes their gap g to |g - 2e|. The
    // best move takes half the gap; one that takes more than three quarters of it would only
    // turn the imbalance round (and the next round would move something back), so it stays.
    const double gap = load[from] - load[to];
    Pick* chosen = nullptr;
    for (Pick& p : picks[from]) {
      if (p.taken || p.permille >= gap * 3 / 4) continue;
      if (chosen == nullptr || std::abs(p.permille - gap / 2) < std::abs(chosen->permille - gap / 2)) chosen = &p;
    }
    if (chosen == nullptr) {
      stuck[from] = true;
      continue;
    }
    chosen->taken = true;
    load[from] -= chosen->permille;
    load[to] += chosen->permille;
    moves.push_back({chosen->id, from, to, chosen->permille});
  }
  return moves;
}

Rebalancer::Rebalancer(Server& server, RebalanceOptions options) : server_(server), options_(options) {}

Rebalancer::~Rebalancer() { Stop(); }

void Rebalancer::Start() {
  if (options_.mode == RebalanceMode::kOff || thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void Rebalancer::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Rebalancer::Run() {
  const auto interval = absl::ToChronoNanoseconds(options_.interval);
  std::unique_lock<std::mutex> lock(mu_.native());
  while (true) {
    const auto next = std::chrono::steady_clock::now() + interval;
    while (!stopping_ && std::chrono::steady_clock::now() < next) cv_.wait_until(lock, next);
    if (stopping_) return;
    lock.unlock();
    Round();
    lock.lock();
  }
}

absl::Duration Rebalancer::MoveWait() const {
  // A busy connection is between requests only for moments: it gets a part of the interval to
  // reach a boundary.
  return std::min(options_.interval / 2, absl::Milliseconds(500));
}

void Rebalancer::Round() {
  if (!server_.running()) return;
  stats_->rounds.fetch_add(1, std::memory_order_relaxed);
  // The loads must first show the last moves: until a whole load window has passed since
  // they began, the loops they left still look as busy as before.
  if (MonotonicNanos() - last_moves_ns_ < EventLoop::kLoadWindowNs + Nanos(MoveWait())) return;
  const int n = server_.loop_count();
  std::vector<RebalanceLoop> loops(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    loops[i].load_permille = static_cast<int>(server_.loop(i).stats().load_permille.Get());
    loops[i].accepting = !server_.loop_draining(i) && server_.loop(i).running();
  }
  // The balanced steady state ends here.
  const std::vector<int> over = OverloadedLoops(loops, options_);
  if (over.empty()) return;
  stats_->imbalanced_rounds.fetch_add(1, std::memory_order_relaxed);

  // The overloaded loops describe their connections, each on its own thread.
  const int64_t interval_ns = Nanos(options_.interval);
  const absl::Duration ask_timeout = std::min(options_.interval / 2, absl::Seconds(1));
  std::vector<std::future<RebalanceLoop>> answers;
  for (int i : over) {
    auto answer = std::make_shared<std::promise<RebalanceLoop>>();
    answers.push_back(answer->get_future());
    EventLoop* loop = &server_.loop(i);
    loop->Post([loop, answer, interval_ns] {
      RebalanceLoop described;
      const int64_t now = loop->now_ns();
      loop->ForEachConnection([&](Connection& c) {
        described.total_requests_per_sec += c.recent_requests_per_sec();
        described.total_bytes_per_sec += c.recent_bytes_per_sec();
        if (!c.MayMigrate()) return;
        described.candidates.push_back({c.id(), c.recent_requests_per_sec(), c.recent_bytes_per_sec(),
                                        c.arrived_ns() >= 0 && now - c.arrived_ns() < interval_ns});
      });
      const bool by_requests = ByRequests(described);
      if (described.candidates.size() > kCandidatesPerLoop) {
        std::partial_sort(described.candidates.begin(), described.candidates.begin() + kCandidatesPerLoop,
                          described.candidates.end(), [by_requests](const RebalanceCandidate& a, const RebalanceCandidate& b) {
                            return Weight(by_requests, a) > Weight(by_requests, b);
                          });
        described.candidates.resize(kCandidatesPerLoop);
      }
      answer->set_value(std::move(described));
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(ask_timeout);
  for (size_t k = 0; k < over.size(); ++k) {
    // A loop that does not answer in time keeps its connections this round.
    if (answers[k].wait_until(deadline) != std::future_status::ready) continue;
    RebalanceLoop described = answers[k].get();
    RebalanceLoop& l = loops[static_cast<size_t>(over[k])];
    l.candidates = std::move(described.candidates);
    l.total_requests_per_sec = described.total_requests_per_sec;
    l.total_bytes_per_sec = described.total_bytes_per_sec;
  }

  const std::vector<RebalanceMove> moves = PlanRebalance(loops, options_);
  if (moves.empty()) {
    stats_->unmovable_rounds.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const absl::Duration wait = MoveWait();
  last_moves_ns_ = MonotonicNanos();
  for (const RebalanceMove& m : moves) {
    stats_->moves_started.fetch_add(1, std::memory_order_relaxed);
    server_.MigrateConnection(m.id, m.to, wait, [stats = stats_](MigrationResult r) {
      if (r.status == MigrationStatus::kMoved) {
        stats->moved.fetch_add(1, std::memory_order_relaxed);
      } else {
        stats->move_failures.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
}

}  // namespace percore
