// Buffer and BufferPool: byte bookkeeping, growth and compaction, moves, reads and writes on
// real AF_UNIX stream sockets (read budget, the 64 KiB overflow spill, partial writes on a full
// non-blocking socket), and the pool's attach/release/reuse accounting.

#include "core/buffer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "gtest/gtest.h"

namespace percore {
namespace {

constexpr size_t kBlock = BufferPool::kBlockSize;
constexpr size_t kOverflow = 64 * 1024;  // ReadFromFd's per-thread spill area
constexpr int kWaitMs = 5000;            // deadline for I/O that is already possible

// `n` bytes of a pattern that never repeats with a period dividing common sizes.
std::string Pattern(size_t n, unsigned seed = 0) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return out;
}

// A connected AF_UNIX stream pair, closed on destruction.
class SocketPair {
 public:
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
      a_ = fds[0];
      b_ = fds[1];
    }
  }
  ~SocketPair() {
    CloseA();
    CloseB();
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  bool ok() const { return a_ >= 0 && b_ >= 0; }
  int a() const { return a_; }
  int b() const { return b_; }
  void CloseA() {
    if (a_ >= 0) ::close(a_);
    a_ = -1;
  }
  void CloseB() {
    if (b_ >= 0) ::close(b_);
    b_ = -1;
  }

 private:
  int a_ = -1;
  int b_ = -1;
};

void SetNonBlock(int fd) { ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK), 0); }

bool WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, kWaitMs) == 1;
}

