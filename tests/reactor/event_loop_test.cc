// EventLoop without connections: posted tasks from many threads, timers (RunAfter, RunEvery,
// Cancel, including from inside callbacks), Quit, the idle loop sleeping in the kernel, wake-up
// accounting and the loop-thread assertion. Every test runs on the poll and the epoll back end.
//
// Timing is read from the loop's own clock (now()); the tests wait on promises with generous
// deadlines, never on sleeps. The one exception is the idle test, whose assertion is that nothing
// happens during a bounded real interval.

#include "reactor/event_loop.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "reactor/poller.h"

namespace percore {

// Names the back end in gtest failure messages (found by ADL).
void PrintTo(PollerBackend backend, std::ostream* os) { *os << PollerBackendName(backend); }

namespace {

using std::chrono::seconds;

constexpr auto kDeadline = seconds(60);  // for things that are due now; only reached on a bug

// Waits for `f` up to the deadline; false if it did not become ready.
template <typename T>
bool Ready(std::future<T>& f) {
  return f.wait_for(kDeadline) == std::future_status::ready;
}

// An EventLoop running on its own std::thread. Stop() quits it and checks that Run returns.
class LoopThread {
 public:
  static std::unique_ptr<LoopThread> Start(PollerBackend backend) {
    EventLoopOptions options;
    options.backend = backend;
    // event_loop_test_msg_ring: io_uring loops are woken by IORING_OP_MSG_RING, not the eventfd.
    const char* wake = std::getenv("PERCORE_TEST_URING_WAKE");
    options.uring.wake_by_msg_ring = wake != nullptr && std::string_view(wake) == "msg_ring";
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(std::move(options));
    if (!loop.ok()) {
      ADD_FAILURE() << "EventLoop::Create: " << loop.status();
      return nullptr;
    }
    return std::unique_ptr<LoopThread>(new LoopThread(std::move(*loop)));
  }

  ~LoopThread() { Stop(); }

  EventLoop& loop() { return *loop_; }
  std::thread::id thread_id() const { return thread_id_; }

  // Quits the loop and joins its thread. A Run that does not return is fatal: the thread
  // cannot be joined, so the process would hang instead of failing.
  void Stop() {
    if (!thread_.joinable()) return;
    loop_->Quit();
    if (returned_.wait_for(kDeadline) != std::future_status::ready) {
      ADD_FAILURE() << "EventLoop::Run did not return after Quit";
      std::abort();
    }
    thread_.join();
  }

  // Whether Run has returned (without waiting).
  bool RunReturned() { return returned_.wait_for(seconds(0)) == std::future_status::ready; }
  bool WaitRunReturned() { return returned_.wait_for(kDeadline) == std::future_status::ready; }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  // Runs `fn` on the loop thread and waits for it to finish.
  bool RunSync(absl::AnyInvocable<void()> fn) {
    std::promise<void> done;
    std::future<void> f = done.get_future();
    loop_->Post([&fn, &done] {
      fn();
      done.set_value();
    });
    return Ready(f);
  }

 private:
  explicit LoopThread(std::unique_ptr<EventLoop> loop) : loop_(std::move(loop)) {
    std::promise<void> returned;
    returned_ = returned.get_future();
    thread_ = std::thread([this, returned = std::move(returned)]() mutable {
      loop_->Run();
      returned.set_value();
    });
    thread_id_ = thread_.get_id();
  }

  std::unique_ptr<EventLoop> loop_;
  std::future<void> returned_;
  std::thread thread_;
  std::thread::id thread_id_;
};

class EventLoopTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void SetUp() override {
    lt_ = LoopThread::Start(GetParam());
    ASSERT_NE(lt_, nullptr);
  }
  EventLoop& loop() { return lt_->loop(); }

  std::unique_ptr<LoopThread> lt_;
};

std::string BackendName(const ::testing::TestParamInfo<PollerBackend>& info) {
  return std::string(PollerBackendName(info.param));
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring), BackendName);

