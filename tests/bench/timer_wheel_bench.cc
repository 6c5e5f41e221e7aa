// TimerWheel costs on the operations a loop performs per request and per iteration.
//   bazel run -c opt //tests/bench:timer_wheel_bench -- --benchmark_out=/tmp/timer_wheel.json

#include <cstdint>
#include <deque>
#include <random>

#include "benchmark/benchmark.h"
#include "reactor/timer_wheel.h"

namespace percore {
namespace {

constexpr int64_t kTick = 1'000'000;            // the EventLoop default: 1 ms
constexpr int64_t kIdleTimeout = 60'000'000'000;  // a typical connection idle timeout
constexpr int64_t kStart = 1'000'000'000'000;

// Re-arms itself one period after its deadline, so a wheel full of them stays full.
class PeriodicTimer : public TimerEntry {
 public:
  PeriodicTimer(TimerWheel* wheel, int64_t period_ns) : wheel_(wheel), period_ns_(period_ns) {}

 protected:
  void OnTimer() override { wheel_->Schedule(this, deadline_ns() + period_ns_); }

 private:
  TimerWheel* wheel_;
  int64_t period_ns_;
};

// `count` idle-timeout-like entries, deadlines spread over one timeout from `start`.
void FillWheel(TimerWheel* wheel, std::deque<PeriodicTimer>* timers, int count, int64_t start) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < count; ++i) {
    PeriodicTimer& timer = timers->emplace_back(wheel, kIdleTimeout);
    wheel->Schedule(&timer, start + 1 + static_cast<int64_t>(rng() % kIdleTimeout));
  }
}

// Arm and cancel one entry `range(0)` ticks ahead (1, 300, 70000, 2^24: levels 0 to 3), beside
// `range(1)` other armed entries.
void BM_ScheduleCancel(benchmark::State& state) {
  TimerWheel wheel(kTick, kStart);
  std::deque<PeriodicTimer> background;
  FillWheel(&wheel, &background, static_cast<int>(state.range(1)), kStart);
  PeriodicTimer timer(&wheel, kIdleTimeout);
  const int64_t deadline = kStart + state.range(0) * kTick;
  for (auto _ : state) {
    wheel.Schedule(&timer, deadline);
    wheel.Cancel(&timer);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ScheduleCancel)
    ->ArgNames({"ticks", "armed"})
    ->ArgsProduct({{1, 300, 70'000, 1 << 24}, {0, 100'000}});

// The per-request case: push an armed connection's idle deadline out again, while the clock
// moves on (1 us per request) and the loop advances the wheel once per tick.
void BM_Rearm(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  TimerWheel wheel(kTick, kStart);
  std::deque<PeriodicTimer> timers;
  FillWheel(&wheel, &timers, count, kStart);
  int64_t now = kStart;
  int next = 0;
  for (auto _ : state) {
    now += 1'000;
    wheel.Schedule(&timers[next], now + kIdleTimeout);
    if (++next == count) next = 0;
    if (now % kTick == 0) benchmark::DoNotOptimize(wheel.Advance(now));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Rearm)->Arg(1'000)->Arg(10'000)->Arg(100'000);

// One loop iteration per tick with `range(0)` armed entries: includes the cascades and the
// entries that come due (and re-arm) in that tick.
void BM_AdvanceOneTick(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  TimerWheel wheel(kTick, kStart);
  std::deque<PeriodicTimer> timers;
  FillWheel(&wheel, &timers, count, kStart);
  int64_t now = kStart;
  int64_t fired = 0;
  for (auto _ : state) {
    now += kTick;
    fired += wheel.Advance(now);
  }
  state.counters["fired_per_advance"] =
      benchmark::Counter(static_cast<double>(fired), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_AdvanceOneTick)->Arg(1'000)->Arg(10'000)->Arg(100'000);

// A busy loop iterates many times per tick: Advance with nothing due must be nearly free.
void BM_AdvanceWithinTick(benchmark::State& state) {
  TimerWheel wheel(kTick, kStart);
  std::deque<PeriodicTimer> timers;
  FillWheel(&wheel, &timers, static_cast<int>(state.range(0)), kStart + kTick);
  const int64_t now = kStart + kTick / 2;
  for (auto _ : state) benchmark::DoNotOptimize(wheel.Advance(now));
}
BENCHMARK(BM_AdvanceWithinTick)->Arg(100'000);

}  // namespace
}  // namespace percore
