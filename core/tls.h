#pragma once

// TLS for percore's connections: OpenSSL 3, server side.
//
// TlsContext is one endpoint's configuration (certificate chain, key, ALPN, versions, ticket
// keys), built once and shared read-only by every loop. TlsSession is one connection's
// handshake and record layer. It does not read or write the socket itself: ciphertext comes in
// through Receive() and leaves through wire_out(), so the same session works over every back
// end (a readiness back end reads and writes the descriptor itself; io_uring hands over what its
// receives brought and sends what wire_out() holds). The one exception is kernel TLS
// (OffloadSendsTo): at the moment the keys change, the handshake bytes before it go out on the
// socket, the kernel takes the keys, and from then on wire_out() holds plaintext that the
// kernel encrypts.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/buffer.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace percore {

struct TlsOptions {
  std::string cert_file;  // PEM: the certificate first, then any intermediates (a chain)
  std::string key_file;   // PEM private key matching the certificate
  // Application protocols the endpoint speaks, in its order of preference ("http/1.1"). A
  // client that offers none of them still connects, without ALPN (as nginx does).
  std::vector<std::string> alpn;
  // Let the kernel encrypt what connections send (kTLS, SSL_OP_ENABLE_KTLS) where the kernel
  // has the tls module and the back end allows it (see TlsSession::OffloadSendsTo).
  bool ktls = true;
};

// Whether this kernel can take TLS records off userspace: the "tls" upper-layer protocol is
// known to TCP (the tls module is loaded or built in). Read once.
bool KernelHasTls();

// One endpoint's TLS configuration. Immutable once made; shared by every loop's connections.
class TlsContext {
 public:
  // Reads the certificate chain and key; refuses a missing or unreadable file, a key that does
  // not match the certificate, and a certificate outside its validity period, each with an error
  // that names the file and the reason.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Create(const TlsOptions& options);
  // The same options with the files read again (certificate reload). The ticket keys carry
  // over, so sessions resumed from tickets issued before the reload still resume. A bad new file
  // is an error and this context stays as it was.
  absl::StatusOr<std::shared_ptr<const TlsContext>> Reload() const;

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  const TlsOptions& options() const { return options_; }
  // The certificate in use: its subject and when it expires, for logs and the admin.
  const std::string& subject() const { return subject_; }
  absl::Time not_after() const { return not_after_; }

 private:
  TlsContext(SSL_CTX* ctx, TlsOptions options) : ctx_(ctx), options_(std::move(options)) {}
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Build(const TlsOptions& options,
                                                                 const TlsContext* carry_tickets_from);

  SSL_CTX* ctx_;
  TlsOptions options_;
  std::string alpn_wire_;  // the ALPN list in wire format, read by the selection callback
  std::string subject_;
  absl::Time not_after_ = absl::InfinitePast();
};

// One connection's TLS state, server side. Not thread-safe: it belongs to its connection's loop.
class TlsSession {
 public:
  enum class Result : uint8_t {
    kOk,          // made progress, or has nothing to do until more ciphertext arrives
    kPeerClosed,  // the peer sent close_notify: it will send nothing more
    kError,       // a protocol error or a failed handshake; error() says which
  };

  // `pool` gives the ciphertext buffers their blocks (the connection's loop's pool).
  TlsSession(std::shared_ptr<const TlsContext> context, BufferPool* pool);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext from the peer, kept until Decrypt takes it (dropped after close_notify).
  void Receive(std::string_view ciphertext) {
    if (!peer_closed_) wire_in_.Append(ciphertext);
  }
  // The buffer ciphertext from the peer goes into (a readiness back end reads into it).
  Buffer& wire_in() { return wire_in_; }
  // Drives the handshake and decrypts into `plain` until it holds `max_plain` more bytes or the
  // ciphertext received so far is used up. Anything the session must send in answer (handshake
  // messages, session tickets, alerts) is added to wire_out().
  Result Decrypt(Buffer& plain, size_t max_plain);
  // Encrypts `plain` into wire_out(); returns how many bytes it took: all of them once the
  // handshake is done, none before (the caller keeps them and tries again after Decrypt).
  size_t Encrypt(std::string_view plain);
  // Queues close_notify (once). Nothing can be encrypted after it.
  void Shutdown();
  bool shut_down() const { return shut_down_; }
  // Whether Decrypt has anything to work on: ciphertext not yet taken, or a record OpenSSL has
  // read but not fully returned (Decrypt stopped at its limit).
  bool has_pending() const;
  // Ciphertext for the peer, in order; the caller sends and consumes it.
  Buffer& wire_out() { return wire_out_; }
  // The connection moved to another loop: the wire buffers, empty and without storage (given
  // back to the old loop's pool), take their blocks from `pool` from now on.
  void UsePool(BufferPool* pool) {
    wire_in_ = Buffer(pool);
    wire_out_ = Buffer(pool);
  }