TEST_P(EventLoopTest, RunsTheRequestedBackend) {
  EXPECT_EQ(loop().backend(), GetParam());
  ASSERT_TRUE(lt_->RunSync([] {}));
  EXPECT_TRUE(loop().running());
  lt_->Stop();
  EXPECT_FALSE(loop().running());
}

// --- Post ---

TEST_P(EventLoopTest, PostedTaskRunsOnTheLoopThread) {
  std::promise<std::thread::id> ran_on;
  std::future<std::thread::id> f = ran_on.get_future();
  bool in_loop = false;
  loop().Post([&] {
    in_loop = loop().IsInLoopThread();
    ran_on.set_value(std::this_thread::get_id());
  });
  ASSERT_TRUE(Ready(f));
  EXPECT_EQ(f.get(), lt_->thread_id());
  EXPECT_TRUE(in_loop);
  EXPECT_FALSE(loop().IsInLoopThread());
}

// 8 threads post 100,000 tasks each. Every task runs exactly once, on the loop thread, and each
// poster's tasks run in the order posted.
TEST_P(EventLoopTest, PostFromManyThreadsRunsEveryTaskOnceInOrderPerPoster) {
  constexpr int kPosters = 8;
  constexpr uint64_t kPerPoster = 100'000;
  constexpr uint64_t kTotal = kPosters * kPerPoster;

  // Touched only by the loop thread until `done` is fulfilled.
  struct State {
    std::thread::id loop_thread;
    std::vector<uint64_t> next = std::vector<uint64_t>(kPosters, 0);
    uint64_t out_of_order = 0;
    uint64_t off_thread = 0;
    uint64_t total = 0;
    std::promise<void> done;
  } state;
  state.loop_thread = lt_->thread_id();
  std::future<void> done = state.done.get_future();
  const uint64_t tasks_before = loop().stats().tasks_run.Get();

  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      start.wait();
      for (uint64_t seq = 0; seq < kPerPoster; ++seq) {
        // Two words of capture: fits the task's inline storage.
        const uint64_t tag = (static_cast<uint64_t>(p) << 32) | seq;
        State* s = &state;
        loop().Post([s, tag] {
          if (std::this_thread::get_id() != s->loop_thread) ++s->off_thread;
          const int poster = static_cast<int>(tag >> 32);
          if (s->next[poster] == (tag & 0xffffffffu)) {
            ++s->next[poster];
          } else {
            ++s->out_of_order;
          }
          if (++s->total == kTotal) s->done.set_value();
        });
      }
    });
  }
  go.set_value();
  for (std::thread& t : posters) t.join();
  ASSERT_TRUE(Ready(done)) << "tasks run: " << loop().stats().tasks_run.Get() - tasks_before;

  // A task posted after all the others runs after them (in a later batch, so the stats
  // already count the whole of the earlier ones): nothing more arrives.
  uint64_t total_after = 0;
  uint64_t tasks_after = 0;
  ASSERT_TRUE(lt_->RunSync([&] {
    total_after = state.total;
    tasks_after = loop().stats().tasks_run.Get();
  }));
  EXPECT_EQ(total_after, kTotal);
  EXPECT_EQ(state.out_of_order, 0u);
  EXPECT_EQ(state.off_thread, 0u);
  for (int p = 0; p < kPosters; ++p) EXPECT_EQ(state.next[p], kPerPoster) << "poster " << p;
  EXPECT_EQ(tasks_after - tasks_before, kTotal);
}

TEST_P(EventLoopTest, TaskPostedFromATaskRuns) {
  std::promise<int> done;
  std::future<int> f = done.get_future();
  int depth = 0;
  absl::AnyInvocable<void()> step;
  step = [&] {
    if (++depth == 100) {
      done.set_value(depth);
      return;
    }
    loop().Post([&] { step(); });
  };
  loop().Post([&] { step(); });
  ASSERT_TRUE(Ready(f));
  EXPECT_EQ(f.get(), 100);
}

TEST_P(EventLoopTest, TasksPostedBeforeQuitStillRun) {
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) loop().Post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
  lt_->Stop();
  EXPECT_EQ(ran.load(), 1000);
}

