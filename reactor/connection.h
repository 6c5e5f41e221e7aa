#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/buffer.h"
#include "core/output_queue.h"
#include "core/socket.h"
#include "core/tls.h"
#include "reactor/close_reason.h"
#include "reactor/handler.h"
#include "reactor/io_watcher.h"
#include "reactor/migration.h"
#include "reactor/timer_wheel.h"
#include "reactor/uring_poller.h"

namespace percore {

class EventLoop;
class ShardedBase;
struct ServiceLoopStats;
struct TlsLoopStats;
template <typename T>
class Sharded;

// When a request began, as Connection::BeginRequest took it: what EndRequest measures from.
class RequestStart {
 public:
  RequestStart() = default;

 private:
  friend class Connection;
  explicit RequestStart(int64_t ns) : ns_(ns) {}
  int64_t ns_ = 0;
};

// A connection's own figures since it opened.
struct ConnectionStats {
  MonoTime opened;
  MonoTime last_activity;  // the last byte read or written
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t requests = 0;
  size_t queued_output = 0;  // see Connection::queued_output
};

// Tunables every connection of a server shares.
struct ConnectionOptions {
  size_t high_water = 1 << 20;        // queued output above this: stop reading (backpressure)
  size_t low_water = 256 << 10;       // ... until it drains below this
  // Copied output above this: close, kOutputOverflow. It bounds the memory one connection holds
  // of its own; shared pieces (stored values sent in place, OutputQueue) do not count, since a
  // handler that streams a reply adds one more only while the output is below high_water.
  // Must exceed high_water by the largest piece a handler copies in at once.
  size_t output_cap = 64 << 20;
  size_t read_budget = 256 << 10;     // bytes read per wake-up before yielding to other fds
  size_t write_budget = 1 << 20;      // bytes written per loop iteration before yielding
  absl::Duration idle_timeout = absl::Minutes(5);   // no traffic at all; zero = never
  absl::Duration write_timeout = absl::Minutes(1);  // queued output makes no progress; zero = never
  absl::Duration close_linger = absl::Seconds(2);   // after our FIN, how long we drain the peer; zero = not at all
  // A TLS connection whose handshake has not completed this long after it was accepted is
  // closed (kTlsHandshakeTimeout); zero = never.
  absl::Duration tls_handshake_timeout = absl::Seconds(5);
};

// Whether `options` can work together: the water marks in order, budgets that let a
// connection make progress.
absl::Status CheckConnectionOptions(const ConnectionOptions& options);

// The framework-owned state of a connection (reactor/README.md, "The connection state machine").
enum class ConnectionState : uint8_t { kOpen, kReading, kWriting, kPaused, kClosing, kClosed };
std::string_view ConnectionStateName(ConnectionState state);

// Names a connection from any thread: the loop that owns it and its id there.
// Resolve it on that loop with EventLoop::FindConnection; it may be gone by then.
struct ConnectionHandle {
  EventLoop* loop = nullptr;
  uint64_t id = 0;
};

// A TCP connection owned by one loop. Every method must be called on that loop's thread.
// Created and destroyed by its EventLoop; a handler refers to it only during callbacks or
// through a ConnectionHandle.
// A connection's buffers and output queues, held only while it has something in them: an idle
// connection (nothing partial read, nothing owed to the peer, no send in flight) gives them back
// to its loop, which hands them to the next connection that reads or writes. What an idle
// connection costs is then its Connection alone. Single-threaded, like the loop that keeps them.
struct ConnectionIo {
  explicit ConnectionIo(BufferPool* pool) : input(pool), stash(pool), output(pool), sending(pool) {}
  // True when nothing is in any of them (they may still hold standard blocks from the pool).
  bool empty() const { return input.empty() && stash.empty() && output.empty() && sending.empty(); }

