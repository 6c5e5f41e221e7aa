#include "core/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace percore {
namespace {

// The newest error on this thread's OpenSSL queue, as text, and the queue emptied (it is
// per-thread: left behind, it would be reported by the next call on the same loop).
std::string TakeOpenSslError() {
  std::string text;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text = buffer;  // the last is the most specific
  }
  return text.empty() ? "no detail from OpenSSL" : text;
}

absl::Status FileError(const std::string& what, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("TLS ", what, " ", path, ": ", std::strerror(errno)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("TLS ", what, " ", path, ": not usable PEM (", TakeOpenSslError(), ")"));
}

absl::Time AsnTime(const ASN1_TIME* time) {
  struct tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* offered,
               unsigned int offered_length, void* arg) {
  const std::string& ours = *static_cast<const std::string*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_length, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned int>(ours.size()), offered,
                            offered_length) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: go on without ALPN
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// The reasons OpenSSL gives when what arrived is not a TLS record at all.
bool ReasonIsNotTls(int reason) {
  return reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST ||
         reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_UNKNOWN_PROTOCOL ||
         reason == SSL_R_PACKET_LENGTH_TOO_LONG;
}

// BIO controls OpenSSL sends a BIO it asks to take over the record layer (its header reserves
// these numbers for them: include/openssl/bio.h, "internal BIO").
constexpr int kBioSetKtls = 72;               // arg: 1 for sending, 0 for receiving; ptr: keys
constexpr int kBioSetKtlsControlMessage = 74;  // arg: the record type of the next write
constexpr int kBioClearKtlsControlMessage = 75;

// The size of the kernel's key structure for a cipher (linux/tls.h); 0 for one it lacks.
size_t KernelCryptoInfoSize(uint16_t cipher) {
  switch (cipher) {
    case TLS_CIPHER_AES_GCM_128: return sizeof(tls12_crypto_info_aes_gcm_128);
    case TLS_CIPHER_AES_GCM_256: return sizeof(tls12_crypto_info_aes_gcm_256);
    case TLS_CIPHER_AES_CCM_128: return sizeof(tls12_crypto_info_aes_ccm_128);
    case TLS_CIPHER_CHACHA20_POLY1305: return sizeof(tls12_crypto_info_chacha20_poly1305);
    default: return 0;
  }
}

}  // namespace

bool KernelHasTls() {
  static const bool has = [] {
    std::ifstream ulp("/proc/sys/net/ipv4/tcp_available_ulp");
    std::string word;
    while (ulp >> word) {
      if (word == "tls") return true;
    }
    return false;
  }();
  return has;
}

