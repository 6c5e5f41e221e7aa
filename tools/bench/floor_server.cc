// floor_server: the least a server can do per request on this machine, as the benchmarks'
// floor. One thread, one epoll loop, and per wake-up of a connection one read() and one
// write(): no framework, no parser beyond counting request ends, no timers, no statistics.
//
//   floor_server --mode=echo --port=7100   writes back every byte it reads
//   floor_server --mode=http --port=7101   answers each request (each "\r\n\r\n" seen) with the
//                                          same canned 200 response, pipelining included
//
// Runs until killed. Listens on 127.0.0.1 unless --host says otherwise.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

// The same header set percore's /plaintext sends (with a frozen Date), so bytes per reply match.
constexpr std::string_view kCannedResponse =
    "HTTP/1.1 200 OK\r\n"
    "Server: floor\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Length: 13\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello, World!";

constexpr size_t kReadSize = 64 * 1024;

struct Conn {
  int fd = -1;
  int matched = 0;      // http: bytes of "\r\n\r\n" matched at the end of the last read
  std::string backlog;  // bytes the socket did not take; reading stops until they are sent
};

bool http_mode = false;
int epoll_fd = -1;
std::vector<Conn> conns;  // indexed by fd

// Counts complete request ends in `data`, carrying a partial "\r\n\r\n" across reads.
int CountRequestEnds(const char* data, size_t n, int* matched) {
  static constexpr char kEnd[] = "\r\n\r\n";
  int ends = 0;
  int m = *matched;
  for (size_t i = 0; i < n; ++i) {
    if (data[i] == kEnd[m]) {
      if (++m == 4) {
        ++ends;
        m = 0;
      }
    } else {
      m = data[i] == '\r' ? 1 : 0;
    }
  }
  *matched = m;
  return ends;
}

void CloseConn(Conn& c) {
  close(c.fd);  // also leaves the epoll set
  c.fd = -1;
  c.backlog.clear();
}

void Watch(int fd, uint32_t events, int op) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(epoll_fd, op, fd, &ev);
}

// Writes `data`; what does not fit waits in the backlog with reading paused.
void Send(Conn& c, const char* data, size_t n) {
  const ssize_t w = write(c.fd, data, n);
  if (w < 0 && errno != EAGAIN) {
    CloseConn(c);
    return;
  }
  const size_t sent = w < 0 ? 0 : static_cast<size_t>(w);
  if (sent < n) {
    c.backlog.assign(data + sent, n - sent);
    Watch(c.fd, EPOLLOUT, EPOLL_CTL_MOD);
  }
}

void OnReadable(Conn& c) {
  static char buf[kReadSize];
  static std::string replies;
  const ssize_t n = read(c.fd, buf, sizeof(buf));
  if (n <= 0) {
    if (n == 0 || errno != EAGAIN) CloseConn(c);
    return;
  }
  if (!http_mode) {
    Send(c, buf, static_cast<size_t>(n));
    return;
  }
  const int ends = CountRequestEnds(buf, static_cast<size_t>(n), &c.matched);
  if (ends == 0) return;
  replies.clear();
  for (int i = 0; i < ends; ++i) replies.append(kCannedResponse);
  Send(c, replies.data(), replies.size());
}

void OnWritable(Conn& c) {
  const ssize_t w = write(c.fd, c.backlog.data(), c.backlog.size());
  if (w < 0) {
    if (errno != EAGAIN) CloseConn(c);
    return;
  }
  c.backlog.erase(0, static_cast<size_t>(w));
  if (c.backlog.empty()) Watch(c.fd, EPOLLIN, EPOLL_CTL_MOD);
}

int Listen(const char* host, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 4096) != 0) {
    std::perror("floor_server: listen");
    std::exit(1);
  }
  return fd;
}

void Usage() {
  std::fprintf(stderr, "usage: floor_server --mode=echo|http --port=N [--host=127.0.0.1]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  std::string mode;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, 7) == "--mode=") {
      mode = std::string(arg.substr(7));
    } else if (arg.substr(0, 7) == "--port=") {
      port = std::atoi(argv[i] + 7);
    } else if (arg.substr(0, 7) == "--host=") {
      host = argv[i] + 7;
    } else {
      Usage();
    }
  }
  if ((mode != "echo" && mode != "http") || port <= 0) Usage();
  http_mode = mode == "http";

  const int listen_fd = Listen(host, port);
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  Watch(listen_fd, EPOLLIN, EPOLL_CTL_ADD);
  std::printf("floor_server: %s on %s:%d\n", mode.c_str(), host, port);
  std::fflush(stdout);

  epoll_event events[256];
  while (true) {
    const int n = epoll_wait(epoll_fd, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listen_fd) {
        int c;
        while ((c = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          const int on = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
          if (static_cast<size_t>(c) >= conns.size()) conns.resize(static_cast<size_t>(c) + 1024);
          conns[c] = Conn{c, 0, {}};
          Watch(c, EPOLLIN, EPOLL_CTL_ADD);
        }
        continue;
      }
      Conn& conn = conns[fd];
      if (conn.fd < 0) continue;
      if (events[i].events & EPOLLOUT) {
        OnWritable(conn);
      } else {
        OnReadable(conn);
      }
    }
  }
}
