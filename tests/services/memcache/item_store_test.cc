#include "services/memcache/item_store.h"

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace percore::memcache {
namespace {

constexpr int64_t kStart = 1'700'000'000;  // a Unix time well past 30 days

class ItemStoreTest : public ::testing::Test {
 protected:
  ItemStoreOptions Options(size_t memory_limit = size_t{64} << 20) {
    ItemStoreOptions options;
    options.memory_limit = memory_limit;
    options.clock = [this] { return now_; };
    return options;
  }

  static StoreResult Set(ItemStore& store, std::string_view key, std::string_view value,
                         int64_t exptime = 0, uint32_t flags = 0) {
    return store.Store(StoreMode::kSet, MakeItem(key, flags, value), exptime);
  }

  static std::string Value(ItemStore& store, std::string_view key) {
    const Item* item = store.Get(key);
    return item == nullptr ? "<miss>" : std::string(item->value());
  }

  static std::vector<std::string> Recency(const ItemStore& store) {
    std::vector<std::string> keys;
    store.ForEachByRecency([&](const Item& item) { keys.emplace_back(item.key()); });
    return keys;
  }

  int64_t now_ = kStart;
};

TEST_F(ItemStoreTest, SetGetKeepsFlagsAndValue) {
  ItemStore store(Options());
  EXPECT_EQ(Set(store, "k", "hello", 0, 42), StoreResult::kStored);
  const Item* item = store.Get("k");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->value(), "hello");
  EXPECT_EQ(item->value_with_crlf(), "hello\r\n");
  EXPECT_EQ(item->flags, 42u);
  EXPECT_EQ(store.item_count(), 1u);
  EXPECT_EQ(store.bytes(), ItemFootprint(1, 5));
  EXPECT_EQ(store.stats().get_hits.Get(), 1u);
  EXPECT_EQ(store.Get("absent"), nullptr);
  EXPECT_EQ(store.stats().get_misses.Get(), 1u);
  EXPECT_EQ(store.stats().cmd_get.Get(), 2u);
}

TEST_F(ItemStoreTest, EmptyValueAndMaxKey) {
  ItemStore store(Options());
  const std::string key(kMaxKeySize, 'k');
  EXPECT_EQ(Set(store, key, ""), StoreResult::kStored);
  EXPECT_EQ(Value(store, key), "");
}

TEST_F(ItemStoreTest, AddReplaceAppendPrepend) {
  ItemStore store(Options());
  EXPECT_EQ(store.Store(StoreMode::kReplace, MakeItem("k", 0, "x"), 0), StoreResult::kNotStored);
  EXPECT_EQ(store.Store(StoreMode::kAppend, MakeItem("k", 0, "x"), 0), StoreResult::kNotStored);
  EXPECT_EQ(store.Store(StoreMode::kPrepend, MakeItem("k", 0, "x"), 0), StoreResult::kNotStored);
  EXPECT_EQ(store.Store(StoreMode::kAdd, MakeItem("k", 5, "mid"), 100), StoreResult::kStored);
  EXPECT_EQ(store.Store(StoreMode::kAdd, MakeItem("k", 0, "other"), 0), StoreResult::kNotStored);
  EXPECT_EQ(store.Store(StoreMode::kAppend, MakeItem("k", 9, "_end"), 0), StoreResult::kStored);
  EXPECT_EQ(store.Store(StoreMode::kPrepend, MakeItem("k", 9, "start_"), 0), StoreResult::kStored);
  const Item* item = store.Get("k");
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->value(), "start_mid_end");
  EXPECT_EQ(item->flags, 5u);  // append/prepend keep the flags...
  now_ += 101;                 // ...and the expiry of the existing item
  EXPECT_EQ(store.Get("k"), nullptr);
  EXPECT_EQ(store.Store(StoreMode::kReplace, MakeItem("k", 0, "r"), 0), StoreResult::kNotStored);
  EXPECT_EQ(Set(store, "k", "v"), StoreResult::kStored);
  EXPECT_EQ(store.Store(StoreMode::kReplace, MakeItem("k", 3, "r"), 0), StoreResult::kStored);
  EXPECT_EQ(Value(store, "k"), "r");
}

