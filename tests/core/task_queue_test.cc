// TaskQueue: push order, Push's "was empty" result, and many producers against one consumer.

#include "core/task_queue.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

TEST(TaskQueueTest, TakeAllReturnsItemsInPushOrder) {
  TaskQueue<int> q;
  for (int i = 0; i < 5; ++i) q.Push(i);
  std::vector<int> out;
  q.TakeAll(&out);
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(q.Empty());
}

TEST(TaskQueueTest, PushReportsWhetherTheQueueWasEmpty) {
  TaskQueue<std::string> q;
  EXPECT_TRUE(q.Push("a"));
  EXPECT_FALSE(q.Push("b"));
  EXPECT_FALSE(q.Push("c"));
  std::vector<std::string> out;
  q.TakeAll(&out);
  EXPECT_EQ(out.size(), 3u);
  // Emptied by the consumer: the next push needs a wake-up again.
  EXPECT_TRUE(q.Push("d"));
  EXPECT_FALSE(q.Push("e"));
}

TEST(TaskQueueTest, TakeAllOnEmptyQueueYieldsNothingAndKeepsPushSemantics) {
  TaskQueue<int> q;
  std::vector<int> out;
  q.TakeAll(&out);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(q.Empty());
  EXPECT_TRUE(q.Push(1));
  EXPECT_FALSE(q.Empty());
}

TEST(TaskQueueTest, ConsumerVectorCanBeReusedAfterClear) {
  TaskQueue<int> q;
  std::vector<int> out;
  q.Push(1);
  q.Push(2);
  q.TakeAll(&out);
  out.clear();
  q.Push(3);
  q.TakeAll(&out);
  EXPECT_EQ(out, (std::vector<int>{3}));
}

TEST(TaskQueueTest, MoveOnlyItems) {
  TaskQueue<std::unique_ptr<int>> q;
  EXPECT_TRUE(q.Push(std::make_unique<int>(7)));
  EXPECT_FALSE(q.Push(std::make_unique<int>(8)));
  std::vector<std::unique_ptr<int>> out;
  q.TakeAll(&out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(*out[0], 7);
  EXPECT_EQ(*out[1], 8);
}

// 8 producers push 100,000 items each while one consumer drains with TakeAll. Every item
// arrives exactly once, each producer's items arrive in the order pushed, and the pushes that
// returned true are exactly the first items of the consumer's non-empty batches (a push that
// found the queue empty starts a batch; every batch starts with such a push).
TEST(TaskQueueTest, ManyProducersOneConsumer) {
  constexpr int kProducers = 8;
  constexpr uint64_t kPerProducer = 100'000;
  constexpr uint64_t kTotal = kProducers * kPerProducer;
  TaskQueue<uint64_t> q;
  auto item = [](int producer, uint64_t seq) { return (static_cast<uint64_t>(producer) << 32) | seq; };

  std::atomic<bool> go{false};
  std::vector<std::vector<uint64_t>> woke(kProducers);  // items whose Push returned true
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (uint64_t seq = 0; seq < kPerProducer; ++seq) {
        if (q.Push(item(p, seq))) woke[p].push_back(item(p, seq));
      }
    });
  }

  std::vector<uint64_t> next(kProducers, 0);
  std::set<uint64_t> batch_heads;
  uint64_t seen = 0;
  uint64_t bad_order = 0;
  std::vector<uint64_t> batch;
  go.store(true, std::memory_order_release);
  while (seen < kTotal) {
    q.TakeAll(&batch);
    if (batch.empty()) {
      std::this_thread::yield();
      continue;
    }
    batch_heads.insert(batch.front());
    for (uint64_t v : batch) {
      const int p = static_cast<int>(v >> 32);
      const uint64_t seq = v & 0xffffffffu;
      if (p >= kProducers || seq != next[p]) {
        ++bad_order;
      } else {
        ++next[p];
      }
      ++seen;
    }
    batch.clear();
  }
  for (std::thread& t : producers) t.join();

  EXPECT_EQ(bad_order, 0u);
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kPerProducer) << "producer " << p;
  EXPECT_TRUE(q.Empty());
  q.TakeAll(&batch);
  EXPECT_TRUE(batch.empty());

  std::set<uint64_t> wake_items;
  for (const auto& w : woke) wake_items.insert(w.begin(), w.end());
  EXPECT_GE(wake_items.size(), 1u);
  EXPECT_EQ(wake_items, batch_heads);
}

}  // namespace
}  // namespace percore
