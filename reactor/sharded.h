#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "reactor/close_reason.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"
#include "reactor/handler.h"

namespace percore {

class Server;

// Which loop owns a piece of sharded state: the owning loop's index(), 0 .. count() - 1.
using ShardId = int;

// What a shard's factory learns about the shard it builds.
struct ShardInfo {
  ShardId index = 0;  // this shard's owner
  int count = 1;      // how many shards there are (one per loop)
};

// The hash that places keys on shards: 64-bit FNV-1a over the key's bytes. It is fixed (not
// std::hash, which differs between standard libraries and may change) so that placement is the
// same for every build, and it differs from the hash tables' own (absl's), so the keys of one
// shard still spread evenly over a table inside it.
uint64_t ShardHash(std::string_view key);

// The type-independent half of Sharded<T>: registration with the service, the loops, placement.
class ShardedBase {
 public:
  ShardedBase(const ShardedBase&) = delete;
  ShardedBase& operator=(const ShardedBase&) = delete;

  // How many shards there are: one per loop of the server. Valid once the server started.
  int count() const { return count_; }
  // The shard that owns `key`: ShardHash(key) mod count(). Thread-safe once the server started.
  ShardId OwnerOf(std::string_view key) const {
    return count_ <= 1 ? 0 : static_cast<ShardId>(ShardHash(key) % static_cast<uint64_t>(count_));
  }
  // Loop thread only: the calling loop's own shard id.
  ShardId here() const;
  bool IsLocal(ShardId owner) const { return owner == here(); }
  // The loop that owns shard `owner`.
  EventLoop& owner_loop(ShardId owner) const { return *loops_[owner]; }

 protected:
  explicit ShardedBase(Service& service);
  explicit ShardedBase(Server& server);
  virtual ~ShardedBase();

 private:
  friend class EventLoop;
  friend class Server;
  // Server::Start, before any loop thread starts: one shard per loop of `loops`, in order.
  void Prepare(const std::vector<EventLoop*>& loops);
  // On `loop`'s thread, before its services' OnLoopStart: builds the loop's shard. A loop run
  // on its own (no Server) owns the one and only shard; it must have index 0.
  void BuildOn(EventLoop& loop);
  virtual void ResetSlots(int count) = 0;
  virtual void BuildSlot(ShardId index) = 0;

  std::mutex prepare_mu_;  // Prepare and a standalone loop's BuildOn
  std::vector<EventLoop*> loops_;
  int count_ = 0;
};

// State of type T split across the loops: one T per loop, built on that loop's thread before it
// accepts connections, and touched only by that thread afterwards (no locks). A handler reaches
// its own loop's T with local(), and another loop's T only through Call, Await or Post, which
// run the work on the owner's thread.
//
// Declared as a member of the Service, which registers it (or registered with the Server, for
// state that is not one service's: `percore::Sharded<T> state{server}` before Server::Start):
//
//   class CounterService final : public percore::Service {
//     ...
//     percore::Sharded<CounterShard> shards_{*this};
//   };
//
// `make` builds one shard (default: T's default constructor) and learns which it is and how
// many there are, for splitting a budget (a memory limit) or interleaving ids. The shards are
// destroyed with the Sharded, after the server has stopped.
template <typename T>
class Sharded final : public ShardedBase {
 public:
  using Factory = std::function<std::unique_ptr<T>(const ShardInfo&)>;

  explicit Sharded(Service& service, Factory make = [](const ShardInfo&) { return std::make_unique<T>(); })
      : ShardedBase(service), make_(std::move(make)) {}
  // State that is not one service's (routes of the HTTP service, state several services share):
  // registered with the server, before Start; it must outlive the server's loops.
  explicit Sharded(Server& server, Factory make = [](const ShardInfo&) { return std::make_unique<T>(); })
      : ShardedBase(server), make_(std::move(make)) {}

  // Loop thread only: this loop's T.
  T& local() const { return *owned_[here()]; }

  // From a callback of `conn` (on its loop). Runs `work(T&)` on the owner's thread, then
  // `then(conn, result)` back on `conn`'s loop as a callback of that connection: what it queues
  // is written, and an exception it throws closes the connection (kHandlerError); a
  // RecordRequest in it is timed from the callback that made the call. When the owner is this
  // loop both run at once, before Call returns. If the connection closed (or began closing)
  // meanwhile, the result is dropped (destroyed on `conn`'s loop) and `then` does not run; so
  // `then` may use the connection's handler (it lives as long as the connection). Work that
  // throws closes the connection as kHandlerError; the owner's loop carries on. Answers of
  // calls to different owners may arrive in any order; a handler that pipelines keeps its own
  // order (memcache does), or uses Await, which reads nothing more until the answer is in.
  // `work` returns R (possibly void); `then` is then(Connection&, R) or then(Connection&).
  template <typename Work, typename Then>
  void Call(Connection& conn, ShardId owner, Work work, Then then) {
    if (IsLocal(owner)) {
      RunInline(conn, std::move(work), std::move(then));
      return;
    }
    Send(conn, owner, std::move(work), std::move(then), /*resume=*/false);
  }

