// A reader that pipelines multi-gets of large values and does not read them: its pending
// replies keep the items they found alive, outside the store's memory limit (the store may
// replace or evict them meanwhile). The handler stops parsing once they hold
// MemcacheHandler::kMaxHeldBytes of values, so a slow reader pins a bounded amount of memory.

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "services/memcache/memcache_handler.h"
#include "services/memcache/memcache_service.h"
#include "tests/services/memcache/memcache_server_fixture.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::test {
namespace {

constexpr size_t kValueSize = 1000 * 1000;
constexpr int kKeys = 40;     // 40 MB a round: two rounds pass the 64 MiB mark
constexpr int kRounds = 6;

class MemcacheHeldBytesTest : public MemcacheServerTest {};

TEST_F(MemcacheHeldBytesTest, ASlowReaderPinsBoundedValueBytes) {
  static_assert(kKeys * kValueSize * 2 > memcache::MemcacheHandler::kMaxHeldBytes);
  MemcacheOptions options;
  options.memory_limit = size_t{512} << 20;
  options.max_item_size = size_t{2} << 20;
  StartServer(options, /*loops=*/2);
  // The reader is served on loop 0 and every key lives on loop 1: every get is a cross-loop
  // call, so nothing fills the reader's output before the answers are back.
  const std::vector<std::string> keys = KeysOwnedByLoop(1, kKeys);
  const std::string value(kValueSize, 'v');
  {
    ScopedFd writer = Connect();
    for (const std::string& key : keys) {
      Expect(writer.get(), absl::StrCat("set ", key, " 0 0 ", kValueSize, "\r\n", value, "\r\n"), "STORED\r\n");
    }
  }
  ScopedFd reader = ConnectOnLoop(0);
  ASSERT_TRUE(reader.valid());
  std::string round = "get";
  for (const std::string& key : keys) absl::StrAppend(&round, " ", key);
  round += "\r\n";
  std::string request;
  for (int r = 0; r < kRounds; ++r) request += round;
  ASSERT_TRUE(WriteAll(reader.get(), request, deadline()).ok());

  // Every key is referenced by the answers to the rounds parsed so far. Wait until the
  // references stop growing: the connection is paused and nothing of it is in flight.
  auto max_refs = [&] {
    int most = 0;
    for (const std::string& entry : SharedItems()) {
      int refs = 0;
      const std::vector<std::string> parts = absl::StrSplit(entry, ':');
      if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &refs)) most = std::max(most, refs - 1);
    }
    return most;
  };
  ASSERT_TRUE(WaitUntil([&] { return max_refs() >= 1; }, deadline()));
  ASSERT_TRUE(WaitUntil([&] { return StateOf(reader.get(), 0) == ConnectionState::kPaused; }, deadline()));
  // Once the answers are in, two rounds (80 MB) have passed the mark; the four after them wait
  // unparsed, however long the reader leaves them.
  ASSERT_TRUE(WaitUntil([&] { return max_refs() >= 2; }, deadline()));
  EXPECT_EQ(max_refs(), 2);

  // Read everything: all six rounds come back whole, in order.
  size_t expected = 0;
  for (const std::string& key : keys) expected += absl::StrCat("VALUE ", key, " 0 ", kValueSize, "\r\n").size() + kValueSize + 2;
  expected = (expected + 5) * kRounds;  // + "END\r\n" a round
  absl::StatusOr<std::string> replies = ReadExactly(reader.get(), expected, Deadline::In(absl::Seconds(60)));
  ASSERT_TRUE(replies.ok()) << replies.status();
  size_t at = 0;
  for (int r = 0; r < kRounds; ++r) {
    for (const std::string& key : keys) {
      const std::string head = absl::StrCat("VALUE ", key, " 0 ", kValueSize, "\r\n");
      ASSERT_EQ(replies->compare(at, head.size(), head), 0) << "round " << r << " key " << key;
      at += head.size() + kValueSize + 2;
    }
    ASSERT_EQ(replies->compare(at, 5, "END\r\n"), 0) << "round " << r;
    at += 5;
  }
  EXPECT_TRUE(WaitUntil([&] { return SharedItems().empty(); }, deadline()));
}

}  // namespace
}  // namespace percore::test
