// The contract every Poller back end must meet; each test runs against poll and epoll.
//
// What both back ends report (asserted below):
// - A peer's close, with read interest on: kPollIn | kPollHangup, and read() returns 0.
//   With no interest at all: kPollHangup alone (a full close is always reported).
// - A peer's half-close (shutdown SHUT_WR): kPollIn | kPollHangup with read interest on;
//   nothing about it with read interest off, so backpressure does not spin the loop.
// - A refused non-blocking connect: kPollIn | kPollOut | kPollHangup | kPollError, with
//   SO_ERROR = ECONNREFUSED.
// They differ only on an fd closed without Remove (misuse): poll reports kPollError for it,
// epoll forgets it silently.

#include "reactor/poller.h"
#include "reactor/uring_poller.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace percore {

// Names the back end in gtest failure messages (found by ADL, so not in the anonymous namespace).
void PrintTo(PollerBackend backend, std::ostream* os) { *os << PollerBackendName(backend); }

namespace {

constexpr int kWaitMs = 5000;  // deadline for events that are already due; never reached

// Owns one fd.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct SocketPair {
  Fd near;  // the end under watch
  Fd far;   // the end the test drives
};

SocketPair MakeSocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  return SocketPair{Fd(fds[0]), Fd(fds[1])};
}

void WriteByte(const Fd& fd) { ASSERT_EQ(::write(fd.get(), "x", 1), 1); }

class PollerTest : public ::testing::TestWithParam<PollerBackend> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Poller>> poller = NewPoller(GetParam(), UringOptions{});
    ASSERT_TRUE(poller.ok()) << poller.status();
    poller_ = std::move(*poller);
    ASSERT_EQ(poller_->backend(), GetParam());
  }

  // Waits once and returns what was reported, keyed by fd.
  std::map<int, PollEvent> WaitOnce(int timeout_ms, size_t capacity = 64) {
    std::vector<PollEvent> events(capacity);
    absl::StatusOr<int> n = poller_->Wait(timeout_ms, std::span<PollEvent>(events));
    EXPECT_TRUE(n.ok()) << n.status();
    std::map<int, PollEvent> by_fd;
    for (int i = 0; i < n.value_or(0); ++i) {
      EXPECT_TRUE(by_fd.emplace(events[i].fd, events[i]).second) << "fd reported twice";
    }
    return by_fd;
  }

  // Waits for exactly one ready fd and returns its event.
  PollEvent WaitForOne() {
    std::map<int, PollEvent> ready = WaitOnce(kWaitMs);
    EXPECT_EQ(ready.size(), 1u);
    return ready.empty() ? PollEvent{} : ready.begin()->second;
  }

  std::unique_ptr<Poller> poller_;
};

TEST_P(PollerTest, ReadableAfterWrite) {
  SocketPair pair = MakeSocketPair();
  int context = 0;
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, &context).ok());
  EXPECT_TRUE(WaitOnce(0).empty());

  WriteByte(pair.far);
  PollEvent event = WaitForOne();
  EXPECT_EQ(event.fd, pair.near.get());
  EXPECT_EQ(event.context, &context);
  EXPECT_EQ(event.events, kPollIn);

  // Level-triggered: still reported until the byte is read.
  EXPECT_EQ(WaitForOne().events, kPollIn);
  char byte;
  ASSERT_EQ(::read(pair.near.get(), &byte, 1), 1);
  EXPECT_TRUE(WaitOnce(0).empty());
}

TEST_P(PollerTest, WritableImmediately) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollOut, nullptr).ok());
  PollEvent event = WaitForOne();
  EXPECT_EQ(event.fd, pair.near.get());
  EXPECT_EQ(event.events, kPollOut);
}

TEST_P(PollerTest, NothingReadyTimesOut) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  std::array<PollEvent, 4> events;
  EXPECT_EQ(poller_->Wait(0, events).value_or(-1), 0);
  EXPECT_EQ(poller_->Wait(10, events).value_or(-1), 0);
}