  Buffer input;
  // io_uring: bytes received while the handler may not take them (paused, backed up), in
  // order after input; see Connection::OnReceived and Deliver.
  Buffer stash;
  OutputQueue output;
  // io_uring: the bytes of the send in flight, kept in place until its completion (new output
  // goes to output meanwhile, so nothing the kernel reads can move), then what it left.
  OutputQueue sending;
  struct SendVector {
    msghdr msg;
    iovec iov[OutputQueue::kMaxPieces];
  };
  std::unique_ptr<SendVector> send_vector;  // for a send with shared pieces; made on first use
  size_t send_asked = 0;  // bytes of the send in flight
};

class Connection final : private IoWatcher, private TimerEntry {
 public:
  Connection(EventLoop& loop, uint64_t id, int fd, const SocketAddress& peer, int service_index,
             ServiceLoopStats* service_stats, const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // --- For handlers: everything a handler may touch ---
  // Queues bytes for the peer. Written after the current callback returns.
  void Send(std::string_view bytes);
  OutputQueue& output() { return io().output; }
  // Whether output is backed up: more than ConnectionOptions::high_water bytes not yet handed
  // to the kernel. The one backpressure rule (handler.h says how a handler uses it).
  bool above_high_water() const { return Unsent() > options_.high_water; }
  // Asks for one OnWritable call once the queued output is at or below the low-water mark: how
  // a handler that produces a large reply in pieces learns that the socket took the last ones.
  // Called from a callback of this connection (one run by PostToConnection included); the call
  // comes after that callback returns.
  void RequestWritable() { writable_requested_ = true; }
  // Leaves Paused: reading resumes and unconsumed input is offered to OnData again.
  void Resume();
  // Arms the handler's deadline (OnDeadline fires after `delay`); re-arming moves it.
  void SetDeadline(absl::Duration delay);
  void ClearDeadline();
  // Starts closing, counted under `reason`, from a callback or outside one (a timer of the
  // handler's, an answer from another loop). kFlush: reads nothing more, writes what is
  // queued, then closes; kNow: discards the output and closes at once. Takes effect at once
  // on a paused connection too (an answer still away is dropped when it arrives); from inside
  // a callback it is acted on when the callback returns.
  void Close(CloseReason reason, CloseMode mode);
  // Counts one request of this connection's service as answered, timed from the start of the
  // current callback (when the bytes it read were handed to OnData); in the continuation of a
  // Sharded call, from the start of the callback that made the call.
  void RecordRequest(bool error = false) {
    ++batch_requests_;
    batch_errors_ += error ? 1 : 0;
    if (!in_callback_) CountAnswered();  // nothing would count it later
  }
  // For a reply that comes later (after a cross-loop call or a timer): take the start when the
  // request is read, and end it when its reply is queued.
  RequestStart BeginRequest() const { return RequestStart(callback_start_ns_); }
  void EndRequest(RequestStart start, bool error = false) {
    if (in_callback_ && start.ns_ == callback_start_ns_) {
      RecordRequest(error);  // it began in this very callback: timed with the others
    } else {
      CountLate(start, error);
    }
  }
  // TCP_NODELAY on this connection's socket.
  absl::Status SetNoDelay(bool on);

  EventLoop& loop() const { return loop_; }
  uint64_t id() const { return id_; }
  ConnectionHandle handle() const;
  SocketAddress peer() const;  // rebuilt from the compact copy the connection keeps
  ConnectionState state() const { return state_; }
  int service_index() const { return service_index_; }
  ConnectionStats stats() const;
  // Whether it holds buffers now (an idle connection does not: see ConnectionIo).
  bool holds_io() const { return io_ != nullptr; }
  // Its TLS session (version, ALPN, resumption); null on a plaintext endpoint.
  const TlsSession* tls() const { return tls_.get(); }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  uint64_t requests() const { return requests_ + batch_requests_; }
  // Its recent traffic: requests, and bytes both ways, per second over the loop's last rate
  // period (EventLoopOptions::rate_period), as the loop's sweep measured them (SampleRate).
  // What the rebalancer ranks connections by, and what ListConnections reports.
  uint64_t recent_requests_per_sec() const { return recent_requests_per_sec_; }
  uint64_t recent_bytes_per_sec() const { return recent_bytes_per_sec_; }
  // Whether it could move at a later boundary: open, not moving already, and its handler does
  // not refuse (Handler::CanMigrate is not kNever). Loop thread only.
  bool MayMigrate();
  // When it last arrived from another loop (CLOCK_MONOTONIC nanoseconds), or -1.
  int64_t arrived_ns() const { return arrived_ns_; }
  // The output not yet handed to the kernel: what the water marks and the output cap measure.
  // On io_uring a send in flight counts as written, as bytes in the socket buffer do on epoll.
  size_t queued_output() const { return Unsent(); }

 private:
  friend class EventLoop;
  friend class ConnectionTestPeer;  // tests: the socket, to shrink its buffers
  template <typename T>
  friend class Sharded;  // BeginAwait / EndAwait

  // --- For the EventLoop ---
  // The loop's rate sweep: the recent rates from the traffic since the previous sweep.
  void SampleRate(int64_t now_ns);
  // Installs the handler and starts reading (state Open -> Reading).
  void Start(std::unique_ptr<Handler> handler);
  // Reading from here on: the socket watched (readiness) or a receive armed (io_uring). False
  // when it could not be watched (the connection is then closed).
  bool BeginReading();
  // Before Start: the connection speaks TLS with `context`. Its handler sees plaintext: bytes
  // read are decrypted into the input, and what the handler queues is encrypted as it is sent.
  void UseTls(std::shared_ptr<const TlsContext> context, TlsLoopStats* stats);
  // Runs `fn` (a cross-loop answer, a handler's own task) as a handler callback: an exception
  // closes the connection (kHandlerError); a Resume() inside it continues reading afterwards,
  // and what it queued is written.
  template <typename Fn>
  void RunTask(Fn&& fn);
  // How a drain closes a connection: the requests the peer has sent so far (what is already
  // in the socket, up to one read budget) are read and answered, then the connection closes
  // gracefully under `reason`. A connection that is not reading (paused on other work, or
  // backed up behind its output) answers what it is waiting for first, then closes.
  void ServeArrivedThenClose(CloseReason reason);
  // Its first half: reads (one read budget) and answers what the peer has sent so far.
  void ServeArrived();
  // A graceful close; with `after_in_flight`, a paused connection closes only once it resumes
  // (the drain: the request it waits for is answered first).
  void CloseGracefully(CloseReason reason, bool after_in_flight);
  // io_uring: the connection's operations still in flight. A closed connection is freed only
  // once there are none (the kernel may still write into it or read its output).
  bool io_in_flight() const { return recv_ != ReceiveState::kIdle || send_in_flight_ || hangup_watch_; }
  // io_uring: writes what waited for the next iteration's write budget.
  void ContinueFlush();
  // io_uring: arms again the receive that ended because the loop's buffer ring was empty.
  void RearmStarvedReceive();
  // The connection's socket, its only descriptor (nothing duplicates it: on epoll, closing it
  // is what takes it out of the loop's set).
  int fd() const { return fd_; }
  Handler* handler() const { return handler_.get(); }
  int64_t opened_ns() const { return opened_ns_; }
  int64_t last_activity_ns() const { return last_activity_ns_; }
  int64_t loop_now_ns() const { return *loop_now_ns_; }  // the loop's iteration time
  // Sharded<T>::Await: a call is away; the last answer back resumes the connection.
  void BeginAwait() { ++awaiting_; }
  void EndAwait() {
    if (--awaiting_ == 0) Resume();
  }
  // A Sharded continuation: RecordRequest measures from the callback that made the call.
  void ContinueRequest(RequestStart start) { callback_start_ns_ = start.ns_; }

  // --- Live migration (reactor/migration.h), for the EventLoop ---
  // Whether the connection can move now: kMoved if so, else what stops it. kNotAtBoundary
  // (and a handler's kLater, reported the same) may pass; the others do not.
  MigrationStatus MigrationBlocker();
  // Takes it off this loop's poller: at once on the readiness back ends; on io_uring its
  // receive is cancelled, and the move waits until nothing of it is in flight (what arrives
  // meanwhile is carried along). Nothing is delivered to the handler from here on.
  void BeginMigration();
  bool migrating() const { return migrating_; }
  // Everything the target loop needs, taken out of this connection, which is left closed
  // without closing the socket or calling the handler (the loop then frees it).
  std::unique_ptr<Migrant> TakeMigrant(int tls_endpoint);
  // On the target loop: carries on from `m` (state, figures, deadlines; the socket watched or
  // its receive armed), lets the handler re-bind, then serves what was carried along.
  void Arrive(Migrant& m);
  TlsLoopStats* tls_stats() const { return tls_stats_; }

  // Whether the multishot receive (io_uring) is in the kernel, or being cancelled.
  enum class ReceiveState : uint8_t { kIdle, kArmed, kCancelling };

  void OnIoEvent(uint32_t events) override;
  void HandleIoEvent(uint32_t events);
  // The completion back end's path (io_uring): a receive's bytes, the peer's FIN, a send done.
  void OnCompletion(const PollEvent& event) override;
  void HandleCompletion(const PollEvent& event);
  void OnReceived(std::string_view bytes);
  void TakeStashed(size_t max_bytes);
  void OnPeerEof();
  void OnSendCompleted(int result);
  void OnHangup(int result);
  void SubmitSend();
  void UpdateReceive();
  void CancelReceive();
  // Every byte owed to the peer, a send in flight (io_uring) included; on TLS, plaintext not
  // yet encrypted and ciphertext not yet sent.
  size_t Queued() const {
    return (io_ == nullptr ? 0 : io_->output.size() + io_->sending.size()) +
           (tls_ == nullptr ? 0 : tls_->wire_out().size());
  }
  size_t Unsent() const { return Queued() - (send_in_flight_ ? io_->send_asked : 0); }
  // The same where the caller knows whether the connection is TLS (the hot paths are compiled
  // once for each, so a plaintext connection pays nothing for TLS).
  template <bool kTls>
  size_t QueuedT() const {
    return (io_ == nullptr ? 0 : io_->output.size() + io_->sending.size()) + (kTls ? tls_->wire_out().size() : 0);
  }
  template <bool kTls>
  size_t UnsentT() const {
    return QueuedT<kTls>() - (send_in_flight_ ? io_->send_asked : 0);
  }
  // Readiness back ends (where nothing is ever in flight): whether anything waits to be written.
  bool HasOutput() const {
    return (io_ != nullptr && !io_->output.empty()) || (tls_ != nullptr && !tls_->wire_out().empty());
  }
  // Bytes read but not yet taken by the handler: the input, the stash (io_uring) and, on TLS,
  // ciphertext not yet decrypted.
  size_t InputWaiting() const {
    return (io_ == nullptr ? 0 : io_->input.size() + io_->stash.size()) +
           (tls_ == nullptr ? 0 : tls_->wire_in().size() + (tls_->has_pending() ? 1 : 0));
  }
  // The connection's buffers, taken from the loop when it first needs them (see ConnectionIo).
  ConnectionIo& io() {
    if (io_ == nullptr) TakeIo();
    return *io_;
  }
  void TakeIo();
  // Gives the buffers back to the loop if the connection holds nothing in them; called where
  // no reference into them can be live (the end of FlushAndDeliver outside a callback).
  void GiveBackIoIfIdle() {
    if (io_ != nullptr && !in_callback_ && !send_in_flight_ && !finished_) GiveBackIoIfEmpty();
  }
  void GiveBackIoIfEmpty();
  void KeepOnlyStandardBlocks(ConnectionIo& io);
  void ReleaseInputUnlessReading();
  void HandleReadable();
  template <bool kTls>
  void HandleReadableImpl();
  // TLS: decrypts what has arrived into the input (up to a read budget) and notes a completed
  // handshake; closes the connection on a TLS error. False when it closed it.
  bool DecryptInput();
  void NoteHandshake();  // counts a completed handshake (TlsLoopStats)
  // TLS: encrypts queued plaintext while the ciphertext waiting to be sent is short.
  void EncryptOutput();
  // TLS on a readiness back end: writes ciphertext within `budget`; false when it closed the
  // connection.
  bool FlushTls(size_t& budget, bool& progressed);
  void HandleWritable();
  void HandleLinger();
  // Offers buffered input to the handler until it stops consuming or pauses.
  void Deliver();
  template <bool kTls>
  void DeliverImpl();
  // Runs a handler callback with the re-entrancy guard set; an exception it throws becomes
  // CloseNow(kHandlerError). The caller sets callback_start_ns_ first (RecordRequest).
  template <typename Fn>
  Action Call(Fn&& fn);
  // Inline for the common case: Continue, and no Close() asked for during the callback.
  void Apply(Action action) {
    if (action.kind() != Action::Kind::kContinue || pending_close_) ApplySlow(action);
  }
  void ApplySlow(Action action);
  // Apply after any callback but Deliver's (which counts with the end time it reads anyway):
  // counts the requests the callback answered first.
  void ApplyCounted(Action action) {
    if (batch_requests_ != 0) CountAnswered();
    Apply(action);
  }
  // Runs a handler callback other than Deliver's OnData: timed from the loop's iteration time
  // for RecordRequest, then applied.
  template <typename Fn>
  void RunCallback(Fn&& fn) {
    callback_start_ns_ = loop_now_ns();
    ApplyCounted(Call(std::forward<Fn>(fn)));
  }
  // Acts on a Close() the handler asked for during the callback that just returned.
  void AfterCallback();
  // Counts the requests RecordRequest noted in the callback that just ended. Those that began
  // in this loop iteration are handed to the loop, which counts them when the iteration ends
  // with one latency (EventLoop::NoteAnswered); a continuation's, begun earlier, are timed now.
  void CountAnswered() {
    if (callback_start_ns_ == loop_now_ns()) {
      NoteAnswered();
    } else {
      CountContinued();
    }
  }
  void NoteAnswered();  // began in this iteration: the loop counts them when it ends
  [[gnu::noinline]] void CountContinued();  // began earlier: timed now
  // Deliver's OnData call, timed for LoopStats::handler_ns (a sample: EventLoop::TimeThisCallback).
  [[gnu::noinline]] Action TimedOnData();
  // Counts one request that began in an earlier callback.
  void CountLate(RequestStart start, bool error);
  // After Resume: a drain or the peer's FIN that arrived while paused.
  void FinishPendingWork();
  // Writes what is queued; moves between Reading and Writing on the water marks.
  void Flush();
  template <bool kTls>
  void FlushImpl();
  // Flush, then tell the handler the output drained (OnWritable) when it asked or backpressure
  // ended, then offer input left behind by backpressure, for as long as these make progress.
  void FlushAndDeliver() {
    FlushAndDeliverInput();
    if (eof_unreported_) ReportPeerEof();
    GiveBackIoIfIdle();
  }
  void FlushAndDeliverInput();
  void ReportPeerEof();
  bool WantsOnWritable() { return (writable_requested_ || writable_due_) && WritableDue(); }
  bool WritableDue();
  // Bytes this connection may still write in the loop's current iteration.
  size_t WriteBudgetLeft();
  void BeginClosing(CloseReason reason);
  void Finish(CloseReason reason);
  void UpdateInterest();
  void Touch();
  // The connection's one timer entry serves its three deadlines: the idle one (from
  // last_activity_ns_), the handler's (SetDeadline) and the I/O one (write progress, linger).
  // The entry is armed no later than the earliest of them; moving one later, or clearing it,
  // only changes its field, and the entry, when it fires, does what is due and re-arms itself
  // for the earliest that remains. One wheel entry per connection instead of three, and no wheel
  // operation for a deadline that moves later.
  void OnTimer() override;
  void ArmTimer(int64_t deadline_ns);
  void RearmTimer();
  void SetIoDeadline(int64_t deadline_ns) {
    io_deadline_ns_ = deadline_ns;
    ArmTimer(deadline_ns);
  }
  void OnIdleTimeout();
  void OnHandlerDeadline();
  void OnIoTimeout();
  bool ShouldRead() const;
  CloseReason ReasonForErrno(int err) const;

  EventLoop& loop_;
  const uint64_t id_;
  int fd_;
  // The peer's address in the space of an IPv6 one (a TCP peer is IPv4 or IPv6): a
  // sockaddr_storage would be 136 bytes of every idle connection.
  struct PeerAddress {
    sockaddr_in6 address{};
    socklen_t length = 0;  // 0: not known (longer than an IPv6 address, or never given)
  };
  static PeerAddress Compact(const SocketAddress& peer);
  const PeerAddress peer_;
  const int service_index_;
  ServiceLoopStats* const service_stats_;
  const ConnectionOptions& options_;
  UringPoller* const uring_;  // the loop's completion back end, or nullptr (poll, epoll)
  const int64_t* const loop_now_ns_;  // EventLoop::now_ns(), which connection.h cannot see
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<TlsSession> tls_;  // null on a plaintext endpoint
  TlsLoopStats* tls_stats_ = nullptr;  // its endpoint's, on this loop
  // Owned (null while idle): given back to the loop, or deleted, by GiveBackIoIfEmpty and the
  // destructor. A raw pointer, so taking one on the hot path compiles to a load and a store.
  ConnectionIo* io_ = nullptr;
  ReceiveState recv_ = ReceiveState::kIdle;
  bool send_in_flight_ = false;
  bool send_progressed_ = false;  // a send completed with bytes since the last Flush
  bool eof_unreported_ = false;
  // io_uring, while no receive is armed (a paused or backed-up connection whose stash is
  // full): a poll that reports a reset, as the readiness back ends' hang-up does.
  bool hangup_watch_ = false;
  bool hangup_seen_ = false;
  bool starved_ = false;  // its receive ended on an empty buffer ring; the loop re-arms it  // it fired without an error (a FIN): not re-armed until reading   // FIN received while backed up; OnPeerClosed once reading again
  ConnectionState state_ = ConnectionState::kOpen;
  uint32_t interest_ = 0;
  bool peer_eof_ = false;      // FIN seen (on TLS, or close_notify)
  bool peer_fin_ = false;      // the TCP FIN itself seen
  bool fin_sent_ = false;      // our FIN sent (lingering)
  bool in_callback_ = false;   // re-entrancy guard: Close/Resume from inside a callback
  bool finished_ = false;
  bool unwatched_ = false;     // removed from the poller while paused after a hang-up
  bool pending_close_ = false;
  bool writable_requested_ = false;  // RequestWritable()
  bool writable_due_ = false;        // backpressure ended; OnWritable not called yet
  bool migrating_ = false;           // leaving for another loop (BeginMigration)
  uint64_t budget_iteration_ = 0;    // the loop iteration write_budget_left_ belongs to
  size_t write_budget_left_ = 0;
  bool pending_close_flush_ = false;
  CloseReason pending_close_reason_ = CloseReason::kServiceClose;
  bool drain_after_resume_ = false;
  CloseReason drain_reason_ = CloseReason::kServerDrain;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  int64_t opened_ns_;
  int64_t last_activity_ns_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t requests_ = 0;
  // The counters at the previous rate sweep, and the rates it measured (SampleRate).
  int64_t rate_mark_ns_;
  uint64_t rate_mark_requests_ = 0;
  uint64_t rate_mark_bytes_ = 0;
  uint64_t recent_requests_per_sec_ = 0;
  uint64_t recent_bytes_per_sec_ = 0;
  int64_t arrived_ns_ = -1;
  // When the current callback began (RecordRequest): the loop's iteration time, when what it
  // handles was known to the loop; for a continuation, when its request was read.
  int64_t callback_start_ns_ = 0;
  // Requests answered in the current callback, counted when it returns (CountAnswered): the
  // loop counts a whole iteration's with one clock read, not one per request.
  uint32_t batch_requests_ = 0;
  uint32_t batch_errors_ = 0;
  uint32_t awaiting_ = 0;          // Sharded<T>::Await calls not answered yet
  static constexpr int64_t kNoDeadline = -1;
  int64_t handler_deadline_ns_ = kNoDeadline;  // SetDeadline
  int64_t io_deadline_ns_ = kNoDeadline;  // write progress while Writing, linger bound while Closing
  int64_t handshake_deadline_ns_ = kNoDeadline;  // TLS: the handshake's
  bool idle_timing_ = false;  // the idle deadline counts: open, not closing, idle_timeout set
};

template <typename Fn>
Action Connection::Call(Fn&& fn) {
  in_callback_ = true;
  Action action = Action::Continue();
  try {
    action = fn();
  } catch (...) {
    // A failing handler costs its own connection, never the loop or its other connections.
    pending_close_ = false;
    action = Action::CloseNow(CloseReason::kHandlerError);
  }
  in_callback_ = false;
  return action;
}

template <typename Fn>
void Connection::RunTask(Fn&& fn) {
  if (finished_) return;
  const bool was_paused = state_ == ConnectionState::kPaused;
  RunCallback([&] {
    std::forward<Fn>(fn)(*this);
    return Action::Continue();
  });
  if (finished_) return;
  if (was_paused && state_ == ConnectionState::kReading) {
    // Resumed inside the task: continue as Resume() does outside a callback.
    Deliver();
    if (finished_) return;
    FinishPendingWork();
    if (finished_) return;
  }
  FlushAndDeliver();
}

}  // namespace percore
