#include "reactor/distributor.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/cpu.h"
#include "core/errno_status.h"
#include "core/socket.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"

namespace percore {

DistributorStats::DistributorStats(int loops) {
  for (int i = 0; i < loops; ++i) handed.push_back(std::make_unique<Counter>());
}

Distributor::Distributor(std::vector<EventLoop*> loops, std::vector<Listener> listeners,
                         BalancePolicyKind policy, DistributorOptions options)
    : loops_(std::move(loops)),
      listeners_(std::move(listeners)),
      options_(options),
      policy_(NewBalancePolicy(policy)),
      policy_kind_(static_cast<int>(policy)),
      stats_(static_cast<int>(loops_.size())) {
  for (size_t i = 0; i < loops_.size(); ++i) draining_.push_back(std::make_unique<std::atomic<bool>>(false));
  candidates_.reserve(loops_.size());
}

Distributor::~Distributor() { Stop(); }

absl::Status Distributor::Start() {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) return ErrnoStatus(errno, "eventfd");
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Distributor::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof(one));
  thread_.join();
  CloseFd(stop_fd_);
  stop_fd_ = -1;
}

void Distributor::SetPolicy(BalancePolicyKind kind) { policy_kind_.store(static_cast<int>(kind)); }

int64_t Distributor::Live(int loop) const {
  // Connections that moved count where they are now.
  const LoopStats& s = loops_[loop]->stats();
  return static_cast<int64_t>(stats_.handed[loop]->Get() + s.migrations_in.Get()) -
         static_cast<int64_t>(s.closed_total() + s.migrations_out.Get());
}

void Distributor::Run() {
  NameCurrentThread("percore-accept");
  std::vector<pollfd> fds;
  fds.push_back({stop_fd_, POLLIN, 0});
  for (const Listener& l : listeners_) fds.push_back({l.fd, POLLIN, 0});
  bool backing_off = false;
  for (;;) {
    // While backing off after descriptor exhaustion, listeners are left out of the poll set, so
    // the thread sleeps instead of spinning on a backlog it cannot accept.
    const nfds_t count = backing_off ? 1 : fds.size();
    const int ready = ::poll(fds.data(), count, backing_off ? static_cast<int>(absl::ToInt64Milliseconds(options_.backoff)) : -1);
    stats_.counters.wakeups.Increment();
    if (ready < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) return;
    if (backing_off) {
      backing_off = false;
      continue;
    }
    if (ready <= 0) continue;
    const uint64_t backoffs_before = stats_.counters.backoffs.Get();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) AcceptFrom(listeners_[i - 1]);
    }
    backing_off = stats_.counters.backoffs.Get() != backoffs_before;
  }
}

void Distributor::AcceptBacklog() {
  if (thread_.joinable()) return;  // the thread owns the policy and the candidates
  for (const Listener& listener : listeners_) {
    // Bounded: clients may still be connecting while this runs.
    for (int round = 0; round < kBacklogRounds && AcceptFrom(listener); ++round) {
    }
  }
}

bool Distributor::AcceptFrom(const Listener& listener) {
  const auto wanted = static_cast<BalancePolicyKind>(policy_kind_.load());
  if (wanted != policy_->kind() && wanted != BalancePolicyKind::kReusePort) policy_ = NewBalancePolicy(wanted);
  AcceptCounters& c = stats_.counters;
  for (int n = 0; n < options_.accepts_per_wakeup; ++n) {
    SocketAddress peer;
    peer.length = sizeof(peer.storage);
    const int fd = ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return false;
      c.accept_errors[err < AcceptCounters::kMaxErrno ? err : AcceptCounters::kMaxErrno].Increment();
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        c.backoffs.Increment();
        return false;
      }
      continue;  // ECONNABORTED, EPERM (firewall), EINTR...: the next one may succeed
    }
    c.accepted.Increment();
    Place(fd, peer, listener);
  }
  return true;
}

void Distributor::Place(int fd, const SocketAddress& peer, const Listener& listener) {
  AcceptCounters& c = stats_.counters;
  int64_t total_live = 0;
  bool any_undrained = false;
  candidates_.clear();
  for (size_t i = 0; i < loops_.size(); ++i) {
    const int64_t live = Live(static_cast<int>(i));
    total_live += live;
    if (draining_[i]->load(std::memory_order_relaxed)) continue;
    any_undrained = true;
    if (options_.max_connections_per_loop > 0 && live >= options_.max_connections_per_loop) continue;
    const int64_t pending = static_cast<int64_t>(stats_.handed[i]->Get()) -
                            static_cast<int64_t>(loops_[i]->stats().conns_handed_in.Get());
    candidates_.push_back({static_cast<int>(i), live, loops_[i]->stats().load_permille.Get(), std::max<int64_t>(0, pending)});
  }
  if (options_.max_connections > 0 && total_live >= options_.max_connections) {
    c.rejected_global_limit.Increment();
    Refuse(fd, listener);
    return;
  }
  if (candidates_.empty()) {
    (any_undrained ? c.rejected_loop_limit : c.rejected_no_loop).Increment();
    Refuse(fd, listener);
    return;
  }
  const int loop = candidates_[policy_->Pick(candidates_)].loop;
  if (policy_->kind() == BalancePolicyKind::kLeastLoaded) {
    (policy_->last_pick_by_load() ? c.placed_by_load : c.placed_by_connections).Increment();
  }
  stats_.handed[loop]->Increment();
  loops_[loop]->Adopt(fd, listener.service_index, peer, listener.tls);
}

void Distributor::Refuse(int fd, const Listener& listener) {
  const std::string_view reply = listener.service->OverloadResponse();
  if (!reply.empty()) {
    [[maybe_unused]] ssize_t n = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  CloseFd(fd);
}

}  // namespace percore
