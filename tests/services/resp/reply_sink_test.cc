#include "services/resp/reply_sink.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/output_queue.h"
#include "gtest/gtest.h"
#include "services/resp/resp_reply.h"

namespace percore {
namespace {

// Everything `queue` holds, in the order it would be sent, written through a socket pair.
std::string Drain(OutputQueue& queue) {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string out;
  char buf[16 * 1024];
  while (!queue.empty()) {
    const ssize_t n = queue.WriteToFd(fds[0], sizeof(buf));
    EXPECT_GT(n, 0);
    if (n <= 0) break;
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      const ssize_t got = ::read(fds[1], buf, std::min(left, sizeof(buf)));
      EXPECT_GT(got, 0);
      if (got <= 0) break;
      out.append(buf, static_cast<size_t>(got));
      left -= static_cast<size_t>(got);
    }
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return out;
}

// An output that never backs up.
bool Never() { return false; }

std::shared_ptr<const std::string> Value(size_t size, char c) {
  return std::make_shared<const std::string>(size, c);
}

std::string Bulk(std::string_view s) {
  return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}

TEST(ReplyQueueTest, StreamKeepsOrderAndSharesLargeValues) {
  const auto big = Value(100 * 1024, 'b');
  const auto mid = Value(1000, 'm');
  ReplyQueue queue;
  queue.bytes().Append("*4\r\n");
  queue.AppendValue(*big, big);
  queue.AppendValue("small", nullptr);
  queue.AppendValue(*mid, mid);  // referenced, then copied into the output: below kShareAtLeast
  queue.AppendValue(*big, big);
  EXPECT_EQ(queue.shared_pieces(), 3u);
  EXPECT_EQ(big.use_count(), 3);

  OutputQueue out;
  // Room for one piece at a time: each call stops as soon as the output is backed up.
  int calls = 0;
  std::string sent;
  const auto backed_up = [&out] { return out.size() > 1; };
  while (!queue.EmitTo(out, backed_up)) {
    ++calls;
    EXPECT_LE(out.copied_size(), size_t{64} << 10);
    sent += Drain(out);
  }
  sent += Drain(out);
  EXPECT_GE(calls, 3);
  EXPECT_EQ(sent, "*4\r\n" + Bulk(*big) + Bulk("small") + Bulk(*mid) + Bulk(*big));
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(big.use_count(), 1);  // every reference was passed on and released
}

TEST(ReplyQueueTest, LargeValuesNeverCopied) {
  const auto big = Value(1 << 20, 'x');
  ReplyQueue queue;
  for (int i = 0; i < 10; ++i) queue.AppendValue(*big, big);
  OutputQueue out;
  EXPECT_TRUE(queue.EmitTo(out, Never));
  EXPECT_EQ(out.shared_pieces(), 10u);
  EXPECT_LT(out.copied_size(), 200u);
  EXPECT_EQ(out.size(), 10 * (big->size() + 12));  // "$1048576\r\n" ... "\r\n"
}

TEST(ReplyQueueTest, CopyBudgetTurnsCopiesIntoReferences) {
  ReplyQueue queue;
  queue.set_copy_budget(1000);
  EXPECT_EQ(queue.share_at_least(), OutputQueue::kShareAtLeast);
  queue.AppendValue(std::string(999, 'a'), nullptr);
  EXPECT_EQ(queue.share_at_least(), OutputQueue::kShareAtLeast);
  queue.AppendValue(std::string(1, 'a'), nullptr);
  EXPECT_EQ(queue.share_at_least(), ReplyQueue::kCopyAlways);
  // Values of up to kCopyAlways bytes are copied whatever is asked.
  const auto tiny = Value(ReplyQueue::kCopyAlways, 't');
  queue.AppendValue(*tiny, tiny);
  EXPECT_EQ(queue.shared_pieces(), 0u);
  queue.Clear();
  EXPECT_EQ(queue.share_at_least(), OutputQueue::kShareAtLeast);
}

TEST(ReplyQueueTest, ListOfReplies) {
  const auto big = Value(20000, 'v');
  ReplyQueue list;
  list.bytes().Append(":7\r\n");
  list.Seal();
  list.AppendValue(*big, big);
  list.Seal();
  list.bytes().Append("-ERR x\r\n");
  list.Seal();
  ASSERT_EQ(list.replies(), 3u);
  EXPECT_EQ(list.head(0), ":7\r\n");
  EXPECT_EQ(list.head(1), "$20000\r\n");
  EXPECT_EQ(list.head(2), "-ERR x\r\n");

  Buffer copy;
  ReplySink sink(copy);
  list.MoveReplyTo(1, sink);
  list.MoveReplyTo(0, sink);
  EXPECT_EQ(std::string(copy.view()), Bulk(*big) + ":7\r\n");
  EXPECT_EQ(big.use_count(), 1);  // moved out of the list, then copied and released
}

TEST(ReplySinkTest, OutputThenOverflowInOrder) {
  const auto big = Value(40000, 'q');
  OutputQueue output;
  ReplyQueue overflow;
  {
    const auto backed_up = [&output] { return output.size() > 50000; };
    ReplySink sink(output, backed_up, overflow);
    AppendArrayHeader(sink.bytes(), 4);
    sink.AppendValue(*big, big);  // into the output, shared: 40 KB
    EXPECT_TRUE(overflow.empty());
    sink.AppendValue(*big, big);  // still room: the output held 40 KB
    EXPECT_TRUE(overflow.empty());
    EXPECT_EQ(output.shared_pieces(), 2u);
    sink.AppendValue(*big, big);  // past high_water: overflow
    sink.bytes().Append("$-1\r\n");
    EXPECT_FALSE(overflow.empty());
    EXPECT_FALSE(sink.StartsWithError());
  }
  {
    // A later reply starts behind what overflowed, even though it would fit the output.
    ReplySink sink(output, Never, overflow);
    sink.bytes().Append("-ERR later\r\n");
    EXPECT_TRUE(sink.StartsWithError());
  }
  std::string sent = Drain(output);
  EXPECT_TRUE(overflow.EmitTo(output, Never));
  sent += Drain(output);
  EXPECT_EQ(sent, "*4\r\n" + Bulk(*big) + Bulk(*big) + Bulk(*big) + "$-1\r\n-ERR later\r\n");
}

TEST(ReplySinkTest, PlainBufferCopiesEverything) {
  Buffer out;
  ReplySink sink(out);
  EXPECT_EQ(sink.share_at_least(), std::numeric_limits<size_t>::max());
  const auto big = Value(30000, 'z');
  sink.AppendValue(*big, big);
  sink.AppendBulkCopy("echo");
  EXPECT_EQ(std::string(out.view()), Bulk(*big) + Bulk("echo"));
  EXPECT_EQ(big.use_count(), 1);
}

TEST(ReplySinkTest, LongArgumentsAreSharedCopies) {
  OutputQueue output;
  ReplyQueue overflow;
  ReplySink sink(output, Never, overflow);
  const std::string arg(100000, 'e');
  sink.AppendBulkCopy(arg);
  EXPECT_EQ(output.shared_pieces(), 1u);
  EXPECT_LT(output.copied_size(), 100u);
  EXPECT_EQ(Drain(output), Bulk(arg));
}

}  // namespace
}  // namespace percore
