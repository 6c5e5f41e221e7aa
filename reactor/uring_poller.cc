#include "reactor/uring_poller.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "core/errno_status.h"
#include "reactor/poll_mask.h"

namespace percore {
namespace {

constexpr uint16_t kBufferGroup = 0;
constexpr uint64_t kTagMask = 7;

// The kernel's own word on io_uring, when it has one: kernel.io_uring_disabled (Linux 6.6+),
// 0 allowed, 1 only for the io_uring_group, 2 for nobody.
std::string DisabledSysctl() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  int value = 0;
  if (!(in >> value) || value == 0) return "";
  return absl::StrCat("kernel.io_uring_disabled is ", value);
}

std::string KernelRelease() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

absl::Status SetupError(int err) {
  const std::string sysctl = DisabledSysctl();
  switch (err) {
    case ENOSYS:
      return absl::UnavailableError(absl::StrCat(
          "io_uring_setup: ENOSYS: the kernel (", KernelRelease(),
          ") has no io_uring, or a seccomp filter (a container's) blocks it"));
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat(
          "io_uring_setup: EPERM: ",
          sysctl.empty() ? "refused by a seccomp filter or a security module" : sysctl));
    case ENOMEM:
      return absl::ResourceExhaustedError(
          "io_uring_setup: ENOMEM: the locked-memory limit (ulimit -l, RLIMIT_MEMLOCK) is too low for the "
          "ring on this kernel");
    case EINVAL:
      return absl::UnavailableError(absl::StrCat("io_uring_setup: EINVAL: the kernel (", KernelRelease(),
                                                 ") is too old for the ring's set-up"));
    default:
      return ErrnoStatus(err, "io_uring_setup");
  }
}

}  // namespace

absl::Status ProbeIoUring(const UringOptions& options) {
  absl::StatusOr<std::unique_ptr<UringPoller>> poller = UringPoller::Create(options);
  return poller.status();
}

uint64_t UringPoller::WatchData(int fd, uint32_t generation, Op op) {
  return (static_cast<uint64_t>(generation) << 32) | (static_cast<uint64_t>(fd) << 3) | op;
}

