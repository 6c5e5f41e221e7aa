#include "reactor/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "reactor/event_loop.h"
#include "reactor/loop_stats.h"

namespace percore {

std::string_view ConnectionStateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kOpen: return "open";
    case ConnectionState::kReading: return "reading";
    case ConnectionState::kWriting: return "writing";
    case ConnectionState::kPaused: return "paused";
    case ConnectionState::kClosing: return "closing";
    case ConnectionState::kClosed: return "closed";
  }
  return "unknown";
}

Connection::Connection(EventLoop& loop, uint64_t id, int fd, const SocketAddress& peer, int service_index,
                       ServiceLoopStats* service_stats, const ConnectionOptions& options)
    : loop_(loop),
      id_(id),
      fd_(fd),
      peer_(Compact(peer)),
      service_index_(service_index),
      service_stats_(service_stats),
      options_(options),
      uring_(loop.uring()),
      loop_now_ns_(&loop.now_ns_),
      opened_ns_(loop.now_ns()),
      last_activity_ns_(loop.now_ns()),
      rate_mark_ns_(loop.now_ns()) {}

Connection::~Connection() {
  if (io_ != nullptr && io_->empty() && !send_in_flight_) {
    KeepOnlyStandardBlocks(*io_);
    loop_.connection_io().Give(std::exchange(io_, nullptr));
  }
  delete io_;
  if (fd_ >= 0) {
    if (uring_ == nullptr) (void)loop_.Unwatch(fd_);
    CloseFd(fd_);
  }
}

absl::Status CheckConnectionOptions(const ConnectionOptions& options) {
  if (options.read_budget == 0 || options.write_budget == 0) {
    return absl::InvalidArgumentError("read_budget and write_budget must be positive");
  }
  if (options.low_water > options.high_water) {
    return absl::InvalidArgumentError(absl::StrCat("low_water (", options.low_water,
                                                   ") is above high_water (", options.high_water, ")"));
  }
  // A cap below high_water + read_budget is allowed: it is how a hard bound stricter than
  // backpressure is set (a client that pipelines that far is then closed as output_overflow).
  return absl::OkStatus();
}

Connection::PeerAddress Connection::Compact(const SocketAddress& peer) {
  PeerAddress out;
  if (peer.length > 0 && peer.length <= sizeof(out.address)) {
    std::memcpy(&out.address, &peer.storage, peer.length);
    out.length = peer.length;
  }
  return out;
}

SocketAddress Connection::peer() const {
  SocketAddress out;
  std::memcpy(&out.storage, &peer_.address, peer_.length);
  out.length = peer_.length;
  return out;
}

ConnectionHandle Connection::handle() const { return ConnectionHandle{&loop_, id_}; }

void Connection::UseTls(std::shared_ptr<const TlsContext> context, TlsLoopStats* stats) {
  tls_ = std::make_unique<TlsSession>(std::move(context), &loop_.buffer_pool());
  tls_stats_ = stats;
  // Kernel TLS on the readiness back ends, which write wire_out() with plain writes. io_uring
  // keeps the records here: its sends are in flight while the session runs, and records that
  // are not application data would need typed sendmsg submissions.
  if (uring_ == nullptr && KernelHasTls()) tls_->OffloadSendsTo(fd_);
}

void Connection::NoteHandshake() {
  handshake_deadline_ns_ = kNoDeadline;
  TlsLoopStats& stats = *tls_stats_;
  stats.handshakes.Increment();
  if (tls_->resumed()) stats.resumptions.Increment();
  if (tls_->version() == "TLSv1.3") {
    stats.tls13.Increment();
  } else if (tls_->version() == "TLSv1.2") {
    stats.tls12.Increment();
  }
  if (tls_->ktls_send() || tls_->ktls_receive()) stats.ktls.Increment();
  stats.handshake_ns.Record(static_cast<uint64_t>(std::max<int64_t>(0, MonotonicNanos() - opened_ns_)));
}

bool Connection::BeginReading() {
  state_ = ConnectionState::kReading;
  if (uring_ != nullptr) {
    UpdateReceive();
    return true;
  }
  if (!loop_.Watch(fd_, kPollIn, this).ok()) {
    Finish(CloseReason::kIoError);
    return false;
  }
  interest_ = kPollIn;
  return true;
}

void Connection::Start(std::unique_ptr<Handler> handler) {
  handler_ = std::move(handler);
  if (!BeginReading()) return;
  Touch();
  if (tls_ != nullptr && options_.tls_handshake_timeout > absl::ZeroDuration()) {
    handshake_deadline_ns_ = loop_.now_ns() + absl::ToInt64Nanoseconds(options_.tls_handshake_timeout);
    ArmTimer(handshake_deadline_ns_);
  }
  RunCallback([this] {
    handler_->OnOpen(*this);
    return Action::Continue();
  });
  if (finished_) return;
  Flush();
  // A RequestWritable made in the callback is answered now: the output may have drained in this
  // very write, and then no POLLOUT would ever bring the OnWritable call.
  if (!finished_ && WantsOnWritable()) FlushAndDeliver();
  GiveBackIoIfIdle();
}

void Connection::ServeArrived() {
  if (finished_ || migrating_ || !ShouldRead()) return;
  // io_uring: the loop has just dispatched every completion the kernel had (CollectCompletions).
  // Where the kernel fills receive buffers only while this thread waits (DEFER_TASKRUN), what
  // is still in the socket follows everything delivered, so reading it directly keeps the
  // order; otherwise the armed receive could take bytes concurrently, and the collected
  // completions are all this connection serves.
  if (uring_ != nullptr &&
      (!uring_->completions_only_when_waiting() || (io_ != nullptr && !io_->stash.empty()) ||
       uring_->completions_pending())) {
    return;
  }
  HandleReadable();
}

void Connection::ServeArrivedThenClose(CloseReason reason) {
  if (migrating_) return;  // on its way to a loop that serves it (and drains it, if it drains)
  ServeArrived();
  if (!finished_) CloseGracefully(reason, /*after_in_flight=*/true);
}

// ---------------------------------------------------------------------------------------------
// Handler-facing API.

void Connection::Send(std::string_view bytes) { io().output.Append(bytes); }

void Connection::ReleaseInputUnlessReading() {
  // Paused or backed up, a connection may wait long with its input consumed: its block goes
  // back to the pool. Reading, it stays for the next read (GiveBackIoIfIdle returns it).
  if (state_ != ConnectionState::kReading && io_ != nullptr) loop_.buffer_pool().Release(io_->input);
}

void Connection::TakeIo() { io_ = loop_.connection_io().TakeRaw(&loop_.buffer_pool()); }

void Connection::GiveBackIoIfEmpty() {
  ConnectionIo& io = *io_;
  if (io.output.size() != 0 || io.sending.size() != 0 || !io.input.empty() || !io.stash.empty()) return;
  KeepOnlyStandardBlocks(io);
  loop_.connection_io().Give(std::exchange(io_, nullptr));
}