TEST_P(EventLoopTest, TaskPostedAfterRunEndedIsDestroyedWithoutRunning) {
  lt_->Stop();
  auto guard = std::make_shared<int>(0);
  bool ran = false;
  loop().Post([&ran, guard] { ran = true; });
  EXPECT_EQ(guard.use_count(), 2);  // held by the queued task
  lt_.reset();                      // destroys the loop
  EXPECT_FALSE(ran);
  EXPECT_EQ(guard.use_count(), 1);
}

// --- Wake-ups ---

TEST_P(EventLoopTest, EachPostToAnIdleLoopIsOneWakeup) {
  ASSERT_TRUE(lt_->RunSync([] {}));  // the loop is up and idle
  // Read on the loop: a batch's tasks are counted once the whole batch has run. A posted task
  // always sees its own wake-up counted (the eventfd is handled before tasks run).
  uint64_t wakeups_before = 0;
  uint64_t tasks_before = 0;
  ASSERT_TRUE(lt_->RunSync([&] {
    wakeups_before = loop().stats().wakeups.Get();
    tasks_before = loop().stats().tasks_run.Get();
  }));
  constexpr uint64_t kPosts = 20;
  for (uint64_t i = 0; i < kPosts; ++i) ASSERT_TRUE(lt_->RunSync([] {}));
  uint64_t wakeups_after = 0;
  uint64_t tasks_after = 0;
  ASSERT_TRUE(lt_->RunSync([&] {
    wakeups_after = loop().stats().wakeups.Get();
    tasks_after = loop().stats().tasks_run.Get();
  }));
  // The kPosts tasks and the reading task each woke the idle loop once; the first reading task
  // and the kPosts tasks have been counted as run.
  EXPECT_EQ(wakeups_after - wakeups_before, kPosts + 1);
  EXPECT_EQ(tasks_after - tasks_before, kPosts + 1);
}

TEST_P(EventLoopTest, PostsToABusyLoopShareOneWakeup) {
  ASSERT_TRUE(lt_->RunSync([] {}));
  const uint64_t wakeups = loop().stats().wakeups.Get();
  std::promise<void> entered;
  std::future<void> entered_f = entered.get_future();
  std::promise<void> release;
  std::shared_future<void> release_f = release.get_future().share();
  loop().Post([&entered, release_f] {
    entered.set_value();
    release_f.wait();
  });
  ASSERT_TRUE(Ready(entered_f));
  // The loop is busy in a task: these posts find a wake-up already pending after the first.
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) loop().Post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
  release.set_value();
  ASSERT_TRUE(lt_->RunSync([] {}));
  EXPECT_EQ(ran.load(), 1000);
  // One for the blocking task, one for the 1000 posted meanwhile (and the final RunSync's task
  // was posted while that wake-up was pending, or woke the loop once more).
  const uint64_t delta = loop().stats().wakeups.Get() - wakeups;
  EXPECT_GE(delta, 2u);
  EXPECT_LE(delta, 3u);
}

// The loop takes its queues without a lock when they look empty, which is safe only with the
// wake-up protocol (TaskQueue::TakeAll). One post at a time, each waited for, lands again and
// again while the loop is finishing an iteration or going to sleep. A lost wake-up leaves the
// round's task unrun, and Ready() fails the test.
TEST_P(EventLoopTest, PostsOneAtATimeAreNeverMissed) {
  constexpr int kRounds = 20'000;
  for (int round = 0; round < kRounds; ++round) {
    std::promise<void> ran;
    std::future<void> ran_f = ran.get_future();
    if (round % 2 == 0) {
      loop().Post([&ran] { ran.set_value(); });
    } else {
      // From a thread of its own too, so posts come from changing producers.
      std::thread([this, &ran] { loop().Post([&ran] { ran.set_value(); }); }).join();
    }
    if (!Ready(ran_f)) {
      ADD_FAILURE() << "round " << round << ": the posted task never ran (a lost wake-up)";
      loop().Post([] {});  // wakes the loop, so the stranded task runs before `ran` goes
      ran_f.wait();
      return;
    }
  }
}

// --- Idle ---

