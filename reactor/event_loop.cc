#include "reactor/event_loop.h"

#include <malloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/errno_status.h"
#include "core/mutex.h"
#include "reactor/epoll_poller.h"
#include "reactor/handler.h"
#include "reactor/tls_endpoint.h"
#include "reactor/sharded.h"

namespace percore {

// A RunAfter/RunEvery timer: owns its callback; lives in timers_ until it fires for the last
// time or is cancelled, then waits in dead_timers_ until the end of the iteration (it may be
// the entry whose OnTimer is running).
class EventLoop::CallbackTimer final : public TimerEntry {
 public:
  CallbackTimer(EventLoop& loop, TimerId id, int64_t period_ns, absl::AnyInvocable<void()> fn)
      : loop_(loop), id_(id), period_ns_(period_ns), fn_(std::move(fn)) {}

 private:
  void OnTimer() override {
    if (period_ns_ > 0) {
      loop_.wheel_.Schedule(this, loop_.now_ns_ + period_ns_);
      Fire();  // may Cancel this timer: that only moves it to dead_timers_
    } else {
      auto self = loop_.timers_.extract(id_);
      Fire();
      loop_.dead_timers_.push_back(std::move(self.mapped()));
    }
  }

  void Fire() {
    try {
      fn_();
    } catch (...) {
      loop_.TaskFailed("timer callback");
    }
  }