// How many bytes are queued for reading on `fd` right now.
int Pending(int fd) {
  int n = -1;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// Makes `fd` hold exactly `n` readable bytes (written in one call, so one read can take them).
void Preload(const SocketPair& pair, std::string_view bytes) {
  ASSERT_EQ(::write(pair.a(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ASSERT_EQ(Pending(pair.b()), static_cast<int>(bytes.size()));
}

// --- Bookkeeping ---

TEST(BufferTest, DefaultIsEmptyWithoutStorage) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.writable(), 0u);
  EXPECT_FALSE(b.has_storage());
  EXPECT_EQ(b.view(), "");
}

TEST(BufferTest, AppendThenConsumeInPieces) {
  Buffer b;
  b.Append("hello ");
  b.Append(std::string_view("world"));
  b.Append("!!", 1);
  EXPECT_EQ(b.view(), "hello world!");
  EXPECT_EQ(b.size(), 12u);
  EXPECT_TRUE(b.has_storage());
  EXPECT_EQ(b.capacity(), kBlock);

  b.Consume(6);
  EXPECT_EQ(b.view(), "world!");
  b.Consume(0);
  EXPECT_EQ(b.view(), "world!");
  b.Consume(5);
  EXPECT_EQ(b.view(), "!");
  b.Consume(1);
  EXPECT_TRUE(b.empty());
  // Consuming the last byte rewinds: the whole block is writable again.
  EXPECT_EQ(b.writable(), kBlock);
}

TEST(BufferTest, AppendEmptyAllocatesNothing) {
  Buffer b;
  b.Append("");
  b.Append(nullptr, 0);
  EXPECT_FALSE(b.has_storage());
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, ClearKeepsStorage) {
  Buffer b;
  b.Append(Pattern(1000));
  b.Consume(10);
  b.Clear();
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.has_storage());
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_EQ(b.writable(), kBlock);
}

TEST(BufferTest, ReserveCommitPublishesOnlyCommittedBytes) {
  Buffer b;
  b.Append("ab");
  char* p = b.Reserve(100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(b.writable(), 100u);
  EXPECT_EQ(p, b.data() + b.size());
  std::memcpy(p, "cdefgh", 6);
  b.Commit(4);
  EXPECT_EQ(b.view(), "abcdef");
  // Uncommitted bytes are not readable and are overwritten by the next append.
  b.Append("XY");
  EXPECT_EQ(b.view(), "abcdefXY");
}

TEST(BufferTest, ReserveLargerThanBlockGrowsAndKeepsBytes) {
  Buffer b;
  const std::string head = Pattern(3000, 1);
  b.Append(head);
  char* p = b.Reserve(5 * kBlock);
  EXPECT_GE(b.writable(), 5 * kBlock);
  EXPECT_GE(b.capacity(), 5 * kBlock + head.size());
  const std::string tail = Pattern(5 * kBlock, 2);
  std::memcpy(p, tail.data(), tail.size());
  b.Commit(tail.size());
  EXPECT_EQ(b.view(), head + tail);
}

TEST(BufferTest, ReserveWithinWritableDoesNotMove) {
  Buffer b;
  b.Append("abc");
  const char* before = b.data();
  b.Reserve(b.writable());
  EXPECT_EQ(b.data(), before);
  EXPECT_EQ(b.capacity(), kBlock);
}

TEST(BufferTest, GrowthKeepsEveryByte) {
  Buffer b;
  std::string expected;
  // Uneven chunks, some consumption along the way, through several doublings.
  for (int i = 0; i < 200; ++i) {
    const std::string chunk = Pattern(777 + 13 * i, static_cast<unsigned>(i));
    b.Append(chunk);
    expected += chunk;
    if (i % 7 == 0) {
      const size_t drop = expected.size() / 5;
      b.Consume(drop);
      expected.erase(0, drop);
    }
    ASSERT_EQ(b.size(), expected.size());
  }
  EXPECT_EQ(b.view(), expected);
  EXPECT_GT(b.capacity(), kBlock);
  // Capacity stays a power-of-two multiple of the block.
  size_t c = b.capacity();
  while (c > kBlock) {
    ASSERT_EQ(c % 2, 0u);
    c /= 2;
  }
  EXPECT_EQ(c, kBlock);
}

TEST(BufferTest, CompactsInsteadOfGrowingWhenTheConsumedPrefixMakesRoom) {
  Buffer b;
  b.Append(Pattern(10000, 3));
  b.Consume(9000);
  const std::string live(b.view());
  ASSERT_EQ(live.size(), 1000u);
  // 1000 live bytes at offset 9000; 6384 writable at the end, 15384 once slid to the front.
  ASSERT_LT(b.writable(), 14000u);
  char* p = b.Reserve(14000);
  EXPECT_EQ(b.capacity(), kBlock);  // no new storage
  EXPECT_GE(b.writable(), 14000u);
  EXPECT_EQ(b.view(), live);
  EXPECT_EQ(p, b.data() + 1000);
  b.Append(Pattern(14000, 4));
  EXPECT_EQ(b.view(), live + Pattern(14000, 4));
  EXPECT_EQ(b.capacity(), kBlock);
}

TEST(BufferTest, GrowsWhenCompactionCannotMakeEnoughRoom) {
  Buffer b;
  b.Append(Pattern(12000, 5));
  b.Consume(2000);
  const std::string live(b.view());
  b.Reserve(kBlock);  // more than capacity - live
  EXPECT_EQ(b.capacity(), 2 * kBlock);
  EXPECT_EQ(b.view(), live);
}

// --- Moves ---

TEST(BufferTest, MoveConstructionTransfersBytesAndEmptiesSource) {
  Buffer a;
  a.Append("payload");
  a.Consume(3);
  const char* data = a.data();
  Buffer b(std::move(a));
  EXPECT_EQ(b.view(), "load");
  EXPECT_EQ(b.data(), data);  // storage moved, not copied
  EXPECT_EQ(b.capacity(), kBlock);
  // The moved-from buffer is a valid empty buffer.
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(a.has_storage());
  EXPECT_EQ(a.capacity(), 0u);
  a.Append("again");
  EXPECT_EQ(a.view(), "again");
}

TEST(BufferTest, MoveAssignmentReplacesDestination) {
  Buffer a;
  a.Append(Pattern(40000, 6));  // grown storage
  Buffer b;
  b.Append("old contents");
  b = std::move(a);
  EXPECT_EQ(b.view(), Pattern(40000, 6));
  EXPECT_EQ(b.capacity(), 4 * kBlock);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(a.has_storage());
  EXPECT_EQ(a.writable(), 0u);
}

// --- ReadFromFd ---

TEST(BufferReadTest, ReadsIntoABufferWithoutStorageThroughTheOverflow) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  const std::string data = Pattern(100, 7);
  Preload(pair, data);
  Buffer b;
  EXPECT_EQ(b.ReadFromFd(pair.b(), 1 << 20), 100);
  EXPECT_EQ(b.view(), data);
}

TEST(BufferReadTest, ReadLargerThanWritableSpaceSpillsAndAppends) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Buffer b;
  BufferPool pool;
  pool.Attach(b);
  const std::string head = Pattern(kBlock - 10, 8);
  b.Append(head);
  ASSERT_EQ(b.writable(), 10u);
  const std::string data = Pattern(50000, 9);
  Preload(pair, data);
  EXPECT_EQ(b.ReadFromFd(pair.b(), 1 << 20), 50000);
  EXPECT_EQ(b.view(), head + data);
  EXPECT_EQ(Pending(pair.b()), 0);
}