TEST_F(ItemStoreTest, CasUniqueAndChecks) {
  ItemStore store(Options());
  EXPECT_EQ(store.Store(StoreMode::kCas, MakeItem("k", 0, "x"), 0, 1), StoreResult::kNotFound);
  std::set<uint64_t> seen;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(Set(store, "k" + std::to_string(i % 10), "v"), StoreResult::kStored);
    seen.insert(store.Get("k" + std::to_string(i % 10))->cas);
  }
  EXPECT_EQ(seen.size(), 100u);  // every store gets a new CAS value
  const uint64_t cas = store.Get("k1")->cas;
  EXPECT_EQ(store.Store(StoreMode::kCas, MakeItem("k1", 0, "y"), 0, cas + 1), StoreResult::kExists);
  EXPECT_EQ(store.Store(StoreMode::kCas, MakeItem("k1", 0, "y"), 0, cas), StoreResult::kStored);
  EXPECT_EQ(store.Store(StoreMode::kCas, MakeItem("k1", 0, "z"), 0, cas), StoreResult::kExists);
  EXPECT_EQ(Value(store, "k1"), "y");
  EXPECT_EQ(store.stats().cas_hits.Get(), 1u);
  EXPECT_EQ(store.stats().cas_badval.Get(), 2u);
  EXPECT_EQ(store.stats().cas_misses.Get(), 1u);
  // Touch keeps the CAS; incr changes it.
  ASSERT_EQ(Set(store, "n", "1"), StoreResult::kStored);
  const uint64_t before = store.Get("n")->cas;
  ASSERT_TRUE(store.Touch("n", 100));
  EXPECT_EQ(store.Get("n")->cas, before);
  uint64_t value = 0;
  ASSERT_EQ(store.Delta("n", true, 1, &value), DeltaResult::kOk);
  EXPECT_NE(store.Get("n")->cas, before);
}

TEST_F(ItemStoreTest, CasStartAndStepSeparateShards) {
  ItemStoreOptions a = Options();
  a.cas_start = 1;
  a.cas_step = 2;
  ItemStoreOptions b = Options();
  b.cas_start = 2;
  b.cas_step = 2;
  ItemStore first(a), second(b);
  Set(first, "k", "v");
  Set(first, "k", "v");
  Set(second, "k", "v");
  Set(second, "k", "v");
  EXPECT_EQ(first.Get("k")->cas, 3u);
  EXPECT_EQ(second.Get("k")->cas, 4u);
}

TEST_F(ItemStoreTest, IncrDecrWrapAndFloor) {
  ItemStore store(Options());
  uint64_t value = 0;
  EXPECT_EQ(store.Delta("n", true, 1, &value), DeltaResult::kNotFound);
  Set(store, "n", "18446744073709551615", 0, 7);
  ASSERT_EQ(store.Delta("n", true, 2, &value), DeltaResult::kOk);
  EXPECT_EQ(value, 1u);  // wraps at 2^64
  EXPECT_EQ(Value(store, "n"), "1");
  EXPECT_EQ(store.Get("n")->flags, 7u);
  ASSERT_EQ(store.Delta("n", false, 5, &value), DeltaResult::kOk);
  EXPECT_EQ(value, 0u);  // floors at 0
  EXPECT_EQ(Value(store, "n"), "0");
  Set(store, "n", "99");
  ASSERT_EQ(store.Delta("n", true, 1, &value), DeltaResult::kOk);
  EXPECT_EQ(Value(store, "n"), "100");
  ASSERT_EQ(store.Delta("n", false, 1, &value), DeltaResult::kOk);
  EXPECT_EQ(Value(store, "n"), "99");  // shorter: no space padding
  EXPECT_EQ(store.bytes(), ItemFootprint(1, 2));
  ASSERT_EQ(store.Delta("n", true, std::numeric_limits<uint64_t>::max(), &value), DeltaResult::kOk);
  EXPECT_EQ(value, 98u);
  EXPECT_EQ(store.stats().incr_hits.Get(), 3u);
  EXPECT_EQ(store.stats().decr_hits.Get(), 2u);
  EXPECT_EQ(store.stats().incr_misses.Get(), 1u);
}

TEST_F(ItemStoreTest, IncrValueRules) {
  ItemStore store(Options());
  uint64_t value = 0;
  struct Case {
    const char* stored;
    bool numeric;
    uint64_t after_incr;
  };
  const Case cases[] = {
      {"12", true, 13},  {" 12", true, 13},  {"12 ", true, 13},    {"+5", true, 6},
      {"007", true, 8},  {"", false, 0},     {"abc", false, 0},    {"12ab", false, 0},
      {"-1", false, 0},  {" ", false, 0},    {"18446744073709551616", false, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stored);
    Set(store, "n", c.stored);
    const DeltaResult result = store.Delta("n", true, 1, &value);
    if (c.numeric) {
      ASSERT_EQ(result, DeltaResult::kOk);
      EXPECT_EQ(value, c.after_incr);
    } else {
      EXPECT_EQ(result, DeltaResult::kNonNumeric);
      EXPECT_EQ(Value(store, "n"), c.stored);  // untouched
    }
  }
}