// A kept ConnectionIo keeps the standard blocks its buffers hold, so the next connection to take
// it reads and writes without attaching any (an Attach and a Release per buffer per request
// otherwise); a block grown past the standard size goes back to the pool, which frees it. The
// loop trims kept sets a quiet period did not need (EventLoop::Run), as the pool trims blocks.
void Connection::KeepOnlyStandardBlocks(ConnectionIo& io) {
  BufferPool& pool = loop_.buffer_pool();
  if (io.input.capacity() > BufferPool::kBlockSize) pool.Release(io.input);
  if (io.output.bytes().capacity() > BufferPool::kBlockSize) pool.Release(io.output.bytes());
  if (io.stash.has_storage()) pool.Release(io.stash);  // io_uring behind backpressure only
  if (io.sending.bytes().capacity() > BufferPool::kBlockSize) pool.Release(io.sending.bytes());
}

void Connection::Resume() {
  loop_.AssertInLoopThread();
  if (state_ != ConnectionState::kPaused) return;
  state_ = ConnectionState::kReading;
  if (in_callback_) return;  // the running Deliver() carries on
  Deliver();
  if (finished_) return;
  FinishPendingWork();
  if (!finished_) FlushAndDeliver();
}

void Connection::SetDeadline(absl::Duration delay) {
  handler_deadline_ns_ = loop_.now_ns() + DurationNanos(delay);
  ArmTimer(handler_deadline_ns_);
}

void Connection::ClearDeadline() { handler_deadline_ns_ = kNoDeadline; }

void Connection::Close(CloseReason reason, CloseMode mode) {
  loop_.AssertInLoopThread();
  if (finished_) return;
  const bool flush_first = mode == CloseMode::kFlush;
  if (in_callback_) {
    // Acted on once the callback returns, so a handler is never re-entered by its own close.
    if (!pending_close_ || !flush_first) {
      pending_close_ = true;
      pending_close_flush_ = flush_first;
      pending_close_reason_ = reason;
    }
    return;
  }
  if (!flush_first) {
    Finish(reason);
    return;
  }
  CloseGracefully(reason, /*after_in_flight=*/false);
}

void Connection::CloseGracefully(CloseReason reason, bool after_in_flight) {
  if (finished_) return;
  if (state_ == ConnectionState::kPaused && !after_in_flight) {
    // The handler gives up on what it waits for: the close does not wait for a Resume.
    BeginClosing(reason);
    Flush();
    return;
  }
  // A graceful close answers every request already read: input that waited behind backpressure
  // is offered to the handler now, whatever the high-water mark (it is bounded by the read
  // budget, and the output cap still applies).
  if (state_ == ConnectionState::kWriting) state_ = ConnectionState::kReading;
  TakeStashed(io().stash.size());  // io_uring: bytes received behind backpressure were read too
  while (state_ == ConnectionState::kReading && !io().input.empty()) {
    const size_t before = io().input.size();
    RunCallback([this] { return handler_->OnData(*this, io().input); });
    if (finished_) return;
    if (io().input.size() == before) break;
  }
  if (state_ == ConnectionState::kPaused) {
    // A request is in flight: answer it first, then close (see FinishPendingWork).
    drain_after_resume_ = true;
    drain_reason_ = reason;
    return;
  }
  BeginClosing(reason);
  Flush();
}

void Connection::CountLate(RequestStart start, bool error) {
  ++requests_;
  service_stats_->requests.Increment();
  if (error) service_stats_->errors.Increment();
  const int64_t latency_ns = MonotonicNanos() - start.ns_;
  service_stats_->latency_ns.Record(latency_ns > 0 ? static_cast<uint64_t>(latency_ns) : 0);
}

void Connection::NoteAnswered() {
  requests_ += batch_requests_;
  loop_.NoteAnswered(service_index_, batch_requests_, batch_errors_);
  batch_requests_ = 0;
  batch_errors_ = 0;
}

void Connection::CountContinued() {
  const uint32_t n = batch_requests_;
  requests_ += n;
  service_stats_->requests.Add(n);
  if (batch_errors_ != 0) service_stats_->errors.Add(batch_errors_);
  const int64_t latency_ns = MonotonicNanos() - callback_start_ns_;
  service_stats_->latency_ns.Record(latency_ns > 0 ? static_cast<uint64_t>(latency_ns) : 0, n);
  batch_requests_ = 0;
  batch_errors_ = 0;
}

Action Connection::TimedOnData() {
  const int64_t start = MonotonicNanos();
  const Action action = Call([this] { return handler_->OnData(*this, io().input); });
  loop_.stats().handler_ns.Record(static_cast<uint64_t>(MonotonicNanos() - start));
  return action;
}

absl::Status Connection::SetNoDelay(bool on) { return percore::SetNoDelay(fd_, on); }

ConnectionStats Connection::stats() const {
  ConnectionStats s;
  s.opened = MonoTime::FromNanos(opened_ns_);
  s.last_activity = MonoTime::FromNanos(last_activity_ns_);
  s.bytes_in = bytes_in_;
  s.bytes_out = bytes_out_;
  s.requests = requests_;
  s.queued_output = Unsent();
  return s;
}

// ---------------------------------------------------------------------------------------------
// The state machine.

bool Connection::ShouldRead() const { return state_ == ConnectionState::kReading && !peer_eof_; }

void Connection::OnIoEvent(uint32_t events) {
  if (finished_) return;  // closed earlier in this iteration
  try {
    HandleIoEvent(events);
  } catch (...) {
    // The framework's own work for this connection failed (growing a buffer under memory
    // pressure: std::bad_alloc). Handler callbacks are guarded on their own (Call); whatever
    // failed here, it costs this connection only.
    Finish(CloseReason::kHandlerError);
  }
}

void Connection::HandleIoEvent(uint32_t events) {
  if (fin_sent_) {
    HandleLinger();
    return;
  }
  if (events & kPollOut) {
    HandleWritable();
    if (finished_) return;
  }
  if (events & (kPollIn | kPollHangup | kPollError)) {
    if (ShouldRead()) {
      HandleReadable();
    } else if (events & (kPollHangup | kPollError)) {
      // Not reading (paused, backed up, or the peer's FIN already seen): a hang-up or error is
      // reported whatever the interest, so act on it now or the loop would spin on it.
      const int err = PendingSocketError(fd_);
      if (err != 0) {
        Finish(ReasonForErrno(err));
      } else if (Queued() != 0) {
        Flush();  // the write reports EPIPE/ECONNRESET if the peer is really gone
      } else if (state_ != ConnectionState::kPaused) {
        Finish(peer_eof_ ? CloseReason::kPeerClosed : CloseReason::kPeerReset);
      } else {
        // Paused with nothing to write: stop watching until the handler resumes.
        (void)loop_.Unwatch(fd_);
        unwatched_ = true;
        interest_ = 0;
        peer_eof_ = peer_fin_ = true;
      }
    }
  }
}