TEST(BufferReadTest, ReadTakesAtMostWritableSpacePlusOverflow) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  // A larger send buffer so that more than writable + 64 KiB can be queued at once.
  const int sndbuf = 1 << 20;
  ASSERT_EQ(::setsockopt(pair.a(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
  const std::string data = Pattern(200000, 10);
  Preload(pair, data);

  Buffer b;
  BufferPool pool;
  pool.Attach(b);
  b.Append("x");
  const size_t room = b.writable();
  const ssize_t n = b.ReadFromFd(pair.b(), 1 << 20);
  ASSERT_EQ(n, static_cast<ssize_t>(room + kOverflow));
  EXPECT_EQ(b.view(), "x" + data.substr(0, room + kOverflow));
  EXPECT_EQ(Pending(pair.b()), static_cast<int>(data.size() - room - kOverflow));

  // The rest comes on later reads, in order.
  std::string got(b.view().substr(1));
  b.Clear();
  while (got.size() < data.size()) {
    const ssize_t m = b.ReadFromFd(pair.b(), 1 << 20);
    ASSERT_GT(m, 0);
    got.append(b.view());
    b.Clear();
  }
  EXPECT_EQ(got, data);
}

TEST(BufferReadTest, ReadBudgetSmallerThanWritableSpaceIsRespected) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  const std::string data = Pattern(1000, 11);
  Preload(pair, data);
  Buffer b;
  BufferPool pool;
  pool.Attach(b);
  EXPECT_EQ(b.ReadFromFd(pair.b(), 100), 100);
  EXPECT_EQ(b.view(), data.substr(0, 100));
  EXPECT_EQ(Pending(pair.b()), 900);
  EXPECT_EQ(b.ReadFromFd(pair.b(), 1), 1);
  EXPECT_EQ(b.view(), data.substr(0, 101));
  EXPECT_EQ(b.ReadFromFd(pair.b(), 100000), 899);
  EXPECT_EQ(b.view(), data);
}

TEST(BufferReadTest, ReadBudgetSpanningWritableSpaceAndOverflowIsRespected) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  const std::string data = Pattern(5000, 12);
  Preload(pair, data);
  Buffer b;
  BufferPool pool;
  pool.Attach(b);
  const std::string head = Pattern(kBlock - 10, 13);
  b.Append(head);
  ASSERT_EQ(b.writable(), 10u);
  EXPECT_EQ(b.ReadFromFd(pair.b(), 300), 300);  // 10 direct + 290 spilled
  EXPECT_EQ(b.view(), head + data.substr(0, 300));
  EXPECT_EQ(Pending(pair.b()), 4700);
}

TEST(BufferReadTest, ReadBudgetOnABufferWithoutStorageIsRespected) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  const std::string data = Pattern(3000, 14);
  Preload(pair, data);
  Buffer b;
  EXPECT_EQ(b.ReadFromFd(pair.b(), 1234), 1234);
  EXPECT_EQ(b.view(), data.substr(0, 1234));
  EXPECT_EQ(Pending(pair.b()), 3000 - 1234);
}