  // Call for a handler that waits: returns the Action that OnData (or another callback) returns.
  // Local owner: everything ran already, Continue(). Remote: Pause(); the connection reads
  // nothing until `then` has run, and resumes after it (unless `then` closed it, or it awaits
  // another call). So requests are answered in the order they arrived.
  template <typename Work, typename Then>
  Action Await(Connection& conn, ShardId owner, Work work, Then then) {
    if (IsLocal(owner)) {
      RunInline(conn, std::move(work), std::move(then));
      return Action::Continue();
    }
    Send(conn, owner, std::move(work), std::move(then), /*resume=*/true);
    return Action::Pause();
  }

  // From any loop thread: runs `work(T&)` on the owner's thread; nothing comes back. Work that
  // throws is logged and counted on the owner (LoopStats::task_errors).
  template <typename Work>
  void Post(ShardId owner, Work work) {
    if (IsLocal(owner)) {
      work(local());
      return;
    }
    owner_loop(owner).Post([this, owner, work = std::move(work)]() mutable { work(*owned_[owner]); });
  }

  // Any thread: `fn(ShardId, const T&)` for every shard built so far. Only what T keeps readable
  // from other threads may be read there (Counter, Gauge, atomics): how statistics are summed.
  template <typename Fn>
  void ForEachShard(Fn&& fn) const {
    for (int i = 0; i < count(); ++i) {
      if (const T* shard = published_[i].load(std::memory_order_acquire)) fn(i, *shard);
    }
  }

 private:
  void ResetSlots(int count) override {
    owned_.clear();
    owned_.resize(count);
    published_ = std::make_unique<std::atomic<const T*>[]>(count);
    for (int i = 0; i < count; ++i) published_[i].store(nullptr, std::memory_order_relaxed);
  }
  void BuildSlot(ShardId index) override {
    owned_[index] = make_(ShardInfo{index, count()});
    published_[index].store(owned_[index].get(), std::memory_order_release);
  }

  template <typename Work, typename Then>
  void RunInline(Connection& conn, Work work, Then then) {
    T& shard = local();
    if constexpr (std::is_void_v<std::invoke_result_t<Work&, T&>>) {
      work(shard);
      then(conn);
    } else {
      then(conn, work(shard));
    }
  }

  template <typename Work, typename Then>
  void Send(Connection& conn, ShardId owner, Work work, Then then, bool resume) {
    using R = std::invoke_result_t<Work&, T&>;
    // void results travel as an empty marker.
    using Carried = std::conditional_t<std::is_void_v<R>, bool, R>;
    EventLoop* origin = &conn.loop();
    const uint64_t id = conn.id();
    const RequestStart start = conn.BeginRequest();
    if (resume) conn.BeginAwait();
    // The owner's shard is looked up on the owner's thread: a loop builds its shard before it
    // runs any posted work, and may not have built it yet when this is posted.
    owner_loop(owner).Post([this, owner, origin, id, start, resume, work = std::move(work),
                            then = std::move(then)]() mutable {
      T& shard = *owned_[owner];
      std::optional<Carried> result;
      try {
        if constexpr (std::is_void_v<R>) {
          work(shard);
          result.emplace(true);
        } else {
          result.emplace(work(shard));
        }
      } catch (...) {
        result.reset();  // the connection learns of it as a handler error
      }
      origin->PostToConnection(id, [start, resume, result = std::move(result),
                                    then = std::move(then)](Connection& c) mutable {
        // A connection closing by the handler's choice has given up on the answer.
        if (c.state() == ConnectionState::kClosing) return;
        c.ContinueRequest(start);
        if (!result.has_value()) {
          c.Close(CloseReason::kHandlerError, CloseMode::kNow);
          return;
        }
        if constexpr (std::is_void_v<R>) {
          then(c);
        } else {
          then(c, std::move(*result));
        }
        if (resume) c.EndAwait();
      });
    });
  }

  Factory make_;
  std::vector<std::unique_ptr<T>> owned_;                 // by shard id; written before use
  std::unique_ptr<std::atomic<const T*>[]> published_;    // the same, for ForEachShard
};

}  // namespace percore