TEST_F(ItemStoreTest, ExpiryRelativeAbsoluteNegative) {
  ItemStore store(Options());
  Set(store, "rel", "v", 10);
  Set(store, "max_rel", "v", kMaxRelativeExptime);
  Set(store, "abs", "v", kStart + 20);
  Set(store, "abs_past", "v", kMaxRelativeExptime + 1);  // absolute 1970 time: gone at once
  Set(store, "neg", "v", -1);
  Set(store, "never", "v", 0);
  EXPECT_EQ(Value(store, "abs_past"), "<miss>");
  EXPECT_EQ(Value(store, "neg"), "<miss>");
  now_ = kStart + 9;
  EXPECT_EQ(Value(store, "rel"), "v");
  now_ = kStart + 10;  // an item expires when its time is reached
  EXPECT_EQ(Value(store, "rel"), "<miss>");
  EXPECT_EQ(store.stats().get_expired.Get(), 1u);
  EXPECT_EQ(Value(store, "abs"), "v");
  now_ = kStart + 20;
  EXPECT_EQ(Value(store, "abs"), "<miss>");
  now_ = kStart + kMaxRelativeExptime - 1;
  EXPECT_EQ(Value(store, "max_rel"), "v");
  now_ = kStart + kMaxRelativeExptime;
  EXPECT_EQ(Value(store, "max_rel"), "<miss>");
  EXPECT_EQ(Value(store, "never"), "v");
}

