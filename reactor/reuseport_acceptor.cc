#include "reactor/reuseport_acceptor.h"

#include <sys/socket.h>

#include <cerrno>

#include "core/socket.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"

namespace percore {

ReusePortAcceptor::ReusePortAcceptor(EventLoop& loop, Listener listener, DistributorOptions limits)
    : loop_(loop), listener_(listener), limits_(limits) {}

ReusePortAcceptor::~ReusePortAcceptor() = default;

void ReusePortAcceptor::Start() {
  if (watching_) return;
  // io_uring: a multishot accept, one completion per connection and no readiness round trip;
  // the others: readiness, then accept4 until the backlog is empty.
  if (UringPoller* uring = loop_.uring()) {
    watching_ = uring->AddAcceptor(listener_.fd, static_cast<IoWatcher*>(this)).ok();
  } else {
    watching_ = loop_.Watch(listener_.fd, kPollIn, this).ok();
  }
}

void ReusePortAcceptor::Stop() {
  if (backoff_timer_ != 0) loop_.Cancel(backoff_timer_);
  backoff_timer_ = 0;
  if (watching_) (void)loop_.Unwatch(listener_.fd);
  watching_ = false;
}

void ReusePortAcceptor::OnCompletion(const PollEvent& event) {
  counters_.wakeups.Increment();
  if (event.result >= 0) {
    Accepted(event.result, SocketAddress{});  // the loop asks for the peer's address
  } else if (!AcceptFailed(-event.result)) {
    return;  // backing off; Start() re-arms when it ends
  }
  // The kernel ended the multishot accept (an error, or its own limits): arm it again.
  if (!UringPoller::More(event) && watching_) (void)loop_.uring()->RearmAcceptor(listener_.fd);
}

void ReusePortAcceptor::AcceptBacklog() {
  for (int round = 0; round < Distributor::kBacklogRounds && AcceptSome(); ++round) {
  }
}

void ReusePortAcceptor::OnIoEvent(uint32_t events) {
  counters_.wakeups.Increment();
  AcceptSome();
}

bool ReusePortAcceptor::AcceptSome() {
  for (int n = 0; n < limits_.accepts_per_wakeup; ++n) {
    SocketAddress peer;
    peer.length = sizeof(peer.storage);
    const int fd = ::accept4(listener_.fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return false;
      if (!AcceptFailed(err)) return false;
      continue;
    }
    Accepted(fd, peer);
  }
  return true;
}

bool ReusePortAcceptor::AcceptFailed(int err) {
  counters_.accept_errors[err < AcceptCounters::kMaxErrno ? err : AcceptCounters::kMaxErrno].Increment();
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    // Stop watching for a while instead of spinning on a backlog we cannot accept.
    counters_.backoffs.Increment();
    Stop();
    backoff_timer_ = loop_.RunAfter(limits_.backoff, [this] {
      backoff_timer_ = 0;
      Start();
    });
    return false;
  }
  return true;
}

void ReusePortAcceptor::Accepted(int fd, const SocketAddress& peer) {
  counters_.accepted.Increment();
  const int64_t live = loop_.stats().conns_active.Get();
  if (limits_.max_connections_per_loop > 0 && live >= limits_.max_connections_per_loop) {
    counters_.rejected_loop_limit.Increment();
    const std::string_view reply = listener_.service->OverloadResponse();
    if (!reply.empty()) {
      [[maybe_unused]] ssize_t w = ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    CloseFd(fd);
    return;
  }
  loop_.Adopt(fd, listener_.service_index, peer, listener_.tls);
}

}  // namespace percore