// Runs the loop idle for a bounded real interval and returns how many iterations it made.
// poll() on no fds is the interval: it touches nothing the loop sees.
uint64_t IterationsWhileIdle(LoopThread& lt) {
  EXPECT_TRUE(lt.RunSync([] {}));
  EXPECT_TRUE(lt.RunSync([] {}));  // the first may have left its iteration unfinished
  const uint64_t before = lt.loop().stats().iterations.Get();
  const uint64_t polls_before = lt.loop().stats().poll_calls.Get();
  ::poll(nullptr, 0, 300);
  const uint64_t after = lt.loop().stats().iterations.Get();
  const uint64_t polls_after = lt.loop().stats().poll_calls.Get();
  EXPECT_LE(polls_after - polls_before, 2u);
  return after - before;
}

TEST_P(EventLoopTest, IdleLoopDoesNotSpin) {
  EXPECT_LE(IterationsWhileIdle(*lt_), 2u);
}

TEST_P(EventLoopTest, IdleLoopWithAFarTimerDoesNotSpin) {
  ASSERT_TRUE(lt_->RunSync([&] { loop().RunAfter(absl::Hours(1), [] {}); }));
  EXPECT_LE(IterationsWhileIdle(*lt_), 2u);
}

TEST_P(EventLoopTest, IdleLoopAfterCancelledTimersDoesNotSpin) {
  ASSERT_TRUE(lt_->RunSync([&] {
    const EventLoop::TimerId a = loop().RunAfter(absl::Milliseconds(50), [] {});
    const EventLoop::TimerId b = loop().RunEvery(absl::Milliseconds(1), [] {});
    EXPECT_TRUE(loop().Cancel(a));
    EXPECT_TRUE(loop().Cancel(b));
  }));
  EXPECT_LE(IterationsWhileIdle(*lt_), 2u);
}

// --- Timers ---

TEST_P(EventLoopTest, RunAfterFiresOnceAfterItsDelay) {
  constexpr absl::Duration kDelay = absl::Milliseconds(20);
  MonoTime armed_at;
  int fires = 0;
  MonoTime fired_at;
  bool fired_in_loop = false;
  MonoTime witness_at;
  std::promise<void> done;
  std::future<void> f = done.get_future();
  const uint64_t timers_before = loop().stats().timers_fired.Get();
  ASSERT_TRUE(lt_->RunSync([&] {
    armed_at = loop().now();
    loop().RunAfter(kDelay, [&] {
      ++fires;
      fired_at = loop().now();
      fired_in_loop = loop().IsInLoopThread();
    });
    // A later timer: once it has fired, the first had every chance to fire twice.
    loop().RunAfter(3 * kDelay, [&] {
      witness_at = loop().now();
      done.set_value();
    });
  }));
  ASSERT_TRUE(Ready(f));
  // Timers are counted once Advance returns; a task runs after that.
  uint64_t timers_after = 0;
  ASSERT_TRUE(lt_->RunSync([&] { timers_after = loop().stats().timers_fired.Get(); }));
  EXPECT_EQ(fires, 1);
  EXPECT_TRUE(fired_in_loop);
  EXPECT_GE(fired_at - armed_at, kDelay);
  EXPECT_GE(witness_at - armed_at, 3 * kDelay);
  EXPECT_GE(witness_at, fired_at);
  EXPECT_EQ(timers_after - timers_before, 2u);
}

TEST_P(EventLoopTest, RunAfterZeroFiresOnTheNextIteration) {
  std::promise<MonoTime> fired;
  std::future<MonoTime> f = fired.get_future();
  MonoTime armed_at;
  ASSERT_TRUE(lt_->RunSync([&] {
    armed_at = loop().now();
    loop().RunAfter(absl::ZeroDuration(), [&] { fired.set_value(loop().now()); });
  }));
  ASSERT_TRUE(Ready(f));
  EXPECT_GE(f.get(), armed_at);
}