  EventLoop& loop_;
  const TimerId id_;
  const int64_t period_ns_;
  absl::AnyInvocable<void()> fn_;
};

namespace {

// glibc's thresholds, where its own moving ones end up after large blocks: blocks under 32 MiB
// are carved from an arena, which keeps up to 64 MiB free at its top for the next ones.
constexpr int kMmapThreshold = 32 << 20;
constexpr int kTrimThreshold = 64 << 20;
// A block whose free makes glibc look at its arena's top (FASTBIN_CONSOLIDATION_THRESHOLD is
// 64 KiB), and under kMmapThreshold, so that it comes from the arena.
constexpr size_t kArenaTopProbe = 128 << 10;

// Whether GLIBC_TUNABLES or the older MALLOC_*_THRESHOLD_ variables set either threshold.
bool AllocatorThresholdsChosen() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr) {
    return true;
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return tunables != nullptr && (std::strstr(tunables, "malloc.mmap_threshold") != nullptr ||
                                 std::strstr(tunables, "malloc.trim_threshold") != nullptr);
}

// A loop allocates from its own thread's arena. malloc_trim returns the free chunks inside every
// arena but, of their tops, only the main arena's; glibc gives another arena's top back only when
// a free finds it above the trim threshold, which it raises to 64 MiB once a large block it had
// mapped is freed. So after a burst a loop's arena kept its top, up to 64 MiB, through every
// quiet trim. A quiet loop lowers the threshold for one free of its own (ReturnArenaTop); since
// setting a threshold stops glibc moving either, both are fixed first, where glibc's own end up.
// Thresholds the environment sets are the operator's and stay. Returns whether they are fixed.
bool FixAllocatorThresholds() {
  static const bool fixed = [] {
    if (AllocatorThresholdsChosen()) return false;
    return ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && ::mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  }();
  return fixed;
}

// Gives back the free top of the calling thread's arena. The threshold is the process's: one
// loop at a time lowers it, and other threads' frees meanwhile at most give back their tops too.
void ReturnArenaTop() {
  static Mutex mu;
  MutexLock lock(mu);
  ::mallopt(M_TRIM_THRESHOLD, 0);
  void* volatile probe = std::malloc(kArenaTopProbe);  // volatile: the pair is not elided
  std::free(probe);
  ::mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(EventLoopOptions options) {
  std::unique_ptr<EventLoop> loop(new EventLoop(std::move(options)));
  if (absl::Status status = loop->Init(); !status.ok()) return status;
  return loop;
}

EventLoop::EventLoop(EventLoopOptions options)
    : options_(std::move(options)), now_ns_(MonotonicNanos()), wheel_(DurationNanos(options_.timer_tick), now_ns_) {
  // Zero, negative and infinite timeouts all mean "never".
  auto never_or_ns = [](absl::Duration d) {
    return d <= absl::ZeroDuration() || d == absl::InfiniteDuration() ? int64_t{0} : DurationNanos(d);
  };
  timeouts_.idle_ns = never_or_ns(options_.connection.idle_timeout);
  timeouts_.write_ns = never_or_ns(options_.connection.write_timeout);
  timeouts_.linger_ns = never_or_ns(options_.connection.close_linger);
  for (size_t i = 0; i < options_.services.size(); ++i) {
    stats_.services.push_back(std::make_unique<ServiceLoopStats>());
  }
  for (const auto& service_stats : stats_.services) answered_.push_back(Answered{.stats = service_stats.get()});
  for (int i = 0; i < options_.tls_endpoints; ++i) stats_.tls.push_back(std::make_unique<TlsLoopStats>());
}

absl::Status EventLoop::Init() {
  if (options_.return_free_memory) returns_arena_top_ = FixAllocatorThresholds();
  absl::StatusOr<std::unique_ptr<Poller>> poller = NewPoller(options_.backend, options_.uring);
  if (!poller.ok()) return poller.status();
  poller_ = std::move(*poller);
  uring_ = poller_->uring();
  epoll_ = poller_->epoll();
  if (uring_ != nullptr) uring_->set_wake_watcher(static_cast<IoWatcher*>(this));
  events_.resize(options_.max_events > 0 ? options_.max_events : 256);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return ErrnoStatus(errno, "eventfd");
  return poller_->Add(wake_fd_, kPollIn, static_cast<IoWatcher*>(this));
}

EventLoop::~EventLoop() {
  // Connections are closed by Run() before it returns; a loop that never ran has none, except
  // adoptions still queued, whose sockets are ours to close.
  adoptions_.TakeAll(&adopting_);
  for (const Adoption& a : adopting_) CloseFd(a.fd);
  // io_uring: the kernel may still use connections' memory (a send's bytes, an armed receive's
  // owner) until their operations complete. Only the ring's own thread may reap them; a loop
  // destroyed elsewhere after Run() has none left (Run reaps before it returns).
  if (uring_ != nullptr && IsInLoopThread()) uring_->CancelAllAndReap(2000);
  connections_.clear();
  zombies_.clear();
  retired_.clear();
  timers_.clear();
  dead_timers_.clear();
  if (wake_fd_ >= 0) {
    if (poller_) (void)poller_->Remove(wake_fd_);
    CloseFd(wake_fd_);
  }
}

void EventLoop::AssertInLoopThread() const {
  if (!IsInLoopThread()) {
    std::fprintf(stderr, "percore: loop %d touched from a thread that does not own it\n", index());
    std::abort();
  }
}

namespace {
thread_local EventLoop* current_loop = nullptr;
}  // namespace

EventLoop* EventLoop::Current() { return current_loop; }

void EventLoop::BuildShardedState() {
  for (ShardedBase* state : options_.sharded) state->BuildOn(*this);
  for (Service* service : options_.services) {
    for (ShardedBase* state : service->sharded_state()) state->BuildOn(*this);
  }
}

void EventLoop::Run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  current_loop = this;
  NameCurrentThread(absl::StrCat("percore-loop", index()).c_str());
  if (options_.cpu >= 0) {
    if (absl::Status s = PinCurrentThread(options_.cpu); !s.ok()) {
      std::fprintf(stderr, "percore: loop %d: %s\n", index(), std::string(s.message()).c_str());
    }
  }
  poller_->BindToCurrentThread();
  now_ns_ = MonotonicNanos();
  iteration_end_ns_ = now_ns_;
  BuildShardedState();
  for (Service* service : options_.services) service->OnLoopStart(*this);
  // Buffer blocks a burst of connections left in the pool go back to the allocator once two
  // periods pass without their being needed.
  const TimerId trim = RunEvery(options_.buffer_trim_period, [this] {
    const size_t freed = buffer_pool_.blocks_trimmed() + connection_io_.freed();
    buffer_pool_.Trim();
    connection_io_.Trim();
    // What the trim freed goes back to the system at the next quiet check (ReturnFreeMemory),
    // as the burst's own frees did: without this, blocks kept past that check stayed resident.
    if (buffer_pool_.blocks_trimmed() + connection_io_.freed() != freed) worked_since_trim_ = true;
  });
  const TimerId memory_check =
      options_.return_free_memory ? RunEvery(options_.memory_check_period, [this] { ReturnFreeMemory(); }) : 0;
  // Each connection's recent rates: what ListConnections shows and the rebalancer ranks by.
  const TimerId rates = RunEvery(options_.rate_period, [this] {
    for (auto& [id, conn] : connections_) conn->SampleRate(now_ns_);
  });
  running_.store(true, std::memory_order_release);
  for (;;) {
    if (quit_.load(std::memory_order_acquire)) {
      if (!draining_) {
        draining_ = true;
        {
          MutexLock lock(quit_mu_);
          drain_group_ = quit_group_;
        }
        // What each client has sent by now is answered, then its connection closes. Those
        // handed over just before the stop are adopted after, and AdoptPending does the same
        // for them now that quit_ is set.
        if (uring_ != nullptr) CollectCompletions();
        ServeArrivedThenCloseAll(CloseReason::kServerDrain);
        if (answered_any_) CountAnswered(MonotonicNanos());
        AdoptPending();
      }
      if (connections_.empty()) {
        ArriveDrained();
        // Drained; still answering work from loops of the group that are not.
        if (drain_group_ == nullptr || drain_group_->done()) break;
      }
      if (now_ns_ >= drain_deadline_ns_.load(std::memory_order_relaxed)) {
        CloseAllConnections(CloseReason::kServerDrain, CloseMode::kNow);
        FreeRetired();
        ArriveDrained();
        break;
      }
    }
    RunOnce();
  }
  Cancel(trim);
  if (memory_check != 0) Cancel(memory_check);
  Cancel(rates);
  // Work posted from here on is dropped; run what is already queued so that nothing is lost
  // silently (tasks may hold resources whose destructors must run on this thread).
  RunTasks();
  exited_ = true;
  AdoptPending();
  FreeRetired();
  ReapInFlight();
  if (answered_any_) CountAnswered(MonotonicNanos());
  running_.store(false, std::memory_order_release);
  current_loop = nullptr;
}

void EventLoop::ArriveDrained() {
  if (arrived_) return;
  arrived_ = true;
  drained_.store(true, std::memory_order_release);
  if (drain_group_ != nullptr) drain_group_->Arrive();
}

DrainGroup::DrainGroup(std::vector<EventLoop*> loops)
    : loops_(std::move(loops)), remaining_(loops_.size()) {}

void DrainGroup::Arrive() {
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (EventLoop* loop : loops_) loop->Wake();
}

void EventLoop::BindToCurrentThread() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  current_loop = this;
  poller_->BindToCurrentThread();
  now_ns_ = MonotonicNanos();
  iteration_end_ns_ = now_ns_;
  BuildShardedState();
}

