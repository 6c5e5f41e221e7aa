#include "core/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/errno_status.h"

namespace percore {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text_in) {
  const absl::string_view text(text_in.data(), text_in.size());
  HostPort out;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", text, "': want [V6]:PORT"));
    }
    if (close == 1) return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", text, "': empty host"));
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", text, "': want HOST:PORT"));
    }
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad endpoint '", text, "': write IPv6 as [V6]:PORT"));
    }
    port_text = text.substr(colon + 1);
  }
  // Plain digits only: SimpleAtoi alone would also take signs and surrounding spaces.
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in '", text, "'"));
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in '", text, "'"));
  }
  out.port = static_cast<uint16_t>(port);
  if (out.host.empty()) out.host = "0.0.0.0";
  if (out.host == "localhost") out.host = "127.0.0.1";
  return out;
}

std::string SocketAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(in->sin_port));
  }
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    return absl::StrCat("[", text, "]:", ntohs(in6->sin6_port));
  }
  if (storage.ss_family == AF_UNIX) return "unix";
  return "?";
}

uint16_t SocketAddress::port() const {
  if (storage.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (storage.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

absl::StatusOr<SocketAddress> ResolveNumeric(const HostPort& endpoint) {
  SocketAddress out;
  auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
  if (inet_pton(AF_INET, endpoint.host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(endpoint.port);
    out.length = sizeof(sockaddr_in);
    return out;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET6, endpoint.host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(endpoint.port);
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", endpoint.host, "' is not a numeric IPv4 or IPv6 address"));
}

absl::StatusOr<int> ListenTcp(const HostPort& endpoint, const ListenOptions& options) {
  absl::StatusOr<SocketAddress> address = ResolveNumeric(endpoint);
  if (!address.ok()) return address.status();
  const int fd = ::socket(address->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    const int err = errno;
    CloseFd(fd);
    return ErrnoStatus(err, "setsockopt(SO_REUSEPORT)");
  }
  // Sockets accepted from this one inherit TCP_NODELAY (Linux copies the listener's options
  // into each new connection), so no connection needs its own setsockopt: replies leave as soon
  // as they are written instead of a second small write waiting for the peer's delayed ACK
  // (~40 ms) behind Nagle's algorithm.
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    const int err = errno;
    CloseFd(fd);
    return ErrnoStatus(err, "setsockopt(TCP_NODELAY)");
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address->storage), address->length) != 0) {
    const int err = errno;
    CloseFd(fd);
    return ErrnoStatus(err, absl::StrCat("bind ", endpoint.ToString()));
  }
  if (::listen(fd, options.backlog) != 0) {
    const int err = errno;
    CloseFd(fd);
    return ErrnoStatus(err, absl::StrCat("listen ", endpoint.ToString()));
  }
  return fd;
}

absl::StatusOr<SocketAddress> LocalAddress(int fd) {
  SocketAddress out;
  out.length = sizeof(out.storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.length) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  return out;
}

absl::StatusOr<SocketAddress> PeerAddress(int fd) {
  SocketAddress out;
  out.length = sizeof(out.storage);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.length) != 0) {
    return ErrnoStatus(errno, "getpeername");
  }
  return out;
}

absl::Status SetNoDelay(int fd, bool on) {
  const int value = on ? 1 : 0;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value)) != 0) {
    return ErrnoStatus(errno, "setsockopt(TCP_NODELAY)");
  }
  return absl::OkStatus();
}

absl::Status SetNonBlocking(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0) return ErrnoStatus(errno, "fcntl(F_GETFL)");
  const int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) != 0) return ErrnoStatus(errno, "fcntl(F_SETFL)");
  return absl::OkStatus();
}

int PendingSocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void CloseFd(int fd) {
  const int saved = errno;
  ::close(fd);
  errno = saved;
}

}  // namespace percore