TEST_P(EventLoopTest, TimersFireInDeadlineOrder) {
  std::vector<int> order;
  std::promise<void> done;
  std::future<void> f = done.get_future();
  ASSERT_TRUE(lt_->RunSync([&] {
    for (int i : {5, 1, 4, 2, 3}) {
      loop().RunAfter(absl::Milliseconds(4 * i), [&order, &done, i] {
        order.push_back(i);
        if (order.size() == 5) done.set_value();
      });
    }
  }));
  ASSERT_TRUE(Ready(f));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST_P(EventLoopTest, RunEveryFiresRepeatedlyUntilCancelled) {
  constexpr absl::Duration kPeriod = absl::Milliseconds(2);
  std::vector<MonoTime> fire_times;  // loop thread only until the witness fires
  std::promise<void> five;
  std::future<void> five_f = five.get_future();
  MonoTime armed_at;
  EventLoop::TimerId id = 0;
  ASSERT_TRUE(lt_->RunSync([&] {
    armed_at = loop().now();
    id = loop().RunEvery(kPeriod, [&] {
      fire_times.push_back(loop().now());
      if (fire_times.size() == 5) five.set_value();
    });
  }));
  ASSERT_TRUE(Ready(five_f));

  size_t fires_at_cancel = 0;
  bool cancelled = false;
  bool cancelled_again = true;
  std::promise<void> witness;
  std::future<void> witness_f = witness.get_future();
  ASSERT_TRUE(lt_->RunSync([&] {
    cancelled = loop().Cancel(id);
    cancelled_again = loop().Cancel(id);
    fires_at_cancel = fire_times.size();
    loop().RunAfter(10 * kPeriod, [&] { witness.set_value(); });
  }));
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(cancelled_again);
  ASSERT_TRUE(Ready(witness_f));

  size_t fires_after = 0;
  ASSERT_TRUE(lt_->RunSync([&] { fires_after = fire_times.size(); }));
  EXPECT_GE(fires_at_cancel, 5u);
  EXPECT_EQ(fires_after, fires_at_cancel);
  // Each firing is at least one period after the previous one (and the first after arming).
  MonoTime previous = armed_at;
  for (MonoTime t : fire_times) {
    EXPECT_GE(t - previous, kPeriod);
    previous = t;
  }
}

TEST_P(EventLoopTest, CancelOfAPendingRunAfterPreventsIt) {
  constexpr absl::Duration kDelay = absl::Milliseconds(5);
  bool ran = false;
  bool first = false;
  bool second = true;
  bool unknown = true;
  std::promise<void> witness;
  std::future<void> f = witness.get_future();
  ASSERT_TRUE(lt_->RunSync([&] {
    const EventLoop::TimerId id = loop().RunAfter(kDelay, [&] { ran = true; });
    first = loop().Cancel(id);
    second = loop().Cancel(id);
    unknown = loop().Cancel(id + 1000);
    loop().RunAfter(4 * kDelay, [&] { witness.set_value(); });
  }));
  ASSERT_TRUE(Ready(f));
  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  EXPECT_FALSE(unknown);
  EXPECT_FALSE(ran);
}

TEST_P(EventLoopTest, CancelFromALaterTaskPreventsIt) {
  bool ran = false;
  EventLoop::TimerId id = 0;
  ASSERT_TRUE(lt_->RunSync([&] { id = loop().RunAfter(absl::Hours(1), [&] { ran = true; }); }));
  bool cancelled = false;
  ASSERT_TRUE(lt_->RunSync([&] { cancelled = loop().Cancel(id); }));
  EXPECT_TRUE(cancelled);
  lt_->Stop();
  EXPECT_FALSE(ran);
}

TEST_P(EventLoopTest, CancelOfAFiredRunAfterReturnsFalse) {
  std::promise<void> fired;
  std::future<void> f = fired.get_future();
  EventLoop::TimerId id = 0;
  ASSERT_TRUE(lt_->RunSync([&] { id = loop().RunAfter(absl::Milliseconds(1), [&] { fired.set_value(); }); }));
  ASSERT_TRUE(Ready(f));
  bool cancelled = true;
  ASSERT_TRUE(lt_->RunSync([&] { cancelled = loop().Cancel(id); }));
  EXPECT_FALSE(cancelled);
}

TEST_P(EventLoopTest, RunEveryCancelledFromItsOwnCallbackStops) {
  constexpr absl::Duration kPeriod = absl::Milliseconds(2);
  int fires = 0;
  bool cancel_result = false;
  EventLoop::TimerId id = 0;
  std::promise<void> witness;
  std::future<void> f = witness.get_future();
  ASSERT_TRUE(lt_->RunSync([&] {
    id = loop().RunEvery(kPeriod, [&] {
      if (++fires == 3) {
        cancel_result = loop().Cancel(id);
        loop().RunAfter(10 * kPeriod, [&] { witness.set_value(); });
      }
    });
  }));
  ASSERT_TRUE(Ready(f));
  int fires_after = 0;
  bool cancel_again = true;
  ASSERT_TRUE(lt_->RunSync([&] {
    fires_after = fires;
    cancel_again = loop().Cancel(id);
  }));
  EXPECT_TRUE(cancel_result);  // a periodic timer is still pending while its callback runs
  EXPECT_EQ(fires_after, 3);
  EXPECT_FALSE(cancel_again);
}

TEST_P(EventLoopTest, RunAfterCancelledFromItsOwnCallbackIsHarmless) {
  int fires = 0;
  bool cancel_result = true;
  EventLoop::TimerId id = 0;
  std::promise<void> witness;
  std::future<void> f = witness.get_future();
  ASSERT_TRUE(lt_->RunSync([&] {
    id = loop().RunAfter(absl::Milliseconds(1), [&] {
      ++fires;
      cancel_result = loop().Cancel(id);  // no longer pending: it is firing
      loop().RunAfter(absl::Milliseconds(10), [&] { witness.set_value(); });
    });
  }));
  ASSERT_TRUE(Ready(f));
  EXPECT_EQ(fires, 1);
  EXPECT_FALSE(cancel_result);
}

// Two timers due together; whichever fires first cancels the other, which then must not run
// (it may already sit in the batch being fired).
TEST_P(EventLoopTest, CallbackCancelsATimerDueInTheSameBatch) {
  int fires = 0;
  bool cancelled = false;
  EventLoop::TimerId ids[2] = {0, 0};
  std::promise<void> witness;
  std::future<void> f = witness.get_future();
  ASSERT_TRUE(lt_->RunSync([&] {
    for (int i = 0; i < 2; ++i) {
      ids[i] = loop().RunAfter(absl::Milliseconds(3), [&, i] {
        ++fires;
        cancelled = loop().Cancel(ids[1 - i]);
      });
    }
    loop().RunAfter(absl::Milliseconds(20), [&] { witness.set_value(); });
  }));
  ASSERT_TRUE(Ready(f));
  EXPECT_EQ(fires, 1);
  EXPECT_TRUE(cancelled);
}

TEST_P(EventLoopTest, TimerIdsAreNeverReused) {
  std::vector<EventLoop::TimerId> ids;
  ASSERT_TRUE(lt_->RunSync([&] {
    for (int i = 0; i < 100; ++i) {
      ids.push_back(loop().RunAfter(absl::Milliseconds(1), [] {}));
      ids.push_back(loop().RunEvery(absl::Milliseconds(1), [] {}));
      loop().Cancel(ids.back());
    }
  }));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

// --- Quit ---

TEST_P(EventLoopTest, QuitMakesRunReturn) {
  ASSERT_TRUE(lt_->RunSync([] {}));
  EXPECT_FALSE(lt_->RunReturned());
  loop().Quit();
  EXPECT_TRUE(lt_->WaitRunReturned());
  lt_->Join();
  EXPECT_FALSE(loop().running());
}

TEST_P(EventLoopTest, QuitFromATaskMakesRunReturn) {
  loop().Post([this] { loop().Quit(); });
  EXPECT_TRUE(lt_->WaitRunReturned());
  lt_->Join();
}

TEST_P(EventLoopTest, QuitFromATimerMakesRunReturn) {
  ASSERT_TRUE(lt_->RunSync([this] { loop().RunAfter(absl::Milliseconds(2), [this] { loop().Quit(); }); }));
  EXPECT_TRUE(lt_->WaitRunReturned());
  lt_->Join();
}

TEST_P(EventLoopTest, QuitBeforeRunMakesRunReturnAtOnce) {
  EventLoopOptions options;
  options.backend = GetParam();
  absl::StatusOr<std::unique_ptr<EventLoop>> other = EventLoop::Create(std::move(options));
  ASSERT_TRUE(other.ok()) << other.status();
  (*other)->Quit();
  std::promise<void> returned;
  std::future<void> f = returned.get_future();
  std::thread t([&] {
    (*other)->Run();
    returned.set_value();
  });
  const bool ok = Ready(f);
  if (!ok) std::abort();  // cannot join a thread stuck in Run
  t.join();
}

TEST_P(EventLoopTest, LoopDestroyedWithoutRunning) {
  EventLoopOptions options;
  options.backend = GetParam();
  absl::StatusOr<std::unique_ptr<EventLoop>> other = EventLoop::Create(std::move(options));
  ASSERT_TRUE(other.ok()) << other.status();
  bool ran = false;
  (*other)->Post([&ran] { ran = true; });
  other->reset();
  EXPECT_FALSE(ran);
}

// --- Watch ---

class CountingWatcher : public IoWatcher {
 public:
  explicit CountingWatcher(int fd) : fd_(fd) {}
  void OnIoEvent(uint32_t events) override {
    char buf[64];
    while (::read(fd_, buf, sizeof(buf)) > 0) {
    }
    ++calls;
    last_events = events;
    if (on_event) on_event();
  }
  int calls = 0;
  uint32_t last_events = 0;
  absl::AnyInvocable<void()> on_event;

 private:
  int fd_;
};

TEST_P(EventLoopTest, WatchedFdIsDispatchedOnTheLoop) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  CountingWatcher watcher(fds[0]);
  std::promise<void> seen;
  std::future<void> f = seen.get_future();
  watcher.on_event = [&] { seen.set_value(); };
  bool watched = false;
  ASSERT_TRUE(lt_->RunSync([&] { watched = loop().Watch(fds[0], kPollIn, &watcher).ok(); }));
  ASSERT_TRUE(watched);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  ASSERT_TRUE(Ready(f));
  bool unwatched = false;
  int calls = 0;
  ASSERT_TRUE(lt_->RunSync([&] {
    unwatched = loop().Unwatch(fds[0]).ok();
    calls = watcher.calls;
  }));
  EXPECT_TRUE(unwatched);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(watcher.last_events & kPollIn);
  ::close(fds[0]);
  ::close(fds[1]);
}

// Two watched fds become readable in the same iteration; whichever watcher runs first unwatches
// the other (as a service tearing down a private fd would). After Unwatch returns, the other
// watcher must not be called, even though its event may already sit in the batch being
// dispatched: its owner is free to destroy it right after Unwatch.
class UnwatchingWatcher : public IoWatcher {
 public:
  UnwatchingWatcher(EventLoop& loop, int fd) : loop_(loop), fd_(fd) {}
  void OnIoEvent(uint32_t events) override {
    ++calls;
    if (unwatched) ++calls_after_unwatch;
    char buf[64];
    while (::read(fd_, buf, sizeof(buf)) > 0) {
    }
    if (other != nullptr && !other->unwatched) {
      other->unwatched = loop_.Unwatch(other->fd_).ok();
    }
  }
  UnwatchingWatcher* other = nullptr;
  bool unwatched = false;
  int calls = 0;
  int calls_after_unwatch = 0;

 private:
  EventLoop& loop_;
  int fd_;
};

TEST_P(EventLoopTest, UnwatchedWatcherIsNotCalledForAnEventOfTheSameBatch) {
  int a[2];
  int b[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, a), 0);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, b), 0);
  UnwatchingWatcher wa(loop(), a[0]);
  UnwatchingWatcher wb(loop(), b[0]);
  wa.other = &wb;
  wb.other = &wa;
  bool watched = false;
  ASSERT_TRUE(lt_->RunSync([&] {
    watched = loop().Watch(a[0], kPollIn, &wa).ok() && loop().Watch(b[0], kPollIn, &wb).ok();
  }));
  ASSERT_TRUE(watched);
  // Both become readable while the loop runs this task, so the next Wait reports both at once.
  ASSERT_TRUE(lt_->RunSync([&] {
    ASSERT_EQ(::write(a[1], "x", 1), 1);
    ASSERT_EQ(::write(b[1], "y", 1), 1);
  }));
  // A task runs after the dispatch of the iteration that saw both fds.
  int calls_a = 0;
  int calls_b = 0;
  int late = 0;
  ASSERT_TRUE(lt_->RunSync([&] {
    calls_a = wa.calls;
    calls_b = wb.calls;
    late = wa.calls_after_unwatch + wb.calls_after_unwatch;
    if (!wa.unwatched) (void)loop().Unwatch(a[0]);
    if (!wb.unwatched) (void)loop().Unwatch(b[0]);
  }));
  EXPECT_EQ(calls_a + calls_b, 1) << "a: " << calls_a << ", b: " << calls_b;
  EXPECT_EQ(late, 0);
  EXPECT_TRUE(wa.unwatched != wb.unwatched);
  for (int fd : {a[0], a[1], b[0], b[1]}) ::close(fd);
}