absl::Status CheckUringOptions(const UringOptions& options) {
  if (options.entries < 8 || options.entries > 32768) {
    return absl::InvalidArgumentError(absl::StrCat("io_uring entries = ", options.entries, ": must be in [8, 32768]"));
  }
  if (options.buffers == 0 || options.buffers > 32768 || (options.buffers & (options.buffers - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("io_uring buffers = ", options.buffers, ": must be a power of two in [1, 32768]"));
  }
  if (options.buffer_size < 512 || options.buffer_size > (1u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("io_uring buffer_size = ", options.buffer_size, ": must be in [512, 1048576]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UringPoller>> UringPoller::Create(const UringOptions& options) {
  if (absl::Status s = CheckUringOptions(options); !s.ok()) return s;
  std::unique_ptr<UringPoller> poller(new UringPoller(options));
  if (absl::Status s = poller->Init(); !s.ok()) return s;
  return poller;
}

absl::Status UringPoller::Init() {
  // Most capable first. SINGLE_ISSUER | DEFER_TASKRUN (6.1+): completions are produced only when
  // this thread waits, with no interrupting task work; R_DISABLED lets the ring be created here
  // and enabled by the loop's own thread, which becomes its single issuer.
  struct Setup {
    unsigned flags;
    const char* mode;
  };
  const Setup setups[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED, "defer_taskrun"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop_taskrun"},
      {0, "plain"},
  };
  int err = 0;
  for (const Setup& setup : setups) {
    io_uring_params params{};
    params.flags = setup.flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    // Room for every completion one iteration can produce in the common case; beyond that the
    // kernel holds completions back (IORING_FEAT_NODROP) and the overflow is counted.
    params.cq_entries = options_.entries * 16;
    const int rc = io_uring_queue_init_params(options_.entries, &ring_, &params);
    if (rc == 0) {
      if ((params.features & IORING_FEAT_NODROP) == 0 || (params.features & IORING_FEAT_EXT_ARG) == 0) {
        io_uring_queue_exit(&ring_);
        return absl::UnavailableError(absl::StrCat("io_uring: the kernel (", KernelRelease(),
                                                   ") lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG (5.11+)"));
      }
      ring_ready_ = true;
      mode_ = setup.mode;
      disabled_at_setup_ = (setup.flags & IORING_SETUP_R_DISABLED) != 0;
      break;
    }
    err = -rc;
    if (err != EINVAL) break;  // a flag the kernel does not know says EINVAL; anything else is final
  }
  if (!ring_ready_) return SetupError(err);

  // The provided-buffer ring (5.19+): liburing 2.3 has no io_uring_setup_buf_ring, so the ring
  // memory is allocated and registered by hand.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  buf_ring_bytes_ = (sizeof(io_uring_buf) * options_.buffers + page - 1) / page * page;
  void* ring_mem = ::mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ring_mem == MAP_FAILED) return ErrnoStatus(errno, "io_uring: mmap of the buffer ring");
  buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buf_ring_);
  reg.ring_entries = options_.buffers;
  reg.bgid = kBufferGroup;
  if (const int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc != 0) {
    return absl::UnavailableError(absl::StrCat("io_uring: registering the provided-buffer ring failed (",
                                               std::strerror(-rc), "): the kernel (", KernelRelease(),
                                               ") needs 5.19+ for buffer rings and 6.0+ for multishot receive"));
  }
  // The receive buffers themselves: touched only when the kernel fills one, so a quiet loop's
  // ring costs address space, not resident memory.
  const size_t bytes = static_cast<size_t>(options_.buffers) * options_.buffer_size;
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return ErrnoStatus(errno, "io_uring: mmap of the receive buffers");
  buffers_ = static_cast<char*>(mem);
  const int mask = io_uring_buf_ring_mask(options_.buffers);
  for (unsigned i = 0; i < options_.buffers; ++i) {
    io_uring_buf_ring_add(buf_ring_, buffers_ + static_cast<size_t>(i) * options_.buffer_size,
                          options_.buffer_size, static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(options_.buffers));
  return absl::OkStatus();
}

UringPoller::~UringPoller() {
  if (ring_ready_) {
    if (buf_ring_ != nullptr) (void)io_uring_unregister_buf_ring(&ring_, kBufferGroup);
    io_uring_queue_exit(&ring_);
  }
  if (buf_ring_ != nullptr) ::munmap(buf_ring_, buf_ring_bytes_);
  if (buffers_ != nullptr) ::munmap(buffers_, static_cast<size_t>(options_.buffers) * options_.buffer_size);
}

void UringPoller::BindToCurrentThread() {
  if (enabled_) return;
  enabled_ = true;
  if (disabled_at_setup_) {
    // liburing 2.3 declares io_uring_enable_rings but does not export it: the register call,
    // directly.
    if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) != 0) {
      std::fprintf(stderr, "percore: io_uring: enabling the ring failed: %s\n", std::strerror(errno));
    }
  }
  // A registered ring fd spares the kernel an fd lookup on every io_uring_enter; it is
  // per-thread, so it is registered by the thread that will enter.
  (void)io_uring_register_ring_fd(&ring_);
}

io_uring_sqe* UringPoller::NextSqe() {
  if (!enabled_) {
    // Only readiness watches are taken before the loop's thread binds the ring, and those are
    // armed by Wait; an operation here is a caller's bug.
    std::fprintf(stderr, "percore: io_uring: an operation was queued before the ring's thread bound it\n");
    std::abort();
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe != nullptr) return sqe;
  // The submission queue is full: hand it to the kernel now and take a fresh entry.
  FlushBufferReturns();
  const int submitted = io_uring_submit(&ring_);
  ++counters_.enters;
  if (submitted > 0) counters_.submissions += static_cast<uint64_t>(submitted);
  sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    std::fprintf(stderr, "percore: io_uring: no submission entry after a submit\n");
    std::abort();
  }
  return sqe;
}

