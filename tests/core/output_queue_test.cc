// OutputQueue: copied bytes interleaved with shared pieces, written over real AF_UNIX stream
// sockets and pipes and read back byte for byte. Partial writes (a small send buffer), the
// max_bytes bound and the 64-piece limit of one sendmsg may cut the stream anywhere: inside a
// shared piece, inside copied bytes, at a boundary; whatever is left must follow in order.
// A shared piece's owner must live exactly as long as its bytes are unwritten.

#include "core/output_queue.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace percore {
namespace {

constexpr size_t kUnlimited = std::numeric_limits<size_t>::max();
constexpr int kWaitMs = 5000;  // deadline for I/O that is already possible

// `n` pseudo-random bytes, reproducible for a given `seed`; each piece of a stream gets its own
// seed, so a piece that is lost, repeated or reordered cannot go unnoticed.
std::string Pattern(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// A shared piece's bytes and their owner: the queue gets a view of `*bytes` and a reference.
std::shared_ptr<const std::string> Owned(size_t n, unsigned seed) {
  return std::make_shared<const std::string>(Pattern(n, seed));
}

// A connected AF_UNIX stream pair (a writes, b reads), closed on destruction.
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
    if (a_ >= 0) ::close(a_);
    if (b_ >= 0) ::close(b_);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  bool ok() const { return a_ >= 0 && b_ >= 0; }
  int a() const { return a_; }
  int b() const { return b_; }

 private:
  int a_ = -1;
  int b_ = -1;
};

// A pipe (write end, read end): writev instead of sendmsg.
class Pipe {
 public:
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_ = fds[0];
      write_ = fds[1];
    }
  }
  ~Pipe() {
    if (read_ >= 0) ::close(read_);
    if (write_ >= 0) ::close(write_);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  bool ok() const { return read_ >= 0 && write_ >= 0; }
  int read_end() const { return read_; }
  int write_end() const { return write_; }

 private:
  int read_ = -1;
  int write_ = -1;
};

bool SetNonBlock(int fd) { return ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0; }

// Reads exactly `n` bytes from `fd` (blocking descriptor or not), waiting in poll.
std::string ReadExactly(int fd, size_t n) {
  std::string out;
  char chunk[64 * 1024];
  while (out.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kWaitMs) != 1) break;
    const ssize_t got = ::read(fd, chunk, std::min(sizeof(chunk), n - out.size()));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    out.append(chunk, static_cast<size_t>(got));
  }
  return out;
}

// Writes `q` to `fd` until it is empty, reading each write back from `peer` at once (the
// peer's buffer never fills). Returns everything read; every write's result is checked.
std::string DrainThrough(OutputQueue& q, int fd, int peer, size_t max_bytes = kUnlimited) {
  std::string out;
  while (!q.empty()) {
    const size_t before = q.size();
    const ssize_t n = q.WriteToFd(fd, max_bytes);
    EXPECT_GT(n, 0) << "errno " << errno;
    if (n <= 0) break;
    EXPECT_EQ(q.size(), before - static_cast<size_t>(n));
    out += ReadExactly(peer, static_cast<size_t>(n));
  }
  return out;
}

// Compares byte strings without dumping kilobytes into the log.
::testing::AssertionResult SameBytes(std::string_view expected, std::string_view actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  size_t at = 0;
  while (at < expected.size() && at < actual.size() && expected[at] == actual[at]) ++at;
  return ::testing::AssertionFailure() << "expected " << expected.size() << " bytes, got " << actual.size()
                                       << "; first difference at offset " << at;
}

// A queue and the stream it must produce, built piece by piece, with each piece's place in the
// stream: [begin, end) and whether it is shared.
struct Piece {
  size_t begin;
  size_t end;
  bool shared;
};

class Stream {
 public:
  void Copy(const std::string& bytes) {
    q.Append(bytes);
    Note(bytes, false);
  }
  void Share(std::shared_ptr<const std::string> owner) {
    const std::string& bytes = *owner;
    q.AppendShared(bytes, owner);
    Note(bytes, true);
  }
  // The piece that stream offset `offset` falls strictly inside, if any.
  const Piece* Inside(size_t offset) const {
    for (const Piece& p : pieces) {
      if (p.begin < offset && offset < p.end) return &p;
    }
    return nullptr;
  }

  OutputQueue q;
  std::string expected;
  std::vector<Piece> pieces;

 private:
  void Note(const std::string& bytes, bool shared) {
    pieces.push_back(Piece{expected.size(), expected.size() + bytes.size(), shared});
    expected += bytes;
  }
};

