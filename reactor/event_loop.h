#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "core/buffer.h"
#include "core/free_list.h"
#include "core/mutex.h"
#include "core/socket.h"
#include "core/task_queue.h"
#include "reactor/connection.h"
#include "reactor/io_watcher.h"
#include "reactor/loop_stats.h"
#include "reactor/migration.h"
#include "reactor/poller.h"
#include "reactor/timer_wheel.h"
#include "reactor/uring_poller.h"

namespace percore {

class TlsEndpoint;

class EpollPoller;
class Service;
class ShardedBase;

using Task = absl::AnyInvocable<void() &&>;

struct EventLoopOptions {
  int index = 0;                   // position among the server's loops; used in ids and stats
  PollerBackend backend = PollerBackend::kEpoll;  // resolved: not kAuto (see ResolveBackend)
  UringOptions uring = {};                         // for PollerBackend::kIoUring
  int cpu = -1;                    // pin the loop thread to this CPU when >= 0
  absl::Duration timer_tick = absl::Milliseconds(1);  // the timer wheel's resolution
  int max_events = 256;            // ready fds taken per Wait
  // After a burst, give the allocator's free memory back to the system (see ReturnFreeMemory).
  bool return_free_memory = true;
  ConnectionOptions connection = {};
  std::vector<Service*> services = {};  // by service index; each gets OnLoopStart
  std::vector<ShardedBase*> sharded = {};  // state registered with the server (Sharded<T>(Server&))
  int tls_endpoints = 0;  // TLS endpoints of the server: one TlsLoopStats each
  // How often the buffer pool and the kept buffer sets are trimmed, and how often a quiet loop
  // checks whether to return freed memory (EventLoop::kBufferTrimPeriod, kMemoryCheckPeriod;
  // shorter in tests).
  absl::Duration buffer_trim_period = absl::Seconds(10);
  absl::Duration memory_check_period = absl::Seconds(1);
  // How often the loop measures its connections' recent rates (Connection::SampleRate).
  absl::Duration rate_period = absl::Seconds(1);
};

class EventLoop;

// Loops that drain together (Server::Stop). A loop whose connections have all closed keeps
// running posted work until every loop of the group has drained too: a connection on one loop
// may still be waiting for work it sent to another (RunOn), and that answer must not be lost
// because its loop finished first. Thread-safe.
class DrainGroup {
 public:
  explicit DrainGroup(std::vector<EventLoop*> loops);
  // Once per loop, when it has no connections left. The last arrival wakes every loop.
  void Arrive();
  bool done() const { return remaining_.load(std::memory_order_acquire) == 0; }

 private:
  const std::vector<EventLoop*> loops_;
  std::atomic<size_t> remaining_;
};

// One thread's reactor. An iteration: compute the timeout from the nearest
// timer and pending work; Wait; dispatch ready fds; fire due timers; run posted tasks; account
// busy and wait time. Everything the loop owns is touched only by its thread; the thread-safe
// entry points are Post, Adopt, Quit and the stats.
class EventLoop final : private IoWatcher {
 public:
  static constexpr absl::Duration kBufferTrimPeriod = absl::Seconds(10);  // see BufferPool::Trim
  // At most this many idle connections' buffer sets (each with up to two 16 KiB blocks) are kept
  // for the next busy ones; trimmed with the pool's blocks.
  static constexpr size_t kConnectionIoKept = 256;
  static constexpr absl::Duration kMemoryCheckPeriod = absl::Seconds(1);  // see ReturnFreeMemory
  // The load signal (LoopStats::load_permille, SampleLoad): the thread's CPU clock read every
  // kLoadSamplePeriodNs while the loop works, the load being that of the last kLoadWindow
  // periods (kLoadWindowNs).
  static constexpr int64_t kLoadSamplePeriodNs = 125'000'000;
  static constexpr int kLoadWindow = 4;
  static constexpr int64_t kLoadWindowNs = kLoadSamplePeriodNs * kLoadWindow;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create(EventLoopOptions options);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs iterations on the calling thread until Quit(). Returns once every connection is closed.
  void Run();
  // Thread-safe. Asks Run() to return. Open connections are closed gracefully (kServerDrain):
  // what they have read is answered and flushed; whatever is left at `drain_deadline` (an
  // instant; the default, one long past, means now) is closed at once. Run() returns when no
  // connection is left and, with a `group`, once every loop of the group has drained (or at
  // the deadline).
  void Quit(MonoTime drain_deadline = MonoTime(), std::shared_ptr<DrainGroup> group = nullptr);

