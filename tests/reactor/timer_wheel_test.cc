#include "reactor/timer_wheel.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

constexpr int64_t kTick = 1'000;
// Not zero and not tick-aligned to anything in particular, so origin arithmetic is exercised.
constexpr int64_t kOrigin = 1'000'000'000'123;

// Records when it fired, on the test's fake clock; `then` runs inside OnTimer.
class RecordingTimer : public TimerEntry {
 public:
  RecordingTimer(int id, const int64_t* clock, std::vector<int>* log)
      : id_(id), clock_(clock), log_(log) {}

  int id() const { return id_; }
  int fires() const { return fires_; }
  int64_t fired_at_ns() const { return fired_at_ns_; }

  std::function<void()> then;

 protected:
  void OnTimer() override {
    ++fires_;
    fired_at_ns_ = *clock_;
    if (log_ != nullptr) log_->push_back(id_);
    if (then) then();
  }

 private:
  int id_;
  const int64_t* clock_;
  std::vector<int>* log_;
  int fires_ = 0;
  int64_t fired_at_ns_ = -1;
};

class TimerWheelTest : public ::testing::Test {
 protected:
  explicit TimerWheelTest(int64_t tick_ns = kTick) : wheel_(tick_ns, kOrigin) {}

  RecordingTimer& NewTimer() {
    return timers_.emplace_back(static_cast<int>(timers_.size()), &now_, &log_);
  }
  // The wheel's view of time is only what it is told: the test is the clock.
  int AdvanceTo(int64_t now_ns) {
    now_ = now_ns;
    return wheel_.Advance(now_ns);
  }
  int64_t At(int64_t ticks, int64_t extra_ns = 0) const {
    return kOrigin + ticks * kTick + extra_ns;
  }

  int64_t now_ = kOrigin;
  std::vector<int> log_;
  TimerWheel wheel_;
  std::deque<RecordingTimer> timers_;  // destroyed before the wheel
};

class NanosecondTickTest : public TimerWheelTest {
 protected:
  NanosecondTickTest() : TimerWheelTest(1) {}
};

TEST_F(TimerWheelTest, EmptyWheelHasNoExpiryAndFiresNothing) {
  EXPECT_EQ(wheel_.size(), 0);
  EXPECT_EQ(wheel_.NextExpiry(), -1);
  EXPECT_EQ(AdvanceTo(At(10)), 0);
  EXPECT_EQ(wheel_.NextExpiry(), -1);
  EXPECT_EQ(wheel_.tick_ns(), kTick);
}

