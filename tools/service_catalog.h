#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/socket.h"
#include "reactor/server.h"

namespace percore {

// The services percored knows by name, and the --listen syntax that names them.

inline constexpr char kDefaultListen[] =
    "echo=127.0.0.1:7000,http=127.0.0.1:8080,memcache=127.0.0.1:11211,resp=127.0.0.1:6379";

struct Endpoint {
  std::string service;
  HostPort address;
  bool tls = false;  // SERVICE+tls=HOST:PORT
};

// "SERVICE[+tls]=HOST:PORT[,SERVICE[+tls]=HOST:PORT...]"
absl::StatusOr<std::vector<Endpoint>> ParseListen(std::string_view text);

// "echo, http, ..." for --help.
std::string ServiceNames();

// Adds to `server` each distinct service the endpoints name.
absl::Status AddServices(Server& server, const std::vector<Endpoint>& endpoints);

}  // namespace percore