  // The loop whose thread is calling (inside Run, or bound by BindToCurrentThread), else null.
  static EventLoop* Current();

  // For tests and fuzzers that drive a loop step by step on their own thread: binds the loop to
  // the calling thread (as Run does) and runs one iteration, waiting at most `max_wait_ms`.
  // Never mixed with Run().
  void BindToCurrentThread();
  void Step(int max_wait_ms);

  // Thread-safe. Runs `task` on this loop's thread, in posting order per poster. Wakes the
  // loop if it sleeps. Tasks posted after the loop ended are destroyed without running. A task
  // that throws is logged and counted (LoopStats::task_errors); the loop carries on.
  void Post(Task task);
  // Thread-safe. Runs `fn(connection)` on this loop if connection `id` is still open when the
  // task runs (it is dropped otherwise), as a callback of that connection
  // (Connection::RunTask): an exception closes that connection (kHandlerError), not the loop.
  // How an answer from another loop reaches the connection that asked.
  template <typename Fn>
  void PostToConnection(uint64_t id, Fn fn) {
    Post([this, id, fn = std::move(fn)]() mutable {
      if (Connection* conn = FindConnection(id)) conn->RunTask(std::move(fn));
    });
  }
  // Thread-safe. Runs `work()` on `other`'s thread, then `then(result)` back on this loop's
  // thread: cross-loop work without locks (Seastar's submit_to, without futures). Both loops
  // must outlive the round trip (they do while the server runs, and Server::Stop keeps every
  // loop serving such work until all loops have drained). A handler pairs it with
  // Action::Pause() and Connection::Resume(), resolving its ConnectionHandle in `then`.
  template <typename Work, typename Then>
  void RunOn(EventLoop& other, Work work, Then then) {
    other.Post([this, work = std::move(work), then = std::move(then)]() mutable {
      auto result = work();
      Post([result = std::move(result), then = std::move(then)]() mutable { then(std::move(result)); });
    });
  }

  // Thread-safe. Moves connection `id` of this loop to `target` at its next request boundary
  // (reactor/migration.h), waiting at most `wait` for it to reach one; `done` hears the outcome
  // (Server::MigrateConnection checks the target first).
  void Migrate(uint64_t id, EventLoop& target, absl::Duration wait, MigrationDone done);

  // Thread-safe. Hands an accepted, non-blocking socket to this loop, which takes ownership:
  // it creates the connection and its handler with services[service_index].
  // `tls`: the endpoint's TLS context, for a TLS endpoint (null for plaintext).
  void Adopt(int fd, int service_index, const SocketAddress& peer, TlsEndpoint* tls = nullptr);

  // Loop thread only. Timers with callbacks; ids are never reused. Cancel returns whether the
  // timer was still pending.
  using TimerId = uint64_t;
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn);
  TimerId RunEvery(absl::Duration period, absl::AnyInvocable<void()> fn);
  bool Cancel(TimerId id);

  // Loop thread only. Registers fds with the poller for watchers other than connections
  // (listening sockets in reuseport mode, service-private fds).
  absl::Status Watch(int fd, uint32_t interest, IoWatcher* watcher);
  absl::Status Rewatch(int fd, uint32_t interest);
  absl::Status Unwatch(int fd);
  // Unwatch for an fd closed right after, never duplicated (a connection's own socket): on
  // epoll, close(2) takes it out of the set and the EPOLL_CTL_DEL is skipped.
  absl::Status UnwatchBeforeClose(int fd);

