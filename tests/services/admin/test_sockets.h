#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace percore::testing {

// Blocking loopback client sockets for tests. Every wait has a deadline (poll with a timeout),
// so a broken server fails the test instead of hanging it.

// A connected TCP socket to 127.0.0.1:port, or -1.
int ConnectLoopback(uint16_t port);
bool SendAll(int fd, std::string_view bytes);
// Reads exactly `n` bytes within `timeout_ms`; false on EOF, error or timeout.
bool ReadExactly(int fd, size_t n, std::string* out, int timeout_ms = 5000);
// True if the peer closes (EOF or reset) within `timeout_ms`; bytes that arrive first are
// discarded.
bool WaitForEof(int fd, int timeout_ms = 5000);
// True if nothing (no byte, no EOF) arrives within `timeout_ms`.
bool StaysQuiet(int fd, int timeout_ms);

}  // namespace percore::testing

#include "reactor/server.h"

namespace percore::testing {

// Server options with `loops` loops and every other field at its default.
inline ServerOptions LoopsOnly(int loops) {
  ServerOptions options;
  options.loops = loops;
  return options;
}

}  // namespace percore::testing