bool UringPoller::IsAdded(int fd) const {
  return fd >= 0 && static_cast<size_t>(fd) < watches_.size() && watches_[fd].added;
}

// --- Readiness for fds other than connections ---

absl::Status UringPoller::Add(int fd, uint32_t interest, void* context) {
  return AddWatch(fd, interest, context, /*acceptor=*/false);
}

absl::Status UringPoller::AddAcceptor(int fd, void* context) {
  return AddWatch(fd, kPollIn, context, /*acceptor=*/true);
}

absl::Status UringPoller::AddWatch(int fd, uint32_t interest, void* context, bool acceptor) {
  if (fd < 0 || fd >= (1 << 28)) return absl::InvalidArgumentError(absl::StrCat("io_uring: bad fd ", fd));
  if (IsAdded(fd)) return absl::AlreadyExistsError(absl::StrCat("io_uring: fd ", fd, " already added"));
  if (static_cast<size_t>(fd) >= watches_.size()) watches_.resize(fd + 1);
  Watch& w = watches_[fd];
  w.context = context;
  w.interest = interest;
  w.added = true;
  w.armed = false;
  w.acceptor = acceptor;
  ++w.generation;
  ++watched_;
  to_arm_.push_back(fd);  // armed by the next Wait, on the ring's own thread
  return absl::OkStatus();
}

absl::Status UringPoller::RearmAcceptor(int fd) {
  if (!IsAdded(fd) || !watches_[fd].acceptor) {
    return absl::NotFoundError(absl::StrCat("io_uring: fd ", fd, " is not an acceptor"));
  }
  if (!watches_[fd].armed) to_arm_.push_back(fd);
  return absl::OkStatus();
}

absl::Status UringPoller::Modify(int fd, uint32_t interest) {
  if (!IsAdded(fd)) return absl::NotFoundError(absl::StrCat("io_uring: fd ", fd, " not added"));
  Watch& w = watches_[fd];
  if (w.interest == interest) return absl::OkStatus();
  DisarmWatch(fd);
  w.interest = interest;
  to_arm_.push_back(fd);
  return absl::OkStatus();
}

absl::Status UringPoller::Remove(int fd) {
  if (!IsAdded(fd)) return absl::NotFoundError(absl::StrCat("io_uring: fd ", fd, " not added"));
  DisarmWatch(fd);
  watches_[fd].added = false;
  watches_[fd].context = nullptr;
  --watched_;
  return absl::OkStatus();
}

void UringPoller::ArmWatch(int fd) {
  Watch& w = watches_[fd];
  // Interest 0 still arms a poll: hang-ups and errors are reported whatever the interest.
  if (w.armed) return;
  io_uring_sqe* sqe = NextSqe();
  if (w.acceptor) {
    io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, WatchData(fd, w.generation, kOpAccept));
  } else {
    io_uring_prep_poll_add(sqe, fd, ToPollMask(w.interest));
    io_uring_sqe_set_data64(sqe, WatchData(fd, w.generation, kOpPoll));
  }
  w.armed = true;
}

void UringPoller::DisarmWatch(int fd) {
  Watch& w = watches_[fd];
  const uint64_t data = WatchData(fd, w.generation, w.acceptor ? kOpAccept : kOpPoll);
  ++w.generation;  // whatever the old operation still reports is dropped
  if (!w.armed) return;
  w.armed = false;
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_cancel64(sqe, data, 0);
  io_uring_sqe_set_data64(sqe, kOpNone);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

// --- Completion operations ---

void UringPoller::Receive(int fd, IoWatcher* owner) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(owner) | kOpReceive);
  ++in_flight_;
}