  // Loop thread only. The connection with `id` if it is still open on this loop.
  Connection* FindConnection(uint64_t id);
  // The buffers its busy connections hold and its idle ones gave back (see ConnectionIo).
  FreeList<ConnectionIo>& connection_io() { return connection_io_; }
  template <typename Fn>
  void ForEachConnection(Fn&& fn) {
    AssertInLoopThread();
    for (auto& [id, conn] : connections_) fn(*conn);
  }
  // Loop thread only. Calls `fn` on every connection open now, where `fn` may close it (and so
  // erase it from the map): the ids are collected first, and one already gone is skipped.
  template <typename Fn>
  void ForEachConnectionThatMayClose(Fn&& fn) {
    AssertInLoopThread();
    std::vector<uint64_t> ids;
    ids.reserve(connections_.size());
    for (auto& [id, conn] : connections_) ids.push_back(id);
    for (uint64_t id : ids) {
      if (Connection* conn = FindConnection(id)) fn(*conn);
    }
  }
  // Loop thread only. Starts closing every connection (Connection::Close).
  void CloseAllConnections(CloseReason reason, CloseMode mode);
  // Loop thread only. Every connection answers what its peer has sent so far, then every one
  // closes gracefully (Connection::ServeArrivedThenClose, in two passes): how a drain begins.
  // No connection's close is sent before the loop has read from all of them, so once any
  // client of the loop sees its drain close, what the loop read is final.
  void ServeArrivedThenCloseAll(CloseReason reason);

  bool IsInLoopThread() const { return std::this_thread::get_id() == thread_id_.load(std::memory_order_relaxed); }
  // Aborts with a message when called from another thread: loop state has no locks.
  void AssertInLoopThread() const;

  int index() const { return options_.index; }
  PollerBackend backend() const { return poller_->backend(); }
  // The completion back end when the loop runs on io_uring, else nullptr.
  UringPoller* uring() const { return uring_; }
  // The time the current iteration started; cheap, loop thread only.
  MonoTime now() const { return MonoTime::FromNanos(now_ns_); }
  // The same in CLOCK_MONOTONIC nanoseconds, for the framework's own hot paths.
  int64_t now_ns() const { return now_ns_; }
  int64_t RefreshNow();
  // Counts the loop's iterations; per-iteration budgets (Connection's write budget) key on it.
  uint64_t iteration() const { return iteration_; }
  const ConnectionOptions& connection_options() const { return options_.connection; }
  LoopStats& stats() { return stats_; }
  const LoopStats& stats() const { return stats_; }
  Service* service(int index) const { return options_.services[index]; }
  int service_count() const { return static_cast<int>(options_.services.size()); }
  // Thread-safe: true between the start and the end of Run().
  bool running() const { return running_.load(std::memory_order_acquire); }
  // Thread-safe: true once Quit() was called and every connection of this loop has closed;
  // the loop may still be running work posted by others (see DrainGroup).
  bool drained() const { return drained_.load(std::memory_order_acquire); }

 private:
  friend class Connection;
  friend class DrainGroup;  // wakes the loops
  // ConnectionOptions' timeouts in nanoseconds, converted once (zero: never).
  struct TimeoutsNs {
    int64_t idle_ns = 0;
    int64_t write_ns = 0;
    int64_t linger_ns = 0;
  };
  TimerWheel& wheel() { return wheel_; }
  BufferPool& buffer_pool() { return buffer_pool_; }
  // Builds every service's sharded state for this loop (before OnLoopStart).
  void BuildShardedState();
  struct Adoption {
    int fd;
    int service_index;
    SocketAddress peer;
    TlsEndpoint* tls;
  };
  class CallbackTimer;