void Connection::HandleReadable() {
  if (tls_ != nullptr) {
    HandleReadableImpl<true>();
  } else {
    HandleReadableImpl<false>();
  }
}

template <bool kTls>
void Connection::HandleReadableImpl() {
  LoopStats& stats = loop_.stats();
  size_t budget = options_.read_budget;
  while (ShouldRead() && budget > 0) {
    // On TLS the socket's bytes are ciphertext: they go to the session, which decrypts them
    // into the input.
    Buffer& target = kTls ? tls_->wire_in() : io().input;
    if (!target.has_storage()) loop_.buffer_pool().Attach(target);
    const size_t offered = std::min(budget, target.writable() + 64 * 1024);
    const ssize_t n = target.ReadFromFd(fd_, offered);
    stats.read_calls.Increment();
    if (n > 0) {
      const size_t got = static_cast<size_t>(n);
      bytes_in_ += got;
      stats.bytes_in.Add(got);
      budget -= std::min(budget, got);
      last_activity_ns_ = loop_.now_ns();
      if (kTls && !DecryptInput()) return;
      Deliver();
      if (finished_) return;
      if (kTls && peer_eof_) break;  // close_notify: FlushAndDeliver reports it (ReportPeerEof)
      if (UnsentT<kTls>() > options_.high_water) break;  // backpressure: read no further ahead
      if (got < offered) break;  // the socket is drained; the next read would say EAGAIN
      continue;
    }
    if (n == 0) {
      peer_eof_ = peer_fin_ = true;
      if (state_ == ConnectionState::kReading) {
        RunCallback([this] { return handler_->OnPeerClosed(*this); });
        if (finished_) return;
      }
      break;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      stats.read_eagain.Increment();
      break;
    }
    Finish(ReasonForErrno(err));
    return;
  }
  ReleaseInputUnlessReading();
  FlushAndDeliver();
}

void Connection::ReportPeerEof() {
  // io_uring: the peer's FIN arrives as soon as it is sent, behind bytes the handler may not
  // have taken yet (stashed behind backpressure, or left in the input while it streams a reply
  // and waits for OnWritable). It is reported once those are offered, as the readiness back
  // ends, which stop reading under backpressure, would read it.
  while (eof_unreported_ && !finished_ && state_ == ConnectionState::kReading &&
         (io_ == nullptr || io_->stash.empty()) && (tls_ == nullptr || !tls_->has_pending()) &&
         !writable_requested_ && !writable_due_) {
    eof_unreported_ = false;
    RunCallback([this] { return handler_->OnPeerClosed(*this); });
    if (finished_) return;
    FlushAndDeliverInput();
  }
}

void Connection::FlushAndDeliverInput() {
  for (;;) {
    Flush();
    if (finished_) return;
    if (WantsOnWritable()) {
      writable_requested_ = writable_due_ = false;
      const size_t before = Queued();
      const bool was_paused = state_ == ConnectionState::kPaused;
      RunCallback([this] {
        handler_->OnWritable(*this);
        return Action::Continue();
      });
      if (finished_) return;
      if (was_paused && state_ == ConnectionState::kReading) {
        FinishPendingWork();  // resumed inside the callback: a drain or FIN that waited
        if (finished_) return;
      }
      if (Queued() != before) continue;  // write what it produced, within the budget
    }
    const size_t before = InputWaiting();
    if (state_ != ConnectionState::kReading || before == 0) return;
    // Input that waited behind the high-water mark: the write just made room for its replies.
    // Nothing else would offer it again, since the peer may send nothing more until it gets them.
    Deliver();
    if (finished_) return;
    if (InputWaiting() == before) {
      Flush();
      return;
    }
  }
}

void Connection::Deliver() {
  if (tls_ != nullptr) {
    DeliverImpl<true>();
  } else {
    DeliverImpl<false>();
  }
}

template <bool kTls>
void Connection::DeliverImpl() {
  while (state_ == ConnectionState::kReading && UnsentT<kTls>() <= options_.high_water) {
    // io_uring: what was received behind backpressure joins the input one read budget at a
    // time, as the readiness back ends would read it.
    // TLS: ciphertext that waited (behind backpressure or a pause) is decrypted as it is needed.
    if (kTls && tls_->has_pending() && !DecryptInput()) return;
    if (io_ == nullptr) return;
    if (!io_->stash.empty()) TakeStashed(options_.read_budget);
    if (io_->input.empty()) return;
    const size_t before = io().input.size();
    callback_start_ns_ = loop_.now_ns();  // what this callback's RecordRequest measures from
    const Action action = loop_.TimeThisCallback() ? TimedOnData()
                                                   : Call([this] { return handler_->OnData(*this, io().input); });
    if (batch_requests_ != 0) CountAnswered();
    Apply(action);
    if (finished_) return;
    if (io().input.size() == before && io().stash.empty()) return;
  }
}

void Connection::TakeStashed(size_t max_bytes) {
  if (io_ == nullptr) return;
  ConnectionIo& io = *io_;
  const size_t n = std::min(max_bytes, io.stash.size());
  if (n == 0) return;
  if (!io.input.has_storage()) loop_.buffer_pool().Attach(io.input);
  io.input.Append(io.stash.data(), n);
  io.stash.Consume(n);
  if (io.stash.empty()) loop_.buffer_pool().Release(io.stash);
}

void Connection::ApplySlow(Action action) {
  switch (action.kind()) {
    case Action::Kind::kContinue:
      break;
    case Action::Kind::kPause:
      if (state_ == ConnectionState::kReading) state_ = ConnectionState::kPaused;
      break;
    case Action::Kind::kCloseAfterWrite:
      BeginClosing(action.reason());
      break;
    case Action::Kind::kCloseNow:
      Finish(action.reason());
      return;
  }
  AfterCallback();
}

void Connection::AfterCallback() {
  if (!pending_close_ || finished_) return;
  pending_close_ = false;
  if (!pending_close_flush_) {
    Finish(pending_close_reason_);
    return;
  }
  // The handler closed itself from inside a callback: it reads no further, so input it left is
  // not offered to it again (that would re-enter it, without end if it asks to close each time).
  // A paused connection closes too: the handler gives up on what it waited for.
  BeginClosing(pending_close_reason_);
  Flush();
}

void Connection::FinishPendingWork() {
  if (state_ != ConnectionState::kReading) return;
  if (drain_after_resume_) {
    drain_after_resume_ = false;
    BeginClosing(drain_reason_);
    return;
  }
  // io_uring, and a TLS close_notify: FlushAndDeliver reports it (ReportPeerEof).
  if (peer_eof_ && uring_ == nullptr && !eof_unreported_) {
    RunCallback([this] { return handler_->OnPeerClosed(*this); });
  }
}