TEST(BufferReadTest, ReadAfterPartialConsumeKeepsOrder) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Buffer b;
  std::string expected;
  for (int round = 0; round < 20; ++round) {
    const std::string data = Pattern(9000 + 500 * round, static_cast<unsigned>(round));
    Preload(pair, data);
    ssize_t total = 0;
    while (total < static_cast<ssize_t>(data.size())) {
      const ssize_t n = b.ReadFromFd(pair.b(), 1 << 20);
      ASSERT_GT(n, 0);
      total += n;
    }
    expected += data;
    const size_t drop = expected.size() * 2 / 3;
    ASSERT_EQ(b.view().substr(0, drop), std::string_view(expected).substr(0, drop));
    b.Consume(drop);
    expected.erase(0, drop);
  }
  EXPECT_EQ(b.view(), expected);
}

TEST(BufferReadTest, EndOfStreamReturnsZeroAndLeavesBytes) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Buffer b;
  b.Append("kept");
  pair.CloseA();
  EXPECT_EQ(b.ReadFromFd(pair.b(), 4096), 0);
  EXPECT_EQ(b.view(), "kept");
}

TEST(BufferReadTest, WouldBlockReturnsMinusOneWithErrnoAndLeavesBytes) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  SetNonBlock(pair.b());
  Buffer b;
  b.Append("kept");
  errno = 0;
  EXPECT_EQ(b.ReadFromFd(pair.b(), 4096), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << errno;
  EXPECT_EQ(b.view(), "kept");
}

TEST(BufferReadTest, BadFdReturnsMinusOneWithEbadf) {
  Buffer b;
  errno = 0;
  EXPECT_EQ(b.ReadFromFd(-1, 4096), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_TRUE(b.empty());
}

// --- WriteToFd ---

TEST(BufferWriteTest, WritesEverythingWhenItFits) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Buffer b;
  b.Append("abcdef");
  b.Consume(2);
  EXPECT_EQ(b.WriteToFd(pair.a()), 4);
  EXPECT_TRUE(b.empty());
  char got[16];
  EXPECT_EQ(::read(pair.b(), got, sizeof(got)), 4);
  EXPECT_EQ(std::string_view(got, 4), "cdef");
}

TEST(BufferWriteTest, EmptyBufferWritesNothing) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Buffer b;
  EXPECT_EQ(b.WriteToFd(pair.a()), 0);
  EXPECT_EQ(b.WriteToFd(-1), 0);  // no syscall at all
  EXPECT_EQ(Pending(pair.b()), 0);
}

