#pragma once

#include "services/http/http_options.h"
#include "services/http/router.h"

namespace percore {

// Adds the built-in endpoints to `router` for each path it does not serve yet:
//   GET /plaintext  "Hello, World!" as text/plain
//   GET /json       {"message":"Hello, World!"} as application/json
//   GET /metrics    options.metrics() as Prometheus text (only when options.metrics is set)
//   GET /           an HTML page naming the server and linking to every GET-able path
void AddBuiltinRoutes(const HttpOptions& options, Router& router);

}  // namespace percore