// ---------------------------------------------------------------------------------------------
// TLS. The session sits between the socket and the connection's buffers: what is read is
// ciphertext, decrypted into the input the handler sees; what the handler queues is plaintext,
// encrypted into the session's wire buffer, which is what is written (or sent, on io_uring).

bool Connection::DecryptInput() {
  const TlsSession::Result result = tls_->Decrypt(io().input, options_.read_budget);
  if (tls_->wire_in().empty()) loop_.buffer_pool().Release(tls_->wire_in());
  if (tls_->TakeHandshakeCompleted()) NoteHandshake();
  switch (result) {
    case TlsSession::Result::kOk:
      return true;
    case TlsSession::Result::kPeerClosed:
      // close_notify: the peer sends nothing more. Reported as its FIN would be, once the
      // handler has had everything before it.
      if (!peer_eof_) {
        peer_eof_ = true;
        eof_unreported_ = true;
      }
      return true;
    case TlsSession::Result::kError:
      break;
  }
  // The alert OpenSSL queued, if any, is sent with one attempt (directly, on io_uring too,
  // unless a send is in flight there); then the connection closes.
  if (!send_in_flight_ && !tls_->wire_out().empty()) (void)tls_->wire_out().WriteToFd(fd_);
  if (tls_->handshake_done()) {
    tls_stats_->errors.Increment();
    Finish(CloseReason::kTlsError);
  } else {
    tls_stats_->handshake_failures.Increment();
    Finish(CloseReason::kTlsHandshakeFailed);
  }
  return false;
}

void Connection::EncryptOutput() {
  if (io_ == nullptr || !tls_->handshake_done() || tls_->shut_down()) return;
  // Encrypted a little ahead of the socket, not all at once: a large reply stays plaintext
  // (shared pieces in place) until the socket takes what is before it.
  constexpr size_t kEncryptAhead = 64 * 1024;
  OutputQueue& output = io_->output;
  Buffer& wire = tls_->wire_out();
  while (!output.empty() && wire.size() < kEncryptAhead) {
    // Copied bytes and shared pieces alike, each encrypted from where it is.
    iovec pieces[8];
    size_t length = 0;
    const int count = output.Gather(kEncryptAhead - wire.size(), pieces, 8, &length);
    size_t taken = 0;
    for (int i = 0; i < count; ++i) {
      const size_t n = tls_->Encrypt(std::string_view(static_cast<const char*>(pieces[i].iov_base), pieces[i].iov_len));
      taken += n;
      if (n < pieces[i].iov_len) break;
    }
    if (taken == 0) return;
    output.Consume(taken);
  }
}

bool Connection::FlushTls(size_t& budget, bool& progressed) {
  LoopStats& stats = loop_.stats();
  for (;;) {
    EncryptOutput();
    Buffer& wire = tls_->wire_out();
    if (wire.empty()) return true;
    if (budget == 0) {
      stats.write_budget_yields.Increment();
      return true;
    }
    const size_t asked = std::min(wire.size(), budget);
    const ssize_t n = wire.WriteToFd(fd_, asked);
    stats.write_calls.Increment();
    if (n > 0) {
      const size_t wrote = static_cast<size_t>(n);
      bytes_out_ += wrote;
      stats.bytes_out.Add(wrote);
      budget -= wrote;
      progressed = true;
      if (wrote < asked) {
        stats.partial_writes.Increment();
        return true;
      }
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      stats.write_eagain.Increment();
      return true;
    }
    Finish(ReasonForErrno(err));
    return false;
  }
}

void Connection::HandleWritable() {
  // Backpressure released (Flush notes it): the handler may produce more, then input already
  // buffered is served.
  FlushAndDeliver();
}

bool Connection::WritableDue() {
  if (state_ != ConnectionState::kReading && state_ != ConnectionState::kPaused) return false;
  if (Unsent() > options_.low_water) return false;
  // With this iteration's write budget spent, what is queued waits for the next one (the
  // socket's POLLOUT brings it back); an empty output must be refilled now or nothing would.
  return Queued() == 0 || WriteBudgetLeft() > 0;
}

size_t Connection::WriteBudgetLeft() {
  if (budget_iteration_ != loop_.iteration()) {
    budget_iteration_ = loop_.iteration();
    write_budget_left_ = options_.write_budget;
  }
  return write_budget_left_;
}

void Connection::Flush() {
  if (tls_ != nullptr) {
    FlushImpl<true>();
  } else {
    FlushImpl<false>();
  }
}