void EventLoop::Step(int max_wait_ms) {
  AssertInLoopThread();
  max_wait_ms_ = max_wait_ms;
  iteration_end_ns_ = MonotonicNanos();  // the caller's time since the last Step is not the loop's
  RunOnce();
  max_wait_ms_ = -1;
}

void EventLoop::Quit(MonoTime drain_deadline, std::shared_ptr<DrainGroup> group) {
  {
    MutexLock lock(quit_mu_);
    quit_group_ = std::move(group);
  }
  drain_deadline_ns_.store(drain_deadline.nanos(), std::memory_order_relaxed);
  quit_.store(true, std::memory_order_release);
  Wake();
}

int EventLoop::ComputeTimeoutMs() {
  int timeout = -1;
  const int64_t next = wheel_.NextExpiry();
  if (next >= 0) {
    const int64_t delta = next - now_ns_;
    const int64_t ms = delta <= 0 ? 0 : (delta + 999'999) / 1'000'000;
    timeout = ms > 3'600'000 ? 3'600'000 : static_cast<int>(ms);
  }
  // While draining, wake at least every 10 ms to check the drain deadline.
  const int cap = draining_ ? 10 : max_wait_ms_;
  if (cap >= 0 && (timeout < 0 || timeout > cap)) timeout = cap;
  // While the load window still holds work, wake for the next load sample, so that an idle
  // loop's load falls to zero within the window instead of keeping its last busy figure.
  if (stats_.load_permille.Get() > 0) {
    const int64_t until = next_load_sample_ns_ - now_ns_;
    const int ms = until <= 0 ? 0 : static_cast<int>((until + 999'999) / 1'000'000);
    if (timeout < 0 || timeout > ms) timeout = ms;
  }
  // A migration waiting for its connection's request boundary checks again soon (the boundary
  // usually comes with the connection's own events; its deadline may come first).
  if (!migrations_.empty() && (timeout < 0 || timeout > 5)) timeout = 5;
  if (!flush_next_.empty() || !starved_.empty()) timeout = 0;
  return timeout;
}

void EventLoop::SampleLoad(int64_t now_ns) {
  const int64_t cpu = ThreadCpuNanos();
  const LoadSample newest = load_samples_[(load_next_ + kLoadWindow - 1) % kLoadWindow];
  if (newest.wall_ns == 0 || now_ns - newest.wall_ns > 2 * kLoadSamplePeriodNs) {
    // The first sample, or the first after a wait that skipped samples (the loop was idle, its
    // load zero): the window's periods before this one were idle, and what the thread used
    // since the last sample falls in this one.
    const int64_t before = newest.wall_ns == 0 ? cpu : newest.cpu_ns;
    for (int i = 0; i < kLoadWindow; ++i) {
      load_samples_[i] = {now_ns - (kLoadWindow - i) * kLoadSamplePeriodNs, before};
    }
    load_next_ = 0;
  }
  const LoadSample oldest = load_samples_[load_next_];  // one window ago
  load_samples_[load_next_] = {now_ns, cpu};
  load_next_ = (load_next_ + 1) % kLoadWindow;
  const int64_t wall = now_ns - oldest.wall_ns;
  const int64_t permille = wall > 0 ? (cpu - oldest.cpu_ns) * 1000 / wall : 0;
  stats_.load_permille.Set(std::clamp<int64_t>(permille, 0, 1000));
  const auto total = static_cast<uint64_t>(cpu);
  if (total > stats_.cpu_ns.Get()) stats_.cpu_ns.Add(total - stats_.cpu_ns.Get());
  next_load_sample_ns_ = now_ns + kLoadSamplePeriodNs;
}

void EventLoop::RunOnce() {
  ++iteration_;
  // The previous iteration's end is this one's start (Step, driven from outside, refreshes it).
  const int64_t start = iteration_end_ns_;
  now_ns_ = start;
  const int timeout_ms = ComputeTimeoutMs();
  stats_.poll_calls.Increment();
  WaitAndDispatch(timeout_ms);
  stats_.wait_ns.Add(static_cast<uint64_t>(wait_end_ns_ - start));
  const int fired = wheel_.Advance(now_ns_);
  if (fired > 0) stats_.timers_fired.Add(static_cast<uint64_t>(fired));
  // Each of these finds nothing to do in most iterations; the checks are inline.
  if (!flush_next_.empty() || !starved_.empty()) FlushDeferred();
  if (adoptions_.MaybeNonEmpty()) AdoptPending();
  if (tasks_.MaybeNonEmpty()) RunTasks();
  if (!migrations_.empty()) ProgressMigrations();
  // io_uring: a zombie (closed, an operation still in flight) goes once its completions are in.
  if (!retired_.empty() || !dead_timers_.empty() || !zombies_.empty()) FreeRetired();
  if (uring_ != nullptr) UpdateUringStats();
  const int64_t end = MonotonicNanos();
  iteration_end_ns_ = end;
  if (answered_any_) CountAnswered(end);
  const int64_t busy = end - wait_end_ns_;
  stats_.busy_ns.Add(static_cast<uint64_t>(busy));
  stats_.iteration_ns.Record(static_cast<uint64_t>(busy));
  if (busy > stats_.longest_stall_ns.Get()) {
    stats_.longest_stall_ns.Set(busy);
    stats_.longest_stall_wall_ns.Set(WallNanos());
  }
  stats_.buffer_blocks_free.Set(static_cast<int64_t>(buffer_pool_.free_blocks()));
  stats_.connection_buffers_free.Set(static_cast<int64_t>(connection_io_.free_count()));
  stats_.buffer_blocks_allocated.Set(static_cast<int64_t>(buffer_pool_.blocks_allocated()));
  stats_.iterations.Increment();
  if (end >= next_load_sample_ns_) SampleLoad(end);
}

void EventLoop::CountAnswered(int64_t end_ns) {
  // Every request answered inline in this iteration was read after its Wait returned and
  // answered before `end_ns`: one latency, recorded once per service with its count.
  const int64_t latency_ns = end_ns - wait_end_ns_;
  const uint64_t latency = latency_ns > 0 ? static_cast<uint64_t>(latency_ns) : 0;
  for (Answered& a : answered_) {
    if (a.requests == 0) continue;
    a.stats->latency_ns.Record(latency, a.requests);
    a.requests = 0;
  }
  answered_any_ = false;
}

int EventLoop::WaitAndDispatch(int timeout_ms) {
  if (epoll_ != nullptr) return WaitAndDispatchEpoll(timeout_ms);
  absl::StatusOr<int> ready = poller_->Wait(timeout_ms, std::span<PollEvent>(events_));
  wait_end_ns_ = MonotonicNanos();
  now_ns_ = wait_end_ns_;
  if (!ready.ok()) {
    std::fprintf(stderr, "percore: loop %d: %s\n", index(), std::string(ready.status().message()).c_str());
    return -1;
  }
  return Dispatch(*ready);
}

int EventLoop::Dispatch(int ready) {
  // Unwatch() clears the context of an fd still waiting in this batch, so a watcher removed
  // (and perhaps destroyed) by an earlier callback is never called. Completions of connection
  // operations name their connection, which outlives them (zombies_).
  dispatch_end_ = ready;
  for (dispatch_next_ = 0; dispatch_next_ < dispatch_end_;) {
    const PollEvent& event = events_[dispatch_next_++];
    if (event.events & kPollCompletion) {
      if (event.context != nullptr) static_cast<IoWatcher*>(event.context)->OnCompletion(event);
      if (UringPoller::CarriesBuffer(event)) uring_->RecycleBuffer(event);
    } else if (event.context != nullptr) {
      static_cast<IoWatcher*>(event.context)->OnIoEvent(event.events);
    }
  }
  dispatch_end_ = 0;
  stats_.events.Add(static_cast<uint64_t>(ready));
  return ready;
}

int EventLoop::WaitAndDispatchEpoll(int timeout_ms) {
  const int ready = epoll_->WaitReady(timeout_ms, static_cast<int>(events_.size()));
  wait_end_ns_ = MonotonicNanos();
  now_ns_ = wait_end_ns_;
  if (ready < 0) {
    std::fprintf(stderr, "percore: loop %d: %s\n", index(), std::string(ErrnoStatus(errno, "epoll_wait").message()).c_str());
    return -1;
  }
  // A watcher removed by an earlier callback of the batch has no context any more, and
  // Unwatch cancels its fd's events (DropReady), so a watcher is never called after its removal
  // even if its fd number is reused within the batch.
  dispatch_end_ = ready;
  for (dispatch_next_ = 0; dispatch_next_ < dispatch_end_;) {
    const int i = dispatch_next_++;
    const int fd = epoll_->ready_fd(i);
    if (fd < 0) continue;
    if (void* context = epoll_->context(fd)) static_cast<IoWatcher*>(context)->OnIoEvent(epoll_->ready_events(i));
  }
  dispatch_end_ = 0;
  stats_.events.Add(static_cast<uint64_t>(ready));
  return ready;
}

void EventLoop::CollectCompletions() {
  // What the kernel has already posted, without entering it again (which would let it take
  // more from the sockets, and a peer that keeps sending could hold the drain here). After
  // this, under DEFER_TASKRUN, what a connection has not been given is still in its socket.
  while (Dispatch(uring_->Reap(std::span<PollEvent>(events_))) > 0) {
  }
  FlushDeferred();
}

void EventLoop::RearmStarved() {
  // As many as the ring has buffers, oldest first: every buffer is back by now (returned as
  // each completion was dispatched), and each receive needs at least one. Those left wait for
  // the next iteration, so an empty ring costs bounded work per iteration, not a spin.
  size_t budget = uring_->buffer_count();
  while (!starved_.empty() && budget-- > 0) {
    const uint64_t id = starved_.front();
    starved_.pop_front();
    if (Connection* conn = FindConnection(id)) conn->RearmStarvedReceive();
  }
}

void EventLoop::FlushDeferred() {
  if (!starved_.empty()) RearmStarved();
  if (flush_next_.empty()) return;
  flushing_.swap(flush_next_);
  for (uint64_t id : flushing_) {
    if (Connection* conn = FindConnection(id)) conn->ContinueFlush();
  }
  flushing_.clear();
}

void EventLoop::ReapInFlight() {
  if (uring_ == nullptr) return;
  FreeRetired();
  if (zombies_.empty() && uring_->operations_in_flight() == 0) return;
  uring_->CancelAllAndReap(2000);
  zombies_.clear();
}

void EventLoop::UpdateUringStats() {
  const UringCounters& c = uring_->counters();
  stats_.uring_enters.Add(c.enters - uring_seen_.enters);
  stats_.uring_submissions.Add(c.submissions - uring_seen_.submissions);
  stats_.uring_completions.Add(c.completions - uring_seen_.completions);
  stats_.uring_buffer_exhaustions.Add(c.buffer_exhaustions - uring_seen_.buffer_exhaustions);
  stats_.uring_cq_overflows.Add(c.cq_overflows - uring_seen_.cq_overflows);
  uring_seen_ = c;
}

void EventLoop::Wake() {
  // Sequentially consistent, with the store in OnIoEvent: see TaskQueue::TakeAll.
  if (wake_pending_.exchange(true, std::memory_order_seq_cst)) return;
  // A loop that has not started waits in no ring yet; its first Wait sees the queues anyway,
  // but the eventfd keeps the count for it either way.
  if (uring_ != nullptr && options_.uring.wake_by_msg_ring && running_.load(std::memory_order_acquire) &&
      uring_->PostWake()) {
    return;
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
}

void EventLoop::OnIoEvent(uint32_t events) {
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof(count));
  // Cleared before the queues are drained (later in this iteration): a producer that pushes
  // after this point sees false and writes the eventfd again, so no push is ever missed.
  wake_pending_.store(false, std::memory_order_seq_cst);
  stats_.wakeups.Increment();
}

void EventLoop::OnCompletion(const PollEvent& event) {
  // As OnIoEvent, without the eventfd read: see there for why the flag is cleared first.
  wake_pending_.store(false, std::memory_order_seq_cst);
  stats_.wakeups.Increment();
}

void EventLoop::Post(Task task) {
  tasks_.Push(std::move(task));
  Wake();
}

void EventLoop::RunTasks() {
  tasks_.TakeAll(&running_tasks_);
  if (running_tasks_.empty()) return;
  for (Task& task : running_tasks_) {
    // A task that belongs to a connection is guarded by it (PostToConnection); this guard is
    // for the rest, so that one failing task (std::bad_alloc under memory pressure) costs that
    // task, never the loop.
    try {
      std::move(task)();
    } catch (...) {
      TaskFailed("posted task");
    }
  }
  stats_.tasks_run.Add(running_tasks_.size());
  running_tasks_.clear();
}

void EventLoop::ReturnFreeMemory() {
  const uint64_t busy = stats_.busy_ns.Get();
  const uint64_t busy_in_period = busy - busy_at_memory_check_;
  busy_at_memory_check_ = busy;
  // Connections that closed free their memory however little time it took (a burst of
  // handshake timeouts closes hundreds in a millisecond): that counts as work too.
  const uint64_t closed = stats_.closed_total();
  const bool closed_in_period = closed != closed_at_memory_check_;
  closed_at_memory_check_ = closed;
  if (busy_in_period > static_cast<uint64_t>(DurationNanos(options_.memory_check_period) / 100) || closed_in_period) {
    worked_since_trim_ = true;
    return;
  }
  if (!worked_since_trim_) return;
  worked_since_trim_ = false;
  const int64_t start = MonotonicNanos();
  ::malloc_trim(0);
  if (returns_arena_top_) ReturnArenaTop();
  stats_.memory_trims.Increment();
  stats_.memory_trim_ns.Add(static_cast<uint64_t>(MonotonicNanos() - start));
}

void EventLoop::TaskFailed(const char* what) {
  stats_.task_errors.Increment();
  const uint64_t n = stats_.task_errors.Get();
  // Logged at 1, 2, 4, 8, ... so that a failure repeated per request does not flood the log.
  if ((n & (n - 1)) == 0) {
    std::fprintf(stderr, "percore: loop %d: a %s threw; %llu so far\n", index(), what,
                 static_cast<unsigned long long>(n));
  }
}

void EventLoop::Adopt(int fd, int service_index, const SocketAddress& peer, TlsEndpoint* tls) {
  adoptions_.Push(Adoption{fd, service_index, peer, tls});
  Wake();
}

void EventLoop::Migrate(uint64_t id, EventLoop& target, absl::Duration wait, MigrationDone done) {
  const int64_t wait_ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(wait));
  Post([this, id, target = &target, wait_ns, reply = std::make_unique<MigrationReply>(std::move(done))]() mutable {
    StartMigration(id, target, wait_ns, std::move(reply));
  });
}

void EventLoop::StartMigration(uint64_t id, EventLoop* target, int64_t wait_ns,
                               std::unique_ptr<MigrationReply> reply) {
  PendingMigration p{id, target, now_ns_ + wait_ns, std::move(reply), false};
  if (FindConnection(id) == nullptr) {
    RefuseMigration(p, MigrationStatus::kUnknownConnection, absl::StrCat("no connection ", id, " is open"));
    return;
  }
  if (target == this) {
    RefuseMigration(p, MigrationStatus::kSameLoop, absl::StrCat("connection ", id, " is on loop ", index(), " already"));
    return;
  }
  if (quit_.load(std::memory_order_relaxed)) {
    RefuseMigration(p, MigrationStatus::kSourceDraining, absl::StrCat("loop ", index(), " is stopping"));
    return;
  }
  for (const PendingMigration& other : migrations_) {
    if (other.id == id) {
      RefuseMigration(p, MigrationStatus::kAlreadyMoving,
                      absl::StrCat("connection ", id, " is already moving to loop ", other.target->index()));
      return;
    }
  }
  migrations_.push_back(std::move(p));
  ProgressMigrations();
}

void EventLoop::RefuseMigration(PendingMigration& p, MigrationStatus status, std::string detail) {
  stats_.migrations_refused.Increment();
  p.reply->Send(MigrationResult{status, -1, 0, std::move(detail)});
}

void EventLoop::ProgressMigrations() {
  std::vector<PendingMigration> pending = std::move(migrations_);
  migrations_.clear();
  for (PendingMigration& p : pending) {
    Connection* conn = FindConnection(p.id);
    if (conn == nullptr) {
      RefuseMigration(p, MigrationStatus::kClosing, absl::StrCat("connection ", p.id, " closed before it could move"));
      continue;
    }
    if (!p.begun) {
      const MigrationStatus blocker = conn->MigrationBlocker();
      // Paused is waited for too: most pauses are a request waiting on another loop's answer.
      if ((blocker == MigrationStatus::kNotAtBoundary || blocker == MigrationStatus::kPaused) &&
          now_ns_ < p.deadline_ns) {
        migrations_.push_back(std::move(p));  // asked again at the end of the next iteration
        continue;
      }
      if (blocker != MigrationStatus::kMoved) {
        std::string detail;
        switch (blocker) {
          case MigrationStatus::kNotAtBoundary:
            detail = "it did not reach a request boundary in time (input unread, output queued, a request "
                     "under way, or its TLS handshake)";
            break;
          case MigrationStatus::kPaused: detail = "it stayed paused (waiting on other work) for the whole wait"; break;
          case MigrationStatus::kDeclined: detail = "its service's handler does not move"; break;
          case MigrationStatus::kClosing: detail = "it is closing"; break;
          default: detail = std::string(MigrationStatusName(blocker)); break;
        }
        RefuseMigration(p, blocker, absl::StrCat("connection ", p.id, ": ", detail));
        continue;
      }
      conn->BeginMigration();
      p.begun = true;
    }
    if (conn->io_in_flight()) {
      migrations_.push_back(std::move(p));  // io_uring: the cancelled receive is still out
      continue;
    }
    int endpoint = -1;
    for (size_t i = 0; i < stats_.tls.size(); ++i) {
      if (stats_.tls[i].get() == conn->tls_stats()) endpoint = static_cast<int>(i);
    }
    std::unique_ptr<Migrant> m = conn->TakeMigrant(endpoint);
    m->reply = std::move(p.reply);
    auto node = connections_.extract(p.id);
    retired_.push_back(std::move(node.mapped()));  // freed without closing: the socket moved
    stats_.conns_active.Add(-1);
    stats_.migrations_out.Increment();
    EventLoop* target = p.target;
    target->Post([target, m = std::move(m)]() mutable { target->AdoptMigrant(std::move(m)); });
  }
}

void EventLoop::AdoptMigrant(std::unique_ptr<Migrant> m) {
  if (exited_) return;  // no iteration is left to serve it: the Migrant closes it
  const uint64_t id = (static_cast<uint64_t>(index()) << 48) | next_connection_seq_++;
  auto conn = std::make_unique<Connection>(*this, id, m->fd, m->peer, m->service_index,
                                           stats_.services[m->service_index].get(), options_.connection);
  m->fd = -1;  // the connection owns the socket now
  Connection* raw = conn.get();
  connections_.emplace(id, std::move(conn));
  stats_.conns_active.Add(1);
  stats_.migrations_in.Increment();
  std::unique_ptr<MigrationReply> reply = std::move(m->reply);
  raw->Arrive(*m);
  if (reply != nullptr) reply->Send(MigrationResult{MigrationStatus::kMoved, index(), id, ""});
  if (quit_.load(std::memory_order_relaxed) && FindConnection(id) != nullptr) {
    raw->ServeArrivedThenClose(CloseReason::kServerDrain);
  }
}

void EventLoop::AdoptPending() {
  adoptions_.TakeAll(&adopting_);
  if (adopting_.empty()) return;
  for (Adoption& a : adopting_) {
    stats_.conns_handed_in.Increment();
    if (exited_) {  // no iteration is left to serve it
      CloseFd(a.fd);
      stats_.closed[static_cast<int>(CloseReason::kServerDrain)].Increment();
      continue;
    }
    // TCP_NODELAY is on already: every listener sets it, and accepted sockets inherit it
    // (ListenTcp).
    if (a.peer.length == 0) {
      if (absl::StatusOr<SocketAddress> peer = PeerAddress(a.fd); peer.ok()) a.peer = *peer;
    }
    const uint64_t id = (static_cast<uint64_t>(index()) << 48) | next_connection_seq_++;
    auto conn = std::make_unique<Connection>(*this, id, a.fd, a.peer, a.service_index,
                                             stats_.services[a.service_index].get(), options_.connection);
    Connection* raw = conn.get();
    connections_.emplace(id, std::move(conn));
    stats_.conns_active.Add(1);
    if (a.tls != nullptr) raw->UseTls(a.tls->current(), stats_.tls[a.tls->index()].get());
    raw->Start(options_.services[a.service_index]->NewHandler(*raw));
    // While draining, what the peer already sent is answered, then the connection closes at
    // that request boundary (a FIN, not the reset that closing on unread bytes would send).
    if (quit_.load(std::memory_order_relaxed)) raw->ServeArrivedThenClose(CloseReason::kServerDrain);
  }
  adopting_.clear();
}

Connection* EventLoop::FindConnection(uint64_t id) {
  AssertInLoopThread();
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

void EventLoop::ServeArrivedThenCloseAll(CloseReason reason) {
  ForEachConnectionThatMayClose([](Connection& conn) { conn.ServeArrived(); });
  ForEachConnectionThatMayClose([reason](Connection& conn) { conn.CloseGracefully(reason, /*after_in_flight=*/true); });
}

void EventLoop::CloseAllConnections(CloseReason reason, CloseMode mode) {
  ForEachConnectionThatMayClose([reason, mode](Connection& conn) { conn.Close(reason, mode); });
}

void EventLoop::RetireConnection(Connection* conn, CloseReason reason) {
  auto node = connections_.extract(conn->id());
  if (node.empty()) return;
  stats_.closed[static_cast<int>(reason)].Increment();
  stats_.conns_active.Add(-1);
  // Freed at the end of the iteration: events already fetched in this batch may still name it.
  retired_.push_back(std::move(node.mapped()));
}

void EventLoop::FreeRetired() {
  if (uring_ != nullptr) {
    for (std::unique_ptr<Connection>& conn : retired_) {
      if (conn->io_in_flight()) zombies_.push_back(std::move(conn));
    }
    if (!zombies_.empty()) {
      std::erase_if(zombies_, [](const std::unique_ptr<Connection>& conn) { return !conn->io_in_flight(); });
    }
  }
  retired_.clear();
  dead_timers_.clear();
}

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  AssertInLoopThread();
  const int64_t delay_ns = std::max<int64_t>(DurationNanos(delay), 0);
  const TimerId id = next_timer_id_++;
  auto timer = std::make_unique<CallbackTimer>(*this, id, 0, std::move(fn));
  wheel_.Schedule(timer.get(), now_ns_ + delay_ns);
  timers_.emplace(id, std::move(timer));
  return id;
}

EventLoop::TimerId EventLoop::RunEvery(absl::Duration period, absl::AnyInvocable<void()> fn) {
  AssertInLoopThread();
  const int64_t period_ns = std::max<int64_t>(DurationNanos(period), 1);
  const TimerId id = next_timer_id_++;
  auto timer = std::make_unique<CallbackTimer>(*this, id, period_ns > 0 ? period_ns : 1, std::move(fn));
  wheel_.Schedule(timer.get(), now_ns_ + period_ns);
  timers_.emplace(id, std::move(timer));
  return id;
}

bool EventLoop::Cancel(TimerId id) {
  AssertInLoopThread();
  auto node = timers_.extract(id);
  if (node.empty()) return false;
  wheel_.Cancel(node.mapped().get());
  dead_timers_.push_back(std::move(node.mapped()));
  return true;
}

absl::Status EventLoop::Watch(int fd, uint32_t interest, IoWatcher* watcher) {
  AssertInLoopThread();
  return poller_->Add(fd, interest, watcher);
}

absl::Status EventLoop::Rewatch(int fd, uint32_t interest) {
  AssertInLoopThread();
  return poller_->Modify(fd, interest);
}

void EventLoop::DropReadyEvents(int fd) {
  if (epoll_ != nullptr) {
    epoll_->DropReady(fd, dispatch_next_, dispatch_end_);
  } else {
    for (int i = dispatch_next_; i < dispatch_end_; ++i) {
      if (events_[i].fd == fd) events_[i].context = nullptr;
    }
  }
}

absl::Status EventLoop::Unwatch(int fd) {
  AssertInLoopThread();
  DropReadyEvents(fd);
  return poller_->Remove(fd);
}

absl::Status EventLoop::UnwatchBeforeClose(int fd) {
  AssertInLoopThread();
  DropReadyEvents(fd);
  return poller_->RemoveBeforeClose(fd);
}

int64_t EventLoop::RefreshNow() {
  now_ns_ = MonotonicNanos();
  return now_ns_;
}

}  // namespace percore
