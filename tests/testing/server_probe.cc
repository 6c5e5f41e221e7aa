#include "tests/testing/server_probe.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include "reactor/connection.h"

namespace percore::test {
namespace {

// Tells the waiter when the task has run or been destroyed unrun.
struct Completion {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  bool ran = false;
};

class CompletionGuard {
 public:
  explicit CompletionGuard(std::shared_ptr<Completion> c) : c_(std::move(c)) {}
  CompletionGuard(CompletionGuard&& other) noexcept = default;
  CompletionGuard& operator=(CompletionGuard&&) = delete;
  ~CompletionGuard() {
    if (c_ == nullptr) return;
    std::lock_guard<std::mutex> lock(c_->mu);
    c_->finished = true;
    c_->cv.notify_all();
  }
  void MarkRan() {
    std::lock_guard<std::mutex> lock(c_->mu);
    c_->ran = true;
  }

 private:
  std::shared_ptr<Completion> c_;
};

}  // namespace

bool RunOnLoop(EventLoop& loop, absl::AnyInvocable<void()> fn, Deadline deadline) {
  auto completion = std::make_shared<Completion>();
  loop.Post([fn = std::move(fn), guard = CompletionGuard(completion)]() mutable {
    fn();
    guard.MarkRan();
  });
  std::unique_lock<std::mutex> lock(completion->mu);
  const bool finished = completion->cv.wait_for(lock, absl::ToChronoNanoseconds(deadline.remaining()),
                                                [&] { return completion->finished; });
  return finished && completion->ran;
}

std::map<uint16_t, int> LoopByPeerPort(Server& server, Deadline deadline) {
  std::map<uint16_t, int> out;
  for (int i = 0; i < server.loop_count(); ++i) {
    EventLoop& loop = server.loop(i);
    auto ports = std::make_shared<std::vector<uint16_t>>();
    const bool ran = RunOnLoop(
        loop,
        [&loop, ports] { loop.ForEachConnection([&](Connection& c) { ports->push_back(c.peer().port()); }); },
        deadline);
    if (!ran) return {};
    for (uint16_t port : *ports) out[port] = i;
  }
  return out;
}

std::map<uint16_t, uint64_t> IdByPeerPort(Server& server, Deadline deadline) {
  std::map<uint16_t, uint64_t> out;
  for (int i = 0; i < server.loop_count(); ++i) {
    EventLoop& loop = server.loop(i);
    auto ids = std::make_shared<std::vector<std::pair<uint16_t, uint64_t>>>();
    const bool ran = RunOnLoop(
        loop, [&loop, ids] { loop.ForEachConnection([&](Connection& c) { ids->emplace_back(c.peer().port(), c.id()); }); },
        deadline);
    if (!ran) return {};
    for (auto [port, id] : *ids) out[port] = id;
  }
  return out;
}

}  // namespace percore::test
