#include "core/lazy_deque.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

TEST(LazyDequeTest, HoldsNothingUntilTheFirstElementAndAfterTheLast) {
  LazyDeque<std::string> queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  queue.push_back("a");
  queue.emplace_back(3, 'b');
  ASSERT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.front(), "a");
  EXPECT_EQ(queue.back(), "bbb");
  EXPECT_EQ(queue[1], "bbb");
  queue.pop_front();
  EXPECT_EQ(queue.front(), "bbb");
  queue.pop_front();
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  // Usable again after it emptied.
  queue.push_back("c");
  EXPECT_EQ(queue.front(), "c");
  queue.clear();
  EXPECT_TRUE(queue.empty());
}

TEST(LazyDequeTest, ReferencesStayValidAsElementsComeAndGo) {
  LazyDeque<int> queue;
  int& first = queue.emplace_back(7);
  int& second = queue.emplace_back(8);
  for (int i = 0; i < 10000; ++i) queue.push_back(i);
  queue.pop_front();
  EXPECT_EQ(second, 8);
  EXPECT_EQ(&queue.front(), &second);
  (void)first;
  EXPECT_EQ(queue.size(), 10001u);
  EXPECT_EQ(queue[10000], 9999);
}

TEST(LazyDequeTest, ClearDestroysWhatItHolds) {
  auto owner = std::make_shared<int>(1);
  LazyDeque<std::shared_ptr<int>> queue;
  for (int i = 0; i < 100; ++i) queue.push_back(owner);
  EXPECT_EQ(owner.use_count(), 101);
  for (int i = 0; i < 40; ++i) queue.pop_front();
  EXPECT_EQ(owner.use_count(), 61);
  queue.clear();
  EXPECT_EQ(owner.use_count(), 1);
}

}  // namespace
}  // namespace percore