// ---------------------------------------------------------------------------------------------
// TlsContext

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Create(const TlsOptions& options) {
  return Build(options, nullptr);
}

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Reload() const { return Build(options_, this); }

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Build(const TlsOptions& options,
                                                                    const TlsContext* carry_tickets_from) {
  if (options.cert_file.empty() || options.key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs a certificate and a key (--tls_cert and --tls_key)");
  }
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) return absl::InternalError(absl::StrCat("SSL_CTX_new: ", TakeOpenSslError()));
  std::shared_ptr<TlsContext> context(new TlsContext(raw, options));
  SSL_CTX* ctx = context->ctx_;

  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  uint64_t flags = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
  if (options.ktls) flags |= SSL_OP_ENABLE_KTLS;
  SSL_CTX_set_options(ctx, flags);
  // An idle connection holds no record buffers; writes may come from a different address when
  // retried (the output queue moves).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Resumption by tickets only: stateless, so a ticket one loop issued resumes on any other
  // (every loop shares this context and its ticket keys), with no cache shared between threads.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 1);

  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
    return FileError("certificate", options.cert_file);
  }
  bool mismatch = false;
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const unsigned long code = ERR_peek_last_error();
    mismatch = ERR_GET_LIB(code) == ERR_LIB_X509 && (ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH ||
                                                                ERR_GET_REASON(code) == X509_R_KEY_TYPE_MISMATCH);
    if (!mismatch) return FileError("key", options.key_file);
  }
  if (mismatch || SSL_CTX_check_private_key(ctx) != 1) {
    TakeOpenSslError();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", options.key_file, " does not match the certificate in ", options.cert_file));
  }
  X509* cert = SSL_CTX_get0_certificate(ctx);
  const absl::Time now = absl::Now();
  const absl::Time not_before = AsnTime(X509_get0_notBefore(cert));
  context->not_after_ = AsnTime(X509_get0_notAfter(cert));
  if (context->not_after_ <= now) {
    return absl::InvalidArgumentError(absl::StrCat("TLS certificate ", options.cert_file, " expired on ",
                                                   absl::FormatTime(context->not_after_, absl::UTCTimeZone())));
  }
  if (not_before > now) {
    return absl::InvalidArgumentError(absl::StrCat("TLS certificate ", options.cert_file, " is not valid until ",
                                                   absl::FormatTime(not_before, absl::UTCTimeZone())));
  }
  char subject[512];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
  context->subject_ = subject;

  for (const std::string& protocol : options.alpn) {
    if (protocol.empty() || protocol.size() > 255) {
      return absl::InvalidArgumentError(absl::StrCat("TLS ALPN protocol name of ", protocol.size(), " bytes"));
    }
    context->alpn_wire_.push_back(static_cast<char>(protocol.size()));
    context->alpn_wire_ += protocol;
  }
  if (!context->alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, &context->alpn_wire_);

  if (carry_tickets_from != nullptr) {
    unsigned char keys[80];
    if (SSL_CTX_get_tlsext_ticket_keys(carry_tickets_from->ctx_, keys, sizeof(keys)) > 0) {
      SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys));
    }
    OPENSSL_cleanse(keys, sizeof(keys));
  }
  ERR_clear_error();
  return std::shared_ptr<const TlsContext>(std::move(context));
}

// ---------------------------------------------------------------------------------------------
// The session's BIO: reads from wire_in_, writes to wire_out_; never a system call.

struct TlsBio {
  static BIO_METHOD* Method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "percore buffers");
      BIO_meth_set_write_ex(m, Write);
      BIO_meth_set_read_ex(m, Read);
      BIO_meth_set_ctrl(m, Ctrl);
      BIO_meth_set_create(m, [](BIO* bio) {
        BIO_set_init(bio, 1);
        return 1;
      });
      return m;
    }();
    return method;
  }

  static int Write(BIO* bio, const char* data, size_t n, size_t* written) {
    BIO_clear_retry_flags(bio);
    TlsSession* session = static_cast<TlsSession*>(BIO_get_data(bio));
    if (session->control_record_type_ != 0) {
      // kTLS: a record other than application data goes out now, typed by a control message.
      const int type = std::exchange(session->control_record_type_, 0);
      if (!session->SendControlRecord(type, data, n)) return 0;
    } else {
      session->wire_out_.Append(data, n);  // ciphertext, or with kTLS plaintext for the kernel
    }
    *written = n;
    return 1;
  }

  static int Read(BIO* bio, char* out, size_t n, size_t* read) {
    BIO_clear_retry_flags(bio);
    Buffer& in = static_cast<TlsSession*>(BIO_get_data(bio))->wire_in_;
    if (in.empty()) {
      BIO_set_retry_read(bio);  // more ciphertext later, not the end of the stream
      *read = 0;
      return 0;
    }
    const size_t k = std::min(n, in.size());
    std::memcpy(out, in.data(), k);
    in.Consume(k);
    *read = k;
    return 1;
  }

  static long Ctrl(BIO* bio, int cmd, long arg, void* ptr) {
    TlsSession* session = static_cast<TlsSession*>(BIO_get_data(bio));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case kBioSetKtls:
        return arg == 1 && session->StartKernelSend(ptr) ? 1 : 0;  // receiving stays here
      case BIO_CTRL_GET_KTLS_SEND:
        return session->ktls_send_ ? 1 : 0;
      case kBioSetKtlsControlMessage:
        session->control_record_type_ = static_cast<int>(arg);
        return 1;
      case kBioClearKtlsControlMessage:
        session->control_record_type_ = 0;
        return 1;
      default:
        return 0;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// TlsSession

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, BufferPool* pool)
    : context_(std::move(context)), wire_in_(pool), wire_out_(pool) {}