void UringPoller::Send(int fd, const void* data, size_t size, IoWatcher* owner) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_send(sqe, fd, data, size, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(owner) | kOpSend);
  ++in_flight_;
}

void UringPoller::SendMsg(int fd, const msghdr* msg, IoWatcher* owner) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(owner) | kOpSend);
  ++in_flight_;
}

void UringPoller::WatchHangup(int fd, IoWatcher* owner) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_poll_add(sqe, fd, POLLERR | POLLHUP);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(owner) | kOpHangup);
  ++in_flight_;
}

void UringPoller::Cancel(IoWatcher* owner, Op op) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(owner) | op, 0);
  io_uring_sqe_set_data64(sqe, kOpNone);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void UringPoller::Close(int fd) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, kOpNone);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

bool UringPoller::PostWake() {
  // One small ring per waking thread (the distributor, other loops, admin threads), made on
  // its first wake-up and kept for the thread's life.
  struct SenderRing {
    SenderRing() { ok = io_uring_queue_init(8, &ring, 0) == 0; }
    ~SenderRing() {
      if (ok) io_uring_queue_exit(&ring);
    }
    io_uring ring{};
    bool ok = false;
  };
  thread_local SenderRing sender;
  if (!sender.ok) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&sender.ring);
  if (sqe == nullptr) return false;
  io_uring_prep_msg_ring(sqe, ring_.ring_fd, 0, kOpWake, 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  if (io_uring_submit(&sender.ring) != 1) return false;
  // A failed post leaves a completion in the sender's ring: reap it, and say so.
  io_uring_cqe* cqe = nullptr;
  if (io_uring_peek_cqe(&sender.ring, &cqe) == 0 && cqe != nullptr) {
    const bool failed = cqe->res < 0;
    io_uring_cqe_seen(&sender.ring, cqe);
    if (failed) return false;
  }
  return true;
}

std::string_view UringPoller::ReceivedBytes(const PollEvent& event) const {
  const unsigned id = event.flags >> IORING_CQE_BUFFER_SHIFT;
  const size_t n = event.result > 0 ? static_cast<size_t>(event.result) : 0;
  return std::string_view(buffers_ + static_cast<size_t>(id) * options_.buffer_size, n);
}

void UringPoller::RecycleBuffer(const PollEvent& event) {
  const unsigned id = event.flags >> IORING_CQE_BUFFER_SHIFT;
  io_uring_buf_ring_add(buf_ring_, buffers_ + static_cast<size_t>(id) * options_.buffer_size, options_.buffer_size,
                        static_cast<unsigned short>(id), io_uring_buf_ring_mask(options_.buffers),
                        static_cast<int>(buffers_to_return_));
  ++buffers_to_return_;
}

void UringPoller::FlushBufferReturns() {
  if (buffers_to_return_ == 0) return;
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buffers_to_return_));
  buffers_to_return_ = 0;
}

// --- Waiting ---

absl::StatusOr<int> UringPoller::Wait(int timeout_ms, std::span<PollEvent> out) {
  if (out.empty()) return absl::InvalidArgumentError("io_uring: empty event span");
  if (!enabled_) BindToCurrentThread();
  for (int fd : to_arm_) {
    if (IsAdded(fd)) ArmWatch(fd);
  }
  to_arm_.clear();
  FlushBufferReturns();

  const unsigned to_submit = io_uring_sq_ready(&ring_);
  // Enter the kernel unless completions are already waiting and nothing is to be submitted.
  // With DEFER_TASKRUN an enter is what makes the kernel finish pending work, so a zero timeout
  // still enters (to collect) when nothing is visible yet.
  if (to_submit > 0 || io_uring_cq_ready(&ring_) == 0) {
    int rc;
    if (timeout_ms == 0 || io_uring_cq_ready(&ring_) > 0) {
      rc = io_uring_submit_and_get_events(&ring_);
    } else {
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{};
      ts.tv_sec = timeout_ms / 1000;
      ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
      rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout_ms < 0 ? nullptr : &ts, nullptr);
    }
    ++counters_.enters;
    counters_.submissions += to_submit - io_uring_sq_ready(&ring_);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      return ErrnoStatus(-rc, "io_uring_enter");
    }
  }
  if (io_uring_cq_has_overflow(&ring_)) ++counters_.cq_overflows;
  return Reap(out);
}

