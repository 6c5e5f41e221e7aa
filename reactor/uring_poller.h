#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "reactor/io_watcher.h"
#include "reactor/poller.h"

namespace percore {

// Sizes of a loop's io_uring; see UringPoller.
struct UringOptions {
  unsigned entries = 1024;         // submission queue entries (the completion queue is 16 times that)
  unsigned buffers = 256;          // receive buffers in the loop's provided-buffer ring (power of two)
  unsigned buffer_size = 16384;    // bytes per receive buffer
  // How other threads wake a loop waiting in its ring: false, by writing the loop's eventfd
  // (which completes a poll in the ring); true, by an IORING_OP_MSG_RING from a small ring of
  // the waking thread's own, which posts a completion straight into the loop's ring.
  bool wake_by_msg_ring = false;
};

// Whether `options` are sizes a ring can have (entries in [8, 32768], buffers a power of two in
// [1, 32768], buffer_size in [512, 1 MiB]); the error names the field and its value.
absl::Status CheckUringOptions(const UringOptions& options);

// Why io_uring cannot run here, or OK: set up a ring with the features UringPoller uses and tear
// it down again. The message names the cause (kernel.io_uring_disabled, a seccomp filter, a
// kernel too old for provided-buffer rings, the locked-memory limit).
absl::Status ProbeIoUring(const UringOptions& options);

// Counters of one ring, read by the loop into its LoopStats.
struct UringCounters {
  uint64_t enters = 0;            // io_uring_enter calls (submit and/or wait)
  uint64_t submissions = 0;       // SQEs handed to the kernel
  uint64_t completions = 0;       // CQEs reaped
  uint64_t buffer_exhaustions = 0;  // receives ended because the buffer ring was empty (ENOBUFS)
  uint64_t cq_overflows = 0;      // times the kernel reported completions held back for lack of room
};

// The completion back end (io_uring, liburing 2.3). Two kinds of work go through it:
//
// * Completion operations for connections: a multishot receive into the loop's provided-buffer
//   ring (no buffer is tied to a connection while it is idle), and sends of bytes the caller
//   keeps in place until their completion. The caller's IoWatcher is the operation's owner and
//   must stay alive until the operation's last completion (for a multishot receive, the one
//   without IORING_CQE_F_MORE): cancel it, then wait for that completion.
// * Readiness, for everything else a loop watches (its wake-up eventfd, service-private fds):
//   the Poller interface, level-triggered like the other back ends, as a one-shot POLL_ADD that
//   is re-armed after each report. Listening sockets may use a multishot accept instead
//   (AddAcceptor). Both are named by fd plus a generation in the completion's user_data, so a
//   completion that arrives after Remove() is recognised and dropped: their owners need not
//   outlive them.
//
// Nothing is submitted until Wait(), which hands the iteration's submissions to the kernel in
// the same io_uring_enter that waits (io_uring_submit_and_wait_timeout). The ring is set up
// SINGLE_ISSUER | DEFER_TASKRUN where the kernel accepts it (COOP_TASKRUN, then plain,
// otherwise), disabled until BindToCurrentThread() enables it on the loop's thread.
// Not thread-safe: one UringPoller belongs to one loop thread.
class UringPoller final : public Poller {
 public:
  // Operation kinds, carried in the low bits of user_data and reported as PollEvent::op.
  enum Op : uint8_t { kOpNone = 0, kOpReceive = 1, kOpSend = 2, kOpPoll = 3, kOpAccept = 4, kOpWake = 5,
                  kOpHangup = 6 };

  static absl::StatusOr<std::unique_ptr<UringPoller>> Create(const UringOptions& options);
  ~UringPoller() override;
  UringPoller(const UringPoller&) = delete;
  UringPoller& operator=(const UringPoller&) = delete;

  // Poller.
  absl::Status Add(int fd, uint32_t interest, void* context) override;
  absl::Status Modify(int fd, uint32_t interest) override;
  absl::Status Remove(int fd) override;
  // Submits what was queued and waits for completions; fills `out` with readiness reports
  // (kPollIn...) and with completions (kPollCompletion, with result, flags and op). A receive
  // completion that carries a buffer holds it until the caller returns it (RecycleBuffer).
  absl::StatusOr<int> Wait(int timeout_ms, std::span<PollEvent> out) override;
  int size() const override { return watched_; }
  PollerBackend backend() const override { return PollerBackend::kIoUring; }
  void BindToCurrentThread() override;
  // Fills `out` with completions already in the completion queue, without entering the kernel
  // (so without the kernel taking more bytes from any socket meanwhile, under DEFER_TASKRUN).
  int Reap(std::span<PollEvent> out);
  // Completions the kernel has posted that Reap has not taken yet (or holds back in overflow).
  bool completions_pending() const;
  UringPoller* uring() override { return this; }

