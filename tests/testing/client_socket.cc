#include "tests/testing/client_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/errno_status.h"

namespace percore::test {
namespace {

// Waits until `fd` reports one of `events` (or an error/hang-up). DeadlineExceeded names
// `what` and the progress made so far.
absl::Status WaitFor(int fd, short events, Deadline deadline, std::string_view what) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, deadline.PollTimeoutMs());
    if (ready > 0) return absl::OkStatus();
    if (ready < 0 && errno != EINTR) return ErrnoStatus(errno, "poll");
    if (ready == 0 && deadline.expired()) {
      return absl::DeadlineExceededError(absl::string_view(what.data(), what.size()));
    }
  }
}

}  // namespace

ScopedFd::ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) reset(std::exchange(other.fd_, -1));
  return *this;
}

int ScopedFd::release() { return std::exchange(fd_, -1); }

void ScopedFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

SocketAddress LoopbackAddress(uint16_t port) {
  SocketAddress address;
  auto* in = reinterpret_cast<sockaddr_in*>(&address.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.length = sizeof(sockaddr_in);
  return address;
}

absl::StatusOr<ScopedFd> NewClientSocket(int family, const ConnectOptions& options) {
  ScopedFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  const int one = 1;
  if (::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    return ErrnoStatus(errno, "setsockopt(TCP_NODELAY)");
  }
  if (options.receive_buffer > 0 &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof(options.receive_buffer)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_RCVBUF)");
  }
  return fd;
}

absl::Status StartConnect(int fd, const SocketAddress& server) {
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&server.storage), server.length) == 0 || errno == EINPROGRESS) {
    return absl::OkStatus();
  }
  return ErrnoStatus(errno, absl::StrCat("connect ", server.ToString()));
}

absl::StatusOr<ScopedFd> ConnectTo(const SocketAddress& server, Deadline deadline, const ConnectOptions& options) {
  absl::StatusOr<ScopedFd> fd = NewClientSocket(server.storage.ss_family, options);
  if (!fd.ok()) return fd.status();
  if (absl::Status s = StartConnect(fd->get(), server); !s.ok()) return s;
  const std::string what = absl::StrCat("connect ", server.ToString());
  if (absl::Status s = WaitFor(fd->get(), POLLOUT, deadline, what); !s.ok()) return s;
  if (const int err = PendingSocketError(fd->get()); err != 0) return ErrnoStatus(err, what);
  return fd;
}

absl::StatusOr<ScopedFd> ConnectToLoopback(uint16_t port, Deadline deadline, const ConnectOptions& options) {
  return ConnectTo(LoopbackAddress(port), deadline, options);
}

absl::Status WriteAll(int fd, std::string_view bytes, Deadline deadline) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat("write after ", done, " of ", bytes.size(), " bytes"));
    }
    if (absl::Status s = WaitFor(fd, POLLOUT, deadline,
                                 absl::StrCat("write: ", done, " of ", bytes.size(), " bytes written"));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadExactly(int fd, size_t n, Deadline deadline) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    // Errors quote what did arrive: a short reply is usually a different reply, not a slow one.
    auto so_far = [&] { return absl::CEscape(absl::string_view(out.data(), got)); };
    if (r == 0) {
      return absl::OutOfRangeError(absl::StrCat("EOF after ", got, " of ", n, " bytes: \"", so_far(), "\""));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno,
                         absl::StrCat("read after ", got, " of ", n, " bytes: \"", so_far(), "\""));
    }
    if (absl::Status s = WaitFor(fd, POLLIN, deadline,
                                 absl::StrCat("read: ", got, " of ", n, " bytes read: \"", so_far(), "\""));
        !s.ok()) {
      return s;
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadToEof(int fd, Deadline deadline, size_t limit) {
  std::string out;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t r = ::recv(fd, chunk, sizeof(chunk), 0);
    if (r > 0) {
      if (out.size() + static_cast<size_t>(r) > limit) {
        return absl::ResourceExhaustedError(absl::StrCat("more than ", limit, " bytes before EOF"));
      }
      out.append(chunk, static_cast<size_t>(r));
      continue;
    }
    if (r == 0) return out;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat("read after ", out.size(), " bytes"));
    }
    if (absl::Status s =
            WaitFor(fd, POLLIN, deadline, absl::StrCat("EOF not seen after ", out.size(), " bytes"));
        !s.ok()) {
      return s;
    }
  }
}

absl::Status ExpectEof(int fd, Deadline deadline) {
  for (;;) {
    char byte;
    const ssize_t r = ::recv(fd, &byte, 1, MSG_PEEK);
    if (r == 0) return absl::OkStatus();
    if (r > 0) {
      int pending = 0;
      ::ioctl(fd, FIONREAD, &pending);
      return absl::FailedPreconditionError(absl::StrCat("expected EOF, found ", pending, " bytes first"));
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoStatus(errno, "read (expecting EOF)");
    if (absl::Status s = WaitFor(fd, POLLIN, deadline, "EOF not seen"); !s.ok()) return s;
  }
}

absl::StatusOr<std::string> ReadUntilEofOrReset(int fd, Deadline deadline) {
  std::string got;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t r = ::recv(fd, chunk, sizeof(chunk), 0);
    if (r > 0) {
      got.append(chunk, static_cast<size_t>(r));
      continue;
    }
    if (r == 0) return got;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET || errno == EPIPE) return got;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat("read after ", got.size(), " bytes"));
    }
    if (absl::Status s = WaitFor(fd, POLLIN, deadline, absl::StrCat("no EOF or reset after ", got.size(), " bytes"));
        !s.ok()) {
      return s;
    }
  }
}

absl::Status WaitReadable(int fd, Deadline deadline) {
  return WaitFor(fd, POLLIN, deadline, "socket did not become readable");
}

absl::Status ResetOnClose(int fd) {
  const linger option{1, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof(option)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_LINGER)");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> LocalPort(int fd) {
  absl::StatusOr<SocketAddress> local = LocalAddress(fd);
  if (!local.ok()) return local.status();
  return local->port();
}

absl::StatusOr<rlim_t> RaiseOpenFileLimit(rlim_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoStatus(errno, "getrlimit(RLIMIT_NOFILE)");
  if (limit.rlim_cur >= wanted) return limit.rlim_cur;
  limit.rlim_cur = std::min(wanted, limit.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return ErrnoStatus(errno, "setrlimit(RLIMIT_NOFILE)");
  return limit.rlim_cur;
}

}  // namespace percore::test
