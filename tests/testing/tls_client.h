#pragma once

// A TLS client for the tests: OpenSSL's, on a connected loopback socket, non-blocking with a
// deadline on every step. It verifies the server's chain against `ca_file` and the name
// "localhost" (the test certificates' name), and offers ALPN "http/1.1".

#include <openssl/ssl.h>

#include <string>

#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::test {

class TlsClient {
 public:
  // max_version: TLS1_2_VERSION or TLS1_3_VERSION to cap the version; 0 for the default.
  TlsClient(ScopedFd fd, const std::string& ca_file, int max_version = 0);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  SSL* ssl() { return ssl_; }
  int fd() { return fd_.get(); }

  // Repeats an OpenSSL call while it wants to read or write, waiting on the socket in between;
  // returns its last result (> 0: done), or -1 when `deadline` passes.
  template <typename Fn>
  int Drive(Fn fn, Deadline deadline) {
    for (;;) {
      const int r = fn();
      if (r > 0) return r;
      if (!WaitFor(SSL_get_error(ssl_, r), deadline)) return r;
    }
  }
  // The handshake, resuming `resume` if given. True when it completed.
  bool Handshake(SSL_SESSION* resume = nullptr, Deadline deadline = Deadline::In(absl::Seconds(10)));
  bool Write(const std::string& bytes, Deadline deadline = Deadline::In(absl::Seconds(10)));
  // Reads exactly n bytes; fewer if the stream ends or the deadline passes.
  std::string Read(size_t n, Deadline deadline = Deadline::In(absl::Seconds(10)));
  // Whether the server's close_notify is the next thing to arrive.
  bool SeesCloseNotify(Deadline deadline = Deadline::In(absl::Seconds(10)));
  // Sends close_notify.
  void Shutdown();

 private:
  // After a call failed with `ssl_error`: waits for the socket when it asks to; false when the
  // failure is final or the deadline passed.
  bool WaitFor(int ssl_error, Deadline deadline);

  ScopedFd fd_;
  SSL_CTX* ctx_;
  SSL* ssl_;
};

}  // namespace percore::test
