#pragma once

#include <sys/resource.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/socket.h"
#include "tests/testing/deadline.h"

namespace percore::test {

// Owns one file descriptor; closes it on destruction. Move-only.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept;
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release();
  // Closes the current fd (if any) and owns `fd` instead.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Blocking-style client helpers for tests. Every socket they make is non-blocking, and every
// call that may wait takes a Deadline and waits in poll(): a test that goes wrong fails with a
// status naming what it was waiting for, instead of hanging. Failures are:
//   DeadlineExceeded  the deadline passed (the message says how far the call got),
//   OutOfRange        the peer closed (EOF) before the call was satisfied,
//   Unavailable       the connection was reset (ECONNRESET/EPIPE),
//   other codes       any other socket error, as errno describes it.

// How a client socket is made.
struct ConnectOptions {
  // SO_RCVBUF in bytes, set before the connect so that the TCP window stays that small: the
  // server can run ahead of a slow reader by little more. Zero: the kernel's default.
  int receive_buffer = 0;
};

// Connects a new TCP socket to `server`, with TCP_NODELAY on, and returns it non-blocking.
absl::StatusOr<ScopedFd> ConnectTo(const SocketAddress& server, Deadline deadline,
                                   const ConnectOptions& options = {});
// The same, to 127.0.0.1:`port` (a server listening on loopback port 0 reports its port).
absl::StatusOr<ScopedFd> ConnectToLoopback(uint16_t port, Deadline deadline, const ConnectOptions& options = {});
// The loopback address of `port`, for ConnectTo and MultiClient.
SocketAddress LoopbackAddress(uint16_t port);

// ConnectTo in two halves, for tests that make their sockets before the connect (while file
// descriptors are still to be had) or drive many connects at once: a new non-blocking TCP
// socket of `family` with TCP_NODELAY and `options`, and a connect that does not wait (OK once
// it is under way; the socket turns writable when it completes).
absl::StatusOr<ScopedFd> NewClientSocket(int family = AF_INET, const ConnectOptions& options = {});
absl::Status StartConnect(int fd, const SocketAddress& server);

// Writes all of `bytes`.
absl::Status WriteAll(int fd, std::string_view bytes, Deadline deadline);

// Reads exactly `n` bytes.
absl::StatusOr<std::string> ReadExactly(int fd, size_t n, Deadline deadline);

// Reads until the peer's EOF and returns everything read. At most `limit` bytes are
// accepted; more is an error (ResourceExhausted), so a peer that never stops cannot exhaust
// the test's memory.
absl::StatusOr<std::string> ReadToEof(int fd, Deadline deadline, size_t limit = size_t{1} << 30);

// Succeeds when the next thing on the socket is EOF; any byte before it is an error
// (FailedPrecondition, with the count).
absl::Status ExpectEof(int fd, Deadline deadline);

// Reads until the connection ends, by EOF or by a reset, and returns the bytes that came
// first (a reply cut short by a close). Only the deadline or another error fails.
absl::StatusOr<std::string> ReadUntilEofOrReset(int fd, Deadline deadline);

// Succeeds when the socket is readable (data, EOF or an error is pending), without reading.
absl::Status WaitReadable(int fd, Deadline deadline);

// Makes close(fd) send an RST instead of a FIN (SO_LINGER on with a zero timeout).
absl::Status ResetOnClose(int fd);

// The local port of a connected socket (the server sees it as the peer's port).
absl::StatusOr<uint16_t> LocalPort(int fd);

// Raises this process's soft RLIMIT_NOFILE to at least `wanted` (capped at the hard limit)
// and returns the soft limit in force afterwards.
absl::StatusOr<rlim_t> RaiseOpenFileLimit(rlim_t wanted);

}  // namespace percore::test
