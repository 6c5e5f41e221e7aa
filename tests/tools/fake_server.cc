#include "tests/tools/fake_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace percore::test {

FakeServer::FakeServer(ReplyFn reply, bool close_on_accept)
    : reply_(std::move(reply)), close_on_accept_(close_on_accept) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 128) != 0 || getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    std::abort();  // the test cannot run without its server
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

FakeServer::~FakeServer() {
  const char stop = 's';
  (void)!write(stop_pipe_[1], &stop, 1);
  thread_.join();
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
}

void FakeServer::Serve() {
  std::map<int, std::string> clients;  // fd -> unanswered input
  while (true) {
    std::vector<pollfd> fds = {{stop_pipe_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const auto& [fd, unused] : clients) fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents) break;
    if (fds[1].revents) {
      while (true) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);  // blocking socket
        if (fd < 0) break;
        if (close_on_accept_) {
          close(fd);
        } else {
          clients[fd];
        }
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      char buf[64 * 1024];
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fd);
        clients.erase(fd);
        continue;
      }
      std::string& unanswered = clients[fd];
      unanswered.append(buf, static_cast<size_t>(n));
      const std::string out = reply_(unanswered);
      size_t sent = 0;
      while (sent < out.size()) {
        const ssize_t w = send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (w <= 0) break;
        sent += static_cast<size_t>(w);
      }
    }
  }
  for (const auto& [fd, unused] : clients) close(fd);
}

}  // namespace percore::test
