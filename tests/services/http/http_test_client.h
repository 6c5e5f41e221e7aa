#pragma once

// A blocking HTTP/1.1 test client over a real loopback socket, and a fixture that runs a
// percore::Server with the HTTP service, on the tests' client-socket library: every wait has a
// deadline.

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "services/http/http_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/http_requests.h"
#include "tests/testing/test_backend.h"

namespace percore::http_test {

inline constexpr int kWaitMs = 10'000;

struct Response {
  std::string raw;          // every byte of the response
  std::string status_line;  // without CRLF
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string Header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (absl::EqualsIgnoreCase(n, absl::string_view(name.data(), name.size()))) return v;
    }
    return "";
  }
  bool HasHeader(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (absl::EqualsIgnoreCase(n, absl::string_view(name.data(), name.size()))) return true;
    }
    return false;
  }
};

class Client {
 public:
  explicit Client(uint16_t port) {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port, test::Deadline::In(absl::Milliseconds(kWaitMs)));
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (fd.ok()) fd_ = std::move(*fd);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  bool Send(std::string_view bytes) {
    return test::WriteAll(fd_.get(), bytes, test::Deadline::In(absl::Milliseconds(kWaitMs))).ok();
  }

  // Reads one response: head, then a Content-Length body (none for HEAD or bodiless statuses).
  // False on timeout, EOF or a malformed response.
  bool Read(Response* out, bool head_request = false) {
    *out = Response();
    size_t head_end;
    while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    head_end += 4;
    const std::string head = pending_.substr(0, head_end);
    size_t line_end = head.find("\r\n");
    out->status_line = head.substr(0, line_end);
    size_t pos = line_end + 2;
    while (pos < head_end - 2) {
      line_end = head.find("\r\n", pos);
      const std::string line = head.substr(pos, line_end - pos);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) return false;
      size_t value_begin = colon + 1;
      while (value_begin < line.size() && line[value_begin] == ' ') ++value_begin;
      out->headers.emplace_back(line.substr(0, colon), line.substr(value_begin));
      pos = line_end + 2;
    }
    size_t body_size = 0;
    const int status = std::atoi(out->status_line.substr(9, 3).c_str());
    if (!head_request && status >= 200 && status != 204 && status != 304) {
      body_size = static_cast<size_t>(std::stoull("0" + out->Header("Content-Length")));
    }
    while (pending_.size() < head_end + body_size) {
      if (!Fill()) return false;
    }
    out->raw = pending_.substr(0, head_end + body_size);
    out->body = pending_.substr(head_end, body_size);
    pending_.erase(0, head_end + body_size);
    return true;
  }

  Response Get(std::string_view path) {
    Response response;
    EXPECT_TRUE(Send(test::HttpGet(path)));
    EXPECT_TRUE(Read(&response)) << "no response to GET " << path;
    return response;
  }

  // Waits for the peer's FIN (or a reset) with nothing else arriving first.
  bool WaitForClose() {
    if (!pending_.empty()) return false;
    char byte;
    if (!test::WaitReadable(fd_.get(), test::Deadline::In(absl::Milliseconds(kWaitMs))).ok()) return false;
    const ssize_t n = ::recv(fd_.get(), &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // Everything until EOF (bounded by the wait deadline).
  std::string ReadToEof() {
    std::string all = std::move(pending_);
    pending_.clear();
    while (Fill()) {
    }
    all += pending_;
    pending_.clear();
    return all;
  }

  const std::string& pending() const { return pending_; }

 private:
  bool Fill() {
    if (!test::WaitReadable(fd_.get(), test::Deadline::In(absl::Milliseconds(kWaitMs))).ok()) return false;
    char chunk[16384];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    pending_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  test::ScopedFd fd_;
  std::string pending_;
};

// Runs a two-loop server with one HTTP service on 127.0.0.1, port 0, and `more` services
// that listen nowhere (for the per-loop state they declare, which the routes may use).
class HttpServer {
 public:
  explicit HttpServer(HttpOptions options = {}, ServerOptions server_options = TwoLoops(),
                      std::vector<std::shared_ptr<Service>> more = {})
      : server_(std::move(server_options)) {
    EXPECT_TRUE(server_.AddService(NewHttpService(std::move(options))).ok());
    for (auto& service : more) EXPECT_TRUE(server_.AddService(std::move(service)).ok());
    auto listener = server_.Listen("http", {"127.0.0.1", 0});
    EXPECT_TRUE(listener.ok()) << listener.status();
    if (listener.ok()) port_ = listener->bound.port();
    EXPECT_TRUE(server_.Start().ok());
  }
  ~HttpServer() { server_.Stop(); }

  static ServerOptions TwoLoops() {
    ServerOptions options;
    options.loops = 2;
    options.backend = test::TestBackend();
    return options;
  }

  uint16_t port() const { return port_; }
  Server& server() { return server_; }

  // The service's figures over the loops. Call after Stop().
  uint64_t Requests() { return server_.Totals().services.at(0).requests; }
  uint64_t Errors() { return server_.Totals().services.at(0).errors; }
  uint64_t Closed(CloseReason reason) { return server_.Totals().closed_by(reason); }

 private:
  Server server_;
  uint16_t port_ = 0;
};

}  // namespace percore::http_test
