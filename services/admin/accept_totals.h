#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "reactor/distributor.h"
#include "reactor/server.h"

namespace percore {

// The accepting side of a server summed over every accepting thread: the distributor, or in
// reuseport mode every loop's acceptor for every endpoint. Read lock-free; thread-safe.
struct AcceptTotals {
  bool reuseport = false;
  uint64_t accepted = 0;
  uint64_t rejected_global_limit = 0;
  uint64_t rejected_loop_limit = 0;
  uint64_t rejected_no_loop = 0;
  uint64_t backoffs = 0;
  uint64_t wakeups = 0;
  uint64_t placed_by_load = 0;
  uint64_t placed_by_connections = 0;
  std::array<uint64_t, AcceptCounters::kMaxErrno + 1> accept_errors{};  // by errno
  // Connections handed to each loop: the distributor's count, or in reuseport mode what each
  // loop took in itself.
  std::vector<uint64_t> handed;
  // Handed to each loop and not taken in yet (zeros in reuseport mode).
  std::vector<uint64_t> pending;
};

AcceptTotals SumAcceptCounters(Server& server);

// "EMFILE" for EMFILE; "other" for the last slot of AcceptCounters::accept_errors (anything
// larger); "E<n>" for a number without a name.
std::string ErrnoName(int err);

}  // namespace percore
