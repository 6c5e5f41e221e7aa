#include "services/resp/string_store.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "gtest/gtest.h"

namespace percore {
namespace {

class StringStoreTest : public ::testing::Test {
 protected:
  int64_t now_ms_ = 1'000'000;
  StringStore store_{[this] { return now_ms_; }};

  std::string GetOr(std::string_view key, std::string_view missing = "<none>") {
    std::string_view value;
    return store_.Get(key, &value) == StoreStatus::kOk ? std::string(value)
                                                       : std::string(missing);
  }
};

TEST_F(StringStoreTest, SetGetOverwrite) {
  EXPECT_EQ(GetOr("k"), "<none>");
  EXPECT_TRUE(store_.Set("k", "v1", {}).applied);
  EXPECT_EQ(GetOr("k"), "v1");
  EXPECT_TRUE(store_.Set("k", "v2", {}).applied);
  EXPECT_EQ(GetOr("k"), "v2");
  EXPECT_EQ(store_.key_count(), 1u);
}

TEST_F(StringStoreTest, Conditions) {
  SetOptions nx;
  nx.condition = SetOptions::Condition::kIfAbsent;
  SetOptions xx;
  xx.condition = SetOptions::Condition::kIfPresent;
  EXPECT_FALSE(store_.Set("k", "a", xx).applied);
  EXPECT_FALSE(store_.Exists("k"));
  EXPECT_TRUE(store_.Set("k", "a", nx).applied);
  EXPECT_FALSE(store_.Set("k", "b", nx).applied);
  EXPECT_EQ(GetOr("k"), "a");
  EXPECT_TRUE(store_.Set("k", "c", xx).applied);
  EXPECT_EQ(GetOr("k"), "c");
}

TEST_F(StringStoreTest, OldValue) {
  std::string old;
  SetOptions get;
  get.old_value = &old;
  SetResult r = store_.Set("k", "a", get);
  EXPECT_TRUE(r.applied);
  EXPECT_FALSE(r.had_old);
  r = store_.Set("k", "b", get);
  EXPECT_TRUE(r.had_old);
  EXPECT_EQ(old, "a");
  store_.CreateOfType("list", ValueType::kList);
  r = store_.Set("list", "x", get);
  EXPECT_TRUE(r.wrong_type);
  EXPECT_FALSE(r.applied);
  ValueType type;
  ASSERT_TRUE(store_.Type("list", &type));
  EXPECT_EQ(type, ValueType::kList);
  // Without GET, SET replaces a value of any type.
  EXPECT_TRUE(store_.Set("list", "x", {}).applied);
  ASSERT_TRUE(store_.Type("list", &type));
  EXPECT_EQ(type, ValueType::kString);
}

TEST_F(StringStoreTest, LazyExpiry) {
  SetOptions ttl;
  ttl.expire_at_ms = now_ms_ + 100;
  store_.Set("k", "v", ttl);
  EXPECT_EQ(store_.TtlMs("k"), 100);
  EXPECT_EQ(store_.expiring_count(), 1u);
  now_ms_ += 99;
  EXPECT_EQ(GetOr("k"), "v");
  EXPECT_EQ(store_.TtlMs("k"), 1);
  now_ms_ += 1;
  EXPECT_EQ(GetOr("k"), "<none>");
  EXPECT_EQ(store_.TtlMs("k"), -2);
  EXPECT_EQ(store_.key_count(), 0u);
  EXPECT_EQ(store_.expiring_count(), 0u);
}

TEST_F(StringStoreTest, SetClearsTtlUnlessKeepTtl) {
  SetOptions ttl;
  ttl.expire_at_ms = now_ms_ + 100;
  store_.Set("k", "v", ttl);
  SetOptions keep;
  keep.keep_ttl = true;
  store_.Set("k", "v2", keep);
  EXPECT_EQ(store_.TtlMs("k"), 100);
  store_.Set("k", "v3", {});
  EXPECT_EQ(store_.TtlMs("k"), -1);
  EXPECT_EQ(store_.expiring_count(), 0u);
}

TEST_F(StringStoreTest, ActiveExpiryRemovesOnlyExpired) {
  for (int i = 0; i < 100; ++i) {
    SetOptions ttl;
    ttl.expire_at_ms = now_ms_ + (i % 2 == 0 ? 10 : 10'000);
    store_.Set("k" + std::to_string(i), "v", ttl);
  }
  store_.Set("forever", "v", {});
  EXPECT_EQ(store_.key_count(), 101u);
  now_ms_ += 10;
  size_t removed = 0;
  for (int tick = 0; tick < 100 && removed < 50; ++tick) removed += store_.ExpireSome(20, 16);
  EXPECT_EQ(removed, 50u);
  EXPECT_EQ(store_.key_count(), 51u);
  EXPECT_EQ(store_.expiring_count(), 50u);
  for (int i = 1; i < 100; i += 2) EXPECT_EQ(store_.TtlMs("k" + std::to_string(i)), 9'990);
  EXPECT_EQ(store_.ExpireSome(20, 16), 0u);
}

TEST_F(StringStoreTest, ExpireSomeStopsWhenFewExpired) {
  for (int i = 0; i < 1000; ++i) {
    SetOptions ttl;
    ttl.expire_at_ms = now_ms_ + 10'000;
    store_.Set("k" + std::to_string(i), "v", ttl);
  }
  EXPECT_EQ(store_.ExpireSome(20, 16), 0u);
  EXPECT_EQ(store_.key_count(), 1000u);
}

TEST_F(StringStoreTest, IncrBy) {
  int64_t v = 0;
  EXPECT_EQ(store_.IncrBy("n", 5, &v), StoreStatus::kOk);
  EXPECT_EQ(v, 5);
  EXPECT_EQ(store_.IncrBy("n", -7, &v), StoreStatus::kOk);
  EXPECT_EQ(v, -2);
  EXPECT_EQ(GetOr("n"), "-2");
  store_.Set("s", "abc", {});
  EXPECT_EQ(store_.IncrBy("s", 1, &v), StoreStatus::kNotInteger);
  store_.Set("s", " 1", {});
  EXPECT_EQ(store_.IncrBy("s", 1, &v), StoreStatus::kNotInteger);
  store_.Set("max", "9223372036854775807", {});
  EXPECT_EQ(store_.IncrBy("max", 1, &v), StoreStatus::kOverflow);
  store_.Set("min", "-9223372036854775808", {});
  EXPECT_EQ(store_.IncrBy("min", -1, &v), StoreStatus::kOverflow);
  EXPECT_EQ(store_.IncrBy("min", 1, &v), StoreStatus::kOk);
  store_.CreateOfType("h", ValueType::kHash);
  EXPECT_EQ(store_.IncrBy("h", 1, &v), StoreStatus::kWrongType);
}

TEST_F(StringStoreTest, IncrKeepsTtl) {
  SetOptions ttl;
  ttl.expire_at_ms = now_ms_ + 500;
  store_.Set("n", "1", ttl);
  int64_t v = 0;
  ASSERT_EQ(store_.IncrBy("n", 1, &v), StoreStatus::kOk);
  EXPECT_EQ(store_.TtlMs("n"), 500);
}

TEST_F(StringStoreTest, AppendAndStrLen) {
  size_t n = 0;
  EXPECT_EQ(store_.StrLen("k", &n), StoreStatus::kOk);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(store_.Append("k", "abc", 5, &n), StoreStatus::kOk);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(store_.Append("k", "de", 5, &n), StoreStatus::kOk);
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(store_.Append("k", "f", 5, &n), StoreStatus::kTooLarge);
  EXPECT_EQ(store_.Append("new", "123456", 5, &n), StoreStatus::kTooLarge);
  EXPECT_FALSE(store_.Exists("new"));
  EXPECT_EQ(store_.StrLen("k", &n), StoreStatus::kOk);
  EXPECT_EQ(n, 5u);
  store_.CreateOfType("z", ValueType::kZSet);
  EXPECT_EQ(store_.Append("z", "x", 5, &n), StoreStatus::kWrongType);
  EXPECT_EQ(store_.StrLen("z", &n), StoreStatus::kWrongType);
}

TEST_F(StringStoreTest, ExpireConditions) {
  store_.Set("k", "v", {});
  EXPECT_FALSE(store_.Expire("missing", now_ms_ + 10));
  EXPECT_FALSE(store_.Expire("k", now_ms_ + 10, {.if_has_ttl = true}));
  EXPECT_FALSE(store_.Expire("k", now_ms_ + 10, {.if_greater = true}));  // none = forever
  EXPECT_TRUE(store_.Expire("k", now_ms_ + 100, {.if_less = true}));
  EXPECT_FALSE(store_.Expire("k", now_ms_ + 50, {.if_no_ttl = true}));
  EXPECT_FALSE(store_.Expire("k", now_ms_ + 200, {.if_less = true}));
  EXPECT_TRUE(store_.Expire("k", now_ms_ + 50, {.if_less = true}));
  EXPECT_EQ(store_.TtlMs("k"), 50);
  EXPECT_FALSE(store_.Expire("k", now_ms_ + 40, {.if_greater = true}));
  EXPECT_TRUE(store_.Expire("k", now_ms_ + 60, {.if_has_ttl = true, .if_greater = true}));
  EXPECT_EQ(store_.TtlMs("k"), 60);
  // A time not in the future deletes.
  EXPECT_TRUE(store_.Expire("k", now_ms_));
  EXPECT_FALSE(store_.Exists("k"));
}

TEST_F(StringStoreTest, PersistDeleteClear) {
  SetOptions ttl;
  ttl.expire_at_ms = now_ms_ + 100;
  store_.Set("a", "1", ttl);
  store_.Set("b", "2", ttl);
  store_.Set("c", "3", {});
  EXPECT_TRUE(store_.Persist("a"));
  EXPECT_FALSE(store_.Persist("a"));
  EXPECT_FALSE(store_.Persist("c"));
  EXPECT_FALSE(store_.Persist("missing"));
  EXPECT_EQ(store_.TtlMs("a"), -1);
  EXPECT_EQ(store_.expiring_count(), 1u);
  EXPECT_TRUE(store_.Delete("b"));
  EXPECT_FALSE(store_.Delete("b"));
  EXPECT_EQ(store_.expiring_count(), 0u);
  store_.Clear();
  EXPECT_EQ(store_.key_count(), 0u);
  EXPECT_FALSE(store_.Exists("a"));
}

TEST_F(StringStoreTest, ExpiryIndexSurvivesManyRemovals) {
  // Keys with TTLs removed in an order that moves other keys inside the expiry index.
  for (int i = 0; i < 200; ++i) {
    SetOptions ttl;
    ttl.expire_at_ms = now_ms_ + 1000 + i;
    store_.Set("k" + std::to_string(i), "v", ttl);
  }
  for (int i = 0; i < 200; i += 3) store_.Delete("k" + std::to_string(i));
  for (int i = 1; i < 200; i += 3) store_.Persist("k" + std::to_string(i));
  EXPECT_EQ(store_.expiring_count(), 66u);
  now_ms_ += 5000;
  size_t removed = 0;
  for (int tick = 0; tick < 50; ++tick) removed += store_.ExpireSome(20, 16);
  EXPECT_EQ(removed, 66u);
  EXPECT_EQ(store_.key_count(), 67u);
  for (int i = 1; i < 200; i += 3) EXPECT_TRUE(store_.Exists("k" + std::to_string(i)));
}

TEST(ValueTypeNameTest, Names) {
  EXPECT_EQ(ValueTypeName(ValueType::kString), "string");
  EXPECT_EQ(ValueTypeName(ValueType::kList), "list");
  EXPECT_EQ(ValueTypeName(ValueType::kSet), "set");
  EXPECT_EQ(ValueTypeName(ValueType::kZSet), "zset");
  EXPECT_EQ(ValueTypeName(ValueType::kHash), "hash");
}

// --- Values shared with replies (GetShared) ---

constexpr size_t kBig = 64 * 1024;

TEST_F(StringStoreTest, GetSharedHandsOutLargeValuesOnly) {
  store_.Set("small", "abc", {});
  store_.Set("big", std::string(kBig, 'b'), {});
  std::string_view value;
  std::shared_ptr<const void> owner;
  ASSERT_EQ(store_.GetShared("small", 1024, &value, &owner), StoreStatus::kOk);
  EXPECT_EQ(value, "abc");
  EXPECT_EQ(owner, nullptr);
  ASSERT_EQ(store_.GetShared("big", 1024, &value, &owner), StoreStatus::kOk);
  EXPECT_EQ(value, std::string(kBig, 'b'));
  ASSERT_NE(owner, nullptr);
  // A second reference is the same string, not a copy.
  std::string_view again;
  std::shared_ptr<const void> owner2;
  ASSERT_EQ(store_.GetShared("big", 1024, &again, &owner2), StoreStatus::kOk);
  EXPECT_EQ(again.data(), value.data());
  EXPECT_EQ(owner2, owner);
  // A threshold of 0 shares even a small value; Get still reads it.
  ASSERT_EQ(store_.GetShared("small", 0, &value, &owner), StoreStatus::kOk);
  EXPECT_NE(owner, nullptr);
  EXPECT_EQ(GetOr("small"), "abc");
  EXPECT_EQ(store_.GetShared("none", 0, &value, &owner), StoreStatus::kNotFound);
  store_.CreateOfType("list", ValueType::kList);
  EXPECT_EQ(store_.GetShared("list", 0, &value, &owner), StoreStatus::kWrongType);
}

TEST_F(StringStoreTest, HeldBytesSurviveEveryWrite) {
  const std::string original(kBig, 'o');
  store_.Set("k", original, {});
  std::string_view held;
  std::shared_ptr<const void> owner;
  ASSERT_EQ(store_.GetShared("k", 1, &held, &owner), StoreStatus::kOk);

  // APPEND that must grow: the value moves to a new buffer, the held one is untouched.
  size_t size = 0;
  ASSERT_EQ(store_.Append("k", "+1", 1 << 30, &size), StoreStatus::kOk);
  EXPECT_EQ(size, kBig + 2);
  EXPECT_EQ(held, original);
  EXPECT_EQ(GetOr("k"), original + "+1");

  // The grown value has room to spare: shared again, then appended to in place, which writes
  // only past what the second holder sees.
  std::string_view held2;
  std::shared_ptr<const void> owner2;
  ASSERT_EQ(store_.GetShared("k", 1, &held2, &owner2), StoreStatus::kOk);
  ASSERT_EQ(store_.Append("k", "+2", 1 << 30, &size), StoreStatus::kOk);
  EXPECT_EQ(held2, original + "+1");
  EXPECT_EQ(GetOr("k"), original + "+1+2");
  EXPECT_EQ(store_.StrLen("k", &size), StoreStatus::kOk);
  EXPECT_EQ(size, kBig + 4);

  // SET, INCR (after SET of a number) and CreateOfType replace; the holders keep their bytes.
  std::string_view held3;
  std::shared_ptr<const void> owner3;
  ASSERT_EQ(store_.GetShared("k", 1, &held3, &owner3), StoreStatus::kOk);
  store_.Set("k", "41", {});
  EXPECT_EQ(held3, original + "+1+2");
  ASSERT_EQ(store_.GetShared("k", 1, &held3, &owner3), StoreStatus::kOk);
  int64_t n = 0;
  ASSERT_EQ(store_.IncrBy("k", 1, &n), StoreStatus::kOk);
  EXPECT_EQ(n, 42);
  EXPECT_EQ(held3, "41");
  EXPECT_EQ(GetOr("k"), "42");
  ASSERT_EQ(store_.GetShared("k", 1, &held3, &owner3), StoreStatus::kOk);
  store_.CreateOfType("k", ValueType::kHash);
  EXPECT_EQ(held3, "42");
  EXPECT_EQ(held, original);

  // Deleting or flushing leaves the holders' bytes alive too.
  store_.Set("d", original, {});
  ASSERT_EQ(store_.GetShared("d", 1, &held3, &owner3), StoreStatus::kOk);
  store_.Clear();
  EXPECT_EQ(held3, original);
}

TEST_F(StringStoreTest, OldValueByReference) {
  const std::string original(kBig, 'x');
  std::string old;
  std::shared_ptr<const std::string> old_shared;
  SetOptions get;
  get.old_value = &old;
  get.old_shared = &old_shared;
  get.share_old_at_least = 1024;
  store_.Set("k", original, {});
  SetResult r = store_.Set("k", "new", get);
  EXPECT_TRUE(r.had_old);
  EXPECT_TRUE(old.empty());
  ASSERT_NE(old_shared, nullptr);
  EXPECT_EQ(*old_shared, original);
  EXPECT_EQ(GetOr("k"), "new");
  // A small old value is copied, as without old_shared.
  old_shared.reset();
  r = store_.Set("k", "newer", get);
  EXPECT_TRUE(r.had_old);
  EXPECT_EQ(old, "new");
  EXPECT_EQ(old_shared, nullptr);
  // NX on an existing key: nothing is written, and the old value stays in the store.
  store_.Set("k", original, {});
  get.condition = SetOptions::Condition::kIfAbsent;
  r = store_.Set("k", "ignored", get);
  EXPECT_FALSE(r.applied);
  EXPECT_TRUE(r.had_old);
  ASSERT_NE(old_shared, nullptr);
  EXPECT_EQ(*old_shared, original);
  EXPECT_EQ(GetOr("k"), original);
}

}  // namespace
}  // namespace percore
