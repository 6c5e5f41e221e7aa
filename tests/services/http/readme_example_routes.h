#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "absl/time/time.h"
#include "reactor/event_loop.h"
#include "services/http/http_service.h"

namespace example {

// GET /hello?name=ada answers "hello, ada"; POST /reverse answers its body reversed; GET /later
// answers "later" a tenth of a second after the request, from a timer on the connection's loop
// (which serves its other connections meanwhile).
inline percore::HttpOptions GreeterOptions() {
  percore::HttpOptions options;
  options.max_body_bytes = 64 * 1024;  // larger bodies get 413
  options.routes.Get("/hello", [](const percore::HttpRequest& request,
                                  percore::HttpResponse& response) {
    const std::string_view name =
        request.query.starts_with("name=") ? request.query.substr(5) : "world";
    response.set_content_type("text/plain; charset=utf-8");
    std::string& body = *response.mutable_body();  // reused: keeps its capacity
    body.assign("hello, ");
    body.append(name);
  });
  options.routes.Post("/reverse", [](const percore::HttpRequest& request,
                                     percore::HttpResponse& response) {
    response.set_content_type("application/octet-stream");
    response.set_body(std::string(request.body.rbegin(), request.body.rend()));
  });
  options.routes.GetAsync("/later", [](const percore::HttpRequest& request,
                                       percore::HttpResponder responder) {
    percore::EventLoop& loop = responder.loop();
    loop.RunAfter(absl::Milliseconds(100), [responder = std::move(responder)]() mutable {
      responder.response().set_body("later");
      responder.Send();  // dropped if the client has gone meanwhile
    });
  });
  return options;
}

}  // namespace example