// --- Order ---

TEST(OutputQueueTest, CopiedAndSharedPiecesArriveInTheOrderQueuedOverASocket) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Stream s;
  s.Copy("VALUE k 0 20000\r\n");
  s.Share(Owned(20000, 1));
  s.Copy("\r\nVALUE j 0 30000\r\n");
  s.Share(Owned(30000, 2));
  ASSERT_EQ(s.q.size(), s.expected.size());
  ASSERT_EQ(s.q.shared_pieces(), 2u);

  // One sendmsg takes it all: the socket's buffer is larger than 50 KB.
  EXPECT_EQ(s.q.WriteToFd(pair.a(), kUnlimited), static_cast<ssize_t>(s.expected.size()));
  EXPECT_TRUE(s.q.empty());
  EXPECT_EQ(s.q.shared_pieces(), 0u);
  EXPECT_TRUE(SameBytes(s.expected, ReadExactly(pair.b(), s.expected.size())));
}

TEST(OutputQueueTest, CopiedAndSharedPiecesArriveInTheOrderQueuedOverAPipe) {
  Pipe pipe;
  ASSERT_TRUE(pipe.ok());
  Stream s;
  s.Copy("head ");
  s.Share(Owned(5000, 3));
  s.Copy(" middle ");
  s.Share(Owned(7000, 4));
  s.Copy(" tail");
  // A pipe is no socket: the queue falls back to writev.
  EXPECT_TRUE(SameBytes(s.expected, DrainThrough(s.q, pipe.write_end(), pipe.read_end())));
  EXPECT_TRUE(s.q.empty());
}

TEST(OutputQueueTest, AdjacentSharedPiecesAndBytesAppendedThroughTheBufferKeepTheirPlace) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Stream s;
  s.Share(Owned(3000, 5));  // shared first, with no copied bytes before it
  s.Share(Owned(4000, 6));  // two shared pieces at the same stream position
  // Serializers write into bytes() or Reserve/Commit: those bytes follow the shared pieces.
  s.q.bytes().Append("via-buffer;");
  s.expected += "via-buffer;";
  char* p = s.q.Reserve(9);
  std::memcpy(p, "reserved;", 9);
  s.q.Commit(9);
  s.expected += "reserved;";
  s.Share(Owned(5000, 7));
  EXPECT_TRUE(SameBytes(s.expected, DrainThrough(s.q, pair.a(), pair.b())));
}

// --- Partial writes ---