bool TlsSession::FirstRecordArrived() {
  // Until the first record is whole, OpenSSL has nothing to do, and a connection that sends
  // nothing, or part of a ClientHello, holds none of its state (about 45 KB: the SSL object,
  // its read buffer, the handshake buffer), only these bytes.
  first_record_.append(wire_in_.data(), wire_in_.size());
  wire_in_.Consume(wire_in_.size());
  const auto* b = reinterpret_cast<const unsigned char*>(first_record_.data());
  const size_t n = first_record_.size();
  if (n == 0) return false;
  // A handshake record: type 22, version 3.x, then a 16-bit length. Anything else is not TLS
  // (or not a version this accepts), and OpenSSL says so at once.
  // A first byte that starts neither a TLS record (22) nor an SSLv2-format hello (high bit set)
  // cannot begin a handshake: refused now, without waiting for the five bytes OpenSSL reads.
  if (b[0] != 0x16 && (b[0] & 0x80) == 0 && n < 5) {
    error_ = "not TLS: the first byte cannot start a handshake";
    error_not_tls_ = true;
    return false;
  }
  const bool handshake_record = b[0] == 0x16 && (n < 2 || b[1] == 0x03);
  if (handshake_record) {
    if (n < 5) return false;
    const size_t length = (static_cast<size_t>(b[3]) << 8) | b[4];
    if (length <= SSL3_RT_MAX_ENCRYPTED_LENGTH && n < 5 + length) return false;
  }
  ERR_clear_error();
  ssl_ = SSL_new(context_->native());
  BIO* bio = ssl_ == nullptr ? nullptr : BIO_new(TlsBio::Method());
  if (bio == nullptr) {
    error_ = absl::StrCat(ssl_ == nullptr ? "SSL_new: " : "BIO_new: ", TakeOpenSslError());
    SSL_free(ssl_);
    ssl_ = nullptr;
    return false;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_accept_state(ssl_);
  wire_in_.Append(first_record_);
  std::string().swap(first_record_);
  return true;
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

TlsSession::Result TlsSession::Decrypt(Buffer& plain, size_t max_plain) {
  if (ssl_ == nullptr && !FirstRecordArrived()) {
    starved_ = true;
    return error_.empty() ? Result::kOk : Result::kError;
  }
  if (peer_closed_) {
    wire_in_.Clear();
    return Result::kPeerClosed;
  }
  ERR_clear_error();
  if (!handshake_done_) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ) return Fail(e);
      starved_ = true;
      // Waiting for the client's next flight, the read buffer goes back (OpenSSL keeps it
      // while a partial record is in it).
      SSL_free_buffers(ssl_);
      return Result::kOk;
    }
    handshake_done_ = true;
    if (offload_fd_ >= 0 && context_->options().ktls && !ktls_send_ && ktls_refusal_.empty()) {
      // The keys changed without OpenSSL offering them to the BIO.
      ktls_refusal_ = "OpenSSL did not offer the keys (a library built without kTLS, or a cipher it does not offload)";
    }
  }
  starved_ = false;
  size_t got = 0;
  while (got < max_plain) {
    if (plain.writable() < 1024) plain.Reserve(std::min<size_t>(max_plain - got, 4096));
    const size_t room = std::min(plain.writable(), max_plain - got);
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, plain.Reserve(room), room, &n);
    if (r == 1) {
      plain.Commit(n);
      got += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) {
      starved_ = true;
      return Result::kOk;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      wire_in_.Clear();
      return Result::kPeerClosed;
    }
    return Fail(e);
  }
  return Result::kOk;
}

size_t TlsSession::Encrypt(std::string_view plain) {
  if (ssl_ == nullptr || !handshake_done_ || shut_down_ || plain.empty()) return 0;
  ERR_clear_error();
  size_t written = 0;
  if (SSL_write_ex(ssl_, plain.data(), plain.size(), &written) != 1) {
    // Writing into memory cannot block; only a broken session refuses.
    Fail(SSL_get_error(ssl_, 0));
    return 0;
  }
  return written;
}

void TlsSession::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (ssl_ == nullptr || !handshake_done_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // close_notify into wire_out_; the peer's is not waited for
  ERR_clear_error();
}

