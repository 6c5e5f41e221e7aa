#pragma once

#include <cstdint>
#include <string>

#include "core/socket.h"

namespace percore::loadgen {

enum class Protocol : uint8_t { kEcho, kHttp, kMemcache, kResp };

// "echo", "http", "memcache", "resp". Returns false for anything else.
bool ParseProtocol(std::string_view name, Protocol* out);
std::string_view ProtocolName(Protocol protocol);

// What the requests look like. Immutable during a run; shared by every worker thread.
struct Workload {
  Protocol protocol = Protocol::kEcho;
  // echo: bytes per message; the reply must be the same bytes.
  size_t message_size = 64;
  // http: the request target, the Host header, and the reply every request must get.
  std::string path = "/plaintext";
  std::string host = "localhost";
  int expect_status = 200;
  bool check_body = true;
  std::string expect_body = "Hello, World!";
  // memcache and resp: keys are "k" followed by a zero-padded index in [0, keys), key_size
  // bytes long; the value stored under a key is derived from it (KeySpace), so every hit is
  // checked byte for byte.
  uint64_t keys = 10'000;
  size_t key_size = 32;
  size_t value_size = 100;
  double get_ratio = 0.9;  // the rest are sets
  bool ping = false;       // resp: send PING only
  // memcache and resp: every key was stored before the run, so a miss is a wrong reply.
  bool misses_are_errors = false;
};

// How the load is applied. Exactly one of `requests` and `duration_ns` bounds the run
// (`requests` wins when both are set).
struct LoadOptions {
  HostPort server;
  Workload workload;
  int connections = 16;   // active connections, spread over the threads
  int threads = 1;        // each runs its own epoll loop over its share of the connections
  int depth = 1;          // closed loop: requests outstanding per connection
  double rate = 0;        // > 0: open loop at this many requests/s in total
  uint64_t requests = 0;  // > 0: stop after this many requests in total
  int64_t duration_ns = 5'000'000'000;
  bool connect_per_request = false;  // one request per connection: measures accepts
  int idle_connections = 0;          // opened before the run and held, never used
  // Each idle connection first sends one request and reads its reply (a connection that has
  // served a request, as a real idle client's has), then is held idle.
  bool idle_after_request = false;
  int64_t timeout_ns = 5'000'000'000;  // a worker with requests outstanding and no reply for
                                       // this long gives them up as errors
  bool preload = false;  // memcache/resp: set every key once before the run
  uint64_t seed = 1;
};

}  // namespace percore::loadgen