// A small send buffer on a non-blocking socket: each sendmsg takes only part of what it is
// offered. The cuts fall inside shared pieces and inside copied runs (the pieces are much
// larger than the buffer); each write resumes exactly where the previous one stopped.
TEST(OutputQueueTest, PartialWritesOnAFullSocketResumeInOrder) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  const int sndbuf = 8 * 1024;
  ASSERT_EQ(::setsockopt(pair.a(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
  ASSERT_TRUE(SetNonBlock(pair.a()));
  Stream s;
  for (unsigned i = 0; i < 4; ++i) {
    s.Copy(Pattern(40000 + 1000 * i, 10 + i));
    s.Share(Owned(60000 + 1000 * i, 20 + i));
  }
  s.Copy(Pattern(30000, 30));

  std::string got;
  size_t written = 0;
  int partial_writes = 0;
  int cuts_in_shared = 0;
  int cuts_in_copied = 0;
  while (!s.q.empty()) {
    const size_t before = s.q.size();
    const ssize_t n = s.q.WriteToFd(pair.a(), kUnlimited);
    if (n < 0) {
      ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << "errno " << errno;
      // Full: the reader takes what is there (at most the buffer), and the writer tries again.
      pollfd p{pair.b(), POLLIN, 0};
      ASSERT_EQ(::poll(&p, 1, kWaitMs), 1);
      char chunk[64 * 1024];
      const ssize_t r = ::read(pair.b(), chunk, sizeof(chunk));
      ASSERT_GT(r, 0);
      got.append(chunk, static_cast<size_t>(r));
      continue;
    }
    ASSERT_GT(n, 0);
    const size_t wrote = static_cast<size_t>(n);
    ASSERT_EQ(s.q.size(), before - wrote);
    if (wrote < before) ++partial_writes;
    written += wrote;
    if (const Piece* piece = s.Inside(written)) ++(piece->shared ? cuts_in_shared : cuts_in_copied);
  }
  got += ReadExactly(pair.b(), s.expected.size() - got.size());
  EXPECT_TRUE(SameBytes(s.expected, got));
  EXPECT_EQ(written, s.expected.size());
  EXPECT_GT(partial_writes, 0);
  EXPECT_GT(cuts_in_shared, 0);
  EXPECT_GT(cuts_in_copied, 0);
}

// max_bytes cuts the stream exactly where asked: inside copied bytes, inside a shared piece, on
// a boundary, one byte at a time; 0 writes nothing.
TEST(OutputQueueTest, MaxBytesIsHonouredAndCutsAnywhere) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Stream s;
  s.Copy(Pattern(1000, 40));
  s.Share(Owned(2000, 41));
  s.Copy(Pattern(500, 42));
  s.Share(Owned(1500, 43));
  const size_t total = s.expected.size();  // 5000

  EXPECT_EQ(s.q.WriteToFd(pair.a(), 0), 0);
  EXPECT_EQ(s.q.size(), total);

  std::string got;
  size_t at = 0;
  // Each step ends: inside copied bytes, inside the first shared piece, on its end, inside the
  // copied run after it, on that run's end, then one byte at a time into the second piece.
  for (const size_t step : {400u, 1100u, 1500u, 200u, 300u, 1u, 1u, 1u}) {
    ASSERT_EQ(s.q.WriteToFd(pair.a(), step), static_cast<ssize_t>(step)) << "at " << at;
    at += step;
    ASSERT_EQ(s.q.size(), total - at);
    got += ReadExactly(pair.b(), step);
    ASSERT_TRUE(SameBytes(std::string_view(s.expected).substr(0, at), got)) << "at " << at;
  }
  EXPECT_EQ(s.q.copied_size(), 0u);  // only the second shared piece is left
  EXPECT_EQ(s.q.shared_pieces(), 1u);
  EXPECT_EQ(s.q.WriteToFd(pair.a(), kUnlimited), static_cast<ssize_t>(total - at));
  got += ReadExactly(pair.b(), total - at);
  EXPECT_TRUE(SameBytes(s.expected, got));
  EXPECT_TRUE(s.q.empty());
}

// --- More pieces than one sendmsg takes ---

// The sum of the sizes of the stream's first `k` pieces.
size_t FirstPieces(const Stream& s, size_t k) { return s.pieces[k - 1].end; }

// 200 shared pieces among copied runs: a sendmsg takes at most 64 pieces, and the next write
// goes on with the first piece left out. The layouts put the 64-piece limit on a copied run
// (shared first), on a shared piece (copied first) and next to adjacent shared pieces, where
// the copied bytes after the last piece offered must stop at the next shared piece.
TEST(OutputQueueTest, MoreThanSixtyFourPiecesAreWrittenOverSeveralCallsInOrder) {
  enum class Layout { kCopiedFirst, kSharedFirst, kSharedPairs, kSharedOnly };
  for (const Layout layout :
       {Layout::kCopiedFirst, Layout::kSharedFirst, Layout::kSharedPairs, Layout::kSharedOnly}) {
    SCOPED_TRACE(::testing::Message() << "layout " << static_cast<int>(layout));
    SocketPair pair;
    ASSERT_TRUE(pair.ok());
    Stream s;
    for (unsigned i = 0; i < 200; ++i) {
      const bool copy_before = layout == Layout::kCopiedFirst || (layout == Layout::kSharedPairs && i % 2 == 0);
      if (copy_before) s.Copy(Pattern(10 + i % 7, 1000 + i));
      s.Share(Owned(100 + i, 2000 + i));
      if (layout == Layout::kSharedFirst) s.Copy(Pattern(10 + i % 7, 1000 + i));
    }
    s.Copy("end");
    ASSERT_EQ(s.q.shared_pieces(), 200u);
    ASSERT_LT(s.expected.size(), 64u * 1024);  // the socket takes it all: only the piece limit cuts

    // The first write is a prefix of whole pieces, as many as one sendmsg takes: 64, or 63 when
    // the 64th would be a shared piece that cannot be offered alone.
    const ssize_t first = s.q.WriteToFd(pair.a(), kUnlimited);
    ASSERT_GT(first, 0);
    const size_t wrote = static_cast<size_t>(first);
    if (layout == Layout::kCopiedFirst || layout == Layout::kSharedFirst) {
      EXPECT_EQ(wrote, FirstPieces(s, 64));
    } else {
      EXPECT_TRUE(wrote == FirstPieces(s, 63) || wrote == FirstPieces(s, 64))
          << wrote << " bytes: not a prefix of 63 or 64 pieces";
    }
    std::string got = ReadExactly(pair.b(), wrote);
    got += DrainThrough(s.q, pair.a(), pair.b());
    EXPECT_TRUE(SameBytes(s.expected, got));
    EXPECT_TRUE(s.q.empty());
    EXPECT_EQ(s.q.shared_pieces(), 0u);
  }
}

// --- AppendQueue ---

TEST(OutputQueueTest, AppendQueueMovesEverythingInOrderAndLeavesTheSourceEmpty) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Stream dst;
  dst.Copy("dst-head;");
  dst.Share(Owned(3000, 50));
  Stream src;
  src.Copy("src-head;");
  src.Share(Owned(4000, 51));
  src.Copy("src-middle;");
  src.Share(Owned(5000, 52));
  src.Share(Owned(100, 53));
  src.Copy("src-tail;");
  const size_t src_size = src.q.size();
  const size_t src_copied = src.q.copied_size();

  const size_t dst_size = dst.q.size();
  dst.q.AppendQueue(src.q);
  EXPECT_TRUE(src.q.empty());
  EXPECT_EQ(src.q.size(), 0u);
  EXPECT_EQ(src.q.copied_size(), 0u);
  EXPECT_EQ(src.q.shared_pieces(), 0u);
  EXPECT_EQ(dst.q.size(), dst_size + src_size);
  EXPECT_EQ(dst.q.copied_size(), 9u + src_copied);
  EXPECT_EQ(dst.q.shared_pieces(), 4u);
  EXPECT_TRUE(SameBytes(dst.expected + src.expected, DrainThrough(dst.q, pair.a(), pair.b())));

  // The emptied source is reusable.
  src.q.Append("again");
  EXPECT_EQ(src.q.size(), 5u);
}

