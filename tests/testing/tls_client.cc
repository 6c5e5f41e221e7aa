#include "tests/testing/tls_client.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>

#include <algorithm>

namespace percore::test {

TlsClient::TlsClient(ScopedFd fd, const std::string& ca_file, int max_version) : fd_(std::move(fd)) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_, max_version);
  ssl_ = SSL_new(ctx_);
  SSL_set1_host(ssl_, "localhost");
  SSL_set_tlsext_host_name(ssl_, "localhost");
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_set_alpn_protos(ssl_, kAlpn, sizeof(kAlpn) - 1);
  ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
  SSL_set_fd(ssl_, fd_.get());
}

TlsClient::~TlsClient() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

bool TlsClient::WaitFor(int ssl_error, Deadline deadline) {
  if (ssl_error != SSL_ERROR_WANT_READ && ssl_error != SSL_ERROR_WANT_WRITE) return false;
  pollfd p{fd_.get(), static_cast<short>(ssl_error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
  return !deadline.expired() && ::poll(&p, 1, deadline.PollTimeoutMs()) > 0;
}

bool TlsClient::Handshake(SSL_SESSION* resume, Deadline deadline) {
  if (resume != nullptr) SSL_set_session(ssl_, resume);
  ERR_clear_error();
  return Drive([&] { return SSL_connect(ssl_); }, deadline) == 1;
}

bool TlsClient::Write(const std::string& bytes, Deadline deadline) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    size_t n = 0;
    if (Drive([&] { return SSL_write_ex(ssl_, bytes.data() + sent, bytes.size() - sent, &n); }, deadline) != 1) {
      return false;
    }
    sent += n;
  }
  return true;
}

std::string TlsClient::Read(size_t n, Deadline deadline) {
  std::string got;
  char chunk[16384];
  while (got.size() < n) {
    size_t k = 0;
    if (Drive([&] { return SSL_read_ex(ssl_, chunk, std::min(sizeof(chunk), n - got.size()), &k); }, deadline) != 1) {
      break;
    }
    got.append(chunk, k);
  }
  return got;
}

bool TlsClient::SeesCloseNotify(Deadline deadline) {
  char byte;
  size_t k = 0;
  int r = 0;
  for (;;) {
    r = SSL_read_ex(ssl_, &byte, 1, &k);
    if (r == 1) return false;  // bytes, not the end
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_ZERO_RETURN) return true;
    if (!WaitFor(e, deadline)) return false;
  }
}

void TlsClient::Shutdown() {
  Drive([&] { return SSL_shutdown(ssl_) >= 0 ? 1 : -1; }, Deadline::In(absl::Seconds(5)));
}

}  // namespace percore::test