bool TlsSession::StartKernelSend(const void* crypto_info) {
  if (offload_fd_ < 0 || !context_->options().ktls || crypto_info == nullptr) return false;
  // OpenSSL passes the kernel's structure for the cipher (struct tls_crypto_info first).
  tls_crypto_info header;
  std::memcpy(&header, crypto_info, sizeof(header));
  const size_t size = KernelCryptoInfoSize(header.cipher_type);
  if (size == 0) {
    ktls_refusal_ = absl::StrCat("cipher ", header.cipher_type, " has no kernel implementation");
    return false;
  }
  // Everything already encrypted here goes out before the kernel encrypts what follows. The
  // flight is a few kilobytes into an empty socket buffer; if it does not all fit, the session
  // stays in userspace (and what is left goes out as usual).
  while (!wire_out_.empty()) {
    const ssize_t n = ::send(offload_fd_, wire_out_.data(), wire_out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      wire_out_.Consume(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    ktls_refusal_ = absl::StrCat("the handshake did not fit the socket buffer (", std::strerror(errno), ")");
    return false;
  }
  if (::setsockopt(offload_fd_, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) != 0) {
    ktls_refusal_ = absl::StrCat("TCP_ULP tls: ", std::strerror(errno),
                                 errno == ENOENT ? " (the kernel has no tls module)" : "");
    return false;
  }
  if (::setsockopt(offload_fd_, SOL_TLS, TLS_TX, crypto_info, static_cast<socklen_t>(size)) != 0) {
    // The socket has the tls layer but no keys: it still passes bytes through unchanged.
    ktls_refusal_ = absl::StrCat("TLS_TX: ", std::strerror(errno));
    return false;
  }
  ktls_send_ = true;
  ktls_refusal_.clear();
  return true;
}

bool TlsSession::SendControlRecord(int type, const char* data, size_t n) {
  // Records queued before this one must reach the kernel first. A ticket follows the
  // handshake's end and close_notify follows the last reply, so this is rarely needed.
  while (!wire_out_.empty()) {
    const ssize_t sent = ::send(offload_fd_, wire_out_.data(), wire_out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0) {
      wire_out_.Consume(static_cast<size_t>(sent));
    } else if (sent == 0 || errno != EINTR) {
      return false;  // the session fails (tls_error) rather than send records out of order
    }
  }
  char control[CMSG_SPACE(sizeof(unsigned char))] = {};
  msghdr message{};
  iovec piece{const_cast<char*>(data), n};
  message.msg_iov = &piece;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_TLS;
  header->cmsg_type = TLS_SET_RECORD_TYPE;
  header->cmsg_len = CMSG_LEN(sizeof(unsigned char));
  *CMSG_DATA(header) = static_cast<unsigned char>(type);
  ssize_t sent;
  do {
    sent = ::sendmsg(offload_fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  return sent == static_cast<ssize_t>(n);
}

TlsSession::Result TlsSession::Fail(int ssl_error) {
  const unsigned long code = ERR_peek_last_error();
  if (!handshake_done_ && code != 0 && ERR_GET_LIB(code) == ERR_LIB_SSL && ReasonIsNotTls(ERR_GET_REASON(code))) {
    error_not_tls_ = true;
  }
  if (ssl_error == SSL_ERROR_SSL) {
    error_ = TakeOpenSslError();
  } else {
    error_ = absl::StrCat("SSL error ", ssl_error, " (", TakeOpenSslError(), ")");
  }
  return Result::kError;
}

bool TlsSession::has_pending() const {
  // After Decrypt stopped for want of ciphertext, what OpenSSL holds is a partial record: not
  // work until more arrives (which lands in wire_in_; OpenSSL had taken all of it).
  if (peer_closed_) return false;  // what follows close_notify is not read
  if (!wire_in_.empty()) return true;
  return ssl_ != nullptr && !starved_ && (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1);
}

bool TlsSession::resumed() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }

std::string_view TlsSession::version() const {
  if (ssl_ == nullptr || !handshake_done_) return {};
  return SSL_get_version(ssl_);
}

std::string_view TlsSession::alpn() const {
  if (ssl_ == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl_, &data, &length);
  return std::string_view(reinterpret_cast<const char*>(data), length);
}

}  // namespace percore
