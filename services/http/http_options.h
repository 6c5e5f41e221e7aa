#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "services/http/router.h"

namespace percore {

// Configuration of the HTTP service; fixed once the service is created.
struct HttpOptions {
  size_t max_head_bytes = 8 * 1024;  // request line + header section; over it: 431 and close
  size_t max_body_bytes = 1 << 20;   // request body (Content-Length or decoded chunked); 413
  size_t max_headers = 100;          // header field lines; 431
  // A request whose header section is not complete this long after its first byte gets 408 and
  // the connection closes. Zero or infinite: no limit (the connection's idle timeout still
  // applies).
  absl::Duration header_timeout = absl::Seconds(30);
  // Body of GET /metrics (served as Prometheus text). Unset: there is no /metrics route. Called
  // on any loop thread, concurrently: it must be thread-safe.
  std::function<std::string()> metrics;
  // The application's routes. They take precedence over the built-in ones (/, /plaintext,
  // /json, /metrics), which are added for paths the application left free.
  Router routes;
  bool builtin_routes = true;
};

}  // namespace percore