TEST(BufferWriteTest, PartialWritesOnAFullNonBlockingSocketConsumeExactlyWhatWasWritten) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  SetNonBlock(pair.a());
  const int small = 4096;  // the kernel rounds it up; still far below the data size
  ASSERT_EQ(::setsockopt(pair.a(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  const std::string data = Pattern(3 << 20, 15);
  Buffer b;
  b.Append(data);

  // First write: partial, and the buffer holds exactly the unwritten suffix.
  const ssize_t first = b.WriteToFd(pair.a());
  ASSERT_GT(first, 0);
  ASSERT_LT(first, static_cast<ssize_t>(data.size()));
  EXPECT_EQ(b.size(), data.size() - static_cast<size_t>(first));
  EXPECT_EQ(b.view(), std::string_view(data).substr(static_cast<size_t>(first)));

  // The socket is now full: the next write fails with EAGAIN and consumes nothing.
  errno = 0;
  EXPECT_EQ(b.WriteToFd(pair.a()), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << errno;
  EXPECT_EQ(b.size(), data.size() - static_cast<size_t>(first));

  // Drain the peer and keep writing until everything went through, in order.
  std::string received;
  received.reserve(data.size());
  char chunk[64 * 1024];
  size_t partial_writes = 1;
  while (received.size() < data.size()) {
    if (!b.empty()) {
      const ssize_t n = b.WriteToFd(pair.a());
      if (n > 0 && !b.empty()) ++partial_writes;
      if (n < 0) {
        ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << errno;
      }
    }
    ASSERT_TRUE(WaitFor(pair.b(), POLLIN));
    const ssize_t got = ::read(pair.b(), chunk, sizeof(chunk));
    ASSERT_GT(got, 0);
    received.append(chunk, static_cast<size_t>(got));
  }
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(received.size(), data.size());
  EXPECT_TRUE(received == data);
  EXPECT_GT(partial_writes, 1u);
}

TEST(BufferWriteTest, BadFdReturnsMinusOneAndKeepsBytes) {
  Buffer b;
  b.Append("kept");
  errno = 0;
  EXPECT_EQ(b.WriteToFd(-1), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(b.view(), "kept");
}

// --- BufferPool ---

TEST(BufferPoolTest, AttachAllocatesOneBlock) {
  BufferPool pool;
  Buffer b;
  pool.Attach(b);
  EXPECT_TRUE(b.has_storage());
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_EQ(b.writable(), kBlock);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(pool.blocks_allocated(), 1u);
  EXPECT_EQ(pool.free_blocks(), 0u);
}

TEST(BufferPoolTest, AttachToABufferWithStorageIsANoOp) {
  BufferPool pool;
  Buffer b;
  b.Append("mine");
  const char* data = b.data();
  pool.Attach(b);
  EXPECT_EQ(b.view(), "mine");
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(pool.blocks_allocated(), 0u);
}

TEST(BufferPoolTest, ReleaseThenAttachReusesTheSameBlock) {
  BufferPool pool;
  Buffer a;
  pool.Attach(a);
  a.Append("request");
  a.Consume(7);
  const char* block = a.data();
  pool.Release(a);
  EXPECT_FALSE(a.has_storage());
  EXPECT_EQ(a.capacity(), 0u);
  EXPECT_EQ(pool.free_blocks(), 1u);

  Buffer b;
  pool.Attach(b);
  EXPECT_EQ(b.data(), block);
  EXPECT_EQ(pool.blocks_allocated(), 1u);
  EXPECT_EQ(pool.free_blocks(), 0u);
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_TRUE(b.empty());
}

TEST(BufferPoolTest, CountsOverManyBuffers) {
  BufferPool pool;
  constexpr int kBuffers = 10;
  Buffer buffers[kBuffers];
  for (Buffer& b : buffers) pool.Attach(b);
  EXPECT_EQ(pool.blocks_allocated(), 10u);
  for (int i = 0; i < 6; ++i) pool.Release(buffers[i]);
  EXPECT_EQ(pool.free_blocks(), 6u);
  for (int i = 0; i < 6; ++i) pool.Attach(buffers[i]);
  EXPECT_EQ(pool.blocks_allocated(), 10u);
  EXPECT_EQ(pool.free_blocks(), 0u);
  Buffer extra;
  pool.Attach(extra);
  EXPECT_EQ(pool.blocks_allocated(), 11u);
}

TEST(BufferPoolTest, ReleaseLeavesANonEmptyBufferAlone) {
  BufferPool pool;
  Buffer b;
  pool.Attach(b);
  b.Append("unfinished message");
  b.Consume(11);
  const char* data = b.data();
  pool.Release(b);
  EXPECT_TRUE(b.has_storage());
  EXPECT_EQ(b.view(), "message");
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_EQ(pool.free_blocks(), 0u);
}

TEST(BufferPoolTest, ReleaseOfABufferWithoutStorageIsANoOp) {
  BufferPool pool;
  Buffer b;
  pool.Release(b);
  EXPECT_EQ(pool.free_blocks(), 0u);
  EXPECT_FALSE(b.has_storage());
}

TEST(BufferPoolTest, GrownStorageIsFreedNotKept) {
  BufferPool pool;
  Buffer b;
  pool.Attach(b);
  b.Append(Pattern(3 * kBlock, 16));
  ASSERT_GT(b.capacity(), kBlock);
  b.Clear();
  pool.Release(b);
  EXPECT_FALSE(b.has_storage());
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(pool.free_blocks(), 0u);
  pool.Attach(b);
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_EQ(pool.blocks_allocated(), 2u);
}

TEST(BufferPoolTest, KeepsAtMostMaxFreeBlocks) {
  BufferPool pool(/*max_free_blocks=*/2);
  Buffer buffers[4];
  for (Buffer& b : buffers) pool.Attach(b);
  for (Buffer& b : buffers) pool.Release(b);
  EXPECT_EQ(pool.free_blocks(), 2u);
  for (Buffer& b : buffers) EXPECT_FALSE(b.has_storage());
  for (Buffer& b : buffers) pool.Attach(b);
  EXPECT_EQ(pool.blocks_allocated(), 6u);  // 4 first, then 2 reused and 2 new
  EXPECT_EQ(pool.free_blocks(), 0u);
}

TEST(BufferPoolTest, ABufferDrainedByConsumeIsReleasable) {
  BufferPool pool;
  Buffer b;
  pool.Attach(b);
  b.Append("abc");
  b.Consume(3);
  pool.Release(b);
  EXPECT_EQ(pool.free_blocks(), 1u);
  EXPECT_FALSE(b.has_storage());
}

// --- A Buffer tied to a pool ---

TEST(PooledBufferTest, TakesItsFirstBlockFromThePool) {
  BufferPool pool;
  Buffer seed;
  pool.Attach(seed);
  const char* block = seed.data();
  pool.Release(seed);

  Buffer b(&pool);
  EXPECT_FALSE(b.has_storage());
  b.Append("reply");
  EXPECT_EQ(b.data(), block);
  EXPECT_EQ(b.capacity(), kBlock);
  EXPECT_EQ(pool.free_blocks(), 0u);
  EXPECT_EQ(pool.blocks_allocated(), 1u);
}

TEST(PooledBufferTest, OutgrowingItsBlockGivesTheBlockBack) {
  BufferPool pool;
  Buffer b(&pool);
  b.Append("head");
  const std::string big = Pattern(3 * kBlock, 5);
  b.Append(big);
  EXPECT_GT(b.capacity(), kBlock);
  EXPECT_EQ(b.view(), "head" + big);
  EXPECT_EQ(pool.free_blocks(), 1u);
  // The grown storage is the buffer's own: freed, not pooled, when it empties.
  b.Consume(b.size());
  pool.Release(b);
  EXPECT_EQ(pool.free_blocks(), 1u);
}

TEST(PooledBufferTest, FillAndDrainCyclesReuseOneBlock) {
  // An output buffer's life: replies appended, written out, storage released, again and again.
  // The same block must circulate; nothing piles up in the pool.
  BufferPool pool;
  Buffer out(&pool);
  for (int i = 0; i < 5000; ++i) {
    out.Append("VALUE k 0 1\r\nx\r\nEND\r\n");
    out.Consume(out.size());
    pool.Release(out);
  }
  EXPECT_EQ(pool.blocks_allocated(), 1u);
  EXPECT_EQ(pool.free_blocks(), 1u);
}

TEST(PooledBufferTest, MovesKeepThePool) {
  BufferPool pool;
  Buffer a(&pool);
  Buffer b(std::move(a));
  b.Append("x");
  EXPECT_EQ(pool.blocks_allocated(), 1u);
  Buffer c;
  c = std::move(b);
  c.Consume(1);
  pool.Release(c);
  c.Append("y");
  EXPECT_EQ(pool.blocks_allocated(), 1u);
}

TEST(BufferPoolTrimTest, ABurstIsReturnedAfterTwoQuietPeriods) {
  BufferPool pool;
  Buffer burst[10];
  for (Buffer& b : burst) pool.Attach(b);
  for (Buffer& b : burst) pool.Release(b);
  ASSERT_EQ(pool.free_blocks(), 10u);
  pool.Trim();  // the burst needed every block in this period
  EXPECT_EQ(pool.free_blocks(), 10u);
  pool.Trim();  // none was needed in this one
  EXPECT_EQ(pool.free_blocks(), 0u);
  EXPECT_EQ(pool.blocks_trimmed(), 10u);
}

TEST(BufferPoolTrimTest, KeepsWhatSteadyUseNeeds) {
  BufferPool pool;
  Buffer held[4];
  for (Buffer& b : held) pool.Attach(b);
  for (Buffer& b : held) pool.Release(b);
  pool.Trim();
  // Each period two buffers are in use at once at the peak: two of the four blocks idle.
  for (int period = 0; period < 3; ++period) {
    pool.Attach(held[0]);
    pool.Attach(held[1]);
    pool.Release(held[0]);
    pool.Release(held[1]);
    pool.Trim();
  }
  EXPECT_EQ(pool.free_blocks(), 2u);
  EXPECT_EQ(pool.blocks_allocated(), 4u);
  EXPECT_EQ(pool.blocks_trimmed(), 2u);
}

}  // namespace
}  // namespace percore
