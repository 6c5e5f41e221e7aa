#pragma once

#include "reactor/connection.h"

namespace percore {

// What tests may reach inside a Connection that handlers may not: the socket, so that a test
// service can shrink its buffers and make output back up with little data.
class ConnectionTestPeer {
 public:
  static int fd(const Connection& conn) { return conn.fd(); }
};

}  // namespace percore