// A source that has already written part of itself (its stream positions no longer start at
// zero), appended to a destination that has too.
TEST(OutputQueueTest, AppendQueueOfPartlyWrittenQueuesKeepsOrder) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  Stream dst;
  dst.Copy(Pattern(700, 60));
  dst.Share(Owned(900, 61));
  dst.Copy(Pattern(300, 62));
  ASSERT_EQ(dst.q.WriteToFd(pair.a(), 1000), 1000);  // inside dst's shared piece
  std::string got = ReadExactly(pair.b(), 1000);

  SocketPair scratch;  // where the source's first bytes go
  ASSERT_TRUE(scratch.ok());
  Stream src;
  src.Copy(Pattern(400, 63));
  src.Share(Owned(800, 64));
  src.Copy(Pattern(200, 65));
  src.Share(Owned(600, 66));
  src.Copy(Pattern(100, 67));
  ASSERT_EQ(src.q.WriteToFd(scratch.a(), 500), 500);  // inside src's first shared piece
  ASSERT_EQ(ReadExactly(scratch.b(), 500), src.expected.substr(0, 500));

  dst.q.AppendQueue(src.q);
  EXPECT_TRUE(src.q.empty());
  got += DrainThrough(dst.q, pair.a(), pair.b());
  EXPECT_TRUE(SameBytes(dst.expected + src.expected.substr(500), got));
}

TEST(OutputQueueTest, AppendQueueMovesOwnersWithoutCopyingThem) {
  auto owner = Owned(20000, 70);
  OutputQueue src;
  src.AppendShared(*owner, owner);
  EXPECT_EQ(owner.use_count(), 2);
  OutputQueue dst;
  dst.AppendQueue(src);
  EXPECT_EQ(owner.use_count(), 2);  // the reference moved to dst; src holds none
  src.Clear();
  EXPECT_EQ(owner.use_count(), 2);
  dst.Clear();
  EXPECT_EQ(owner.use_count(), 1);
}

// --- Owners ---

// Sets a flag when the owner is destroyed, so the test sees the moment of release even after
// giving up its own reference.
std::shared_ptr<const std::string> FlaggedOwner(size_t n, unsigned seed, bool* released) {
  return std::shared_ptr<const std::string>(new std::string(Pattern(n, seed)), [released](const std::string* p) {
    *released = true;
    delete p;
  });
}