TEST_P(PollerTest, EmptyOutputSpanIsAnError) {
  EXPECT_EQ(poller_->Wait(0, std::span<PollEvent>()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(PollerTest, PeerCloseReportsInAndHangup) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  pair.far.Reset();
  EXPECT_EQ(WaitForOne().events, kPollIn | kPollHangup);
  char byte;
  EXPECT_EQ(::read(pair.near.get(), &byte, 1), 0);
}

TEST_P(PollerTest, PeerCloseReportsHangupWithoutInterest) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), 0, nullptr).ok());
  EXPECT_TRUE(WaitOnce(0).empty());
  pair.far.Reset();
  EXPECT_EQ(WaitForOne().events, kPollHangup);
}

TEST_P(PollerTest, HalfCloseReportedOnlyWithReadInterest) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  ASSERT_EQ(::shutdown(pair.far.get(), SHUT_WR), 0);
  EXPECT_EQ(WaitForOne().events, kPollIn | kPollHangup);

  ASSERT_TRUE(poller_->Modify(pair.near.get(), 0).ok());
  EXPECT_TRUE(WaitOnce(0).empty());
  ASSERT_TRUE(poller_->Modify(pair.near.get(), kPollOut).ok());
  EXPECT_EQ(WaitForOne().events, kPollOut);
}

TEST_P(PollerTest, RefusedConnectReportsError) {
  // Bind to get a free port, then close the listener-to-be so the port refuses.
  Fd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  probe.Reset();

  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), -1);
  ASSERT_EQ(errno, EINPROGRESS);
  ASSERT_TRUE(poller_->Add(client.get(), kPollIn | kPollOut, nullptr).ok());

  PollEvent event = WaitForOne();
  EXPECT_EQ(event.fd, client.get());
  EXPECT_EQ(event.events, kPollIn | kPollOut | kPollHangup | kPollError);
  int error = 0;
  len = sizeof(error);
  ASSERT_EQ(::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &error, &len), 0);
  EXPECT_EQ(error, ECONNREFUSED);
}

TEST_P(PollerTest, ModifyChangesInterest) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  WriteByte(pair.far);
  EXPECT_EQ(WaitForOne().events, kPollIn);

  ASSERT_TRUE(poller_->Modify(pair.near.get(), 0).ok());
  EXPECT_TRUE(WaitOnce(0).empty());
  ASSERT_TRUE(poller_->Modify(pair.near.get(), kPollOut).ok());
  EXPECT_EQ(WaitForOne().events, kPollOut);
  ASSERT_TRUE(poller_->Modify(pair.near.get(), kPollIn | kPollOut).ok());
  EXPECT_EQ(WaitForOne().events, kPollIn | kPollOut);
  EXPECT_EQ(poller_->size(), 1);
}

TEST_P(PollerTest, RemoveStopsReporting) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  WriteByte(pair.far);
  EXPECT_EQ(WaitForOne().fd, pair.near.get());

  ASSERT_TRUE(poller_->Remove(pair.near.get()).ok());
  EXPECT_EQ(poller_->size(), 0);
  EXPECT_TRUE(WaitOnce(0).empty());

  // The fd can be watched again after removal.
  int context = 0;
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, &context).ok());
  EXPECT_EQ(WaitForOne().context, &context);
}

TEST_P(PollerTest, RemoveBeforeCloseForgetsTheFdAndItsNumberCanBeReused) {
  SocketPair pair = MakeSocketPair();
  const int fd = pair.near.get();
  ASSERT_TRUE(poller_->Add(fd, kPollIn, nullptr).ok());
  WriteByte(pair.far);  // ready, and never read: a registration left behind would report it
  EXPECT_EQ(WaitForOne().fd, fd);
  ASSERT_TRUE(poller_->RemoveBeforeClose(fd).ok());
  EXPECT_EQ(poller_->size(), 0);
  EXPECT_EQ(poller_->Remove(fd).code(), absl::StatusCode::kNotFound);
  pair.near.Reset();

  // The lowest free number is the one just closed: the next socket usually gets it.
  SocketPair next = MakeSocketPair();
  int context = 0;
  ASSERT_TRUE(poller_->Add(next.near.get(), kPollIn, &context).ok());
  EXPECT_TRUE(WaitOnce(0).empty()) << "the closed socket's readiness was reported";
  WriteByte(next.far);
  const PollEvent event = WaitForOne();
  EXPECT_EQ(event.fd, next.near.get());
  EXPECT_EQ(event.context, &context);
}

