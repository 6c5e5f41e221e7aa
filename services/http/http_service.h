#pragma once

#include <memory>
#include <string_view>

#include "core/free_list.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"
#include "services/http/http_connection_handler.h"
#include "services/http/http_options.h"

namespace percore {

// HTTP/1.1 origin server (services/http/README.md says what it implements). Its options are
// immutable after construction and every loop shares them; each loop also keeps the request
// states its connections are not using (HttpLoopState), and each connection gets an
// HttpConnectionHandler. One HttpService serves one Server.
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

  // Loop thread only: the request states this loop keeps for its connections' next requests.
  const FreeList<HttpRequestState>& local_request_states() const { return loop_states_.local().request_states; }

 private:
  HttpOptions options_;
  Sharded<HttpLoopState> loop_states_;
};

std::shared_ptr<Service> NewHttpService(HttpOptions options = {});

// The complete response (503, "Connection: close", no Date: RFC 9110 §6.6.1 makes Date optional
// for 5xx) that the distributor writes to a connection it turns away because a connection limit
// is reached, before closing it. Static storage; safe from any thread.
std::string_view HttpOverloadResponse();

}  // namespace percore
