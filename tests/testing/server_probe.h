#pragma once

#include <cstdint>
#include <map>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "reactor/close_reason.h"
#include "reactor/event_loop.h"
#include "reactor/loop_stats.h"
#include "reactor/server.h"
#include "tests/testing/deadline.h"

namespace percore::test {

// Looks inside a running Server the way an operator would, from the test's thread: reads the
// lock-free stats, and posts work to a loop for anything that must touch loop-owned state.

// Runs `fn` on `loop`'s thread (EventLoop::Post) and waits until it has run. Returns false if
// the loop dropped it (it had stopped) or `deadline` passed first; in the latter case `fn` may
// still run later, so the caller should fail the test at once rather than carry on.
bool RunOnLoop(EventLoop& loop, absl::AnyInvocable<void()> fn, Deadline deadline);

// Sum of one statistic over all loops.
uint64_t SumOverLoops(Server& server, absl::FunctionRef<uint64_t(const LoopStats&)> field);
// Closes counted under `reason`, over all loops.
uint64_t ClosedOverLoops(Server& server, CloseReason reason);

// Which loop holds each open connection, keyed by the connection's peer port (the client's
// local port, MultiClient::local_port). Empty if a loop does not answer by `deadline`.
std::map<uint16_t, int> LoopByPeerPort(Server& server, Deadline deadline);

}  // namespace percore::test