TEST(OutputQueueTest, OwnerIsReleasedWhenItsLastByteIsWrittenAndNotBefore) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  bool released = false;
  OutputQueue q;
  q.Append("before;");
  {
    std::shared_ptr<const std::string> owner = FlaggedOwner(10000, 80, &released);
    q.AppendShared(*owner, owner);
  }
  q.Append(";after");
  EXPECT_FALSE(released);  // the queue's reference keeps the bytes alive

  std::string got;
  ASSERT_EQ(q.WriteToFd(pair.a(), 7), 7);  // the copied bytes before it
  EXPECT_FALSE(released);
  ASSERT_EQ(q.WriteToFd(pair.a(), 9999), 9999);  // all of the piece but its last byte
  EXPECT_FALSE(released);
  ASSERT_EQ(q.WriteToFd(pair.a(), 1), 1);  // the last byte: nothing needs the owner any more
  EXPECT_TRUE(released);
  EXPECT_EQ(q.shared_pieces(), 0u);
  ASSERT_EQ(q.WriteToFd(pair.a(), kUnlimited), 6);
  got = ReadExactly(pair.b(), 7 + 10000 + 6);
  EXPECT_EQ(got, "before;" + Pattern(10000, 80) + ";after");
}

TEST(OutputQueueTest, EachOwnerIsReleasedWithItsOwnPiece) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  auto first = Owned(3000, 81);
  auto second = Owned(3000, 82);
  OutputQueue q;
  q.AppendShared(*first, first);
  q.Append("between");
  q.AppendShared(*second, second);
  EXPECT_EQ(first.use_count(), 2);
  EXPECT_EQ(second.use_count(), 2);
  ASSERT_EQ(q.WriteToFd(pair.a(), 3000 + 3), 3003);  // the first piece and part of "between"
  EXPECT_EQ(first.use_count(), 1);
  EXPECT_EQ(second.use_count(), 2);
  ASSERT_EQ(q.WriteToFd(pair.a(), kUnlimited), 4 + 3000);
  EXPECT_EQ(second.use_count(), 1);
  EXPECT_EQ(ReadExactly(pair.b(), 6007), *first + "between" + *second);
}

TEST(OutputQueueTest, ClearReleasesEveryOwnerAndTheQueueIsReusable) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  bool released_a = false;
  bool released_b = false;
  OutputQueue q;
  {
    auto a = FlaggedOwner(5000, 83, &released_a);
    auto b = FlaggedOwner(6000, 84, &released_b);
    q.Append("x");
    q.AppendShared(*a, a);
    q.AppendShared(*b, b);
  }
  EXPECT_FALSE(released_a);
  EXPECT_FALSE(released_b);
  q.Clear();
  EXPECT_TRUE(released_a);
  EXPECT_TRUE(released_b);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.copied_size(), 0u);
  EXPECT_EQ(q.shared_pieces(), 0u);

  bool released = false;
  {
    auto owner = FlaggedOwner(4000, 85, &released);
    q.Append("head;");
    q.AppendShared(*owner, owner);
    q.Append(";tail");
  }
  ASSERT_EQ(q.WriteToFd(pair.a(), 2000), 2000);  // partly written, then dropped
  EXPECT_FALSE(released);
  q.Clear();
  EXPECT_TRUE(released);
  EXPECT_EQ(q.size(), 0u);
  (void)ReadExactly(pair.b(), 2000);

  // After a Clear the stream positions carry on: new pieces go out in order.
  Stream s;
  s.q = std::move(q);
  s.Copy("one;");
  s.Share(Owned(3000, 86));
  s.Copy(";two");
  EXPECT_TRUE(SameBytes(s.expected, DrainThrough(s.q, pair.a(), pair.b())));
}

TEST(OutputQueueTest, DestroyingTheQueueReleasesItsOwners) {
  bool released = false;
  {
    OutputQueue q;
    auto owner = FlaggedOwner(4000, 89, &released);
    q.AppendShared(*owner, owner);
    owner.reset();
    EXPECT_FALSE(released);
  }
  EXPECT_TRUE(released);
}

// The owner is made (and its bytes written) on another thread, handed over, and released on
// this one when its bytes have been written: the reference count is atomic, so no lock is
// needed and nothing races (checked under ThreadSanitizer).
TEST(OutputQueueTest, OwnerMadeOnAnotherThreadIsReleasedOnThisOne) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  std::atomic<bool> released{false};
  std::thread::id released_on;
  std::shared_ptr<const std::string> owner;
  std::thread::id made_on;
  std::thread maker([&] {
    made_on = std::this_thread::get_id();
    owner = std::shared_ptr<const std::string>(new std::string(Pattern(50000, 87)),
                                               [&released, &released_on](const std::string* p) {
                                                 released_on = std::this_thread::get_id();
                                                 released.store(true);
                                                 delete p;
                                               });
  });
  maker.join();
  ASSERT_NE(made_on, std::this_thread::get_id());

  OutputQueue q;
  q.Append("v:");
  q.AppendShared(*owner, owner);
  const std::string expected = "v:" + *owner;
  owner.reset();
  EXPECT_FALSE(released.load());
  EXPECT_EQ(DrainThrough(q, pair.a(), pair.b()), expected);
  EXPECT_TRUE(released.load());
  EXPECT_EQ(released_on, std::this_thread::get_id());
}

