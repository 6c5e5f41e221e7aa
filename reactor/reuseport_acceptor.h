#pragma once

#include <vector>

#include "reactor/distributor.h"
#include "reactor/io_watcher.h"

namespace percore {

class EventLoop;

// reuseport mode: each loop owns one SO_REUSEPORT listening socket per
// endpoint and accepts on its own thread; the kernel's hash of the 4-tuple picks the loop.
// No distributor, no hand-off, and none of its balance either. Loop thread only, except
// counters(), which is readable from any thread.
class ReusePortAcceptor final : private IoWatcher {
 public:
  ReusePortAcceptor(EventLoop& loop, Listener listener, DistributorOptions limits);
  ~ReusePortAcceptor();

  // On the loop thread: start and stop watching the listening socket.
  void Start();
  void Stop();
  // On the loop thread, as the server stops: accepts what waits in the listen backlog (bounded,
  // like the distributor's), so that it is served in the drain rather than reset.
  void AcceptBacklog();
  const AcceptCounters& counters() const { return counters_; }

 private:
  void OnIoEvent(uint32_t events) override;
  // io_uring: one completion of the multishot accept (a new fd, or why it ended).
  void OnCompletion(const PollEvent& event) override;
  // Accepts up to accepts_per_wakeup connections; true if more may be waiting.
  bool AcceptSome();
  // Hands an accepted socket to the loop, or refuses it over the loop's connection limit.
  void Accepted(int fd, const SocketAddress& peer);
  // Counts a failed accept; on EMFILE and the like stops accepting for a while (false).
  bool AcceptFailed(int err);

  EventLoop& loop_;
  Listener listener_;
  DistributorOptions limits_;
  AcceptCounters counters_;
  bool watching_ = false;
  uint64_t backoff_timer_ = 0;
};

}  // namespace percore