// --- Thread ownership ---

class EventLoopDeathTest : public EventLoopTest {};

INSTANTIATE_TEST_SUITE_P(Backends, EventLoopDeathTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring), BackendName);

TEST_P(EventLoopDeathTest, AssertInLoopThreadAbortsOffThread) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ASSERT_TRUE(lt_->RunSync([] {}));
  EXPECT_DEATH(loop().AssertInLoopThread(), "touched from a thread that does not own it");
  // On the loop thread it passes.
  bool survived = false;
  ASSERT_TRUE(lt_->RunSync([&] {
    loop().AssertInLoopThread();
    survived = true;
  }));
  EXPECT_TRUE(survived);
}

TEST_P(EventLoopDeathTest, LoopThreadOnlyMethodsAbortOffThread) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ASSERT_TRUE(lt_->RunSync([] {}));
  EXPECT_DEATH(loop().RunAfter(absl::Milliseconds(1), [] {}), "does not own it");
  EXPECT_DEATH(loop().RunEvery(absl::Milliseconds(1), [] {}), "does not own it");
  EXPECT_DEATH(loop().Cancel(1), "does not own it");
  EXPECT_DEATH(loop().FindConnection(1), "does not own it");
}

TEST(EventLoopOwnershipDeathTest, AssertInLoopThreadAbortsBeforeRun) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create(EventLoopOptions{});
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_FALSE((*loop)->IsInLoopThread());
  EXPECT_DEATH((*loop)->AssertInLoopThread(), "loop 0 touched from a thread that does not own it");
}

}  // namespace
}  // namespace percore