  bool handshake_done() const { return handshake_done_; }
  // True exactly once: the first time it is asked after the handshake completed.
  bool TakeHandshakeCompleted() {
    const bool completed = handshake_done_ && !handshake_reported_;
    handshake_reported_ = handshake_reported_ || handshake_done_;
    return completed;
  }
  bool resumed() const;
  // "TLSv1.3", "TLSv1.2"; empty before the handshake.
  std::string_view version() const;
  // The application protocol agreed by ALPN; empty if none.
  std::string_view alpn() const;
  // Kernel TLS for what this session sends, on `fd` (a connected TCP socket that the caller
  // writes wire_out() to with ordinary writes, nothing else in flight: a readiness back end).
  // Call before the handshake; the offload happens when the application keys are ready, if
  // the context allows it (TlsOptions::ktls), OpenSSL supports the cipher and the kernel takes
  // the keys. Records from the peer are still decrypted here. Without the call, or when the
  // kernel refuses, everything stays in userspace and ktls_refusal() says why.
  void OffloadSendsTo(int fd) { offload_fd_ = fd; }
  // Whether the kernel does the record layer (kTLS) for sending / receiving.
  bool ktls_send() const { return ktls_send_; }
  bool ktls_receive() const { return false; }
  // Why an offload asked for with OffloadSendsTo did not happen, once the handshake is done
  // (empty if it happened or was not asked for): the kernel refused the keys, or OpenSSL never
  // offered them (Debian's libssl3, for one, is built without kTLS).
  const std::string& ktls_refusal() const { return ktls_refusal_; }
  // The OpenSSL session, for what this class does not wrap (the peer's certificate, SNI); null
  // until the client's first record has arrived.
  SSL* native() const { return ssl_; }
  // What failed, when a call returned kError.
  const std::string& error() const { return error_; }
  // Whether that failure came from the peer's bytes not being TLS at all (garbage instead of a
  // ClientHello), as opposed to a TLS exchange that failed.
  bool error_was_not_tls() const { return error_not_tls_; }

 private:
  friend struct TlsBio;
  Result Fail(int ssl_error);
  // Creates the OpenSSL session once the first record is whole (or is not TLS at all).
  bool FirstRecordArrived();
  // The BIO's side of kernel TLS: take the send keys; send a record of `type` that is not
  // application data (a ticket, an alert) through the kernel.
  bool StartKernelSend(const void* crypto_info);
  bool SendControlRecord(int type, const char* data, size_t n);

  SSL* ssl_ = nullptr;  // made when the first record has arrived
  std::shared_ptr<const TlsContext> context_;
  std::string first_record_;  // the first record's bytes while it is incomplete
  Buffer wire_in_;
  Buffer wire_out_;
  bool handshake_done_ = false;
  bool handshake_reported_ = false;
  bool shut_down_ = false;
  bool starved_ = false;  // the last Decrypt stopped for want of ciphertext
  bool peer_closed_ = false;  // close_notify came: nothing after it is read
  bool error_not_tls_ = false;
  int offload_fd_ = -1;
  bool ktls_send_ = false;
  int control_record_type_ = 0;  // set by OpenSSL just before it writes a non-data record
  std::string ktls_refusal_;
  std::string error_;
};

}  // namespace percore
