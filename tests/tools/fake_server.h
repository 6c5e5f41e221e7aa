#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace percore::test {

// A deliberately misbehaving TCP server on 127.0.0.1 (port 0), for testing that a client
// notices. It serves every connection on one thread with poll(): what a connection has sent
// and not yet been answered is passed to `reply`, which consumes the bytes it answers (erasing
// them from the string) and returns the bytes to send back. Stops on destruction.
class FakeServer {
 public:
  using ReplyFn = std::function<std::string(std::string& unanswered)>;

  // `close_on_accept`: every connection is closed as soon as it is accepted.
  explicit FakeServer(ReplyFn reply, bool close_on_accept = false);
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  void Serve();

  ReplyFn reply_;
  bool close_on_accept_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace percore::test
