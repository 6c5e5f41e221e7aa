#include "services/http/http_service.h"

#include <memory>
#include <utility>

#include "services/http/builtin_routes.h"
#include "services/http/http_connection_handler.h"

namespace percore {

HttpService::HttpService(HttpOptions options)
    : options_(std::move(options)),
      loop_states_(*this, [this](const ShardInfo&) { return std::make_unique<HttpLoopState>(options_, loop_states_); }) {
  if (options_.builtin_routes) AddBuiltinRoutes(options_, options_.routes);
}

std::unique_ptr<Handler> HttpService::NewHandler(Connection& conn) {
  return std::make_unique<HttpConnectionHandler>(loop_states_.local());
}

std::string_view HttpService::OverloadResponse() const { return HttpOverloadResponse(); }

std::shared_ptr<Service> NewHttpService(HttpOptions options) {
  return std::make_shared<HttpService>(std::move(options));
}

std::string_view HttpOverloadResponse() {
  static constexpr std::string_view kResponse =
      "HTTP/1.1 503 Service Unavailable\r\n"
      "Server: percore\r\n"
      "Content-Length: 20\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Retry-After: 1\r\n"
      "Connection: close\r\n"
      "\r\n"
      "Service Unavailable\n";
  return kResponse;
}

}  // namespace percore