TEST_F(ItemStoreTest, NegativeExptimeReplacesOldValue) {
  ItemStore store(Options());
  Set(store, "k", "old");
  EXPECT_EQ(Set(store, "k", "new", -1), StoreResult::kStored);
  EXPECT_EQ(Value(store, "k"), "<miss>");
  EXPECT_EQ(store.item_count(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
}

TEST_F(ItemStoreTest, TouchAndGetAndTouch) {
  ItemStore store(Options());
  EXPECT_FALSE(store.Touch("k", 10));
  Set(store, "k", "v", 5);
  EXPECT_TRUE(store.Touch("k", 100));
  now_ += 50;
  EXPECT_EQ(Value(store, "k"), "v");
  const Item* item = store.GetAndTouch("k", -1);  // returned, then gone
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(item->value(), "v");
  EXPECT_EQ(Value(store, "k"), "<miss>");
  Set(store, "k", "v", 5);
  EXPECT_NE(store.GetAndTouch("k", 0), nullptr);  // 0: never expires
  now_ += 1'000'000;
  EXPECT_EQ(Value(store, "k"), "v");
  EXPECT_TRUE(store.Touch("k", -1));
  EXPECT_FALSE(store.Touch("k", 10));
  EXPECT_EQ(store.stats().touch_hits.Get(), 4u);
  EXPECT_EQ(store.stats().touch_misses.Get(), 2u);
}

TEST_F(ItemStoreTest, DeleteAndUnlink) {
  ItemStore store(Options());
  EXPECT_FALSE(store.Delete("k"));
  Set(store, "k", "v");
  EXPECT_TRUE(store.Delete("k"));
  EXPECT_FALSE(store.Delete("k"));
  Set(store, "k", "v");
  store.Unlink("k");
  EXPECT_EQ(Value(store, "k"), "<miss>");
  EXPECT_EQ(store.stats().delete_hits.Get(), 1u);
  EXPECT_EQ(store.stats().delete_misses.Get(), 2u);
}

TEST_F(ItemStoreTest, LruOrderFollowsUse) {
  ItemStore store(Options());
  Set(store, "a", "1");
  Set(store, "b", "2");
  Set(store, "c", "3");
  EXPECT_EQ(Recency(store), (std::vector<std::string>{"c", "b", "a"}));
  store.Get("a");
  EXPECT_EQ(Recency(store), (std::vector<std::string>{"a", "c", "b"}));
  store.Touch("b", 0);
  EXPECT_EQ(Recency(store), (std::vector<std::string>{"b", "a", "c"}));
  Set(store, "c", "33");
  EXPECT_EQ(Recency(store), (std::vector<std::string>{"c", "b", "a"}));
  store.Get("a");  // the head's neighbour moves to the head; the tail changes
  EXPECT_EQ(Recency(store), (std::vector<std::string>{"a", "c", "b"}));
  store.Delete("c");
  EXPECT_EQ(Recency(store), (std::vector<std::string>{"a", "b"}));
}

TEST_F(ItemStoreTest, EvictsLeastRecentlyUsedUnderLimit) {
  const size_t each = ItemFootprint(2, 100);
  ItemStore store(Options(each * 3));
  const std::string value(100, 'v');
  Set(store, "k1", value);
  Set(store, "k2", value);
  Set(store, "k3", value);
  EXPECT_EQ(store.bytes(), each * 3);
  store.Get("k1");  // k2 is now the least recently used
  Set(store, "k4", value);
  EXPECT_EQ(store.item_count(), 3u);
  EXPECT_EQ(Value(store, "k2"), "<miss>");
  EXPECT_EQ(Value(store, "k1"), value);
  EXPECT_EQ(store.stats().evictions.Get(), 1u);
  EXPECT_EQ(store.stats().evicted_unfetched.Get(), 1u);  // k2 was never read
  EXPECT_LE(store.bytes(), each * 3);
  // A larger item evicts as many as it needs.
  Set(store, "kb", std::string(250, 'x'));
  EXPECT_LE(store.bytes(), each * 3);
  EXPECT_EQ(Value(store, "kb"), std::string(250, 'x'));
  EXPECT_EQ(store.stats().curr_items.Get(), static_cast<int64_t>(store.item_count()));
  EXPECT_EQ(store.stats().bytes.Get(), static_cast<int64_t>(store.bytes()));
}

TEST_F(ItemStoreTest, ExpiredTailIsReclaimedNotEvicted) {
  const size_t each = ItemFootprint(2, 10);
  ItemStore store(Options(each * 2));
  Set(store, "k1", std::string(10, 'a'), 5);
  Set(store, "k2", std::string(10, 'b'));
  now_ += 5;
  Set(store, "k3", std::string(10, 'c'));
  EXPECT_EQ(store.stats().evictions.Get(), 0u);
  EXPECT_EQ(store.stats().reclaimed.Get(), 1u);
  EXPECT_EQ(store.stats().expired_unfetched.Get(), 1u);
  EXPECT_EQ(Value(store, "k2"), std::string(10, 'b'));
}

TEST_F(ItemStoreTest, ItemLimits) {
  ItemStoreOptions options = Options(size_t{1} << 20);
  options.max_item_size = ItemFootprint(1, 100);
  ItemStore store(options);
  EXPECT_EQ(Set(store, "k", std::string(100, 'x')), StoreResult::kStored);
  EXPECT_EQ(Set(store, "k", std::string(101, 'x')), StoreResult::kTooLarge);
  EXPECT_EQ(store.Store(StoreMode::kAppend, MakeItem("k", 0, "y"), 0), StoreResult::kTooLarge);
  EXPECT_EQ(Value(store, "k"), std::string(100, 'x'));
  EXPECT_EQ(store.stats().store_too_large.Get(), 2u);

  ItemStoreOptions tiny = Options(ItemFootprint(1, 10));
  ItemStore small(tiny);
  EXPECT_EQ(Set(small, "k", std::string(11, 'x')), StoreResult::kNoMemory);
  EXPECT_EQ(Set(small, "k", std::string(10, 'x')), StoreResult::kStored);
  EXPECT_EQ(small.stats().store_no_memory.Get(), 1u);
}

TEST_F(ItemStoreTest, FlushNowAndDelayed) {
  ItemStore store(Options());
  Set(store, "a", "1");
  store.FlushAll(0);
  EXPECT_EQ(Value(store, "a"), "<miss>");
  EXPECT_EQ(store.bytes(), 0u);
  Set(store, "a", "1");  // stored after the flush: lives
  EXPECT_EQ(Value(store, "a"), "1");

  store.FlushAll(10);
  now_ += 5;
  Set(store, "b", "2");  // stored before the flush time: flushed too
  EXPECT_EQ(Value(store, "a"), "1");
  now_ += 5;
  EXPECT_EQ(Value(store, "a"), "<miss>");
  EXPECT_EQ(Value(store, "b"), "<miss>");
  Set(store, "c", "3");  // after the flush time
  now_ += 100;
  EXPECT_EQ(Value(store, "c"), "3");

  store.FlushAll(10);
  store.FlushAll(0);  // a later flush replaces the pending one
  Set(store, "d", "4");
  now_ += 20;
  EXPECT_EQ(Value(store, "d"), "4");

  store.FlushAll(now_ + 100);  // absolute time
  now_ += 99;
  EXPECT_EQ(Value(store, "d"), "4");
  now_ += 1;
  EXPECT_EQ(Value(store, "d"), "<miss>");
  Set(store, "e", "5");
  store.FlushAll(-1);  // negative: now
  EXPECT_EQ(Value(store, "e"), "<miss>");
}

TEST_F(ItemStoreTest, ManyItemsIndexStaysConsistent) {
  ItemStore store(Options(size_t{1} << 20));
  for (int i = 0; i < 20'000; ++i) Set(store, "key" + std::to_string(i), std::to_string(i));
  EXPECT_LE(store.bytes(), size_t{1} << 20);
  size_t listed = 0;
  store.ForEachByRecency([&](const Item&) { ++listed; });
  EXPECT_EQ(listed, store.item_count());
  EXPECT_EQ(Value(store, "key19999"), "19999");
  EXPECT_EQ(store.stats().evictions.Get() + store.item_count(), 20'000u);
}

}  // namespace
}  // namespace percore::memcache
