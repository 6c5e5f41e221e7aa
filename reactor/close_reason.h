#pragma once

#include <cstdint>
#include <string_view>

namespace percore {

// Why a connection ended. Every close is counted under exactly one reason, per loop.
enum class CloseReason : uint8_t {
  kPeerClosed,      // the peer sent FIN and everything owed to it was flushed
  kPeerReset,       // ECONNRESET / EPIPE from the peer
  kIdleTimeout,     // no bytes in either direction for the idle timeout
  kReadTimeout,     // a handler's read deadline (e.g. headers not complete in time) passed
  kWriteTimeout,    // queued output made no progress before the write deadline
  kProtocolError,   // the handler rejected the peer's bytes
  kServiceClose,    // the handler finished the conversation (HTTP "Connection: close", "quit")
  kServerDrain,     // the server or the loop is shutting down
  kAdminClose,      // an operator closed it through the admin API
  kLimitExceeded,   // over a connection or request-size limit
  kOutputOverflow,  // the peer does not read and queued output passed the hard cap
  kIoError,         // any other socket error
  kHandlerError,    // the handler failed (threw, or reported an internal error)
  kTlsHandshakeTimeout,  // a TLS endpoint's handshake did not complete in time (slow or silent client)
  kTlsHandshakeFailed,   // the handshake failed: not TLS at all, no shared version or cipher, bad messages
  kTlsError,             // a TLS protocol error after the handshake (a bad record, an alert)
};

inline constexpr int kCloseReasonCount = static_cast<int>(CloseReason::kTlsError) + 1;

// Stable lower_snake_case names, used in stats, logs and metric labels.
std::string_view CloseReasonName(CloseReason reason);

}  // namespace percore