template <bool kTls>
void Connection::FlushImpl() {
  LoopStats& stats = loop_.stats();
  bool progressed = std::exchange(send_progressed_, false);
  size_t budget = WriteBudgetLeft();
  if (uring_ != nullptr) {
    // The send goes to the kernel with the loop's next wait; its completion (OnSendCompleted)
    // does what a write's result does below.
    SubmitSend();
    budget = write_budget_left_;
  }
  if (kTls && uring_ == nullptr && !FlushTls(budget, progressed)) return;
  while (uring_ == nullptr && !kTls && io_ != nullptr && !io_->output.empty()) {
    if (budget == 0) {
      // One connection's large reply does not hold the loop: the rest goes out in the next
      // iterations, after the other connections had their turn.
      stats.write_budget_yields.Increment();
      break;
    }
    const size_t asked = std::min(io_->output.size(), budget);
    const ssize_t n = io_->output.WriteToFd(fd_, asked);
    stats.write_calls.Increment();
    if (n > 0) {
      const size_t wrote = static_cast<size_t>(n);
      bytes_out_ += wrote;
      stats.bytes_out.Add(wrote);
      budget -= wrote;
      progressed = true;
      if (wrote < asked) {
        stats.partial_writes.Increment();
        break;  // the socket buffer is full; the next write would say EAGAIN
      }
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      stats.write_eagain.Increment();
      break;
    }
    Finish(ReasonForErrno(err));
    return;
  }
  write_budget_left_ = budget;
  if (progressed) last_activity_ns_ = loop_.now_ns();

  if (QueuedT<kTls>() == 0) {
    // Reading, the connection gives its buffers back to the loop, blocks included, once
    // nothing is in them (GiveBackIoIfIdle); otherwise (paused, closing) it may hold them for
    // long, so the blocks go back to the pool now.
    if (io_ != nullptr && state_ != ConnectionState::kReading) {
      loop_.buffer_pool().Release(io_->output.bytes());
      loop_.buffer_pool().Release(io_->sending.bytes());
    }
    if (kTls) loop_.buffer_pool().Release(tls_->wire_out());
    if (!fin_sent_) io_deadline_ns_ = kNoDeadline;
  } else {
    // A send in flight counts as written here, as bytes in the socket buffer do on epoll; its
    // memory is bounded by the write budget.
    const size_t in_flight_copied = send_in_flight_ ? std::min(io().send_asked, io().sending.copied_size()) : 0;
    const size_t ciphertext = !kTls ? 0 : tls_->wire_out().size();
    if (io().output.copied_size() + io().sending.copied_size() + ciphertext - in_flight_copied > options_.output_cap) {
      Finish(CloseReason::kOutputOverflow);
      return;
    }
    // The write deadline counts from the last progress.
    if ((progressed || io_deadline_ns_ == kNoDeadline) && loop_.timeouts_.write_ns > 0) {
      SetIoDeadline(loop_.now_ns() + loop_.timeouts_.write_ns);
    }
  }

  switch (state_) {
    case ConnectionState::kReading:
      if (UnsentT<kTls>() > options_.high_water) {
        state_ = ConnectionState::kWriting;
        stats.backpressure_pauses.Increment();
      }
      break;
    case ConnectionState::kWriting:
      if (UnsentT<kTls>() <= options_.low_water) {
        state_ = ConnectionState::kReading;
        writable_due_ = true;
      }
      break;
    case ConnectionState::kClosing:
      if (QueuedT<kTls>() == 0 && !fin_sent_) {
        if (kTls && !tls_->shut_down()) {
          // TLS: close_notify goes out after the last reply (an answer to the peer's, if it
          // sent one), then the FIN, from the Flush that writes it.
          tls_->Shutdown();
          if (QueuedT<kTls>() != 0) {
            Flush();
            return;
          }
        }
        // The peer's FIN: nothing of ours can be cut by a reset. (A TLS close_notify alone is
        // not one: bytes may still follow it, so the close lingers as usual.)
        if (peer_eof_ && (!kTls || peer_fin_)) {
          Finish(close_reason_);
          return;
        }
        // Lingering close: send our FIN, then read and discard until the peer's FIN, so that
        // unread request bytes in our receive queue cannot turn the close into an RST that
        // destroys the reply in flight.
        ::shutdown(fd_, SHUT_WR);
        fin_sent_ = true;
        SetIoDeadline(loop_.now_ns() + loop_.timeouts_.linger_ns);
      }
      break;
    default:
      break;
  }
  UpdateInterest();
}

void Connection::HandleLinger() {
  char discard[4096];
  for (;;) {
    const ssize_t n = ::read(fd_, discard, sizeof(discard));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    Finish(close_reason_);  // EOF or error: the peer has everything it will get
    return;
  }
}

void Connection::BeginClosing(CloseReason reason) {
  if (state_ == ConnectionState::kClosing || finished_) return;
  state_ = ConnectionState::kClosing;
  close_reason_ = reason;
  handler_deadline_ns_ = kNoDeadline;
  idle_timing_ = false;
  if (io_ != nullptr) {
    io_->input.Clear();
    io_->stash.Clear();
    loop_.buffer_pool().Release(io_->input);
    loop_.buffer_pool().Release(io_->stash);
  }
  if (tls_ != nullptr) {
    tls_->wire_in().Clear();
    loop_.buffer_pool().Release(tls_->wire_in());
  }
  if (Queued() != 0 && io_deadline_ns_ == kNoDeadline && loop_.timeouts_.write_ns > 0) {
    SetIoDeadline(loop_.now_ns() + loop_.timeouts_.write_ns);
  }
}

// ---------------------------------------------------------------------------------------------
// Live migration (reactor/migration.h).

MigrationStatus Connection::MigrationBlocker() {
  if (finished_ || pending_close_ || fin_sent_ || peer_eof_ || state_ == ConnectionState::kClosing ||
      state_ == ConnectionState::kClosed) {
    return MigrationStatus::kClosing;
  }
  if (migrating_) return MigrationStatus::kAlreadyMoving;
  if (state_ == ConnectionState::kPaused || awaiting_ != 0) return MigrationStatus::kPaused;
  // A request boundary: reading, nothing read waiting for the handler, nothing owed to the
  // peer, nothing in flight, the handshake done.
  if (state_ != ConnectionState::kReading || in_callback_ || InputWaiting() != 0 || Queued() != 0 ||
      send_in_flight_ || (tls_ != nullptr && !tls_->handshake_done()) || handler_ == nullptr) {
    return MigrationStatus::kNotAtBoundary;
  }
  MigrationVote vote = MigrationVote::kNever;
  try {
    vote = handler_->CanMigrate(*this);
  } catch (...) {
    // A handler that cannot answer does not move; it stays as it was.
  }
  switch (vote) {
    case MigrationVote::kNow: return MigrationStatus::kMoved;
    case MigrationVote::kLater: return MigrationStatus::kNotAtBoundary;
    case MigrationVote::kNever: return MigrationStatus::kDeclined;
  }
  return MigrationStatus::kDeclined;
}

bool Connection::MayMigrate() {
  const MigrationStatus blocker = MigrationBlocker();
  if (blocker == MigrationStatus::kMoved) return true;
  if (blocker != MigrationStatus::kNotAtBoundary && blocker != MigrationStatus::kPaused) return false;
  if (handler_ == nullptr) return false;
  try {
    return handler_->CanMigrate(*this) != MigrationVote::kNever;
  } catch (...) {
    return false;
  }
}

void Connection::BeginMigration() {
  migrating_ = true;
  try {
    handler_->OnLeaving(*this);
  } catch (...) {
    // Bookkeeping only; the move goes on.
  }
  loop_.wheel().Cancel(this);  // the target arms its own from the deadlines carried over
  if (uring_ != nullptr) {
    if (recv_ == ReceiveState::kArmed) CancelReceive();
    if (hangup_watch_) uring_->Cancel(this, UringPoller::kOpHangup);
  } else if (!unwatched_) {
    (void)loop_.Unwatch(fd_);  // bytes from here on wait in the socket for the target
    unwatched_ = true;
    interest_ = 0;
  }
}

void Connection::SampleRate(int64_t now_ns) {
  const int64_t elapsed = now_ns - rate_mark_ns_;
  if (elapsed <= 0) return;
  const uint64_t requests = this->requests();
  const uint64_t bytes = bytes_in_ + bytes_out_;
  // 128-bit: a connection moving gigabytes per second over a period of seconds overflows 64.
  const auto per_sec = [elapsed](uint64_t delta) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(delta) * 1'000'000'000 /
                                 static_cast<uint64_t>(elapsed));
  };
  recent_requests_per_sec_ = per_sec(requests - rate_mark_requests_);
  recent_bytes_per_sec_ = per_sec(bytes - rate_mark_bytes_);
  rate_mark_ns_ = now_ns;
  rate_mark_requests_ = requests;
  rate_mark_bytes_ = bytes;
}