namespace percore {
namespace {

// RunOn: the work runs on the other loop's thread, the continuation back on the caller's loop,
// with the work's result.
TEST(EventLoopRunOnTest, WorkRunsThereAndTheResultComesBackHere) {
  auto a = EventLoop::Create(EventLoopOptions{});
  auto b = EventLoop::Create(EventLoopOptions{});
  ASSERT_TRUE(a.ok() && b.ok());
  EventLoop& home = **a;
  EventLoop& other = **b;
  std::thread home_thread([&] { home.Run(); });
  std::thread other_thread([&] { other.Run(); });

  std::promise<std::pair<bool, bool>> threads;  // work on other's thread, then on home's
  std::promise<int> result;
  home.Post([&] {
    home.RunOn(
        other,
        [&] {
          const bool on_other = other.IsInLoopThread();
          return std::make_pair(on_other, 41);
        },
        [&](std::pair<bool, int> r) {
          threads.set_value({r.first, home.IsInLoopThread()});
          result.set_value(r.second + 1);
        });
  });
  auto fut_threads = threads.get_future();
  auto fut_result = result.get_future();
  ASSERT_EQ(fut_result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(fut_result.get(), 42);
  const auto [work_on_other, then_on_home] = fut_threads.get();
  EXPECT_TRUE(work_on_other);
  EXPECT_TRUE(then_on_home);
  home.Quit();
  other.Quit();
  home_thread.join();
  other_thread.join();
}

}  // namespace
}  // namespace percore
