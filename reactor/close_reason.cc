#include "reactor/close_reason.h"

namespace percore {

std::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed: return "peer_closed";
    case CloseReason::kPeerReset: return "peer_reset";
    case CloseReason::kIdleTimeout: return "idle_timeout";
    case CloseReason::kReadTimeout: return "read_timeout";
    case CloseReason::kWriteTimeout: return "write_timeout";
    case CloseReason::kProtocolError: return "protocol_error";
    case CloseReason::kServiceClose: return "service_close";
    case CloseReason::kServerDrain: return "server_drain";
    case CloseReason::kAdminClose: return "admin_close";
    case CloseReason::kLimitExceeded: return "limit_exceeded";
    case CloseReason::kOutputOverflow: return "output_overflow";
    case CloseReason::kIoError: return "io_error";
    case CloseReason::kHandlerError: return "handler_error";
    case CloseReason::kTlsHandshakeTimeout: return "tls_handshake_timeout";
    case CloseReason::kTlsHandshakeFailed: return "tls_handshake_failed";
    case CloseReason::kTlsError: return "tls_error";
  }
  return "unknown";
}

}  // namespace percore