std::unique_ptr<Migrant> Connection::TakeMigrant(int tls_endpoint) {
  auto m = std::make_unique<Migrant>();
  m->fd = std::exchange(fd_, -1);
  m->peer = peer();
  m->service_index = service_index_;
  m->handler = std::move(handler_);
  if (tls_ != nullptr) {
    // At a boundary both wire buffers are empty: their blocks stay in this loop's pool.
    loop_.buffer_pool().Release(tls_->wire_in());
    loop_.buffer_pool().Release(tls_->wire_out());
    m->tls = std::move(tls_);
    m->tls_endpoint = tls_endpoint;
  }
  m->opened_ns = opened_ns_;
  m->last_activity_ns = last_activity_ns_;
  m->bytes_in = bytes_in_;
  m->bytes_out = bytes_out_;
  m->requests = requests_ + batch_requests_;
  m->recent_requests_per_sec = recent_requests_per_sec_;
  m->recent_bytes_per_sec = recent_bytes_per_sec_;
  m->handler_deadline_ns = handler_deadline_ns_;
  if (io_ != nullptr) {
    m->carried.assign(io_->input.view());
    m->carried.append(io_->stash.view());
    io_->input.Clear();
    io_->stash.Clear();
  }
  m->carried_eof = peer_eof_;
  m->from_loop = loop_.index();
  m->from_id = id_;
  finished_ = true;
  state_ = ConnectionState::kClosed;
  idle_timing_ = false;
  return m;
}

void Connection::Arrive(Migrant& m) {
  handler_ = std::move(m.handler);
  if (m.tls != nullptr) {
    tls_ = std::move(m.tls);
    tls_->UsePool(&loop_.buffer_pool());
    tls_stats_ = loop_.stats_.tls[static_cast<size_t>(m.tls_endpoint)].get();
  }
  opened_ns_ = m.opened_ns;
  last_activity_ns_ = m.last_activity_ns;
  bytes_in_ = m.bytes_in;
  bytes_out_ = m.bytes_out;
  requests_ = m.requests;
  // The rates it had keep describing it until the next sweep here measures it afresh.
  recent_requests_per_sec_ = m.recent_requests_per_sec;
  recent_bytes_per_sec_ = m.recent_bytes_per_sec;
  rate_mark_requests_ = requests_;
  rate_mark_bytes_ = bytes_in_ + bytes_out_;
  arrived_ns_ = loop_.now_ns();
  handler_deadline_ns_ = m.handler_deadline_ns;
  if (!BeginReading()) return;
  idle_timing_ = loop_.timeouts_.idle_ns > 0;
  RearmTimer();
  RunCallback([this] {
    handler_->OnMigrated(*this);
    return Action::Continue();
  });
  if (finished_) return;
  if (!m.carried.empty()) {
    // What the old loop's receive brought after the move began, before anything new.
    if (tls_ != nullptr) {
      tls_->Receive(m.carried);
      if (!DecryptInput()) return;
    } else {
      ConnectionIo& io = this->io();
      if (!io.input.has_storage()) loop_.buffer_pool().Attach(io.input);
      io.input.Append(m.carried);
    }
    Deliver();
    if (finished_) return;
  }
  if (m.carried_eof && !peer_eof_) {
    peer_eof_ = peer_fin_ = true;
    eof_unreported_ = true;
  }
  FlushAndDeliver();
}

void Connection::Finish(CloseReason reason) {
  if (finished_) return;
  finished_ = true;
  state_ = ConnectionState::kClosed;
  loop_.wheel().Cancel(this);
  idle_timing_ = false;
  handler_deadline_ns_ = io_deadline_ns_ = handshake_deadline_ns_ = kNoDeadline;
  if (uring_ != nullptr) {
    // What is in flight is cancelled; its completions still arrive, and the loop keeps this
    // connection (and the bytes of its send) until they have. The fd is closed through the
    // ring, after the cancellations: closed here, its number could be reused by an accept
    // before operations still queued for it were submitted.
    if (recv_ == ReceiveState::kArmed) CancelReceive();
    if (send_in_flight_) uring_->Cancel(this, UringPoller::kOpSend);
    if (hangup_watch_) uring_->Cancel(this, UringPoller::kOpHangup);
    uring_->Close(fd_);
  } else {
    // The socket is the connection's alone (never duplicated): closing it takes it out of the
    // epoll set, and Unwatch's EPOLL_CTL_DEL is skipped.
    if (!unwatched_) (void)loop_.UnwatchBeforeClose(fd_);
    CloseFd(fd_);
  }
  fd_ = -1;
  if (io_ != nullptr) {
    io_->input.Clear();
    io_->stash.Clear();
    io_->output.Clear();
    if (!send_in_flight_) io_->sending.Clear();
    loop_.buffer_pool().Release(io_->input);
    loop_.buffer_pool().Release(io_->stash);
    loop_.buffer_pool().Release(io_->output.bytes());
  }
  if (tls_ != nullptr) {
    tls_->wire_in().Clear();
    tls_->wire_out().Clear();
    loop_.buffer_pool().Release(tls_->wire_in());
    loop_.buffer_pool().Release(tls_->wire_out());
  }
  if (handler_) {
    try {
      handler_->OnClose(*this, reason);
    } catch (...) {
      // Nothing left to close; the connection is already counted under its reason.
    }
  }
  loop_.RetireConnection(this, reason);
}

void Connection::UpdateInterest() {
  if (finished_) return;
  if (uring_ != nullptr) {
    UpdateReceive();
    return;
  }
  uint32_t wanted = 0;
  switch (state_) {
    case ConnectionState::kReading:
      wanted = peer_eof_ ? 0u : uint32_t{kPollIn};
      if (HasOutput()) wanted |= kPollOut;
      break;
    case ConnectionState::kWriting:
    case ConnectionState::kPaused:
      if (HasOutput()) wanted = kPollOut;
      break;
    case ConnectionState::kClosing:
      wanted = fin_sent_ ? uint32_t{kPollIn} : uint32_t{kPollOut};
      break;
    default:
      break;
  }
  if (unwatched_) {
    if (wanted == 0) return;
    if (!loop_.Watch(fd_, wanted, this).ok()) {
      Finish(CloseReason::kIoError);
      return;
    }
    unwatched_ = false;
    interest_ = wanted;
    return;
  }
  if (wanted == interest_) return;
  if (!loop_.Rewatch(fd_, wanted).ok()) {
    Finish(CloseReason::kIoError);
    return;
  }
  interest_ = wanted;
}

void Connection::Touch() {
  last_activity_ns_ = loop_.now_ns();
  if (loop_.timeouts_.idle_ns > 0 && !idle_timing_) {
    idle_timing_ = true;
    ArmTimer(last_activity_ns_ + loop_.timeouts_.idle_ns);
  }
}

