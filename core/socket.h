#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace percore {

// A TCP endpoint as written on a command line: "HOST:PORT", "[V6]:PORT" or ":PORT" (all
// interfaces). Port 0 asks the kernel for a free port.
struct HostPort {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;
};

absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

// A socket address of either family, as returned by accept/getsockname.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  std::string ToString() const;  // "1.2.3.4:5" or "[::1]:5"
  uint16_t port() const;
};

absl::StatusOr<SocketAddress> ResolveNumeric(const HostPort& endpoint);

struct ListenOptions {
  int backlog = 4096;
  bool reuse_port = false;
};

// Creates a non-blocking, close-on-exec listening TCP socket bound to `endpoint`.
absl::StatusOr<int> ListenTcp(const HostPort& endpoint, const ListenOptions& options = {});

// The address a socket is bound to (for listeners on port 0) and the peer of a connected one.
absl::StatusOr<SocketAddress> LocalAddress(int fd);
absl::StatusOr<SocketAddress> PeerAddress(int fd);

// Small setters used on accepted sockets; they report failure as a Status.
absl::Status SetNoDelay(int fd, bool on);
absl::Status SetNonBlocking(int fd, bool on);

// SO_ERROR of a socket (0 when none).
int PendingSocketError(int fd);

// Retries close() never (Linux frees the fd even on EINTR); keeps errno intact for the caller.
void CloseFd(int fd);

}  // namespace percore
