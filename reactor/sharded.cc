#include "reactor/sharded.h"

#include <cstdio>
#include <cstdlib>

namespace percore {

uint64_t ShardHash(std::string_view key) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64-bit offset basis
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;  // FNV-1a 64-bit prime
  }
  return h;
}

ShardedBase::ShardedBase(Service& service) { service.sharded_.push_back(this); }
// ShardedBase(Server&) is defined with the Server (server.cc).

ShardedBase::~ShardedBase() = default;

ShardId ShardedBase::here() const {
  EventLoop* loop = EventLoop::Current();
  if (loop == nullptr) {
    std::fprintf(stderr, "percore: sharded state used outside a loop thread\n");
    std::abort();
  }
  return loop->index();
}

void ShardedBase::Prepare(const std::vector<EventLoop*>& loops) {
  std::lock_guard<std::mutex> lock(prepare_mu_);
  loops_ = loops;
  count_ = static_cast<int>(loops.size());
  ResetSlots(count_);
}

void ShardedBase::BuildOn(EventLoop& loop) {
  {
    std::lock_guard<std::mutex> lock(prepare_mu_);
    if (loops_.empty()) {  // a loop run on its own, without a Server
      loops_ = {&loop};
      count_ = 1;
      ResetSlots(1);
    }
    if (loop.index() >= count_ || loops_[loop.index()] != &loop) {
      std::fprintf(stderr, "percore: loop %d is not one of the loops its sharded state was prepared for\n",
                   loop.index());
      std::abort();
    }
  }
  BuildSlot(loop.index());
}

}  // namespace percore
