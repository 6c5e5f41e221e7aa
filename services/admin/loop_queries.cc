#include "services/admin/loop_queries.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/clock.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"

namespace percore {
namespace {

// Where the loops' answers meet the waiting admin thread.
template <typename T>
struct ReplySlot {
  explicit ReplySlot(size_t n) : replies(n) {}
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<T>> replies;  // guarded by mu
  size_t missing = 0;                     // guarded by mu

  void Put(size_t i, T value) {
    std::lock_guard<std::mutex> lock(mu);
    replies[i] = std::move(value);
    --missing;
    cv.notify_all();
  }
};

// Posts `make(loop)` to each loop in `loops` and waits until all have answered or the timeout
// passes. Returns the answers by position; std::nullopt for a loop that did not answer.
template <typename T, typename Make>
std::vector<std::optional<T>> AskLoops(Server& server, const std::vector<int>& loops, absl::Duration timeout,
                                       Make make) {
  auto slot = std::make_shared<ReplySlot<T>>(loops.size());
  slot->missing = loops.size();
  for (size_t k = 0; k < loops.size(); ++k) {
    EventLoop* loop = &server.loop(loops[k]);
    loop->Post([slot, k, loop, make] { slot->Put(k, make(*loop)); });
  }
  std::unique_lock<std::mutex> lock(slot->mu);
  const auto answered = [&] { return slot->missing == 0; };
  const std::chrono::nanoseconds wait = absl::ToChronoNanoseconds(timeout);
  // An infinite timeout saturates to nanoseconds::max(), which wait_for would overflow.
  if (wait == std::chrono::nanoseconds::max()) {
    slot->cv.wait(lock, answered);
  } else {
    slot->cv.wait_for(lock, wait, answered);
  }
  return slot->replies;  // a copy: late answers may still arrive in the slot
}

ConnectionRecord Describe(Connection& c, MonoTime now) {
  ConnectionRecord r;
  r.id = c.id();
  r.loop = c.loop().index();
  r.service = std::string(c.loop().service(c.service_index())->name());
  r.peer = c.peer().ToString();
  r.state = std::string(ConnectionStateName(c.state()));
  const ConnectionStats stats = c.stats();
  r.age = now - stats.opened;
  r.idle = now - stats.last_activity;
  r.bytes_in = c.bytes_in();
  r.bytes_out = c.bytes_out();
  r.requests = c.requests();
  r.queued_output = c.queued_output();
  r.recent_requests_per_sec = c.recent_requests_per_sec();
  r.recent_bytes_per_sec = c.recent_bytes_per_sec();
  if (const TlsSession* tls = c.tls()) {
    r.tls_version = std::string(tls->version());
    r.tls_alpn = std::string(tls->alpn());
    r.tls_resumed = tls->resumed();
    r.tls_ktls = tls->ktls_send() || tls->ktls_receive();
  }
  return r;
}

}  // namespace

ConnectionListing ListConnections(Server& server, const ConnectionFilter& filter, absl::Duration timeout) {
  ConnectionListing listing;
  if (!server.running()) return listing;
  std::vector<int> loops;
  for (int i = 0; i < server.loop_count(); ++i) {
    if (!filter.loop.has_value() || *filter.loop == i) loops.push_back(i);
  }
  auto gather = [filter](EventLoop& loop) {
    std::vector<ConnectionRecord> records;
    const MonoTime now = MonoTime::Now();
    loop.ForEachConnection([&](Connection& c) {
      if (c.id() <= filter.after_id) return;
      if (!filter.state.empty() && ConnectionStateName(c.state()) != filter.state) return;
      if (!filter.service.empty() && loop.service(c.service_index())->name() != filter.service) return;
      records.push_back(Describe(c, now));
    });
    return records;
  };
  std::vector<std::optional<std::vector<ConnectionRecord>>> replies =
      AskLoops<std::vector<ConnectionRecord>>(server, loops, timeout, gather);
  for (size_t k = 0; k < loops.size(); ++k) {
    if (!replies[k].has_value()) {
      listing.stalled_loops.push_back(loops[k]);
      continue;
    }
    for (ConnectionRecord& r : *replies[k]) listing.connections.push_back(std::move(r));
  }
  std::sort(listing.connections.begin(), listing.connections.end(),
            [](const ConnectionRecord& a, const ConnectionRecord& b) { return a.id < b.id; });
  return listing;
}

absl::Status CloseConnection(Server& server, uint64_t id, absl::Duration timeout) {
  if (!server.running()) return absl::UnavailableError("the server is not running");
  const uint64_t loop = id >> 48;
  if (loop >= static_cast<uint64_t>(server.loop_count())) {
    return absl::NotFoundError(absl::StrCat("no connection ", id, " (no loop ", loop, ")"));
  }
  // The loop answers with a plain bool: an absl::Status made there and read here would share
  // its reference-counted payload between threads, which the uninstrumented system Abseil
  // hides from ThreadSanitizer.
  auto close = [id](EventLoop& l) {
    Connection* c = l.FindConnection(id);
    if (c == nullptr) return false;
    c->Close(CloseReason::kAdminClose, CloseMode::kNow);
    return true;
  };
  std::vector<std::optional<bool>> replies =
      AskLoops<bool>(server, {static_cast<int>(loop)}, timeout, close);
  if (!replies[0].has_value()) {
    return absl::DeadlineExceededError(absl::StrCat("loop ", loop, " did not answer in time (stalled)"));
  }
  if (!*replies[0]) return absl::NotFoundError(absl::StrCat("no connection ", id, " is open"));
  return absl::OkStatus();
}

}  // namespace percore
