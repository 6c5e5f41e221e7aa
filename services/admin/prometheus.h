#pragma once

#include <string>

#include "reactor/server.h"

namespace percore {

// Every statistic of `server` in the Prometheus text exposition format (version 0.0.4): the
// process, each loop (label `loop`), the accepting side, and each service (labels `service`,
// `loop`). Metric names are listed in services/admin/README.md and are stable. Durations are
// in seconds; counters end in _total; histograms have cumulative _bucket{le=...}, _sum and
// _count. Thread-safe (reads counters lock-free); callable before Start and after Stop.
// Deliberately free of gRPC so that the HTTP service's /metrics can link it.
std::string PrometheusText(Server& server);

// The content type to serve the text with.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace percore