void Connection::ArmTimer(int64_t deadline_ns) {
  if (!TimerEntry::armed() || deadline_ns < TimerEntry::deadline_ns()) loop_.wheel().Schedule(this, deadline_ns);
}

void Connection::RearmTimer() {
  int64_t earliest = std::numeric_limits<int64_t>::max();
  if (io_deadline_ns_ != kNoDeadline) earliest = io_deadline_ns_;
  if (handler_deadline_ns_ != kNoDeadline) earliest = std::min(earliest, handler_deadline_ns_);
  if (handshake_deadline_ns_ != kNoDeadline) earliest = std::min(earliest, handshake_deadline_ns_);
  if (idle_timing_) {
    // Traffic only moves last_activity_ns_; the deadline it implies is taken here. While backed
    // up the connection is not idle (the write deadline governs it), so the idle check comes
    // back on the next tick.
    const int64_t idle = std::max(last_activity_ns_ + loop_.timeouts_.idle_ns, loop_.now_ns() + 1);
    earliest = std::min(earliest, idle);
  }
  if (earliest == std::numeric_limits<int64_t>::max()) {
    loop_.wheel().Cancel(this);
  } else {
    loop_.wheel().Schedule(this, earliest);
  }
}

// Fired (and disarmed) by the wheel at the earliest deadline it was armed for, which may since
// have moved later or been cleared: each deadline is checked against the time, what is due is
// done, and the entry re-arms for what remains.
void Connection::OnTimer() {
  if (finished_) return;
  const int64_t now = loop_.now_ns();
  if (handshake_deadline_ns_ != kNoDeadline && handshake_deadline_ns_ <= now) {
    tls_stats_->handshake_timeouts.Increment();
    Finish(CloseReason::kTlsHandshakeTimeout);
    return;
  }
  if (io_deadline_ns_ != kNoDeadline && io_deadline_ns_ <= now) {
    io_deadline_ns_ = kNoDeadline;
    OnIoTimeout();
    if (finished_) return;
  }
  if (handler_deadline_ns_ != kNoDeadline && handler_deadline_ns_ <= now) {
    handler_deadline_ns_ = kNoDeadline;
    OnHandlerDeadline();
    if (finished_) return;
  }
  if (idle_timing_ && last_activity_ns_ + loop_.timeouts_.idle_ns <= now &&
      state_ != ConnectionState::kWriting && state_ != ConnectionState::kClosing) {
    OnIdleTimeout();
    if (finished_) return;
  }
  RearmTimer();
  GiveBackIoIfIdle();
}

void Connection::OnIdleTimeout() { Finish(CloseReason::kIdleTimeout); }

void Connection::OnHandlerDeadline() {
  if (finished_ || state_ == ConnectionState::kClosing) return;
  RunCallback([this] { return handler_->OnDeadline(*this); });
  if (finished_) return;
  Flush();
  // As after OnOpen: OnWritable, when asked for (or when this write ended backpressure), cannot
  // wait for a POLLOUT that an empty output never gets.
  if (!finished_ && WantsOnWritable()) FlushAndDeliver();
}

void Connection::OnIoTimeout() {
  // While lingering, the deadline bounds how long we wait for the peer's FIN: the reply was
  // delivered, so the close keeps its reason. Otherwise the output made no progress in time.
  Finish(fin_sent_ ? close_reason_ : CloseReason::kWriteTimeout);
}

// ---------------------------------------------------------------------------------------------
// The completion back end (io_uring). The state machine above is shared; what differs is how
// bytes come in (a multishot receive into the loop's buffer ring, copied into the input) and go
// out (one send in flight at a time, from the sending queue, whose bytes stay put until it
// completes).

void Connection::UpdateReceive() {
  // Leaving for another loop: BeginMigration cancelled what was armed, and the target loop's
  // ring receives from here on.
  if (migrating_) return;
  bool want;
  if (fin_sent_) {
    want = true;  // lingering: read and discard until the peer's FIN
  } else if (peer_eof_ || finished_) {
    want = false;
  } else if (state_ == ConnectionState::kReading || state_ == ConnectionState::kClosing) {
    want = true;  // closing before our FIN: what arrives is discarded, as lingering would
  } else {
    // Paused or backed up: bytes keep arriving (into the stash) up to one read budget, then the
    // receive is cancelled until reading resumes (a pause per request costs nothing extra).
    want = (io_ == nullptr || io_->stash.size() < options_.read_budget) &&
           (tls_ == nullptr || tls_->wire_in().size() < options_.read_budget);
  }
  if (want && recv_ == ReceiveState::kIdle && !starved_) {
    uring_->Receive(fd_, this);
    recv_ = ReceiveState::kArmed;
    hangup_seen_ = false;
    if (hangup_watch_) uring_->Cancel(this, UringPoller::kOpHangup);
  } else if (!want && recv_ == ReceiveState::kArmed) {
    CancelReceive();
  } else if (!want && recv_ == ReceiveState::kIdle && !hangup_watch_ && !hangup_seen_ && !peer_eof_ && !finished_) {
    // Nothing of the connection is left in the kernel to notice a reset: watch for one.
    uring_->WatchHangup(fd_, this);
    hangup_watch_ = true;
  }
  // kCancelling: its last completion calls this again, and a receive is armed then if wanted;
  // never two at once, which could deliver bytes out of order.
}

void Connection::CancelReceive() {
  uring_->Cancel(this, UringPoller::kOpReceive);
  recv_ = ReceiveState::kCancelling;
}

void Connection::OnCompletion(const PollEvent& event) {
  try {
    HandleCompletion(event);
  } catch (...) {
    Finish(CloseReason::kHandlerError);  // as in OnIoEvent: it costs this connection only
  }
}

void Connection::HandleCompletion(const PollEvent& event) {
  if (event.op == UringPoller::kOpSend) {
    OnSendCompleted(event.result);
    return;
  }
  if (event.op == UringPoller::kOpHangup) {
    OnHangup(event.result);
    return;
  }
  bool rearm = false;
  if (!UringPoller::More(event)) {
    // The multishot receive has ended: cancelled, the peer's FIN, an error, or the kernel's
    // own reasons (the buffer ring ran dry, ENOBUFS). Unless we stopped it, it is re-armed.
    rearm = recv_ == ReceiveState::kArmed && event.result != 0;
    recv_ = ReceiveState::kIdle;
    if (rearm && event.result == -ENOBUFS && !finished_) {
      // Re-armed at once, it would find the ring as empty, fail again, and spin for as long as
      // every buffer is taken. The loop re-arms starved receives a ring's worth per iteration,
      // once the buffers this iteration's completions carried are back.
      starved_ = true;
      loop_.WaitForReceiveBuffers(id_);
      return;
    }
  }
  if (finished_) return;
  if (event.result > 0) {
    OnReceived(uring_->ReceivedBytes(event));
  } else if (event.result == 0) {
    OnPeerEof();
    return;
  } else {
    const int err = -event.result;
    if (err != ENOBUFS && err != ECANCELED && err != EINTR && err != EAGAIN) {
      // While lingering the reply is delivered: the close keeps its reason, as on epoll.
      Finish(fin_sent_ ? close_reason_ : ReasonForErrno(err));
      return;
    }
  }
  if (finished_ || recv_ != ReceiveState::kIdle) return;
  UpdateReceive();
  if (rearm && recv_ == ReceiveState::kArmed) loop_.stats().uring_multishot_rearms.Increment();
}

