#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "core/buffer.h"
#include "reactor/close_reason.h"

namespace percore {

class Connection;
class EventLoop;
class ShardedBase;
struct ConnectionOptions;

// How a connection closes: kFlush writes what is queued first (then a lingering close, so the
// peer reads it all), kNow discards queued output and closes at once (resets, hostile peers).
enum class CloseMode : uint8_t { kFlush, kNow };

// What the framework does after a handler callback returns.
class Action {
 public:
  enum class Kind : uint8_t { kContinue, kPause, kCloseAfterWrite, kCloseNow };

  // Keep reading; the handler has consumed what it could (a partial message may stay in input).
  static Action Continue() { return Action(Kind::kContinue, CloseReason::kServiceClose); }
  // Stop reading until the handler calls Connection::Resume() (on this loop). Output queued so
  // far is still written.
  static Action Pause() { return Action(Kind::kPause, CloseReason::kServiceClose); }
  // Read nothing more; flush the output, then close, counted under `reason`.
  static Action CloseAfterWrite(CloseReason reason = CloseReason::kServiceClose) {
    return Action(Kind::kCloseAfterWrite, reason);
  }
  // Close at once, discarding queued output (for resets and hostile peers).
  static Action CloseNow(CloseReason reason) { return Action(Kind::kCloseNow, reason); }
  // Either of the two, by `mode`.
  static Action Close(CloseMode mode, CloseReason reason) {
    return mode == CloseMode::kFlush ? CloseAfterWrite(reason) : CloseNow(reason);
  }

  Kind kind() const { return kind_; }
  CloseReason reason() const { return reason_; }

 private:
  Action(Kind kind, CloseReason reason) : kind_(kind), reason_(reason) {}
  Kind kind_;
  CloseReason reason_;
};

// A handler's answer to a live migration of its connection (Handler::CanMigrate).
enum class MigrationVote : uint8_t {
  kNow,    // it may move now
  kLater,  // not now (it holds something of this loop, a request under way): ask again
  kNever,  // it does not move
};

// The per-connection half of a service: a state machine the connection's loop drives.
// Every method runs on that loop's thread, one at a time; a handler never needs a lock for its
// own state. Replies go to the connection's output (Connection::Send / output()); the framework
// writes them after the callback returns, coalescing everything queued in one write.
//
// Backpressure, the one rule: output is backed up when Connection::above_high_water() is true,
// that is when the bytes not yet handed to the kernel exceed ConnectionOptions::high_water.
// Between callbacks the framework keeps the rule itself: it stops reading and stops calling
// OnData while output is backed up, and resumes (OnWritable, then OnData with what is left of
// the input) once it drains to low_water. Inside one OnData, a handler that can produce much
// more output than it consumed input (pipelined reads of large values) checks
// above_high_water() between requests and returns Continue() with the rest left in `input`;
// the framework offers it again once the output has drained. A handler that streams one large
// reply in pieces stops adding pieces when above_high_water() and continues in OnWritable
// (Connection::RequestWritable). Nothing else is needed: small replies need no check at all.
//
// Requests are counted by the framework: a handler calls Connection::RecordRequest when it has
// queued a reply to a request it read in this callback, or takes Connection::BeginRequest()
// when the request starts and passes it to EndRequest when a deferred reply is queued. The
// framework reads the clock; a service never does.
class Handler {
 public:
  virtual ~Handler() = default;

  // The connection is on its loop and about to be read. May queue a greeting.
  virtual void OnOpen(Connection& conn) {}

  // New bytes arrived. `input` holds everything not yet consumed, oldest first: parse complete
  // messages, Consume() them, queue replies. Leaving a partial message in `input` is normal;
  // OnData is called again when more arrives. Also called when the connection resumes with
  // unconsumed input (after Pause or backpressure).
  virtual Action OnData(Connection& conn, Buffer& input) = 0;

  // Output that had backed up (the peer read slowly) drained below the low-water mark and
  // reading restarts. For handlers that produce output in pieces (large responses).
  virtual void OnWritable(Connection& conn) {}

  // The peer sent FIN. Input holds whatever it sent last, already offered to OnData.
  // The default finishes: flush what is queued, then close (half-close semantics).
  virtual Action OnPeerClosed(Connection& conn) { return Action::CloseAfterWrite(CloseReason::kPeerClosed); }

  // The handler's own deadline (Connection::SetDeadline) passed.
  virtual Action OnDeadline(Connection& conn) { return Action::CloseNow(CloseReason::kReadTimeout); }

  // The connection is closed (fd already closed); last call. Release what the handler holds.
  virtual void OnClose(Connection& conn, CloseReason reason) {}

  // Live migration (reactor/migration.h): the framework asks, at a request boundary of the
  // connection (nothing unread, nothing queued, not paused), whether it may move to another
  // loop now. kNow promises that the handler keeps nothing of this loop's that it cannot give
  // up or re-bind in OnMigrated: references into per-loop state are re-bound there, per-request
  // state borrowed from this loop must have been given back. The default, kNever, is the safe
  // one for a handler that does not know about migration.
  virtual MigrationVote CanMigrate(Connection& conn) { return MigrationVote::kNever; }
  // It said kNow and is leaving this loop (still on it, nothing more is read here): undo what
  // this loop counts for the connection (a per-loop connection count).
  virtual void OnLeaving(Connection& conn) {}
  // The connection has arrived on its new loop (conn.loop()), before anything more is read:
  // re-bind per-loop state. Its id is a new one (conn.id()); handles taken before do not reach
  // it any more.
  virtual void OnMigrated(Connection& conn) {}
};

// A protocol: makes one Handler per connection. One Service object is shared by every loop, so
// anything it keeps must be immutable after Server::Start or safe across threads; per-loop state
// belongs in OnLoopStart.
class Service {
 public:
  Service() = default;
  virtual ~Service() = default;
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Short, stable name: "echo", "http", ... Used in --listen, stats and logs.
  virtual std::string_view name() const = 0;

  // Server::Start asks every service whether its own limits can work with the connections'
  // (`loops` loops, each connection with `connection`): an error names the combination that
  // cannot (for example an item size no store shard can hold), and Start fails with it.
  virtual absl::Status CheckLimits(const ConnectionOptions& connection, int loops) const {
    return absl::OkStatus();
  }

  // Runs on each loop's thread before it accepts connections (per-loop caches, store shards).
  virtual void OnLoopStart(EventLoop& loop) {}

  // Runs on `conn`'s loop for every new connection. Never returns null.
  virtual std::unique_ptr<Handler> NewHandler(Connection& conn) = 0;

  // Bytes sent (best effort, never blocking) to a connection refused because the server is at
  // its connection limit, just before it is closed. Empty: close silently. HTTP answers 503.
  virtual std::string_view OverloadResponse() const { return {}; }

  // The per-loop state (Sharded<T>) declared by this service; the framework builds each on every
  // loop's thread before OnLoopStart.
  const std::vector<ShardedBase*>& sharded_state() const { return sharded_; }

 private:
  friend class ShardedBase;  // registers itself on construction
  std::vector<ShardedBase*> sharded_;
};

}  // namespace percore