bool UringPoller::completions_pending() const {
  return io_uring_cq_ready(&ring_) > 0 || io_uring_cq_has_overflow(&ring_);
}

int UringPoller::Reap(std::span<PollEvent> out) {
  int n = 0;
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == static_cast<int>(out.size())) break;
    ++seen;
    const uint64_t data = cqe->user_data;
    const Op op = static_cast<Op>(data & kTagMask);
    switch (op) {
      case kOpNone:
        break;
      case kOpReceive:
      case kOpSend:
      case kOpHangup: {
        const bool final = op != kOpReceive || (cqe->flags & IORING_CQE_F_MORE) == 0;
        if (final) --in_flight_;
        if (op == kOpReceive && cqe->res == -ENOBUFS) ++counters_.buffer_exhaustions;
        out[n++] = PollEvent{.context = reinterpret_cast<void*>(data & ~kTagMask),
                             .fd = -1,
                             .events = kPollCompletion,
                             .result = cqe->res,
                             .flags = cqe->flags,
                             .op = op};
        break;
      }
      case kOpWake:
        if (wake_watcher_ != nullptr) {
          out[n++] = PollEvent{.context = wake_watcher_, .fd = -1, .events = kPollCompletion, .op = kOpWake};
        }
        break;
      case kOpPoll:
      case kOpAccept: {
        const int fd = static_cast<int>((data >> 3) & ((1u << 29) - 1));
        const uint32_t generation = static_cast<uint32_t>(data >> 32);
        if (!IsAdded(fd) || watches_[fd].generation != generation) break;  // removed meanwhile
        Watch& w = watches_[fd];
        if (op == kOpPoll) {
          w.armed = false;
          // The kernel reports POLLRDHUP whether or not it was asked for (even with a mask of
          // 0); keep what epoll would report. A poll woken only by such bits is not re-armed
          // until the interest changes: level-triggered, it would fire again at once.
          const uint32_t asked = ToPollMask(w.interest) | POLLERR | POLLHUP | POLLNVAL;
          const uint32_t revents = static_cast<uint32_t>(cqe->res) & asked;
          const uint32_t events = cqe->res < 0 ? uint32_t{kPollError} : FromPollMask(revents);
          if (events == 0) break;
          to_arm_.push_back(fd);
          out[n++] = PollEvent{.context = w.context, .fd = fd, .events = events};
        } else {
          if ((cqe->flags & IORING_CQE_F_MORE) == 0) w.armed = false;
          out[n++] = PollEvent{.context = w.context,
                               .fd = fd,
                               .events = kPollCompletion,
                               .result = cqe->res,
                               .flags = cqe->flags,
                               .op = op};
        }
        break;
      }
      default:
        break;
    }
  }
  io_uring_cq_advance(&ring_, seen);
  counters_.completions += seen;
  return n;
}

void UringPoller::CancelAllAndReap(int max_wait_ms) {
  if (!enabled_) BindToCurrentThread();
  if (in_flight_ > 0) {
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, kOpNone);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  const int64_t deadline = MonotonicNanos() + int64_t{max_wait_ms} * 1'000'000;
  PollEvent events[64];
  while (in_flight_ > 0 && MonotonicNanos() < deadline) {
    absl::StatusOr<int> n = Wait(10, std::span<PollEvent>(events));
    if (!n.ok()) break;
    for (int i = 0; i < *n; ++i) {
      if (CarriesBuffer(events[i])) RecycleBuffer(events[i]);
    }
  }
  FlushBufferReturns();
}

}  // namespace percore
