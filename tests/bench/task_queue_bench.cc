// TaskQueue: what posting work to a loop costs the poster, and what taking a batch costs the loop.
//   bazel run --config=opt //tests/bench:task_queue_bench -- --benchmark_out=/tmp/task_queue.json

#include <atomic>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "benchmark/benchmark.h"
#include "core/task_queue.h"

namespace percore {
namespace {

using Task = absl::AnyInvocable<void() &&>;

// `range(0)` pushes, then one TakeAll, on one thread: the uncontended cost per item.
void BM_TaskQueuePushTakeInts(benchmark::State& state) {
  TaskQueue<int> queue;
  std::vector<int> batch;
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    for (int i = 0; i < n; ++i) queue.Push(i);
    queue.TakeAll(&batch);
    benchmark::DoNotOptimize(batch.data());
    batch.clear();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_TaskQueuePushTakeInts)->Arg(1)->Arg(16)->Arg(256);

// The same with the loop's task type, run after taking: a small capture fits AnyInvocable's
// inline storage, so no allocation per task.
void BM_TaskQueuePushTakeRunTasks(benchmark::State& state) {
  TaskQueue<Task> queue;
  std::vector<Task> batch;
  const int n = static_cast<int>(state.range(0));
  int64_t sum = 0;
  for (auto _ : state) {
    for (int i = 0; i < n; ++i) queue.Push([&sum, i] { sum += i; });
    queue.TakeAll(&batch);
    for (Task& t : batch) std::move(t)();
    batch.clear();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_TaskQueuePushTakeRunTasks)->Arg(1)->Arg(16)->Arg(256);

// Producers on several threads push while thread 0 also takes everything now and then: the
// lock under contention (as when the distributor and admin threads post to one loop).
TaskQueue<int>* shared_queue = nullptr;

void BM_TaskQueueContendedPush(benchmark::State& state) {
  if (state.thread_index() == 0) shared_queue = new TaskQueue<int>;
  std::vector<int> batch;
  int i = 0;
  for (auto _ : state) {
    shared_queue->Push(i);
    if (state.thread_index() == 0 && (++i & 63) == 0) {
      shared_queue->TakeAll(&batch);
      batch.clear();
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared_queue;
    shared_queue = nullptr;
  }
}
BENCHMARK(BM_TaskQueueContendedPush)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace
}  // namespace percore
