#pragma once

#include <cstdint>
#include <memory>

#include "reactor/handler.h"
#include "reactor/server.h"

namespace percore::test {

// A percore::Server serving one service on 127.0.0.1 (port 0) with `loops` loops, started on
// construction and stopped on destruction, plus the stats sums the loadgen tests compare with.
class RunningServer {
 public:
  explicit RunningServer(std::shared_ptr<Service> service, int loops = 2);
  ~RunningServer();
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;

  uint16_t port() const { return port_; }

  // Sums over the loops (Server::Totals).
  uint64_t requests();        // the service's requests
  uint64_t request_errors();  // the service's requests counted as errors
  uint64_t bytes_in();
  uint64_t handed_in();       // connections handed to loops

 private:
  Server server_;
  uint16_t port_ = 0;
};

}  // namespace percore::test
