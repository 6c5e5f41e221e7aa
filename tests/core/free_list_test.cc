#include "core/free_list.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

struct Scratch {
  explicit Scratch(int tag) : tag(tag) {}
  int tag;
  std::vector<int> slots;
};

TEST(FreeListTest, TakeMakesWhenNothingIsKeptAndReusesWhatWasGiven) {
  FreeList<Scratch> list;
  std::unique_ptr<Scratch> first = list.Take(7);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->tag, 7);
  EXPECT_EQ(list.made(), 1u);
  first->slots.reserve(64);
  Scratch* const address = first.get();
  list.Give(std::move(first));
  EXPECT_EQ(list.free_count(), 1u);

  // The kept object comes back as it was given: the arguments are for new ones only.
  std::unique_ptr<Scratch> again = list.Take(9);
  EXPECT_EQ(again.get(), address);
  EXPECT_EQ(again->tag, 7);
  EXPECT_GE(again->slots.capacity(), 64u);
  EXPECT_EQ(list.made(), 1u);
  EXPECT_EQ(list.free_count(), 0u);

  std::unique_ptr<Scratch> second = list.Take(9);
  EXPECT_NE(second.get(), address);
  EXPECT_EQ(second->tag, 9);
  EXPECT_EQ(list.made(), 2u);
}

TEST(FreeListTest, KeepsAtMostMaxFreeAndFreesTheRest) {
  FreeList<std::string> list(2);
  std::vector<std::unique_ptr<std::string>> taken;
  for (int i = 0; i < 5; ++i) taken.push_back(list.Take("x"));
  for (auto& item : taken) list.Give(std::move(item));
  EXPECT_EQ(list.free_count(), 2u);
  EXPECT_EQ(list.freed(), 3u);
  list.Give(nullptr);  // nothing to keep
  EXPECT_EQ(list.free_count(), 2u);
  EXPECT_EQ(list.freed(), 3u);
}

}  // namespace
}  // namespace percore