TEST_P(PollerTest, AddTwiceFails) {
  SocketPair pair = MakeSocketPair();
  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  EXPECT_EQ(poller_->Add(pair.near.get(), kPollOut, nullptr).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(poller_->size(), 1);
  EXPECT_EQ(poller_->Add(-1, kPollIn, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(PollerTest, UnknownFdFails) {
  SocketPair pair = MakeSocketPair();
  EXPECT_EQ(poller_->Modify(pair.near.get(), kPollIn).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(poller_->Remove(pair.near.get()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(poller_->Modify(-1, kPollIn).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(poller_->Remove(100000).code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(poller_->Add(pair.near.get(), kPollIn, nullptr).ok());
  ASSERT_TRUE(poller_->Remove(pair.near.get()).ok());
  EXPECT_EQ(poller_->Remove(pair.near.get()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(poller_->size(), 0);
}

TEST_P(PollerTest, ContextsRoundTrip) {
  constexpr int kPairs = 8;
  std::vector<SocketPair> pairs;
  std::array<int, kPairs> contexts{};
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(MakeSocketPair());
    ASSERT_TRUE(poller_->Add(pairs[i].near.get(), kPollOut, &contexts[i]).ok());
  }
  std::map<int, PollEvent> ready = WaitOnce(kWaitMs);
  ASSERT_EQ(ready.size(), static_cast<size_t>(kPairs));
  for (int i = 0; i < kPairs; ++i) {
    EXPECT_EQ(ready[pairs[i].near.get()].context, &contexts[i]);
  }
}

TEST_P(PollerTest, ClosedWithoutRemoveDiffersByBackend) {
  SocketPair pair = MakeSocketPair();
  const int fd = pair.near.get();
  ASSERT_TRUE(poller_->Add(fd, kPollIn, nullptr).ok());
  pair.near.Reset();
  std::map<int, PollEvent> ready = WaitOnce(0);
  if (GetParam() == PollerBackend::kPoll || GetParam() == PollerBackend::kIoUring) {
    // poll: POLLNVAL. io_uring: the poll, submitted with this Wait, finds no such fd (EBADF).
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[fd].events, kPollError);
    EXPECT_TRUE(poller_->Remove(fd).ok());
  } else {
    EXPECT_TRUE(ready.empty());  // the kernel dropped it from the epoll set on close
    EXPECT_FALSE(poller_->Remove(fd).ok());
  }
  EXPECT_EQ(poller_->size(), 0);
}

class ManyFdsTest : public PollerTest {
 protected:
  static constexpr int kPairs = 1000;
  static constexpr int kStride = 7;

  void SetUp() override {
    PollerTest::SetUp();
    // 2,000 fds is above the usual soft limit of 1,024.
    rlimit limit{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_cur < 2 * kPairs + 64) {
      ASSERT_GE(limit.rlim_max, 2u * kPairs + 64) << "hard fd limit too low for this test";
      limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 4 * kPairs);
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
    }
    for (int i = 0; i < kPairs; ++i) {
      pairs_.push_back(MakeSocketPair());
      ASSERT_TRUE(poller_->Add(pairs_[i].near.get(), kPollIn, &contexts_[i]).ok());
    }
    for (int i = 0; i < kPairs; i += kStride) WriteByte(pairs_[i].far);
  }

  // fd -> index of its pair, for every pair that was written to.
  std::map<int, int> Expected() const {
    std::map<int, int> expected;
    for (int i = 0; i < kPairs; i += kStride) expected[pairs_[i].near.get()] = i;
    return expected;
  }

  std::vector<SocketPair> pairs_;
  std::array<int, kPairs> contexts_{};
};

TEST_P(ManyFdsTest, ReportsExactlyTheReadyFds) {
  EXPECT_EQ(poller_->size(), kPairs);
  std::map<int, PollEvent> ready = WaitOnce(kWaitMs, kPairs);
  const std::map<int, int> expected = Expected();
  ASSERT_EQ(ready.size(), expected.size());  // 143
  for (const auto& [fd, index] : expected) {
    ASSERT_EQ(ready.count(fd), 1u) << "pair " << index;
    EXPECT_EQ(ready[fd].context, &contexts_[index]);
    EXPECT_EQ(ready[fd].events, kPollIn);
  }
}

TEST_P(ManyFdsTest, SmallOutputSpanLeavesTheRestForTheNextWait) {
  constexpr size_t kCapacity = 100;
  const std::map<int, int> expected = Expected();
  ASSERT_GT(expected.size(), kCapacity);

  std::map<int, PollEvent> first = WaitOnce(kWaitMs, kCapacity);
  EXPECT_EQ(first.size(), kCapacity);
  std::map<int, PollEvent> second = WaitOnce(kWaitMs, kCapacity);
  EXPECT_EQ(second.size(), kCapacity);

  std::set<int> seen;
  for (const auto* batch : {&first, &second}) {
    for (const auto& [fd, event] : *batch) {
      ASSERT_EQ(expected.count(fd), 1u) << "fd " << fd << " was not written to";
      EXPECT_EQ(event.context, &contexts_[expected.at(fd)]);
      seen.insert(fd);
    }
  }
  EXPECT_EQ(seen.size(), expected.size());
}

TEST_P(ManyFdsTest, RemovingFromTheMiddleKeepsTheOthersCorrect) {
  // Remove every third pair, including ones that were written to; the removals move entries
  // from the end of the poll back end's dense array into the freed slots.
  int removed = 0;
  for (int i = 0; i < kPairs; i += 3) {
    ASSERT_TRUE(poller_->Remove(pairs_[i].near.get()).ok());
    ++removed;
  }
  EXPECT_EQ(poller_->size(), kPairs - removed);

  std::map<int, int> expected;
  for (const auto& [fd, index] : Expected()) {
    if (index % 3 != 0) expected[fd] = index;
  }
  std::map<int, PollEvent> ready = WaitOnce(kWaitMs, kPairs);
  ASSERT_EQ(ready.size(), expected.size());
  for (const auto& [fd, index] : expected) {
    ASSERT_EQ(ready.count(fd), 1u) << "pair " << index;
    EXPECT_EQ(ready[fd].context, &contexts_[index]);
  }

  // Every remaining fd is still individually modifiable and removable.
  for (int i = 0; i < kPairs; ++i) {
    if (i % 3 == 0) continue;
    ASSERT_TRUE(poller_->Modify(pairs_[i].near.get(), kPollOut).ok()) << "pair " << i;
  }
  EXPECT_EQ(WaitOnce(kWaitMs, kPairs).size(), static_cast<size_t>(kPairs - removed));
  for (int i = 0; i < kPairs; ++i) {
    if (i % 3 == 0) continue;
    ASSERT_TRUE(poller_->Remove(pairs_[i].near.get()).ok()) << "pair " << i;
  }
  EXPECT_EQ(poller_->size(), 0);
}

std::string BackendName(const ::testing::TestParamInfo<PollerBackend>& info) {
  return std::string(PollerBackendName(info.param));
}

INSTANTIATE_TEST_SUITE_P(Backends, PollerTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, ManyFdsTest,
                         ::testing::Values(PollerBackend::kPoll, PollerBackend::kEpoll, PollerBackend::kIoUring),
                         BackendName);

TEST(PollerBackendTest, NamesRoundTrip) {
  PollerBackend backend = PollerBackend::kPoll;
  EXPECT_EQ(PollerBackendName(PollerBackend::kPoll), "poll");
  EXPECT_EQ(PollerBackendName(PollerBackend::kEpoll), "epoll");
  ASSERT_TRUE(ParsePollerBackend("epoll", &backend));
  EXPECT_EQ(backend, PollerBackend::kEpoll);
  ASSERT_TRUE(ParsePollerBackend("poll", &backend));
  EXPECT_EQ(backend, PollerBackend::kPoll);
  EXPECT_FALSE(ParsePollerBackend("kqueue", &backend));
  EXPECT_FALSE(ParsePollerBackend("", &backend));
  EXPECT_EQ(backend, PollerBackend::kPoll);
}

}  // namespace
}  // namespace percore