  // Completion operations; `owner` receives them as kPollCompletion events.
  void Receive(int fd, IoWatcher* owner);
  void Send(int fd, const void* data, size_t size, IoWatcher* owner);
  // `msg` (and the iovecs it points to) must stay valid until the completion.
  void SendMsg(int fd, const msghdr* msg, IoWatcher* owner);
  // A one-shot poll for an error or hang-up on `fd`, for a connection that is not receiving:
  // its completion carries the poll mask (or -ECANCELED).
  void WatchHangup(int fd, IoWatcher* owner);
  // Asks the kernel to end `owner`'s operation of kind `op`; its completion still arrives
  // (-ECANCELED, or its result if it finished first).
  void Cancel(IoWatcher* owner, Op op);
  // Closes `fd` in submission order, after every operation queued for it so far.
  void Close(int fd);
  // Thread-safe: posts a kOpWake completion, reported to `watcher`, into this ring from the
  // calling thread's own small ring (IORING_OP_MSG_RING). False if that could not be done (the
  // caller then wakes the loop another way).
  bool PostWake();
  void set_wake_watcher(IoWatcher* watcher) { wake_watcher_ = watcher; }
  // Starts a multishot accept on a listening socket; its completions carry the new fd in
  // `result` (SOCK_NONBLOCK | SOCK_CLOEXEC). The accept ends (a completion without
  // IORING_CQE_F_MORE) on an error such as EMFILE; the owner re-arms it with RearmAcceptor.
  // Remove(fd) stops it.
  absl::Status AddAcceptor(int fd, void* context);
  absl::Status RearmAcceptor(int fd);

  // The bytes of receive completion `event` (whose flags say it carries a buffer).
  std::string_view ReceivedBytes(const PollEvent& event) const;
  // Gives a received buffer back to the ring. Every buffer a completion carried must be.
  void RecycleBuffer(const PollEvent& event);
  static bool CarriesBuffer(const PollEvent& event) {
    return event.op == kOpReceive && (event.flags & IORING_CQE_F_BUFFER) != 0;
  }
  static bool More(const PollEvent& event) { return (event.flags & IORING_CQE_F_MORE) != 0; }

  // Cancels every operation still in flight and reaps completions until none is left (at most
  // `max_wait_ms`), returning their buffers without reporting them. Loop thread only; after it
  // the owners of completion operations may be freed.
  void CancelAllAndReap(int max_wait_ms);

  const UringCounters& counters() const { return counters_; }
  // "defer_taskrun", "coop_taskrun" or "plain": how the ring was set up.
  std::string_view mode() const { return mode_; }
  unsigned buffer_count() const { return options_.buffers; }
  // True when the kernel works on this ring's operations only while its thread waits in
  // io_uring_enter (DEFER_TASKRUN): between waits, nothing takes bytes from a socket.
  bool completions_only_when_waiting() const { return disabled_at_setup_; }
  // Completion operations in flight (receives armed, sends not completed).
  uint64_t operations_in_flight() const { return in_flight_; }

 private:
  struct Watch {
    void* context = nullptr;
    uint32_t interest = 0;
    uint32_t generation = 0;
    bool added = false;
    bool armed = false;      // a poll (or accept) is in the kernel
    bool acceptor = false;
  };

  explicit UringPoller(const UringOptions& options) : options_(options) {}
  absl::Status Init();
  absl::Status AddWatch(int fd, uint32_t interest, void* context, bool acceptor);
  io_uring_sqe* NextSqe();
  void ArmWatch(int fd);
  void DisarmWatch(int fd);
  void FlushBufferReturns();
  bool IsAdded(int fd) const;
  static uint64_t WatchData(int fd, uint32_t generation, Op op);

  const UringOptions options_;
  io_uring ring_{};
  bool ring_ready_ = false;
  std::string mode_;
  bool enabled_ = false;
  bool disabled_at_setup_ = false;  // R_DISABLED: must be enabled before the first submission
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  char* buffers_ = nullptr;
  unsigned buffers_to_return_ = 0;
  std::vector<Watch> watches_;   // indexed by fd
  std::vector<int> to_arm_;      // watches whose one-shot poll fired and must be re-armed
  int watched_ = 0;
  uint64_t in_flight_ = 0;
  UringCounters counters_;
  IoWatcher* wake_watcher_ = nullptr;
};

}  // namespace percore