void Connection::OnReceived(std::string_view bytes) {
  if (fin_sent_ || state_ == ConnectionState::kClosing) return;  // closing: nothing more is read
  if (migrating_) {
    // Leaving for another loop: what the cancelled receive still brings goes along, in order.
    ConnectionIo& io = this->io();
    if (!io.input.has_storage()) loop_.buffer_pool().Attach(io.input);
    io.input.Append(bytes);
    bytes_in_ += bytes.size();
    loop_.stats().bytes_in.Add(bytes.size());
    return;
  }
  LoopStats& stats = loop_.stats();
  // Straight to the handler's input while it may take more; behind backpressure or a pause,
  // and behind bytes already waiting there, into the stash (Deliver takes them in order).
  ConnectionIo& io = this->io();
  if (tls_ != nullptr) {
    // Ciphertext waits in the session (it is the stash here) until the handler may take more.
    tls_->Receive(bytes);
    if (ShouldRead() && Unsent() <= options_.high_water && !DecryptInput()) return;
  } else if (io.stash.empty() && ShouldRead() && Unsent() <= options_.high_water) {
    if (!io.input.has_storage()) loop_.buffer_pool().Attach(io.input);
    io.input.Append(bytes);
  } else {
    if (!io.stash.has_storage()) loop_.buffer_pool().Attach(io.stash);
    io.stash.Append(bytes);
  }
  bytes_in_ += bytes.size();
  stats.bytes_in.Add(bytes.size());
  stats.read_calls.Increment();
  last_activity_ns_ = loop_.now_ns();
  if (ShouldRead()) {
    Deliver();
    if (finished_) return;
  }
  ReleaseInputUnlessReading();
  FlushAndDeliver();
}

void Connection::OnPeerEof() {
  peer_fin_ = true;
  if (migrating_) {
    peer_eof_ = true;  // goes along: the target reports it after the bytes before it
    return;
  }
  if (fin_sent_) {
    Finish(close_reason_);  // the peer has everything it will get
    return;
  }
  if (peer_eof_) return;  // already read directly (ServeArrived), or TLS close_notify came first
  peer_eof_ = true;
  if (state_ == ConnectionState::kClosing) return;  // completes when the output has drained
  // Reported by FlushAndDeliver, once what came before it was offered (and, when paused, after
  // Resume).
  eof_unreported_ = true;
  if (state_ == ConnectionState::kReading) FlushAndDeliver();
}

void Connection::OnHangup(int result) {
  hangup_watch_ = false;
  if (finished_ || result < 0) return;  // cancelled: a receive is armed again
  const int err = PendingSocketError(fd_);
  if (err != 0) {
    Finish(ReasonForErrno(err));
    return;
  }
  // The peer's FIN, behind bytes still in the socket: the receive reports it once reading
  // resumes. Not watched again meanwhile (the poll would fire at once, over and over).
  hangup_seen_ = true;
}

void Connection::SubmitSend() {
  if (send_in_flight_ || finished_) return;
  if (io_ == nullptr && (tls_ == nullptr || tls_->wire_out().empty())) return;
  ConnectionIo& io = this->io();
  if (io.sending.empty()) {
    if (tls_ != nullptr) {
      // The ciphertext becomes the send's; what is encrypted meanwhile goes to a fresh buffer.
      EncryptOutput();
      if (tls_->wire_out().empty()) return;
      io.sending.bytes().Swap(tls_->wire_out());
    } else {
      if (io.output.empty()) return;
      std::swap(io.sending, io.output);  // the queued bytes become the send's; new output starts afresh
    }
  }
  const size_t budget = WriteBudgetLeft();
  if (budget == 0) {
    // The rest goes out next iteration, after the other connections had their turn; nothing
    // else would bring this connection back (there is no POLLOUT here).
    loop_.stats().write_budget_yields.Increment();
    loop_.FlushNextIteration(id_);
    return;
  }
  size_t asked = 0;
  if (io.sending.shared_pieces() == 0) {
    asked = std::min(io.sending.size(), budget);
    uring_->Send(fd_, io.sending.bytes().data(), asked, this);
  } else {
    if (io.send_vector == nullptr) io.send_vector = std::make_unique<ConnectionIo::SendVector>();
    const int count = io.sending.Gather(budget, io.send_vector->iov, OutputQueue::kMaxPieces, &asked);
    io.send_vector->msg = msghdr{};
    io.send_vector->msg.msg_iov = io.send_vector->iov;
    io.send_vector->msg.msg_iovlen = static_cast<size_t>(count);
    uring_->SendMsg(fd_, &io.send_vector->msg, this);
  }
  if (asked == budget && Queued() > asked) loop_.stats().write_budget_yields.Increment();
  send_in_flight_ = true;
  io.send_asked = asked;
  write_budget_left_ = budget - asked;
  loop_.stats().write_calls.Increment();
}

void Connection::OnSendCompleted(int result) {
  send_in_flight_ = false;
  if (finished_) {
    io().sending.Clear();
    return;
  }
  if (result > 0) {
    const size_t wrote = static_cast<size_t>(result);
    io().sending.Consume(wrote);
    bytes_out_ += wrote;
    loop_.stats().bytes_out.Add(wrote);
    if (wrote < io().send_asked) loop_.stats().partial_writes.Increment();  // continues from there
    send_progressed_ = true;
  } else if (result == 0 || (-result != EINTR && -result != EAGAIN && -result != ECANCELED)) {
    Finish(result == 0 ? CloseReason::kIoError : ReasonForErrno(-result));
    return;
  }
  FlushAndDeliver();
}

void Connection::RearmStarvedReceive() {
  if (finished_ || !starved_) return;
  starved_ = false;
  UpdateReceive();
  if (recv_ == ReceiveState::kArmed) loop_.stats().uring_multishot_rearms.Increment();
}

void Connection::ContinueFlush() {
  if (finished_) return;
  try {
    FlushAndDeliver();
  } catch (...) {
    Finish(CloseReason::kHandlerError);
  }
}

CloseReason Connection::ReasonForErrno(int err) const {
  return (err == ECONNRESET || err == EPIPE) ? CloseReason::kPeerReset : CloseReason::kIoError;
}

}  // namespace percore