  explicit EventLoop(EventLoopOptions options);
  absl::Status Init();
  void RunOnce();
  int ComputeTimeoutMs();
  void RunTasks();
  // Every kMemoryCheckPeriodNs: a loop that worked in an earlier period and is quiet now
  // (under 1% busy) returns the allocator's free pages to the system with malloc_trim, once
  // per quiet stretch, and the free top of its own arena, which malloc_trim does not reach
  // (FixAllocatorThresholds in event_loop.cc). glibc keeps freed memory of a burst (large
  // replies, grown buffers) resident otherwise; a quiet loop pays the few milliseconds the
  // trim takes.
  void ReturnFreeMemory();
  // Logs and counts a posted task or timer callback that threw.
  void TaskFailed(const char* what);
  void AdoptPending();
  // Live migration: the requests under way on this loop (waiting for a boundary, or for an
  // io_uring receive to be cancelled), moved on once they can.
  struct PendingMigration {
    uint64_t id = 0;
    EventLoop* target = nullptr;
    int64_t deadline_ns = 0;
    std::unique_ptr<MigrationReply> reply;
    bool begun = false;
  };
  void StartMigration(uint64_t id, EventLoop* target, int64_t wait_ns, std::unique_ptr<MigrationReply> reply);
  void ProgressMigrations();
  void RefuseMigration(PendingMigration& p, MigrationStatus status, std::string detail);
  void AdoptMigrant(std::unique_ptr<Migrant> m);
  void ArriveDrained();
  void Wake();
  void OnIoEvent(uint32_t events) override;  // the wake-up eventfd
  void OnCompletion(const PollEvent& event) override;  // io_uring: a wake-up by MSG_RING
  // Called by a Connection once it is closed; the loop frees it at a safe point.
  void RetireConnection(Connection* conn, CloseReason reason);
  // Unwatch: the events of `fd` still waiting in this batch are not delivered.
  void DropReadyEvents(int fd);
  void FreeRetired();
  // Connection: `requests` of service `service_index` (`errors` of them failed) were answered
  // inline, by a callback of this iteration. Counted now (a client that reads its reply and
  // then the statistics sees its request counted); their one latency is recorded when the
  // iteration ends.
  void NoteAnswered(int service_index, uint32_t requests, uint32_t errors) {
    Answered& a = answered_[static_cast<size_t>(service_index)];
    a.requests += requests;
    a.stats->requests.Add(requests);
    if (errors != 0) a.stats->errors.Add(errors);
    answered_any_ = true;
  }
  void CountAnswered(int64_t end_ns);
  // Connection: whether to time the handler callback about to run (LoopStats::handler_ns
  // samples one callback in kHandlerTimingSample: two clock reads each would be a tenth of
  // the framework's cost of a small request).
  static constexpr uint32_t kHandlerTimingSample = 16;
  bool TimeThisCallback() { return ++callbacks_ % kHandlerTimingSample == 0; }
  // io_uring: a connection whose write budget ran out continues next iteration (no POLLOUT
  // brings it back, as it does on the readiness back ends).
  void FlushNextIteration(uint64_t id) { flush_next_.push_back(id); }
  // io_uring: connection `id`'s receive ended on an empty buffer ring (ENOBUFS).
  void WaitForReceiveBuffers(uint64_t id) { starved_.push_back(id); }
  void RearmStarved();
  void FlushDeferred();
  // Waits (at most `timeout_ms`) and dispatches one batch of events; returns how many.
  int WaitAndDispatch(int timeout_ms);
  int Dispatch(int ready);  // events_[0, ready)
  int WaitAndDispatchEpoll(int timeout_ms);  // the same on epoll, from the kernel's events
  // io_uring: dispatches the completions the kernel has ready now, so that what peers sent
  // before a drain reaches their handlers (what ServeArrived reads on the readiness back ends).
  void CollectCompletions();
  // io_uring: cancels what retired connections still have in flight and waits for it, so that
  // their memory may be freed.
  void ReapInFlight();
  void UpdateUringStats();

