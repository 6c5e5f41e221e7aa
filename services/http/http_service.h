#pragma once

#include <memory>
#include <string_view>

#include "reactor/handler.h"
#include "services/http/http_options.h"

namespace percore {

// HTTP/1.1 origin server (services/http/README.md says what it implements). Immutable after
// construction: every loop shares it, and each connection gets an HttpConnectionHandler.
class HttpService final : public Service {
 public:
  // Adds the built-in routes to options.routes (unless options.builtin_routes is false).
  explicit HttpService(HttpOptions options);

  std::string_view name() const override { return "http"; }
  std::unique_ptr<Handler> NewHandler(Connection& conn) override;
  // The canned 503 of HttpOverloadResponse().
  std::string_view OverloadResponse() const override;

  const HttpOptions& options() const { return options_; }
  const Router& router() const { return options_.routes; }

 private:
  HttpOptions options_;
};

std::shared_ptr<Service> NewHttpService(HttpOptions options = {});

// The complete response (503, "Connection: close", no Date: RFC 9110 §6.6.1 makes Date optional
// for 5xx) that the distributor writes to a connection it turns away because a connection limit
// is reached, before closing it. Static storage; safe from any thread.
std::string_view HttpOverloadResponse();

}  // namespace percore