// A second thread keeps its own reference to the owner while this one writes: whichever lets
// go last frees it, exactly once.
TEST(OutputQueueTest, OwnerSharedWithAnotherThreadIsFreedOnceByTheLastHolder) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  std::atomic<int> frees{0};
  std::shared_ptr<const std::string> owner(new std::string(Pattern(30000, 88)), [&frees](const std::string* p) {
    frees.fetch_add(1);
    delete p;
  });
  OutputQueue q;
  q.AppendShared(*owner, owner);
  const std::string expected = *owner;
  std::thread holder([held = std::move(owner)]() mutable {
    // Reads the bytes the queue sends from (both only read them) and lets go of its reference.
    EXPECT_EQ(held->size(), 30000u);
    held.reset();
  });
  const std::string got = DrainThrough(q, pair.a(), pair.b());
  holder.join();
  EXPECT_EQ(got, expected);
  EXPECT_EQ(frees.load(), 1);
}

// --- Sizes ---

TEST(OutputQueueTest, CopiedSizeCountsOnlyTheQueuesOwnBytes) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  auto owner = Owned(1000, 90);
  OutputQueue q;
  EXPECT_TRUE(q.empty());
  q.Append(Pattern(100, 91));
  q.AppendShared(*owner, owner);
  q.Append(Pattern(10, 92));
  EXPECT_EQ(q.size(), 1110u);
  EXPECT_EQ(q.copied_size(), 110u);
  EXPECT_EQ(q.shared_pieces(), 1u);
  EXPECT_FALSE(q.empty());

  ASSERT_EQ(q.WriteToFd(pair.a(), 50), 50);  // copied only
  EXPECT_EQ(q.size(), 1060u);
  EXPECT_EQ(q.copied_size(), 60u);
  ASSERT_EQ(q.WriteToFd(pair.a(), 550), 550);  // the rest of the copied head, half the piece
  EXPECT_EQ(q.size(), 510u);
  EXPECT_EQ(q.copied_size(), 10u);
  EXPECT_EQ(q.shared_pieces(), 1u);
  ASSERT_EQ(q.WriteToFd(pair.a(), 500), 500);  // the piece's rest
  EXPECT_EQ(q.size(), 10u);
  EXPECT_EQ(q.copied_size(), 10u);
  EXPECT_EQ(q.shared_pieces(), 0u);
  ASSERT_EQ(q.WriteToFd(pair.a(), kUnlimited), 10);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(ReadExactly(pair.b(), 1110), Pattern(100, 91) + *owner + Pattern(10, 92));
}

TEST(OutputQueueTest, ZeroLengthSharedPieceIsIgnoredAndItsOwnerNotKept) {
  SocketPair pair;
  ASSERT_TRUE(pair.ok());
  auto owner = Owned(100, 93);
  OutputQueue q;
  q.Append("a");
  q.AppendShared(std::string_view(*owner).substr(0, 0), owner);
  q.AppendShared(std::string_view(), nullptr);
  q.Append("b");
  EXPECT_EQ(q.shared_pieces(), 0u);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(owner.use_count(), 1);
  EXPECT_EQ(q.WriteToFd(pair.a(), kUnlimited), 2);
  EXPECT_EQ(ReadExactly(pair.b(), 2), "ab");

  OutputQueue empty;
  empty.AppendShared(std::string_view(), owner);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.WriteToFd(pair.a(), kUnlimited), 0);  // nothing to write: no call at all
}

TEST(OutputQueueTest, WriteToAPeerThatIsGoneReportsTheErrorAndKeepsTheBytes) {
  auto owner = Owned(1000, 94);
  OutputQueue q;
  q.Append("x");
  q.AppendShared(*owner, owner);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ::close(fds[1]);
  // MSG_NOSIGNAL: EPIPE instead of a signal that would end the process.
  EXPECT_EQ(q.WriteToFd(fds[0], kUnlimited), -1);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_EQ(q.size(), 1001u);
  EXPECT_EQ(owner.use_count(), 2);
  ::close(fds[0]);
}

}  // namespace
}  // namespace percore