TEST_F(TimerWheelTest, FiresInDeadlineOrder) {
  const std::vector<int64_t> ticks = {37, 5, 900, 12, 250, 3000, 64, 70000};
  for (int64_t t : ticks) wheel_.Schedule(&NewTimer(), At(t, 17));
  EXPECT_EQ(wheel_.size(), 8);

  EXPECT_EQ(AdvanceTo(At(100'000)), 8);
  // Ids in order of their deadlines: 5, 12, 37, 64, 250, 900, 3000, 70000.
  EXPECT_EQ(log_, (std::vector<int>{1, 3, 0, 6, 4, 2, 5, 7}));
  EXPECT_EQ(wheel_.size(), 0);
  for (const RecordingTimer& timer : timers_) {
    EXPECT_EQ(timer.fires(), 1);
    EXPECT_FALSE(timer.armed());
  }
}

TEST_F(TimerWheelTest, NeverEarlyAndNoLaterThanTheFirstAdvancePastTheDeadline) {
  std::mt19937_64 rng(7);
  std::vector<int64_t> deadlines;
  for (int i = 0; i < 300; ++i) {
    deadlines.push_back(kOrigin + 1 + static_cast<int64_t>(rng() % (5'000 * kTick)));
    wheel_.Schedule(&NewTimer(), deadlines.back());
  }
  constexpr int64_t kStep = kTick / 3;
  while (wheel_.size() > 0) AdvanceTo(now_ + kStep);

  for (const RecordingTimer& timer : timers_) {
    const int64_t deadline = deadlines[timer.id()];
    EXPECT_EQ(timer.fires(), 1);
    EXPECT_GE(timer.fired_at_ns(), deadline) << timer.id();
    EXPECT_LT(timer.fired_at_ns(), deadline + kStep) << timer.id();
  }
}

TEST_F(TimerWheelTest, CancelBeforeFire) {
  RecordingTimer& cancelled = NewTimer();
  RecordingTimer& kept = NewTimer();
  wheel_.Schedule(&cancelled, At(10));
  wheel_.Schedule(&kept, At(10));
  EXPECT_EQ(wheel_.size(), 2);

  wheel_.Cancel(&cancelled);
  EXPECT_FALSE(cancelled.armed());
  EXPECT_EQ(wheel_.size(), 1);
  wheel_.Cancel(&cancelled);  // not armed: no-op
  EXPECT_EQ(wheel_.size(), 1);

  EXPECT_EQ(AdvanceTo(At(20)), 1);
  EXPECT_EQ(cancelled.fires(), 0);
  EXPECT_EQ(kept.fires(), 1);
  wheel_.Cancel(&kept);  // already fired: no-op
  EXPECT_EQ(wheel_.size(), 0);
  EXPECT_EQ(wheel_.NextExpiry(), -1);
}

TEST_F(TimerWheelTest, RearmMovesTheDeadlineEarlier) {
  RecordingTimer& timer = NewTimer();
  wheel_.Schedule(&timer, At(100'000));
  wheel_.Schedule(&timer, At(50));
  EXPECT_EQ(wheel_.size(), 1);
  EXPECT_EQ(timer.deadline_ns(), At(50));

  EXPECT_EQ(AdvanceTo(At(50) - 1), 0);
  EXPECT_EQ(AdvanceTo(At(50)), 1);
  EXPECT_EQ(timer.fired_at_ns(), At(50));
  EXPECT_EQ(AdvanceTo(At(200'000)), 0);
  EXPECT_EQ(timer.fires(), 1);
}

TEST_F(TimerWheelTest, RearmMovesTheDeadlineLater) {
  RecordingTimer& timer = NewTimer();
  wheel_.Schedule(&timer, At(50));
  wheel_.Schedule(&timer, At(70'000));
  EXPECT_EQ(wheel_.size(), 1);

  EXPECT_EQ(AdvanceTo(At(50)), 0);
  EXPECT_EQ(AdvanceTo(At(70'000) - 1), 0);
  EXPECT_EQ(AdvanceTo(At(70'000)), 1);
  EXPECT_EQ(timer.fired_at_ns(), At(70'000));
}

TEST_F(TimerWheelTest, RearmWithinTheCurrentTick) {
  RecordingTimer& timer = NewTimer();
  wheel_.Schedule(&timer, At(3, 900));
  EXPECT_EQ(AdvanceTo(At(3, 100)), 0);
  wheel_.Schedule(&timer, At(3, 400));
  EXPECT_EQ(wheel_.NextExpiry(), At(3, 400));
  EXPECT_EQ(AdvanceTo(At(3, 399)), 0);
  EXPECT_EQ(AdvanceTo(At(3, 400)), 1);
}

TEST_F(TimerWheelTest, PeriodicRearmFromOnTimer) {
  constexpr int64_t kPeriod = 300 * kTick;
  RecordingTimer& timer = NewTimer();
  timer.then = [&] { wheel_.Schedule(&timer, timer.deadline_ns() + kPeriod); };
  wheel_.Schedule(&timer, kOrigin + kPeriod);

  for (int i = 1; i <= 10; ++i) {
    EXPECT_EQ(AdvanceTo(kOrigin + i * kPeriod), 1);
    EXPECT_EQ(timer.fired_at_ns(), kOrigin + i * kPeriod);
    EXPECT_TRUE(timer.armed());
    EXPECT_EQ(timer.deadline_ns(), kOrigin + (i + 1) * kPeriod);
  }
  EXPECT_EQ(timer.fires(), 10);
  EXPECT_EQ(wheel_.size(), 1);

  // After a stall the re-armed deadline is already past: it fires once per Advance, catching up
  // gradually rather than looping inside one Advance.
  const int64_t late = kOrigin + 15 * kPeriod;
  EXPECT_EQ(AdvanceTo(late), 1);
  EXPECT_EQ(timer.deadline_ns(), kOrigin + 12 * kPeriod);
  EXPECT_EQ(wheel_.NextExpiry(), kOrigin + 12 * kPeriod);
  EXPECT_EQ(AdvanceTo(late), 1);
  EXPECT_EQ(timer.fires(), 12);
}

TEST_F(TimerWheelTest, OnTimerCancelsAnotherEntryDueInTheSameAdvance) {
  RecordingTimer& first = NewTimer();
  RecordingTimer& second = NewTimer();
  first.then = [&] { wheel_.Cancel(&second); };
  wheel_.Schedule(&first, At(10));
  wheel_.Schedule(&second, At(20));

  EXPECT_EQ(AdvanceTo(At(30)), 1);
  EXPECT_EQ(first.fires(), 1);
  EXPECT_EQ(second.fires(), 0);
  EXPECT_EQ(wheel_.size(), 0);
}

TEST_F(TimerWheelTest, EntriesOfTheSameTickCancellingEachOtherFireOnce) {
  RecordingTimer& a = NewTimer();
  RecordingTimer& b = NewTimer();
  a.then = [&] { wheel_.Cancel(&b); };
  b.then = [&] { wheel_.Cancel(&a); };
  wheel_.Schedule(&a, At(10));
  wheel_.Schedule(&b, At(10));

  EXPECT_EQ(AdvanceTo(At(10)), 1);
  EXPECT_EQ(a.fires() + b.fires(), 1);
  EXPECT_EQ(wheel_.size(), 0);
}

TEST_F(TimerWheelTest, OnTimerRearmsAnotherEntryDueInTheSameAdvance) {
  RecordingTimer& first = NewTimer();
  RecordingTimer& second = NewTimer();
  first.then = [&] { wheel_.Schedule(&second, At(40)); };
  wheel_.Schedule(&first, At(10));
  wheel_.Schedule(&second, At(20));

  EXPECT_EQ(AdvanceTo(At(30)), 1);
  EXPECT_EQ(second.fires(), 0);
  EXPECT_EQ(AdvanceTo(At(40)), 1);
  EXPECT_EQ(second.fired_at_ns(), At(40));
}

TEST_F(TimerWheelTest, EntryArmedFromOnTimerInThePastFiresOnTheNextAdvance) {
  RecordingTimer& first = NewTimer();
  RecordingTimer& past = NewTimer();
  RecordingTimer& future = NewTimer();
  first.then = [&] {
    wheel_.Schedule(&past, At(15));
    wheel_.Schedule(&future, At(25));
  };
  wheel_.Schedule(&first, At(10));

  EXPECT_EQ(AdvanceTo(At(20)), 1);
  EXPECT_EQ(wheel_.size(), 2);
  EXPECT_EQ(wheel_.NextExpiry(), At(15));
  EXPECT_EQ(AdvanceTo(At(20)), 1);
  EXPECT_EQ(past.fires(), 1);
  EXPECT_EQ(AdvanceTo(At(25)), 1);
  EXPECT_EQ(future.fired_at_ns(), At(25));
}

TEST_F(TimerWheelTest, OnTimerMayDestroyItsOwnerAndOtherDueEntries) {
  // The connection pattern: an idle timeout closes and frees the object that embeds the timer.
  auto self_deleting = std::make_unique<RecordingTimer>(100, &now_, &log_);
  auto victim = std::make_unique<RecordingTimer>(101, &now_, &log_);
  RecordingTimer* raw_self = self_deleting.get();
  raw_self->then = [&] {
    victim.reset();
    self_deleting.reset();
  };
  wheel_.Schedule(raw_self, At(10));
  wheel_.Schedule(victim.get(), At(11));
  RecordingTimer& later = NewTimer();
  wheel_.Schedule(&later, At(12));

  EXPECT_EQ(AdvanceTo(At(12)), 2);
  EXPECT_EQ(log_, (std::vector<int>{100, 0}));
  EXPECT_TRUE(self_deleting == nullptr);
  EXPECT_TRUE(victim == nullptr);
  EXPECT_EQ(wheel_.size(), 0);
}

TEST_F(TimerWheelTest, DeadlinesInThePastFireOnTheNextAdvance) {
  EXPECT_EQ(AdvanceTo(At(100)), 0);
  RecordingTimer& past = NewTimer();
  RecordingTimer& now = NewTimer();
  RecordingTimer& before_origin = NewTimer();
  wheel_.Schedule(&past, At(50));
  wheel_.Schedule(&now, At(100));
  wheel_.Schedule(&before_origin, kOrigin - 5);
  EXPECT_EQ(wheel_.NextExpiry(), kOrigin - 5);

  EXPECT_EQ(AdvanceTo(At(100)), 3);  // same time: no tick needs to pass
  EXPECT_EQ(wheel_.NextExpiry(), -1);
  for (const RecordingTimer& timer : timers_) EXPECT_EQ(timer.fires(), 1);
}

TEST_F(TimerWheelTest, TimeGoingBackwardsCountsAsNoTimePassing) {
  RecordingTimer& timer = NewTimer();
  EXPECT_EQ(AdvanceTo(At(100)), 0);
  wheel_.Schedule(&timer, At(90));  // in the past relative to the wheel
  EXPECT_EQ(AdvanceTo(At(80)), 1);
}

TEST_F(TimerWheelTest, NextExpiryIsALowerBoundThatMovesPastNow) {
  RecordingTimer& timer = NewTimer();
  const int64_t deadline = At(70'000, 321);
  wheel_.Schedule(&timer, deadline);
  // Drive the wheel the way a loop does: sleep until NextExpiry, then Advance.
  int wakeups = 0;
  while (timer.fires() == 0) {
    const int64_t next = wheel_.NextExpiry();
    ASSERT_LE(next, deadline);
    ASSERT_GT(next, now_);  // a loop sleeping until `next` never spins
    AdvanceTo(next);
    ++wakeups;
  }
  EXPECT_EQ(timer.fired_at_ns(), deadline);
  EXPECT_LE(wakeups, TimerWheel::kLevels + 1);
  EXPECT_EQ(wheel_.NextExpiry(), -1);
}

// Tick of 1 ns, so that deadlines at every level and beyond the horizon (2^32 ticks) are cheap to
// write down exactly.
TEST_F(NanosecondTickTest, LongDelaysSpanningEveryLevelFireOnTime) {
  const std::vector<int64_t> delays = {
      1,           255,         256,        300,
      65'535,      65'536,      70'000,     16'777'215,
      16'777'216,  20'000'000,  0xFFFF'FFFF, int64_t{1} << 32,
      (int64_t{1} << 32) + 12'345,
      (int64_t{1} << 36) + 7,
  };
  for (int64_t delay : delays) {
    SCOPED_TRACE(delay);
    TimerWheel wheel(1, kOrigin);
    RecordingTimer timer(0, &now_, nullptr);
    wheel.Schedule(&timer, kOrigin + delay);
    // Stop on the way so that the entry is cascaded from partly elapsed slots.
    for (int64_t at : {delay / 3, 2 * delay / 3, delay - 1}) {
      now_ = kOrigin + at;
      EXPECT_EQ(wheel.Advance(now_), 0);
      EXPECT_LE(wheel.NextExpiry(), kOrigin + delay);
    }
    now_ = kOrigin + delay;
    EXPECT_EQ(wheel.Advance(now_), 1);
    EXPECT_EQ(timer.fired_at_ns(), kOrigin + delay);
  }
}

TEST_F(NanosecondTickTest, LongDelaysInOneWheelFireInOrderDrivenByNextExpiry) {
  const std::vector<int64_t> delays = {
      (int64_t{1} << 32) + 12'345, 20'000'000, 70'000, 300, 5, (int64_t{1} << 33) + 1,
  };
  for (int64_t delay : delays) wheel_.Schedule(&NewTimer(), kOrigin + delay);

  int wakeups = 0;
  while (wheel_.size() > 0) {
    const int64_t next = wheel_.NextExpiry();
    ASSERT_GT(next, now_);
    AdvanceTo(next);
    ++wakeups;
  }
  EXPECT_EQ(log_, (std::vector<int>{4, 3, 2, 1, 0, 5}));
  for (const RecordingTimer& timer : timers_) {
    EXPECT_EQ(timer.fired_at_ns(), kOrigin + delays[timer.id()]);
  }
  // A handful of cascades per entry plus one lap of the top level, not millions of ticks.
  EXPECT_LE(wakeups, 40);
}

TEST_F(NanosecondTickTest, HugeJumpWithAnEmptyWheelDoesNotWalkTheTicks) {
  // 2^62 ticks: a tick-by-tick walk would never finish.
  const int64_t far = kOrigin + (int64_t{1} << 62);
  EXPECT_EQ(AdvanceTo(far), 0);

  RecordingTimer& timer = NewTimer();
  wheel_.Schedule(&timer, far + 5);
  EXPECT_EQ(wheel_.NextExpiry(), far + 5);
  EXPECT_EQ(AdvanceTo(far + 4), 0);
  EXPECT_EQ(AdvanceTo(far + 5), 1);
}

TEST_F(NanosecondTickTest, HugeJumpOverSparseEntriesFiresThemInOrder) {
  wheel_.Schedule(&NewTimer(), kOrigin + (int64_t{1} << 40));
  wheel_.Schedule(&NewTimer(), kOrigin + (int64_t{1} << 20));
  wheel_.Schedule(&NewTimer(), kOrigin + (int64_t{1} << 30));
  EXPECT_EQ(AdvanceTo(kOrigin + (int64_t{1} << 50)), 3);
  EXPECT_EQ(log_, (std::vector<int>{1, 2, 0}));
}

TEST_F(TimerWheelTest, DestroyingAnArmedEntryCancelsIt) {
  auto overdue = std::make_unique<RecordingTimer>(0, &now_, &log_);
  auto current_tick = std::make_unique<RecordingTimer>(1, &now_, &log_);
  auto far = std::make_unique<RecordingTimer>(2, &now_, &log_);
  EXPECT_EQ(AdvanceTo(At(5)), 0);
  wheel_.Schedule(overdue.get(), At(1));
  wheel_.Schedule(current_tick.get(), At(5, 500));
  wheel_.Schedule(far.get(), At(100'000'000));
  EXPECT_EQ(wheel_.size(), 3);

  overdue.reset();
  current_tick.reset();
  far.reset();
  EXPECT_EQ(wheel_.size(), 0);
  EXPECT_EQ(wheel_.NextExpiry(), -1);
  EXPECT_EQ(AdvanceTo(At(200'000'000)), 0);
  EXPECT_TRUE(log_.empty());
}

TEST(TimerWheelLifetimeTest, DestroyingTheWheelDisarmsWithoutFiring) {
  int64_t clock = kOrigin;
  std::vector<int> log;
  RecordingTimer overdue(0, &clock, &log);
  RecordingTimer current_tick(1, &clock, &log);
  RecordingTimer far(2, &clock, &log);
  {
    TimerWheel wheel(kTick, kOrigin);
    wheel.Advance(kOrigin + 5 * kTick);
    wheel.Schedule(&overdue, kOrigin);
    wheel.Schedule(&current_tick, kOrigin + 5 * kTick + 500);
    wheel.Schedule(&far, kOrigin + (int64_t{1} << 50));
  }
  EXPECT_FALSE(overdue.armed());
  EXPECT_FALSE(current_tick.armed());
  EXPECT_FALSE(far.armed());
  EXPECT_TRUE(log.empty());

  // The entries are free to join another wheel.
  TimerWheel other(kTick, kOrigin);
  other.Schedule(&far, kOrigin + kTick);
  EXPECT_EQ(other.Advance(kOrigin + kTick), 1);
  EXPECT_EQ(log, std::vector<int>{2});
}

TEST_F(TimerWheelTest, SizeCountsArmedEntries) {
  RecordingTimer& a = NewTimer();
  RecordingTimer& b = NewTimer();
  RecordingTimer& c = NewTimer();
  wheel_.Schedule(&a, At(1));
  wheel_.Schedule(&b, At(300));
  wheel_.Schedule(&c, At(70'000));
  EXPECT_EQ(wheel_.size(), 3);
  wheel_.Schedule(&b, At(400));  // re-arm
  EXPECT_EQ(wheel_.size(), 3);
  wheel_.Cancel(&c);
  EXPECT_EQ(wheel_.size(), 2);
  EXPECT_EQ(AdvanceTo(At(1)), 1);
  EXPECT_EQ(wheel_.size(), 1);
  EXPECT_TRUE(b.armed());
  EXPECT_FALSE(a.armed());
}

// Thousands of entries under random schedule / re-arm / cancel / advance, against a brute-force
// model: after Advance(now) exactly the armed entries with deadline <= now have fired, each once.
class TimerWheelModelTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(TimerWheelModelTest, MatchesBruteForceModel) {
  constexpr int kEntries = 4'000;
  constexpr int64_t kNotArmed = std::numeric_limits<int64_t>::min();
  std::mt19937_64 rng(GetParam());
  // A delay or step of up to 2^max_bits ns, log-uniform so every level sees traffic; up to 2^45 ns
  // reaches past the 2^42 ns horizon of a 1 us tick.
  auto log_uniform = [&](int max_bits) -> int64_t {
    const int bits = static_cast<int>(rng() % (max_bits + 1));
    return static_cast<int64_t>(rng() & ((uint64_t{1} << bits) - 1));
  };

  int64_t now = kOrigin;
  std::vector<int> fired_log;
  TimerWheel wheel(kTick, kOrigin);
  std::deque<RecordingTimer> timers;
  for (int i = 0; i < kEntries; ++i) timers.emplace_back(i, &now, &fired_log);
  std::vector<int64_t> model_deadline(kEntries, kNotArmed);
  std::vector<bool> model_overdue(kEntries, false);  // armed with a deadline already reached
  std::vector<int> model_fires(kEntries, 0);
  int model_size = 0;

  auto check_next_expiry = [&] {
    int64_t earliest = std::numeric_limits<int64_t>::max();
    for (int64_t d : model_deadline) {
      if (d != kNotArmed) earliest = std::min(earliest, d);
    }
    if (model_size == 0) {
      ASSERT_EQ(wheel.NextExpiry(), -1);
    } else {
      ASSERT_LE(wheel.NextExpiry(), earliest);
    }
  };

  for (int round = 0; round < 6'000; ++round) {
    const int op = static_cast<int>(rng() % 10);
    const int i = static_cast<int>(rng() % kEntries);
    if (op < 5) {
      int64_t deadline = now + log_uniform(45);
      if (rng() % 20 == 0) deadline = now - log_uniform(30);
      if (model_deadline[i] == kNotArmed) ++model_size;
      model_deadline[i] = deadline;
      model_overdue[i] = deadline <= now;
      wheel.Schedule(&timers[i], deadline);
    } else if (op < 6) {
      if (model_deadline[i] != kNotArmed) --model_size;
      model_deadline[i] = kNotArmed;
      wheel.Cancel(&timers[i]);
    } else {
      int64_t to = now + log_uniform(op == 9 ? 43 : 22);
      if (rng() % 4 == 0) to = to - (to - kOrigin) % kTick;  // tick-aligned now
      if (rng() % 8 == 0) to = std::max(now, wheel.NextExpiry());
      now = std::max(now, to);

      std::vector<int> expected;
      for (int j = 0; j < kEntries; ++j) {
        if (model_deadline[j] != kNotArmed && model_deadline[j] <= now) expected.push_back(j);
      }
      fired_log.clear();
      ASSERT_EQ(wheel.Advance(now), static_cast<int>(expected.size())) << "round " << round;

      std::vector<int> fired_sorted = fired_log;
      std::sort(fired_sorted.begin(), fired_sorted.end());
      ASSERT_EQ(fired_sorted, expected) << "round " << round;
      // Overdue entries first, then the rest in deadline-tick order.
      bool seen_on_time = false;
      uint64_t last_tick = 0;
      for (int j : fired_log) {
        if (model_overdue[j]) {
          ASSERT_FALSE(seen_on_time) << "round " << round;
          continue;
        }
        const uint64_t tick = static_cast<uint64_t>(model_deadline[j] - kOrigin) / kTick;
        ASSERT_GE(tick, last_tick) << "round " << round;
        seen_on_time = true;
        last_tick = tick;
      }
      for (int j : expected) {
        ++model_fires[j];
        model_deadline[j] = kNotArmed;
        --model_size;
      }
      if (model_size > 0) {
        ASSERT_GT(wheel.NextExpiry(), now) << "round " << round;
      }
    }
    ASSERT_EQ(wheel.size(), model_size) << "round " << round;
    ASSERT_NO_FATAL_FAILURE(check_next_expiry()) << "round " << round;
  }

  int total_fires = 0;
  for (int j = 0; j < kEntries; ++j) {
    ASSERT_EQ(timers[j].fires(), model_fires[j]) << "entry " << j;
    ASSERT_EQ(timers[j].armed(), model_deadline[j] != kNotArmed) << "entry " << j;
    total_fires += model_fires[j];
  }
  EXPECT_GT(total_fires, 1'000);  // the run exercised firing, not just arming
}

INSTANTIATE_TEST_SUITE_P(Seeds, TimerWheelModelTest, ::testing::Values(1, 42, 20220623));

}  // namespace
}  // namespace percore