  EventLoopOptions options_;
  TimeoutsNs timeouts_;
  std::unique_ptr<Poller> poller_;
  UringPoller* uring_ = nullptr;  // poller_, when it is the completion back end
  EpollPoller* epoll_ = nullptr;  // poller_, when it is epoll
  UringCounters uring_seen_;      // its counters as of the last UpdateUringStats
  std::vector<uint64_t> flush_next_;
  std::vector<uint64_t> flushing_;
  std::deque<uint64_t> starved_;  // oldest first
  // Closed connections whose io_uring operations have not completed yet: their memory (and
  // the output pinned for a send) must outlive the kernel's use of it.
  std::vector<std::unique_ptr<Connection>> zombies_;
  std::vector<PollEvent> events_;
  int dispatch_next_ = 0;  // the batch being dispatched: events_[dispatch_next_, dispatch_end_)
  int dispatch_end_ = 0;
  int wake_fd_ = -1;
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> quit_{false};
  std::atomic<int64_t> drain_deadline_ns_{0};
  bool draining_ = false;
  Mutex quit_mu_;  // Quit may come from any thread
  std::shared_ptr<DrainGroup> quit_group_ ABSL_GUARDED_BY(quit_mu_);
  std::shared_ptr<DrainGroup> drain_group_;  // the loop's copy, taken when draining starts
  bool arrived_ = false;                     // this loop has reported to drain_group_
  bool exited_ = false;                      // Run() left its loop; adoptions close at once
  std::atomic<bool> drained_{false};
  int max_wait_ms_ = -1;  // cap on the poll timeout; -1: none
  std::atomic<bool> running_{false};
  std::atomic<std::thread::id> thread_id_{};
  int64_t now_ns_ = 0;
  int64_t wait_end_ns_ = 0;  // when the current iteration's Wait returned
  int64_t iteration_end_ns_ = 0;  // when the last iteration ended: the next one's start
  struct LoadSample {
    int64_t wall_ns = 0;
    int64_t cpu_ns = 0;
  };
  void SampleLoad(int64_t now_ns);
  std::array<LoadSample, kLoadWindow> load_samples_{};  // a ring; load_next_ is the oldest
  int load_next_ = 0;
  int64_t next_load_sample_ns_ = 0;
  struct Answered {
    ServiceLoopStats* stats = nullptr;
    uint32_t requests = 0;  // answered this iteration, their latency not yet recorded
  };
  std::vector<Answered> answered_;  // by service index, this iteration's (NoteAnswered)
  bool answered_any_ = false;
  uint32_t callbacks_ = 0;  // handler callbacks run, for TimeThisCallback
  uint64_t iteration_ = 0;
  uint64_t busy_at_memory_check_ = 0;
  bool worked_since_trim_ = false;
  bool returns_arena_top_ = false;  // the allocator's thresholds are percore's to lower
  uint64_t closed_at_memory_check_ = 0;  // closes counted at the previous check
  TimerWheel wheel_;
  TaskQueue<Task> tasks_;
  std::vector<Task> running_tasks_;
  TaskQueue<Adoption> adoptions_;
  std::vector<Adoption> adopting_;
  std::vector<PendingMigration> migrations_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> retired_;
  absl::flat_hash_map<TimerId, std::unique_ptr<CallbackTimer>> timers_;
  std::vector<std::unique_ptr<CallbackTimer>> dead_timers_;
  TimerId next_timer_id_ = 1;
  uint64_t next_connection_seq_ = 1;
  BufferPool buffer_pool_;
  // The buffers of connections that hold something in them; an idle one gives its back.
  FreeList<ConnectionIo> connection_io_{kConnectionIoKept};
  LoopStats stats_;
};

}  // namespace percore
