#pragma once

#include <cstdint>
#include <map>

#include "absl/functional/any_invocable.h"
#include "reactor/close_reason.h"
#include "reactor/event_loop.h"
#include "reactor/loop_stats.h"
#include "reactor/server.h"
#include "tests/testing/deadline.h"

namespace percore::test {

// Looks inside a running Server from the test's thread, for what its lock-free stats do not
// show (those are Server::Totals and EventLoop::stats): posts work to a loop to touch the
// state the loop owns.

// Runs `fn` on `loop`'s thread (EventLoop::Post) and waits until it has run. Returns false if
// the loop dropped it (it had stopped) or `deadline` passed first; in the latter case `fn` may
// still run later, so the caller should fail the test at once rather than carry on.
bool RunOnLoop(EventLoop& loop, absl::AnyInvocable<void()> fn, Deadline deadline);

// Which loop holds each open connection, keyed by the connection's peer port (the client's
// local port, MultiClient::local_port). Empty if a loop does not answer by `deadline`.
std::map<uint16_t, int> LoopByPeerPort(Server& server, Deadline deadline);

// The id of each open connection, keyed the same way.
std::map<uint16_t, uint64_t> IdByPeerPort(Server& server, Deadline deadline);

}  // namespace percore::test
